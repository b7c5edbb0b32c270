"""Closed-mode radioactivity: the suspect's generated text only (see :mod:`tracemark.theft._radioactivity`).

Tuples are the scheme's units in the responses, de-duplicated, minus every tuple that occurs in a
prompt; the transcript is cut at exactly the pre-registered budget of response tokens.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from tracemark._json import FrozenJSONObject, JSONObject, thaw_object
from tracemark.errors import TheftError
from tracemark.keys import TextKey
from tracemark.text import TextTokenizer, WatermarkScheme, bulk_scheme, check_key_fits, load_scheme
from tracemark.theft._adapters import TextModel
from tracemark.theft._radioactivity import (
    RadioactivityConfig,
    RadioactivityRun,
    TupleStatistic,
    assemble_verdict,
    check_keys,
    empty_row,
    encode_text,
    per_key_row,
    verdict_without_data,
)
from tracemark.theft._transcript import Transcript, collect_completions, prompts_digest, start_transcript
from tracemark.theft._verdict import TheftVerdict, sha256_text
from tracemark.tlog import NoteSigner


@dataclass(frozen=True)
class _Sequences:
    """Prompt + (budget-truncated) response ids of each answered exchange."""

    rows: tuple[tuple[NDArray[np.int64], int], ...]
    response_tokens: int
    prompt_hashes: tuple[str, ...]
    response_hashes: tuple[str, ...]


def _closed_sequences(transcript: Transcript, tokenizer: TextTokenizer, budget: int) -> _Sequences:
    rows: list[tuple[NDArray[np.int64], int]] = []
    used = 0
    prompt_hashes, response_hashes = [], []
    for exchange in transcript.exchanges:
        if not exchange.ok or used >= budget:
            continue
        prompt = encode_text(tokenizer, exchange.prompt)
        response = encode_text(tokenizer, exchange.response)[: budget - used]
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


def preregistration_record(
    config: RadioactivityConfig,
    keys: Sequence[TextKey],
    prompts: Sequence[str],
    plan: JSONObject | None = None,
) -> JSONObject:
    """What a closed-mode run commits to before its first query (sealed into the transcript's header)."""
    return {
        "mode": "closed",
        "config": asdict(config.for_mode("closed")),
        "plan": plan,
        "key_ids": [key.key_id for key in keys],
        "prompts": len(prompts),
        "prompts_sha256": prompts_digest(prompts),
    }


def preregistration_differences(
    transcript: Transcript, keys: Sequence[TextKey], config: RadioactivityConfig, plan: JSONObject | None = None
) -> list[str]:
    """How this run's settings differ from what the transcript committed to (empty: they match).

    A sealed transcript is compared field by field (configuration, plan, keys); an unsealed one
    can only be compared on its collection budget.
    """
    sealed = thaw_object(transcript.preregistration)
    if not sealed:
        if config.budget_tokens != transcript.budget_tokens:
            return [f"budget {config.budget_tokens} tokens, collected for {transcript.budget_tokens}"]
        return []
    differences = []
    sealed_config = sealed.get("config")
    current = asdict(config.for_mode("closed"))
    if isinstance(sealed_config, dict):
        for name in sorted(set(current) | set(sealed_config)):
            if current.get(name) != sealed_config.get(name):
                differences.append(f"{name} {current.get(name)!r}, sealed {sealed_config.get(name)!r}")
    else:
        differences.append("the sealed record has no configuration")
    if sealed.get("plan") != plan:
        differences.append(f"plan {plan!r}, sealed {sealed.get('plan')!r}")
    if sealed.get("key_ids") != [key.key_id for key in keys]:
        differences.append("other keys than the sealed ones (count every key tried in keys_tried)")
    return differences


def _preregistration_evidence(transcript: Transcript, differences: list[str], exploratory: bool) -> JSONObject:
    asked = [e.asked_at for e in transcript.exchanges if e.asked_at]
    return {
        "status": "exploratory" if exploratory else ("sealed" if transcript.seal else "unsealed"),
        "differences": list(differences),
        "record": thaw_object(transcript.preregistration),
        "seal": (
            {"signer": transcript.seal.signer, "sealed_at": transcript.seal.sealed_at} if transcript.seal else None
        ),
        "transcript_format": transcript.format,
        "transcript_chain_sha256": transcript.chain_head(),
        "transcript_signer": transcript.signer or None,
        "sampling": thaw_object(transcript.sampling),
        "suspect_files_sha256": thaw_object(transcript.suspect_files),
        "first_query_at": min(asked) if asked else None,
        "last_answer_at": max((e.answered_at for e in transcript.exchanges), default=None) if asked else None,
    }


def radioactivity_from_transcript(
    transcript: Transcript,
    keys: Sequence[TextKey],
    tokenizer: TextTokenizer,
    config: RadioactivityConfig,
    *,
    exploratory: bool = False,
) -> TheftVerdict:
    """Closed-mode test on a collected transcript (what a third party holding the key re-runs).

    Settings other than the ones the transcript committed to (its sealed pre-registration, or its
    collection budget) are refused, unless ``exploratory``: such a verdict is labelled
    ``exploratory`` and reads ``inconclusive`` whatever its p-value.
    """
    differences = preregistration_differences(transcript, keys, config)
    if differences and not exploratory:
        raise TheftError(
            "these settings differ from the transcript's pre-registration ("
            + "; ".join(differences)
            + "): re-run with the registered settings, or label the run exploratory"
        )
    return closed_verdict(transcript, keys, tokenizer, config, exploratory=exploratory, differences=differences)


def closed_verdict(
    transcript: Transcript,
    keys: Sequence[TextKey],
    tokenizer: TextTokenizer,
    config: RadioactivityConfig,
    *,
    exploratory: bool = False,
    differences: Sequence[str] = (),
) -> TheftVerdict:
    """The closed-mode verdict at ``config.budget_tokens`` of ``transcript``, pre-registration already checked."""
    config = config.for_mode("closed")
    tried = check_keys(keys, config)
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

    def statistic_for(key: TextKey) -> TupleStatistic:
        scheme = load_scheme(key)
        if config.chosen_statistic == "distinct":
            weights = np.ones(table.units.shape[0])
        else:
            weights = np.minimum(table.counts, config.weight_cap).astype(np.float64)
        return TupleStatistic(config.chosen_statistic, weights, scheme.trials_per_unit, scheme.success_probability)

    blockers: list[str] = []
    if exploratory:
        detail = "; ".join(differences) if differences else "labelled by the caller"
        blockers.append(f"exploratory: not the pre-registered test ({detail}); its p-value decides nothing")
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
        rows.append(per_key_row(statistic_for(key), key, hits_for_key(key)) if n_tuples else empty_row(key))
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
    evidence: FrozenJSONObject = {
        "suspect": transcript.suspect,
        "tokenizer_sha256": tokenizer.sha256,
        "prompt_sha256": list(sequences.prompt_hashes),
        "response_sha256": list(sequences.response_hashes),
        "top_tuples": _top_tuples(table, hits_for_key(keys[0]) if n_tuples else None, tokenizer),
        "preregistration": _preregistration_evidence(transcript, list(differences), exploratory),
    }
    run = RadioactivityRun("closed", config, keys, tried, tuple(rows), counts, tuple(blockers), data_digest, evidence)
    if not n_tuples:
        return verdict_without_data(run)
    return assemble_verdict(run, statistic_for=statistic_for, hits_for_scheme=hits_for_scheme)


def _top_tuples(
    table: _TupleTable, hits: NDArray[np.int64] | None, tokenizer: TextTokenizer, limit: int = 20
) -> list[JSONObject]:
    """The tuples the suspect emitted most often, with their colour under the first key.

    Each: ``token_ids``, ``text`` (decoded), ``count`` (times emitted) and ``hits``.
    """
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
    signer: NoteSigner | None = None,
) -> tuple[TheftVerdict, Transcript]:
    """Closed mode end to end: query ``suspect`` with ``prompts`` up to the budget, then test.

    Returns the verdict and the transcript (save it: it is what a re-run needs).  The settings
    are written into the transcript before the first query; with a ``signer`` they are sealed
    (signed) then and the whole transcript signed after the last query.
    """
    config = config.for_mode("closed")
    check_keys(keys, config)
    for key in keys:
        check_key_fits(key, tokenizer)
    started = start_transcript(
        suspect,
        config.budget_tokens,
        max_new_tokens=max_new_tokens,
        seed=seed,
        preregistration=preregistration_record(config, keys, prompts),
        signer=signer,
    )
    transcript = collect_completions(
        suspect,
        prompts,
        tokenizer,
        budget_tokens=config.budget_tokens,
        max_new_tokens=max_new_tokens,
        seed=seed,
        max_failures=max(1, math.ceil(config.max_failure_rate * len(prompts))),
        earlier=started,
    )
    if signer is not None:
        transcript = transcript.signed(signer)
    return radioactivity_from_transcript(transcript, keys, tokenizer, config), transcript
