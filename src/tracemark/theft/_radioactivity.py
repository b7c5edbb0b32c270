"""Watermark radioactivity: was the suspect trained on text marked with our key?

A model fine-tuned on watermarked text inherits a faint preference for the key's green
tuples (Sander et al., "Watermarking makes language models radioactive", NeurIPS 2024).
Two ways to look for it:

* **closed mode**: only the suspect's generated text.  Every distinct scored tuple
  (the scheme's unit: context and token) in its responses is scored once; tuples that
  also occur in any prompt are dropped (a model copying a watermarked prompt is not
  radioactive).  Statistic ``distinct``: green hits over distinct tuples (exact
  binomial).  Statistic ``weighted`` (default): each tuple counts ``min(times emitted,
  weight_cap)`` times; the counts come from the suspect's text alone, so under the null
  they are independent of the key and the conditional null stays exact
  (:func:`~tracemark._stats.weighted_binomial_upper_tail`).
* **open mode**: the suspect's next-token probabilities over the defender's tokenizer,
  read on a corpus.  Each distinct context is read once (its first occurrence); tuples
  that occur in the read text itself are dropped.  Statistic ``mass`` (default): the
  probability mass the suspect puts on green tokens among its top-k, counted in integer
  units of ``1 / mass_resolution`` (rounded probabilities are key-independent weights, so
  the same exact weighted null applies); ``top1``: whether its likeliest admissible token
  is green (exact binomial).

Under the null hypothesis (the suspect's outputs do not depend on the key) each distinct
tuple's colour is an independent coin of known bias.  When the prompts or the read text
are themselves watermarked, the dropped tuples are exactly the ones biased green; the
others lean red (the marked generator avoided them), which only makes the test conservative.

Every verdict re-runs the same statistic with ``null_keys`` wrong keys on the same data
(the null check), corrects for every key tried (Bonferroni) and is ``inconclusive``
when the pre-registered budget was not reached, too many probes failed, or too few
tuples remain.

This module holds what both modes share (the pre-registered configuration, the
statistic and its null, wrong keys, the null check, the verdict); ``_closed`` and
``_open`` collect the tuples.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from tracemark._json import FrozenJSONObject, JSONObject, freeze
from tracemark._stats import (
    TailProbability,
    binomial_upper_tail,
    clopper_pearson,
    weighted_binomial_null_survival,
    weighted_binomial_upper_tail,
)
from tracemark.errors import InvalidInputError, KeyMismatchError, TheftError
from tracemark.keys import TextKey
from tracemark.text import TextTokenizer, WatermarkScheme, canonicalize, load_scheme, scheme_class
from tracemark.theft._verdict import (
    Decision,
    TheftVerdict,
    bonferroni,
    decide,
    library_versions,
    recommended_budget,
    row_json,
)

CLOSED_STATISTICS = ("weighted", "distinct")
OPEN_STATISTICS = ("mass", "top1")
QUESTION = "Was the suspect model trained on text watermarked with this key?"
H0 = "the suspect's outputs are independent of the watermark key (not trained on text marked with it)"
#: Significance levels the null check reports false-positive counts at.
NULL_CHECK_LEVELS = (0.05, 0.01, 0.001)


@dataclass(frozen=True)
class RadioactivityConfig:
    """The pre-registered test: fix every field before looking at any p-value.

    ``keys_tried`` is the number of keys this suspect has been (or will be) tested with,
    for the Bonferroni correction; it defaults to the number of keys passed.  A corrected
    p-value in ``(alpha, suggestive]`` reads ``inconclusive`` with the budget that would decide
    it (``counts.recommended_budget_tokens``); ``suggestive`` None turns that off.
    """

    budget_tokens: int
    statistic: str | None = None
    weight_cap: int = 16
    alpha: float = 1e-3
    min_tuples: int = 500
    null_keys: int | None = None
    keys_tried: int | None = None
    max_failure_rate: float = 0.1
    top_k: int = 64
    mass_resolution: int = 32
    suggestive: float | None = 0.05

    @property
    def chosen_statistic(self) -> str:
        """The statistic after :meth:`for_mode` filled in the default."""
        if self.statistic is None:
            raise InvalidInputError("no statistic chosen: call for_mode() first")
        return self.statistic

    def for_mode(self, mode: str) -> RadioactivityConfig:
        """The validated configuration for ``mode``, the mode's default statistic filled in
        (closed: ``weighted``, open: ``mass``)."""
        allowed = CLOSED_STATISTICS if mode == "closed" else OPEN_STATISTICS
        resolved = replace(self, statistic=self.statistic or allowed[0])
        resolved.validate(mode)
        return resolved

    def validate(self, mode: str) -> None:
        """Refuse settings that would make the test meaningless."""
        allowed = CLOSED_STATISTICS if mode == "closed" else OPEN_STATISTICS
        if self.statistic not in allowed:
            raise InvalidInputError(f"{mode} mode offers the statistics {', '.join(allowed)}, not {self.statistic!r}")
        if self.budget_tokens < 1:
            raise InvalidInputError("budget_tokens must be positive")
        if not 0.0 < self.alpha < 1.0:
            raise InvalidInputError("alpha must lie strictly between 0 and 1")
        if self.suggestive is not None and not self.alpha < self.suggestive <= 0.5:
            raise InvalidInputError("suggestive must lie above alpha and at most 0.5 (or be None)")
        if not 1 <= self.weight_cap <= 1024:
            raise InvalidInputError("weight_cap must lie in 1..1024")
        if self.null_keys is not None and not 0 <= self.null_keys <= 100_000:
            raise InvalidInputError("null_keys must lie in 0..100000")
        if not 1 <= self.mass_resolution <= 4096:
            raise InvalidInputError("mass_resolution must lie in 1..4096")
        if self.min_tuples < 1 or not 0.0 <= self.max_failure_rate <= 1.0 or not 1 <= self.top_k <= 4096:
            raise InvalidInputError("min_tuples must be positive, max_failure_rate in [0, 1], top_k in 1..4096")


# -- keys ------------------------------------------------------------------------------


def check_keys(keys: Sequence[TextKey], config: RadioactivityConfig) -> int:
    """Refuse key sets one tuple table cannot serve; returns the number of keys tried (Bonferroni).

    All keys must share the tokenizer, the scheme and its context width: the tuples are
    collected once, as the first key's scheme defines them.
    """
    if not keys:
        raise InvalidInputError("give at least one watermark key")
    first = keys[0]
    shape = (first.scheme, load_scheme(first).context_width)
    for key in keys:
        if key.tokenizer_sha256 != first.tokenizer_sha256 or key.vocab_size != first.vocab_size:
            raise KeyMismatchError("every key of one radioactivity test must be made for the same tokenizer")
        if key.scheme == "kgw" and key.params.get("seeding_scheme") != "lefthash":
            raise TheftError(
                f"key {key.key_id}: radioactivity needs tuples that do not depend on the key; "
                "KGW selfhash picks its tuple with the key (use lefthash, native or synthid)"
            )
        if (key.scheme, load_scheme(key).context_width) != shape:
            raise InvalidInputError(
                "every key of one radioactivity test must share the scheme and context width "
                f"({shape[0]}, width {shape[1]}); test other keys separately and count them in keys_tried"
            )
    tried = config.keys_tried if config.keys_tried is not None else len(keys)
    if tried < len(keys):
        raise InvalidInputError(f"keys_tried ({tried}) cannot be smaller than the {len(keys)} keys passed")
    return tried


def default_null_keys(key: TextKey) -> int:
    """Wrong keys the null check uses unless configured: 100, or 20 for KGW.

    A KGW key shuffles one vocabulary-sized green list per distinct previous token (seconds per
    key on 20k tuples), a native key colours every tuple with one AES pass (milliseconds).
    """
    return 20 if key.scheme == "kgw" else 100


_NONCE = re.compile(r"/[0-9a-f]{32}(?=/|$)")


def null_key_seed(data_digest: str, key: TextKey) -> str:
    """Public seed of the wrong keys: a function of the data and the key's public record only."""
    return hashlib.sha256(f"tracemark/theft/null-keys/v1\n{data_digest}\n{key.key_id}".encode()).hexdigest()


