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
  (:func:`~tracemark.theft._stats.weighted_binomial_upper_tail`).
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
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from tracemark.errors import InvalidInputError, KeyMismatchError, TheftError
from tracemark.keys import TextKey
from tracemark.text import TextTokenizer, WatermarkScheme, canonicalize, check_key_fits, load_scheme, scheme_class
from tracemark.text._units import bulk_scheme
from tracemark.theft._adapters import NextTokenModel, TextModel
from tracemark.theft._stats import (
    Tail,
    binomial_tail,
    clopper_pearson,
    weighted_binomial_null_survival,
    weighted_binomial_upper_tail,
)
from tracemark.theft._transcript import Transcript, collect_completions
from tracemark.theft._verdict import TheftVerdict, bonferroni, decide, library_versions, sha256_text

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
    for the Bonferroni correction; it defaults to the number of keys passed.
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
        if not 1 <= self.weight_cap <= 1024:
            raise InvalidInputError("weight_cap must lie in 1..1024")
        if self.null_keys is not None and not 0 <= self.null_keys <= 100_000:
            raise InvalidInputError("null_keys must lie in 0..100000")
        if not 1 <= self.mass_resolution <= 4096:
            raise InvalidInputError("mass_resolution must lie in 1..4096")
        if self.min_tuples < 1 or not 0.0 <= self.max_failure_rate <= 1.0 or not 1 <= self.top_k <= 4096:
            raise InvalidInputError("min_tuples must be positive, max_failure_rate in [0, 1], top_k in 1..4096")


# -- keys ------------------------------------------------------------------------------


def _check_keys(keys: Sequence[TextKey], config: RadioactivityConfig) -> int:
    if not keys:
        raise InvalidInputError("give at least one watermark key")
    first = keys[0]
    for key in keys:
        if key.tokenizer_sha256 != first.tokenizer_sha256 or key.vocab_size != first.vocab_size:
            raise KeyMismatchError("every key of one radioactivity test must be made for the same tokenizer")
        if key.scheme == "kgw" and key.params.get("seeding_scheme") != "lefthash":
            raise TheftError(
                f"key {key.key_id}: radioactivity needs tuples that do not depend on the key; "
                "KGW selfhash picks its tuple with the key (use lefthash, native or synthid)"
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
    extra: dict[str, Any] = {}
    if key.scheme_version != cls.versions[0]:
        extra["scheme_version"] = key.scheme_version
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
                **extra,
            )
        )
    return keys


# -- closed mode: tuples ---------------------------------------------------------------


@dataclass(frozen=True)
class _Sequences:
    """Prompt + (budget-truncated) response ids of each answered exchange."""

    rows: tuple[tuple[NDArray[np.int64], int], ...]
    response_tokens: int
    prompt_hashes: tuple[str, ...]
    response_hashes: tuple[str, ...]


def _encode(tokenizer: TextTokenizer, text: str) -> NDArray[np.int64]:
    return tokenizer.encode(canonicalize(text).text).ids


def _closed_sequences(transcript: Transcript, tokenizer: TextTokenizer, budget: int) -> _Sequences:
    rows: list[tuple[NDArray[np.int64], int]] = []
    used = 0
    prompt_hashes, response_hashes = [], []
    for exchange in transcript.exchanges:
        if not exchange.ok or used >= budget:
            continue
        prompt = _encode(tokenizer, exchange.prompt)
        response = _encode(tokenizer, exchange.response)[: budget - used]
        used += int(response.shape[0])
        rows.append((np.concatenate([prompt, response]), int(prompt.shape[0])))
        prompt_hashes.append(sha256_text(exchange.prompt))
        response_hashes.append(sha256_text(exchange.response))
    return _Sequences(tuple(rows), used, tuple(prompt_hashes), tuple(response_hashes))


@dataclass(frozen=True)
class _TupleTable:
    """Distinct response tuples outside the prompts, how often each was emitted, where it first occurred."""

    units: NDArray[np.int64]
    counts: NDArray[np.int64]
    first_row: NDArray[np.int64]
    response_rows: int
    in_prompt: int


