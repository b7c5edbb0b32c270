"""Sequential closed-mode radioactivity: planned looks with pre-registered alpha spending.

A fixed budget wastes queries on a blatant thief and is too short for a diluted one; choosing the
budget after looking is p-hacking.  A :class:`SequentialPlan` fixes before the first query the
budgets at which the test looks (``looks``, increasing; the last is the most it may collect) and how
the total ``alpha`` is spent over them: look ``k`` at information fraction ``t_k = looks[k] /
looks[-1]`` may spend ``alpha * (t_k^rho - t_(k-1)^rho)`` (the power family of Kim and DeMets:
``rho = 3`` spends like O'Brien-Fleming, little early and most at the end; ``rho = 1`` like Pocock,
evenly).  The run asks the suspect up to the next look, computes the closed-mode p-value on the
transcript's prefix, and stops at the first look whose p-value is at most its share.

Validity does not rest on a model of how the looks' statistics are correlated: by the union bound
the chance that any look crosses under the null is at most the sum of the shares, which is
``alpha``.  The price is a little power against an exact group-sequential boundary; what is gained
is that the exact per-look null (:mod:`tracemark.theft._radioactivity`) is all it needs.  The
reported p-value is ``min_k p_k / c_k`` over the looks taken (``c_k`` the look's share of alpha,
capped at 1): at most ``alpha`` exactly when some look crossed.  Stopping early, or continuing to a
later *planned* look, never inflates the false-positive rate; a look outside the plan is a new test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from tracemark._json import JSONObject, thaw_object
from tracemark.errors import InvalidInputError, TheftError
from tracemark.keys import TextKey
from tracemark.text import TextTokenizer, check_key_fits
from tracemark.theft._adapters import TextModel
from tracemark.theft._closed import closed_verdict, preregistration_differences, preregistration_record
from tracemark.theft._radioactivity import RadioactivityConfig, check_keys
from tracemark.theft._transcript import Transcript, collect_completions, start_transcript
from tracemark.theft._verdict import TheftVerdict, recommended_budget
from tracemark.tlog import NoteSigner

#: Most looks a plan may have (each look re-scores the prefix and runs the null check).
MAX_LOOKS = 16


@dataclass(frozen=True)
class SequentialPlan:
    """Budgets (response tokens) at which to look, and the spending rule; fixed before the first query."""

    looks: tuple[int, ...]
    rho: float = 0.5

    def validate(self) -> None:
        """Refuse plans that are empty, unordered or spend alpha in a way the union bound does not cover."""
        if not 1 <= len(self.looks) <= MAX_LOOKS:
            raise InvalidInputError(f"a sequential plan has 1 to {MAX_LOOKS} looks")
        if any(b < 1 for b in self.looks) or any(b >= c for b, c in zip(self.looks, self.looks[1:], strict=False)):
            raise InvalidInputError("the looks must be positive token budgets in increasing order")
        if not 0.25 <= self.rho <= 8.0 or not math.isfinite(self.rho):
            raise InvalidInputError("rho must lie in 0.25..8 (1: Pocock-like, 3: O'Brien-Fleming-like)")

    def shares(self) -> tuple[float, ...]:
        """Each look's share of alpha: ``t_k^rho - t_(k-1)^rho``; they sum to 1."""
        self.validate()
        fractions = [b / self.looks[-1] for b in self.looks]
        spent = [f**self.rho for f in fractions]
        spent[-1] = 1.0
        return tuple(s - (spent[i - 1] if i else 0.0) for i, s in enumerate(spent))

    def to_json(self) -> JSONObject:
        """``looks``, ``rho`` and ``spending`` (the rule in words): what the transcript seals."""
        return {"looks": list(self.looks), "rho": self.rho, "spending": "power family alpha * t^rho, union bound"}


def _checked(config: RadioactivityConfig, plan: SequentialPlan) -> RadioactivityConfig:
    plan.validate()
    config = config.for_mode("closed")
    if config.budget_tokens != plan.looks[-1]:
        raise InvalidInputError(
            f"budget_tokens ({config.budget_tokens}) must be the plan's last look ({plan.looks[-1]}): "
            "the most the run may collect"
        )
    return config


def radioactivity_sequential(
    suspect: TextModel,
    keys: Sequence[TextKey],
    prompts: Sequence[str],
    tokenizer: TextTokenizer,
    config: RadioactivityConfig,
    plan: SequentialPlan,
    *,
    max_new_tokens: int = 128,
    seed: int = 0,
    signer: NoteSigner | None = None,
) -> tuple[TheftVerdict, Transcript]:
    """Closed mode with planned looks: ask up to each look in turn and stop at the first that crosses.

    ``config.budget_tokens`` must equal the last look.  The plan and configuration are written
    into the transcript before the first query (sealed with ``signer``).  Returns the verdict and
    the transcript, which holds only what was asked: a re-run
    (:func:`radioactivity_sequential_from_transcript`) reaches the same verdict.
    """
    config = _checked(config, plan)
    check_keys(keys, config)
    for key in keys:
        check_key_fits(key, tokenizer)
    failures = max(1, math.ceil(config.max_failure_rate * len(prompts)))
    record = preregistration_record(config, keys, prompts, plan.to_json())
    transcript = start_transcript(suspect, plan.looks[-1], max_new_tokens=max_new_tokens, seed=seed,
                                  preregistration=record, signer=signer)  # fmt: skip
    verdict = None
    for index, budget in enumerate(plan.looks):
        transcript = collect_completions(
            suspect, prompts, tokenizer, budget_tokens=budget, max_new_tokens=max_new_tokens, seed=seed,
            max_failures=failures, earlier=transcript,
        )  # fmt: skip
        verdict = _looks_verdict(transcript, keys, tokenizer, config, plan, upto=index + 1)
        if verdict.decision == "evidence" or verdict.counts.get("stopped") == "budget not reached":
            break
    if verdict is None:
        raise InvalidInputError("a sequential plan needs at least one look")
    return verdict, transcript.signed(signer) if signer is not None else transcript


