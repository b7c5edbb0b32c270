"""Open-mode radioactivity: the suspect's next-token probabilities over our tokenizer.

Each distinct context of the read text is scored once (its first occurrence); tuples that occur
in the read text are dropped; see :mod:`tracemark.theft._radioactivity` for the statistics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tracemark.errors import InvalidInputError, KeyMismatchError, SuspectQueryError, TheftError
from tracemark.keys import TextKey
from tracemark.text import TextTokenizer, WatermarkScheme, bulk_scheme, check_key_fits, load_scheme
from tracemark.theft._adapters import NextTokenModel
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
from tracemark.theft._verdict import TheftVerdict, sha256_text


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
    tried = check_keys(keys, config)
    width = _context_width(suspect, keys, tokenizer)
    sequences: list[NDArray[np.int64]] = []
    read_hashes: list[str] = []
    used = 0
    for text in read_texts:
        if used >= config.budget_tokens:
            break
        ids = encode_text(tokenizer, text)[: config.budget_tokens - used]
        used += int(ids.shape[0])
        if ids.shape[0] > width:
            sequences.append(ids)
            read_hashes.append(sha256_text(text))
    blockers: list[str] = []
    if used < config.budget_tokens:
        blockers.append(f"budget not reached: {used} of {config.budget_tokens} read tokens")
    contexts, candidates, probabilities, failures = _read(suspect, sequences, width, config.top_k)
    # a bounded share of failed reads is tolerated: the test scores the reads that answered, and the null
    # stays exact (under H0 which reads fail cannot depend on the key); counts say how many were lost
    if failures > config.max_failure_rate * len(sequences):
        blockers.append(
            f"{failures} of {len(sequences)} reads failed, more than max_failure_rate {config.max_failure_rate:g}"
        )
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

    def statistic_for(key: TextKey) -> TupleStatistic:
        return TupleStatistic(config.chosen_statistic, weights, 1, load_scheme(key).success_probability)

    rows = [per_key_row(statistic_for(k), k, hits_for_key(k)) if tuples.shape[0] else empty_row(k) for k in keys]
    data_digest = hashlib.sha256(b"".join(np.ascontiguousarray(s, dtype="<i8").tobytes() for s in sequences))
    digest = data_digest.hexdigest()
    counts = {
        "budget_tokens": config.budget_tokens,
        "read_tokens": used,
        "read_sequences": len(sequences),
        "failed_reads": failures,
        "answered_reads": len(sequences) - failures,
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
    run = RadioactivityRun("open", config, keys, tried, tuple(rows), counts, tuple(blockers), digest, evidence)
    if not tuples.shape[0]:
        return verdict_without_data(run)
    return assemble_verdict(run, statistic_for=statistic_for, hits_for_scheme=hits_for_scheme)


def _context_width(suspect: NextTokenModel, keys: Sequence[TextKey], tokenizer: TextTokenizer) -> int:
    """The keys' common context width, once they and the suspect are known to suit open mode."""
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
    return width


def _read(
    suspect: NextTokenModel, sequences: list[NDArray[np.int64]], width: int, k: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], int]:
    """First occurrence of each context across the read text, with the suspect's top-k after it."""
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