def _score_rows(scheme: WatermarkScheme, sequences: _Sequences) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Units and hits of every scored response position, concatenated in a fixed order."""
    units, hits = [], []
    for ids, prompt_length in sequences.rows:
        scored = scheme.score(ids)
        answer = scored.positions >= prompt_length
        units.append(scored.unit_keys[answer])
        hits.append(scored.hits[answer])
    if not units:
        return np.empty((0, scheme.context_width + 1), dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(units).astype(np.int64), np.concatenate(hits).astype(np.int64)


def _tuple_table(scheme: WatermarkScheme, sequences: _Sequences, units: NDArray[np.int64]) -> _TupleTable:
    width = units.shape[1]
    prompt_units = [scheme.score(ids[:length]).unit_keys for ids, length in sequences.rows]
    prompts = np.concatenate([u for u in prompt_units if u.shape[0]] or [np.empty((0, width), np.int64)])
    if units.shape[0] == 0:
        empty = np.empty(0, dtype=np.int64)
        return _TupleTable(units, empty, empty, 0, 0)
    distinct, first, counts = np.unique(units, axis=0, return_index=True, return_counts=True)
    keep = np.ones(distinct.shape[0], dtype=np.bool_)
    if prompts.shape[0]:
        _, inverse = np.unique(np.concatenate([distinct, prompts.astype(np.int64)]), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        keep = ~np.isin(inverse[: distinct.shape[0]], inverse[distinct.shape[0] :])
    # order tuples by first appearance: deterministic and readable in evidence packs
    order = np.argsort(first[keep], kind="stable")
    return _TupleTable(
        units=distinct[keep][order],
        counts=counts[keep][order].astype(np.int64),
        first_row=first[keep][order].astype(np.int64),
        response_rows=int(units.shape[0]),
        in_prompt=int(np.count_nonzero(~keep)),
    )


def _hits_under(scheme: WatermarkScheme, table: _TupleTable, sequences: _Sequences) -> NDArray[np.int64]:
    fast = bulk_scheme(scheme)
    if fast is not None and table.units.shape[1] == scheme.context_width + 1:
        return np.asarray(fast.unit_hits(table.units), dtype=np.int64)
    _, hits = _score_rows(scheme, sequences)
    return hits[table.first_row]


# -- statistics ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Statistic:
    """A statistic over scored tuples: its value per key and its exact or conservative null."""

    name: str
    weights: NDArray[np.float64]
    trials: int
    probability: float

    def value(self, hits: NDArray[np.int64]) -> float:
        return float(np.sum(self.weights * hits))  # not np.dot: BLAS threads stall on a busy machine

    def tail(self, observed: float) -> Tail:
        w = self.weights.astype(np.int64)
        trials = np.full(w.shape[0], self.trials, dtype=np.int64)
        if self.name in ("distinct", "top1"):
            return binomial_tail(round(observed), int(w.shape[0]) * self.trials, self.probability)
        return weighted_binomial_upper_tail(round(observed), w, trials, self.probability)

    def null_p_values(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """p-values and mid-p-values (for the uniformity check) of many wrong-key statistics."""
        w = self.weights.astype(np.int64)
        survival = weighted_binomial_null_survival(w, np.full(w.shape[0], self.trials, np.int64), self.probability)
        k = np.clip(np.round(values).astype(np.int64), 0, survival.shape[0] - 1)
        upper = np.append(survival, 0.0)[k + 1]
        p = survival[k]
        return p, upper + 0.5 * (p - upper)

    def effect(self, hits: NDArray[np.int64]) -> dict[str, Any]:
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
        return {
            "name": "green rate minus null rate" if self.name != "mass" else "green mass fraction minus null rate",
            "estimate": rate - self.probability,
            "rate": rate,
            "null_rate": self.probability,
            "ci_low": low - self.probability,
            "ci_high": high - self.probability,
            "ci_method": method,
        }


def _null_check(
    statistic: _Statistic,
    observed: float,
    key: TextKey,
    count: int,
    seed: str,
    hits_for: Callable[[WatermarkScheme], NDArray[np.int64]],
) -> dict[str, Any]:
    """Re-run the statistic with ``count`` wrong keys on the same tuples."""
    if count == 0:
        return {"wrong_keys": 0, "passed": True, "note": "disabled (null_keys = 0)"}
    values = np.array([statistic.value(hits_for(load_scheme(k))) for k in wrong_keys(key, count, seed)])
    p_values, mid_p = statistic.null_p_values(values)
    levels = {}
    passed = True
    for level in NULL_CHECK_LEVELS:
        flagged = int(np.count_nonzero(p_values <= level))
        upper = int(stats.binom.ppf(0.995, count, level))
        levels[str(level)] = {"flagged": flagged, "expected": count * level, "band_99_upper": upper}
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


def _per_key(statistic: _Statistic, key: TextKey, hits: NDArray[np.int64]) -> dict[str, Any]:
    tail = statistic.tail(statistic.value(hits))
    return {
        "key_id": key.key_id,
        "key_commitment": key.commitment,
        "scheme": key.scheme,
        "statistic": statistic.value(hits),
        "p_value": tail.p_value,
        "log10_p_value": tail.log10_p_value,
        "p_value_method": tail.method,
        "hits": int(hits.sum()),
    }


def _assemble(
    *,
    mode: str,
    config: RadioactivityConfig,
    keys: Sequence[TextKey],
    tried: int,
    rows: list[dict[str, Any]],
    statistic_for: Callable[[TextKey], _Statistic],
    hits_for_key: Callable[[TextKey], NDArray[np.int64]],
    hits_for_scheme: Callable[[WatermarkScheme], NDArray[np.int64]],
    counts: dict[str, Any],
    blockers: list[str],
    data_digest: str,
    evidence: dict[str, Any],
) -> TheftVerdict:
    best_index = min(range(len(rows)), key=lambda i: rows[i]["log10_p_value"])
    best = rows[best_index]
    p_adj, log_adj = bonferroni(best["p_value"], best["log10_p_value"], tried)
    best_key = keys[best_index]
    statistic = statistic_for(best_key)
    null = _null_check(
        statistic,
        best["statistic"],
        best_key,
        default_null_keys(best_key) if config.null_keys is None else config.null_keys,
        null_key_seed(data_digest, best_key),
        hits_for_scheme,
    )
    if not null["passed"]:
        blockers.append("null check failed: wrong keys flag this data more often than chance allows")
    decision = decide(p_adj, config.alpha, blockers)
    return TheftVerdict(
        test=f"radioactivity/{mode}",
        question=QUESTION,
        h0=H0,
        decision=decision,
        reasons=tuple(blockers),
        alpha=config.alpha,
        p_value=p_adj,
        log10_p_value=log_adj,
        p_value_method=best["p_value_method"],
        statistic={"name": config.chosen_statistic, "value": best["statistic"], "key_id": best["key_id"]},
        effect=statistic.effect(hits_for_key(best_key)),
        counts=counts,
        correction={"method": "Bonferroni over keys tried", "keys_tried": tried, "keys_passed": len(keys)},
        null_check=null,
        details=tuple(rows),
        evidence={
            **evidence,
            "config": asdict(config),
            "data_sha256": data_digest,
            "keys": [k.public_record() for k in keys],
            "versions": library_versions(),
        },
    )


def radioactivity_from_transcript(
    transcript: Transcript,
    keys: Sequence[TextKey],
    tokenizer: TextTokenizer,
    config: RadioactivityConfig,
) -> TheftVerdict:
    """Closed-mode test on a collected transcript (what a third party holding the key re-runs)."""
    config = config.for_mode("closed")
    tried = _check_keys(keys, config)
    for key in keys:
        check_key_fits(key, tokenizer)
    sequences = _closed_sequences(transcript, tokenizer, config.budget_tokens)
    first_scheme = load_scheme(keys[0])
    units, _ = _score_rows(first_scheme, sequences)
    table = _tuple_table(first_scheme, sequences, units)

    def hits_for_scheme(scheme: WatermarkScheme) -> NDArray[np.int64]:
        return _hits_under(scheme, table, sequences)

    def hits_for_key(key: TextKey) -> NDArray[np.int64]:
        return hits_for_scheme(load_scheme(key))

    def statistic_for(key: TextKey) -> _Statistic:
        scheme = load_scheme(key)
        if config.chosen_statistic == "distinct":
            weights = np.ones(table.units.shape[0])
        else:
            weights = np.minimum(table.counts, config.weight_cap).astype(np.float64)
        return _Statistic(config.chosen_statistic, weights, scheme.trials_per_unit, scheme.success_probability)

    blockers: list[str] = []
    if sequences.response_tokens < config.budget_tokens:
        blockers.append(f"budget not reached: {sequences.response_tokens} of {config.budget_tokens} tokens")
    queries = len(transcript.exchanges)
    if queries and transcript.failures > config.max_failure_rate * queries:
        blockers.append(f"{transcript.failures} of {queries} probes failed")
    n_tuples = int(table.units.shape[0])
    if n_tuples < config.min_tuples:
        blockers.append(f"too few tuples: {n_tuples} distinct scored tuples, the minimum is {config.min_tuples}")
    rows = []
    for key in keys:
        rows.append(_per_key(statistic_for(key), key, hits_for_key(key)) if n_tuples else _empty_row(key))
    data_digest = hashlib.sha256(
        "\n".join(a + b for a, b in zip(sequences.prompt_hashes, sequences.response_hashes, strict=True)).encode()
    ).hexdigest()
    counts = {
        "queries": queries,
        "failed_queries": transcript.failures,
        "budget_tokens": config.budget_tokens,
        "response_tokens": sequences.response_tokens,
        "scored_positions": table.response_rows,
        "distinct_tuples": n_tuples,
        "tuples_in_prompts": table.in_prompt,
        "repeated_positions": table.response_rows - n_tuples - table.in_prompt,
    }
    evidence = {
        "suspect": transcript.suspect,
        "tokenizer_sha256": tokenizer.sha256,
        "prompt_sha256": list(sequences.prompt_hashes),
        "response_sha256": list(sequences.response_hashes),
        "top_tuples": _top_tuples(table, hits_for_key(keys[0]) if n_tuples else None, tokenizer),
    }
    if not n_tuples:
        return _without_data("closed", config, keys, tried, rows, counts, blockers, data_digest, evidence)
    return _assemble(
        mode="closed",
        config=config,
        keys=keys,
        tried=tried,
        rows=rows,
        statistic_for=statistic_for,
        hits_for_key=hits_for_key,
        hits_for_scheme=hits_for_scheme,
        counts=counts,
        blockers=blockers,
        data_digest=data_digest,
        evidence=evidence,
    )


def _empty_row(key: TextKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "key_commitment": key.commitment,
        "scheme": key.scheme,
        "statistic": 0.0,
        "p_value": 1.0,
        "log10_p_value": 0.0,
        "p_value_method": "no tuples",
        "hits": 0,
    }


def _without_data(
    mode: str,
    config: RadioactivityConfig,
    keys: Sequence[TextKey],
    tried: int,
    rows: list[dict[str, Any]],
    counts: dict[str, Any],
    blockers: list[str],
    data_digest: str,
    evidence: dict[str, Any],
) -> TheftVerdict:
    return TheftVerdict(
        test=f"radioactivity/{mode}",
        question=QUESTION,
        h0=H0,
        decision="inconclusive",
        reasons=tuple(blockers),
        alpha=config.alpha,
        p_value=None,
        log10_p_value=None,
        p_value_method="none: nothing to score",
        statistic={"name": config.chosen_statistic, "value": None},
        effect={},
        counts=counts,
        correction={"method": "Bonferroni over keys tried", "keys_tried": tried, "keys_passed": len(keys)},
        null_check=None,
        details=tuple(rows),
        evidence={
            **evidence,
            "config": asdict(config),
            "data_sha256": data_digest,
            "keys": [k.public_record() for k in keys],
            "versions": library_versions(),
        },
    )


def _top_tuples(
    table: _TupleTable, hits: NDArray[np.int64] | None, tokenizer: TextTokenizer, limit: int = 20
) -> list[dict[str, Any]]:
    """The tuples the suspect emitted most often, with their colour under the first key."""
    if hits is None or table.units.shape[0] == 0:
        return []
    order = np.argsort(-table.counts, kind="stable")[:limit]
    return [
        {
            "token_ids": [int(t) for t in table.units[i]],
            "text": tokenizer.decode([int(t) for t in table.units[i]]),
            "count": int(table.counts[i]),
            "hits": int(hits[i]),
        }
        for i in order
    ]


def radioactivity(
    suspect: TextModel,
    keys: Sequence[TextKey],
    prompts: Sequence[str],
    tokenizer: TextTokenizer,
    config: RadioactivityConfig,
    *,
    max_new_tokens: int = 128,
    seed: int = 0,
) -> tuple[TheftVerdict, Transcript]:
    """Closed mode end to end: query ``suspect`` with ``prompts`` up to the budget, then test.

    Returns the verdict and the transcript (save it: it is what a re-run needs).
    """
    config = config.for_mode("closed")
    _check_keys(keys, config)
    for key in keys:
        check_key_fits(key, tokenizer)
    transcript = collect_completions(
        suspect,
        prompts,
        tokenizer,
        budget_tokens=config.budget_tokens,
        max_new_tokens=max_new_tokens,
        seed=seed,
        max_failures=max(1, math.ceil(config.max_failure_rate * len(prompts))),
    )
    return radioactivity_from_transcript(transcript, keys, tokenizer, config), transcript


# -- open mode -------------------------------------------------------------------------


def radioactivity_open(
    suspect: NextTokenModel,
    keys: Sequence[TextKey],
    read_texts: Sequence[str],
    tokenizer: TextTokenizer,
    config: RadioactivityConfig,
) -> TheftVerdict:
    """Open mode: read ``read_texts`` with the suspect and score its next-token distributions.

    The suspect must share the key's tokenizer (its probabilities are over our token ids).
    The budget counts read tokens.
    """
    config = config.for_mode("open")
    tried = _check_keys(keys, config)
    for key in keys:
        check_key_fits(key, tokenizer)
    schemes = [load_scheme(k) for k in keys]
    for scheme in schemes:
        if bulk_scheme(scheme) is None:
            raise TheftError(
                f"open mode scores arbitrary (context, token) tuples and needs a scheme with unit-level colouring "
                f"(native, or kgw lefthash with context width 1), not {scheme.name} {scheme.describe()}"
            )
    width = schemes[0].context_width
    if any(s.context_width != width for s in schemes):
        raise InvalidInputError("every key of one open-mode test must have the same context width")
    model_dir = getattr(suspect, "model_dir", None)
    if isinstance(model_dir, Path) and TextTokenizer(model_dir).sha256 != tokenizer.sha256:
        raise KeyMismatchError(f"open mode needs the key's tokenizer, but {model_dir} has another one")
    sequences: list[NDArray[np.int64]] = []
    read_hashes: list[str] = []
    used = 0
    for text in read_texts:
        if used >= config.budget_tokens:
            break
        ids = _encode(tokenizer, text)[: config.budget_tokens - used]
        used += int(ids.shape[0])
        if ids.shape[0] > width:
            sequences.append(ids)
            read_hashes.append(sha256_text(text))
    blockers: list[str] = []
    if used < config.budget_tokens:
        blockers.append(f"budget not reached: {used} of {config.budget_tokens} read tokens")
    contexts, candidates, probabilities, failures = _read(suspect, sequences, width, config.top_k)
    if failures:
        blockers.append(f"{failures} of {len(sequences)} reads failed")
    windows = [np.lib.stride_tricks.sliding_window_view(s, width + 1) for s in sequences]
    corpus = np.concatenate(windows or [np.empty((0, width + 1), np.int64)])
    tuples, mass, context_index = _admissible(contexts, candidates, probabilities, corpus, config.chosen_statistic)
    # mass in integer units of 1/mass_resolution: key-independent integer weights keep the null exact
    weights = np.rint(mass * config.mass_resolution) if config.chosen_statistic == "mass" else mass
    scored = weights > 0
    tuples, weights, context_index = tuples[scored], weights[scored], context_index[scored]
    n_tuples = int(np.unique(context_index).shape[0]) if context_index.size else 0
    if n_tuples < config.min_tuples:
        blockers.append(f"too few contexts: {n_tuples} distinct contexts scored, the minimum is {config.min_tuples}")

    def hits_for_scheme(scheme: WatermarkScheme) -> NDArray[np.int64]:
        fast = bulk_scheme(scheme)
        if fast is None:
            raise TheftError(f"scheme {scheme.name} has no unit-level colouring")
        return np.asarray(fast.unit_hits(tuples), dtype=np.int64)

    def hits_for_key(key: TextKey) -> NDArray[np.int64]:
        return hits_for_scheme(load_scheme(key))

    def statistic_for(key: TextKey) -> _Statistic:
        return _Statistic(config.chosen_statistic, weights, 1, load_scheme(key).success_probability)

    rows = [_per_key(statistic_for(k), k, hits_for_key(k)) if tuples.shape[0] else _empty_row(k) for k in keys]
    data_digest = hashlib.sha256(b"".join(np.ascontiguousarray(s, dtype="<i8").tobytes() for s in sequences))
    digest = data_digest.hexdigest()
    counts = {
        "budget_tokens": config.budget_tokens,
        "read_tokens": used,
        "read_sequences": len(sequences),
        "failed_reads": failures,
        "distinct_contexts": int(contexts.shape[0]),
        "scored_contexts": n_tuples,
        "scored_tuples": int(tuples.shape[0]),
        "top_k": config.top_k,
    }
    evidence = {
        "suspect": suspect.name,
        "tokenizer_sha256": tokenizer.sha256,
        "read_text_sha256": read_hashes,
    }
    if not tuples.shape[0]:
        return _without_data("open", config, keys, tried, rows, counts, blockers, digest, evidence)
    return _assemble(
        mode="open",
        config=config,
        keys=keys,
        tried=tried,
        rows=rows,
        statistic_for=statistic_for,
        hits_for_key=hits_for_key,
        hits_for_scheme=hits_for_scheme,
        counts=counts,
        blockers=blockers,
        data_digest=digest,
        evidence=evidence,
    )


def _read(
    suspect: NextTokenModel, sequences: list[NDArray[np.int64]], width: int, k: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], int]:
    """First occurrence of each context across the read text, with the suspect's top-k after it."""
    from tracemark.errors import SuspectQueryError

    seen: set[bytes] = set()
    contexts, candidates, probabilities = [], [], []
    failures = 0
    for ids in sequences:
        try:
            top_ids, top_probs = suspect.top_tokens(ids, k)
        except SuspectQueryError:
            failures += 1
            continue
        windows = np.lib.stride_tricks.sliding_window_view(ids, width)  # window ending at t = i + width - 1
        for i, window in enumerate(windows):
            packed = window.tobytes()
            if packed in seen:
                continue
            seen.add(packed)
            contexts.append(window)
            candidates.append(top_ids[i + width - 1])
            probabilities.append(top_probs[i + width - 1])
    if not contexts:
        return (np.empty((0, width), np.int64), np.empty((0, k), np.int64), np.empty((0, k)), failures)
    return (np.asarray(contexts, np.int64), np.asarray(candidates, np.int64), np.asarray(probabilities), failures)