def radioactivity_sequential_from_transcript(
    transcript: Transcript,
    keys: Sequence[TextKey],
    tokenizer: TextTokenizer,
    config: RadioactivityConfig,
    plan: SequentialPlan,
    *,
    exploratory: bool = False,
) -> TheftVerdict:
    """The sequential verdict on a collected transcript: every planned look its responses reach.

    Settings or a plan other than the sealed ones are refused unless ``exploratory`` (then the
    verdict is labelled so and reads ``inconclusive``).
    """
    config = _checked(config, plan)
    differences = preregistration_differences(transcript, keys, config, plan.to_json())
    if differences and not exploratory:
        raise TheftError(
            "these settings differ from the transcript's pre-registration ("
            + "; ".join(differences)
            + "): re-run with the registered settings, or label the run exploratory"
        )
    return _looks_verdict(transcript, keys, tokenizer, config, plan, upto=len(plan.looks),
                          exploratory=exploratory, differences=differences)  # fmt: skip


def _looks_verdict(
    transcript: Transcript,
    keys: Sequence[TextKey],
    tokenizer: TextTokenizer,
    config: RadioactivityConfig,
    plan: SequentialPlan,
    *,
    upto: int,
    exploratory: bool = False,
    differences: Sequence[str] = (),
) -> TheftVerdict:
    """Evaluate the first ``upto`` looks in order, stopping at the first that crosses its share of alpha."""
    shares = plan.shares()
    looks: list[JSONObject] = []
    last: TheftVerdict | None = None
    sequential_log = 0.0
    stopped = "last look taken"
    for index in range(upto):
        budget, share = plan.looks[index], shares[index]
        look_config = replace(config, budget_tokens=budget, alpha=config.alpha * share, suggestive=None)
        last = closed_verdict(transcript, keys, tokenizer, look_config, exploratory=exploratory,
                              differences=differences)  # fmt: skip
        tokens = last.counts.get("response_tokens")
        reached = isinstance(tokens, int) and tokens >= budget
        p = last.p_value if last.p_value is not None else 1.0
        log_p = last.log10_p_value if last.log10_p_value is not None else 0.0
        if reached:
            sequential_log = min(sequential_log, log_p - math.log10(share))
        looks.append({"budget_tokens": budget, "alpha_share": share, "alpha": config.alpha * share, "p_value": p,
                      "log10_p_value": last.log10_p_value, "reached": reached,
                      "crossed": reached and last.decision == "evidence"})  # fmt: skip
        if not reached:
            stopped = "budget not reached"
            break
        if last.decision == "evidence":
            stopped = "crossed"
            break
    if last is None:
        raise InvalidInputError("a sequential plan needs at least one look")
    sequential_p = 10.0**sequential_log
    reasons = list(last.reasons)
    decision = last.decision
    counts: JSONObject = {**thaw_object(last.counts), "looks_taken": len(looks), "stopped": stopped}
    if decision == "no-evidence" and config.suggestive is not None and sequential_p <= config.suggestive:
        decision = "inconclusive"
        final = plan.looks[len(looks) - 1]
        budget = recommended_budget(sequential_p, config.alpha, final) or final
        counts["recommended_budget_tokens"] = budget
        more = "a later look of the plan" if len(looks) < len(plan.looks) else "a new pre-registered plan"
        reasons.append(
            f"suggestive, not decided: sequential p = {sequential_p:.3g} lies between alpha {config.alpha:g} and "
            f"the suggestive level {config.suggestive:g}; at the observed effect about {budget} tokens would "
            f"decide it ({more})"
        )
    config_record = last.evidence.get("config")
    registered: JSONObject = thaw_object(config_record) if isinstance(config_record, Mapping) else {}
    return replace(
        last,
        decision=decision,
        reasons=tuple(reasons),
        alpha=config.alpha,
        p_value=sequential_p,
        log10_p_value=sequential_log,
        p_value_method=f"sequential: min over looks of p_k / share_k (union bound), per look {last.p_value_method}",
        statistic={**last.statistic, "plan": plan.to_json(), "looks": looks},
        counts=counts,
        evidence={
            **last.evidence,
            "config": {**registered, "alpha": config.alpha, "budget_tokens": config.budget_tokens},
        },
    )