def wrong_keys(key: TextKey, count: int, seed: str) -> list[TextKey]:
    """``count`` keys of ``key``'s scheme and parameters with secrets derived from the public ``seed``.

    Anyone can re-derive them; they stand for keys the suspect never saw.
    """
    cls = scheme_class(key.scheme)
    keys = []
    for index in range(count):

        def source(label: str, index: int = index) -> bytes:
            stable = _NONCE.sub("", label)  # drop the random nonce: the secret depends on seed and index only
            return hashlib.sha256(f"{seed}\n{index}\n{stable}".encode()).digest()

        keys.append(
            cls.new_key(
                secret_source=source,
                vocab_size=key.vocab_size,
                tokenizer_sha256=key.tokenizer_sha256,
                params=dict(key.params),
                scheme_version=key.scheme_version,
            )
        )
    return keys


# -- statistics ------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """How far the key's green rate lies above the null rate (a radioactivity verdict's ``effect``).

    JSON (:func:`~tracemark.theft._verdict.row_json`): ``name``, ``estimate`` (rate minus null
    rate), ``rate``, ``null_rate``, ``ci_low``, ``ci_high`` (the 95 % interval of the estimate)
    and ``ci_method``.
    """

    name: str
    estimate: float
    rate: float
    null_rate: float
    ci_low: float
    ci_high: float
    ci_method: str


@dataclass(frozen=True)
class KeyRow:
    """One key's test in a radioactivity verdict (a ``details[]`` row).

    JSON (:func:`~tracemark.theft._verdict.row_json`): ``key_id``, ``key_commitment``, ``scheme``,
    ``statistic`` (its value under this key), ``p_value``, ``log10_p_value`` (before the
    correction over keys), ``p_value_method`` and ``hits``.
    """

    key_id: str
    key_commitment: str
    scheme: str
    statistic: float
    p_value: float
    log10_p_value: float
    p_value_method: str
    hits: int


@dataclass(frozen=True)
class TupleStatistic:
    """A statistic over scored tuples: its value per key and its exact or conservative null."""

    name: str
    weights: NDArray[np.float64]
    trials: int
    probability: float

    def value(self, hits: NDArray[np.int64]) -> float:
        return float(np.sum(self.weights * hits))  # not np.dot: BLAS threads stall on a busy machine

    def tail(self, observed: float) -> TailProbability:
        w = self.weights.astype(np.int64)
        trials = np.full(w.shape[0], self.trials, dtype=np.int64)
        if self.name in ("distinct", "top1"):
            return binomial_upper_tail(round(observed), int(w.shape[0]) * self.trials, self.probability)
        return weighted_binomial_upper_tail(round(observed), w, trials, self.probability)

    def null_p_values(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """p-values and mid-p-values (for the uniformity check) of many wrong-key statistics."""
        w = self.weights.astype(np.int64)
        try:
            survival = weighted_binomial_null_survival(w, np.full(w.shape[0], self.trials, np.int64), self.probability)
        except ValueError as exc:
            raise TheftError(str(exc)) from None
        k = np.clip(np.round(values).astype(np.int64), 0, survival.shape[0] - 1)
        upper = np.append(survival, 0.0)[k + 1]
        p = survival[k]
        return p, upper + 0.5 * (p - upper)

    def effect(self, hits: NDArray[np.int64]) -> Effect:
        total = float(np.sum(self.weights)) * self.trials
        rate = self.value(hits) / total if total else 0.0
        if self.name in ("distinct", "top1"):
            low, high = clopper_pearson(int(hits.sum()), int(hits.shape[0]) * self.trials)
            method = "Clopper-Pearson 95%"
        else:
            effective = total * total / (float(np.sum(self.weights**2)) * self.trials) if total else 0.0
            half = 1.96 * math.sqrt(max(rate * (1.0 - rate), 1e-12) / max(effective, 1.0))
            low, high = max(0.0, rate - half), min(1.0, rate + half)
            method = f"normal 95% with effective size {effective:.1f}"
        return Effect(
            name="green rate minus null rate" if self.name != "mass" else "green mass fraction minus null rate",
            estimate=rate - self.probability,
            rate=rate,
            null_rate=self.probability,
            ci_low=low - self.probability,
            ci_high=high - self.probability,
            ci_method=method,
        )


def null_check(
    statistic: TupleStatistic,
    observed: float,
    key: TextKey,
    count: int,
    seed: str,
    hits_for: Callable[[WatermarkScheme], NDArray[np.int64]],
) -> JSONObject:
    """Re-run the statistic with ``count`` wrong keys on the same tuples (the verdict's ``null_check``).

    ``wrong_keys``, ``seed``, ``levels`` (per level: ``flagged``, ``expected``, ``upper_limit``),
    ``ks_uniformity_p``, ``true_key_rank_p_value`` and ``passed``; with no wrong keys only
    ``wrong_keys``, ``passed`` and a ``note``.
    """
    if count == 0:
        return {"wrong_keys": 0, "passed": True, "note": "disabled (null_keys = 0)"}
    values = np.array([statistic.value(hits_for(load_scheme(k))) for k in wrong_keys(key, count, seed)])
    p_values, mid_p = statistic.null_p_values(values)
    levels: JSONObject = {}
    passed = True
    for level in NULL_CHECK_LEVELS:
        flagged = int(np.count_nonzero(p_values <= level))
        # one-sided 99.9 % binomial quantile per level: clean data fails the check at most ~0.3 % of the time
        upper = int(stats.binom.ppf(0.999, count, level))
        levels[str(level)] = {"flagged": flagged, "expected": count * level, "upper_limit": upper}
        passed = passed and flagged <= upper
    # one-sided: are wrong-key p-values smaller than uniform (an anti-conservative test)?
    ks = float(stats.kstest(mid_p, "uniform", alternative="greater").pvalue)
    return {
        "wrong_keys": count,
        "seed": seed,
        "levels": levels,
        "ks_uniformity_p": ks,
        "true_key_rank_p_value": (1 + int(np.count_nonzero(values >= observed))) / (count + 1),
        "passed": passed,
    }


def per_key_row(statistic: TupleStatistic, key: TextKey, hits: NDArray[np.int64]) -> KeyRow:
    """``key``'s test: the statistic under it and its uncorrected p-value."""
    value = statistic.value(hits)
    tail = statistic.tail(value)
    return KeyRow(key.key_id, key.commitment, key.scheme, value, tail.p_value, tail.log10_p_value, tail.method,
                  int(hits.sum()))  # fmt: skip


@dataclass(frozen=True)
class RadioactivityRun:
    """What one radioactivity test gathered, in either mode: what its verdict is built from."""

    mode: str
    config: RadioactivityConfig
    keys: Sequence[TextKey]
    #: Keys ever tried (the Bonferroni factor).
    tried: int
    #: One :func:`per_key_row` (or :func:`empty_row`) per key.
    rows: tuple[KeyRow, ...]
    counts: FrozenJSONObject
    blockers: tuple[str, ...]
    data_digest: str
    evidence: FrozenJSONObject

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", freeze(self.counts))
        object.__setattr__(self, "evidence", freeze(self.evidence))


def _theft_verdict(
    run: RadioactivityRun,
    reasons: Sequence[str],
    *,
    decision: Decision,
    p_value: float | None,
    log10_p_value: float | None,
    p_value_method: str,
    statistic: JSONObject,
    effect: JSONObject,
    null_check: JSONObject | None,
) -> TheftVerdict:
    """The fields both radioactivity verdicts share around what was measured."""
    return TheftVerdict(
        test=f"radioactivity/{run.mode}",
        question=QUESTION,
        h0=H0,
        decision=decision,
        reasons=tuple(reasons),
        alpha=run.config.alpha,
        p_value=p_value,
        log10_p_value=log10_p_value,
        p_value_method=p_value_method,
        statistic=statistic,
        effect=effect,
        counts=run.counts,
        correction={"method": "Bonferroni over keys tried", "keys_tried": run.tried, "keys_passed": len(run.keys)},
        null_check=null_check,
        details=tuple(row_json(row) for row in run.rows),
        evidence={
            **run.evidence,
            "config": asdict(run.config),
            "data_sha256": run.data_digest,
            "keys": [k.public_record() for k in run.keys],
            "versions": library_versions(),
        },
    )


def assemble_verdict(
    run: RadioactivityRun,
    *,
    statistic_for: Callable[[TextKey], TupleStatistic],
    hits_for_scheme: Callable[[WatermarkScheme], NDArray[np.int64]],
) -> TheftVerdict:
    """The verdict on the best key: Bonferroni over the keys tried, then the wrong-key null check."""
    rows = run.rows
    best_index = min(range(len(rows)), key=lambda i: rows[i].log10_p_value)
    best = rows[best_index]
    p_adj, log_adj = bonferroni(best.p_value, best.log10_p_value, run.tried)
    best_key = run.keys[best_index]
    statistic = statistic_for(best_key)
    config = run.config
    null = null_check(
        statistic,
        best.statistic,
        best_key,
        default_null_keys(best_key) if config.null_keys is None else config.null_keys,
        null_key_seed(run.data_digest, best_key),
        hits_for_scheme,
    )
    reasons = list(run.blockers)
    if not null["passed"]:
        reasons.append("null check failed: wrong keys flag this data more often than chance allows")
    decision = decide(p_adj, config.alpha, reasons, suggestive=config.suggestive)
    extra: JSONObject = {}
    if decision == "inconclusive" and not reasons:
        budget = recommended_budget(p_adj, config.alpha, config.budget_tokens)
        extra["recommended_budget_tokens"] = budget
        reasons.append(
            f"suggestive, not decided: p = {p_adj:.3g} lies between alpha {config.alpha:g} and the suggestive "
            f"level {config.suggestive:g}; at the observed effect about {budget} tokens would decide it "
            "(a new pre-registered run, or the next look of a sequential plan)"
        )
    return _theft_verdict(
        replace(run, counts={**run.counts, **extra}),
        reasons,
        decision=decision,
        p_value=p_adj,
        log10_p_value=log_adj,
        p_value_method=best.p_value_method,
        statistic={"name": config.chosen_statistic, "value": best.statistic, "key_id": best.key_id},
        effect=row_json(statistic.effect(hits_for_scheme(load_scheme(best_key)))),
        null_check=null,
    )


def empty_row(key: TextKey) -> KeyRow:
    """``key``'s row when there was nothing to score."""
    return KeyRow(key.key_id, key.commitment, key.scheme, 0.0, 1.0, 0.0, "no tuples", 0)


def verdict_without_data(run: RadioactivityRun) -> TheftVerdict:
    """The inconclusive verdict of a test that found nothing to score."""
    return _theft_verdict(
        run,
        run.blockers,
        decision="inconclusive",
        p_value=None,
        log10_p_value=None,
        p_value_method="none: nothing to score",
        statistic={"name": run.config.chosen_statistic, "value": None},
        effect={},
        null_check=None,
    )


def encode_text(tokenizer: TextTokenizer, text: str) -> NDArray[np.int64]:
    """Token ids of the canonical form of ``text`` (what the detector would score)."""
    return tokenizer.encode(canonicalize(text).text).ids