def _admissible(
    contexts: NDArray[np.int64],
    candidates: NDArray[np.int64],
    probabilities: NDArray[np.float64],
    corpus: NDArray[np.int64],
    statistic: str,
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Tuples (context, candidate) not in the read text: all of them (mass) or the likeliest one (top1)."""
    n, k = candidates.shape
    width = contexts.shape[1]
    if n == 0:
        return np.empty((0, width + 1), np.int64), np.empty(0), np.empty(0, np.int64)
    rows = np.concatenate([np.repeat(contexts, k, axis=0), candidates.reshape(-1, 1)], axis=1)
    allowed = probabilities.reshape(-1) > 0.0
    if corpus.shape[0]:
        _, inverse = np.unique(np.concatenate([rows, corpus.astype(np.int64)]), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        allowed &= ~np.isin(inverse[: rows.shape[0]], inverse[rows.shape[0] :])
    owner = np.repeat(np.arange(n), k)
    if statistic == "top1":
        allowed_matrix = allowed.reshape(n, k)
        has = allowed_matrix.any(axis=1)
        pick = np.argmax(allowed_matrix, axis=1)  # candidates are sorted: first allowed = likeliest
        chosen = np.nonzero(has)[0] * k + pick[has]
        return rows[chosen], np.ones(chosen.shape[0]), owner[chosen]
    return rows[allowed], probabilities.reshape(-1)[allowed], owner[allowed]
