"""Watermark detection: canonicalise, tokenise, score, de-duplicate, test exactly.

The statistic is the number of hits over the distinct scored units.  Under the null
(text written without the key) it is exactly Binomial(units * trials_per_unit, p0),
so the p-value is an exact binomial tail.  Three rules keep that null honest:

* a repeated unit (same context and token) is scored once: repeated n-grams in code
  or boilerplate otherwise inflate the score (transformers' KGW flags 0.7 % of Python
  source at z > 4 when repeats count);
* prompt tokens are never scored (the prompt was not written by the watermarked model);
* windowed scanning for a marked span inside longer text tests every window of
  dyadic sizes at half-window strides and applies a Bonferroni correction over the
  number of windows; the final p-value is ``min(1, 2 * min(p_whole, p_window))``,
  a valid p-value for the union of the two tests.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata

import numpy as np
from numpy.typing import NDArray

from tracemark._json import FrozenDict, FrozenJSONObject
from tracemark._stats import binomial_upper_tail, binomial_upper_tail_array, binomial_z_score
from tracemark.errors import InvalidInputError, KeyMismatchError
from tracemark.keys import TextKey
from tracemark.text._canonical import canonicalize
from tracemark.text._schemes import ScoredUnits, WatermarkScheme, load_scheme
from tracemark.text._tokenizer import TextTokenizer
from tracemark.text._units import bulk_scheme, count_distinct_units
from tracemark.text._verdict import Span, Statistic, TokenMark, Verdict

#: Default significance level: a text is called marked when p <= 1e-6.
DEFAULT_ALPHA = 1e-6
#: Default input limit (characters) for one detection; larger inputs are refused.
DEFAULT_MAX_CHARS = 4 * 1024 * 1024
#: Smallest window (in scored units) of the windowed scan.
MIN_WINDOW = 32


def check_key_fits(key: TextKey, tokenizer: TextTokenizer) -> None:
    """Refuse a key made for another tokenizer or vocabulary size (never a silent "not marked")."""
    if key.tokenizer_sha256 != tokenizer.sha256:
        raise KeyMismatchError(
            f"key {key.key_id} was made for tokenizer {key.tokenizer_sha256[:12]}…, "
            f"but {tokenizer.model_dir} has tokenizer {tokenizer.sha256[:12]}…"
        )
    if key.vocab_size != tokenizer.vocab_size:
        raise KeyMismatchError(
            f"key {key.key_id} expects vocab_size {key.vocab_size}, "
            f"but {tokenizer.model_dir} has vocab_size {tokenizer.vocab_size}"
        )


def first_occurrences(unit_keys: NDArray[np.int64], vocab_size: int) -> NDArray[np.bool_]:
    """Mask of rows that are the first occurrence of their unit."""
    n, width = unit_keys.shape
    keep = np.zeros(n, dtype=np.bool_)
    if n == 0:
        return keep
    bits = max(1, int(vocab_size - 1).bit_length())
    if bits * width <= 64:
        packed = np.zeros(n, dtype=np.uint64)
        for column in range(width):
            packed <<= np.uint64(bits)
            packed |= unit_keys[:, column].astype(np.uint64)
        _, first = np.unique(packed, return_index=True)
    else:
        rows = np.ascontiguousarray(unit_keys).view(np.dtype((np.void, unit_keys.itemsize * width))).ravel()
        _, first = np.unique(rows, return_index=True)
    keep[first] = True
    return keep


@functools.cache
def _library_versions() -> tuple[tuple[str, str], ...]:
    from tracemark import __version__

    found = [("tracemark", __version__)]
    for dist in ("numpy", "scipy", "tokenizers"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append((dist, metadata.version(dist)))
    return tuple(found)


def _versions(scheme: WatermarkScheme) -> dict[str, str]:
    return {**dict(_library_versions()), "scheme": f"{scheme.name}/{scheme.key.scheme_version}"}


def _window_scan(
    hits: NDArray[np.int64], trials_per_unit: int, probability: float, alpha: float
) -> tuple[int, list[tuple[int, int, int, float, float]]]:
    """Test dyadic windows of kept units.

    Returns the number of windows tested and the windows ``(start, end, hits, p, p_corrected)``
    that are significant at ``alpha`` after correction, plus always the best one.
    """
    n = hits.shape[0]
    if n < 2 * MIN_WINDOW:
        return 0, []
    cumulative = np.concatenate([[0], np.cumsum(hits)])
    starts_all: list[NDArray[np.int64]] = []
    ends_all: list[NDArray[np.int64]] = []
    size = MIN_WINDOW
    while size < n:
        starts = np.arange(0, n - size + 1, size // 2, dtype=np.int64)
        if starts[-1] != n - size:
            starts = np.append(starts, n - size)
        starts_all.append(starts)
        ends_all.append(starts + size)
        size *= 2
    starts_v = np.concatenate(starts_all)
    ends_v = np.concatenate(ends_all)
    window_hits = cumulative[ends_v] - cumulative[starts_v]
    trials = (ends_v - starts_v) * trials_per_unit
    p_raw = binomial_upper_tail_array(window_hits, trials, probability)
    tested = int(starts_v.shape[0])
    p_corrected = np.minimum(1.0, p_raw * tested)
    significant = set(np.nonzero(p_corrected <= alpha)[0].tolist())
    significant.add(int(np.argmin(p_raw)))  # the best window always comes back (it sets the p-value)
    out = [
        (int(starts_v[i]), int(ends_v[i]), int(window_hits[i]), float(p_raw[i]), float(p_corrected[i]))
        for i in sorted(significant)
    ]
    return tested, out


def _select_spans(windows: list[tuple[int, int, int, float, float]]) -> list[tuple[int, int, float, float]]:
    """Localise marked stretches among significant windows.

    Larger windows around a marked span are often *more* significant than the span itself
    (evidence accumulates), so windows are chosen by hit density: the densest significant
    window first, then the next densest that does not overlap a chosen one; chosen windows
    that touch are merged.
    """
    by_density = sorted(windows, key=lambda w: (-(w[2] / (w[1] - w[0])), w[1] - w[0], w[0]))
    chosen: list[tuple[int, int, int, float, float]] = []
    for window in by_density:
        if all(window[1] <= c[0] or window[0] >= c[1] for c in chosen):
            chosen.append(window)
    merged: list[tuple[int, int, float, float]] = []
    for start, end, _hits, p_raw, p_corr in sorted(chosen):
        if merged and start <= merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), min(last[2], p_raw), min(last[3], p_corr))
        else:
            merged.append((start, end, p_raw, p_corr))
    return merged


@dataclass(frozen=True)
class _Counts:
    """What a test rests on: tokens by role, distinct units and hits."""

    tokens_total: int
    tokens_scored: int
    tokens_repeated: int
    tokens_in_prompt: int
    tokens_unscorable: int
    hits: int


@dataclass(frozen=True)
class _Outcome:
    """The numbers of one test: its p-values and how they were reached."""

    p_value: float
    log10_p_value: float
    p_value_whole_text: float
    method: str = "binomial-exact"
    deduplicated: bool = True
    windows_tested: int = 0
    correction: str = "none"
    spans: tuple[Span, ...] = ()
    statistics: tuple[Statistic, ...] = ()


def _verdict(
    scheme: WatermarkScheme,
    counts: _Counts,
    outcome: _Outcome,
    *,
    alpha: float,
    canonicalization: FrozenJSONObject | None = None,
    token_marks: tuple[TokenMark, ...] = (),
    shared: tuple[str, FrozenJSONObject, Mapping[str, str]] | None = None,
) -> Verdict:
    """Fill in the key's evidence fields around the numbers of one test."""
    key = scheme.key
    commitment, params, versions = shared or (key.commitment, key.params, _versions(scheme))
    trials = counts.tokens_scored * scheme.trials_per_unit
    probability = scheme.success_probability
    return Verdict(
        scheme=scheme.name,
        scheme_version=key.scheme_version,
        key_id=key.key_id,
        key_commitment=commitment,
        tokenizer_sha256=key.tokenizer_sha256,
        vocab_size=key.vocab_size,
        params=params,
        marked=bool(counts.tokens_scored > 0 and outcome.p_value <= alpha),
        alpha=alpha,
        p_value=outcome.p_value,
        log10_p_value=outcome.log10_p_value,
        p_value_method=outcome.method,
        p_value_whole_text=outcome.p_value_whole_text,
        score=counts.hits / trials if trials else 0.0,
        z_score=binomial_z_score(counts.hits, trials, probability),
        hits=counts.hits,
        trials=trials,
        null_hit_probability=probability,
        tokens_total=counts.tokens_total,
        tokens_scored=counts.tokens_scored,
        tokens_repeated=counts.tokens_repeated,
        tokens_in_prompt=counts.tokens_in_prompt,
        tokens_unscorable=counts.tokens_unscorable,
        deduplicated=outcome.deduplicated,
        windows_tested=outcome.windows_tested,
        correction=outcome.correction,
        spans=outcome.spans,
        statistics=outcome.statistics,
        canonicalization=canonicalization or FrozenDict(),
        versions=versions,
        token_marks=token_marks,
    )


def _verdict_from_distinct_units(
    scheme: WatermarkScheme,
    ids: NDArray[np.int64],
    prompt_length: int,
    alpha: float,
    offsets: NDArray[np.int64] | None,
    canonicalization: FrozenJSONObject | None,
) -> Verdict:
    """Whole-text test from the distinct units alone (the bulk path, one sequence)."""
    width = scheme.context_width
    first_scored = max(prompt_length, width)
    counted = count_distinct_units(scheme, [ids[first_scored - width :]])
    answer_units = int(counted.units[0])
    n_units = int(counted.distinct[0])
    total_hits = int(counted.hits[0])
    whole = binomial_upper_tail(total_hits, n_units * scheme.trials_per_unit, scheme.success_probability)
    spans: tuple[Span, ...] = ()
    if n_units and whole.p_value <= alpha:
        last_pos = int(ids.shape[0]) - 1
        start_char = int(offsets[first_scored][0]) if offsets is not None else -1
        end_char = int(offsets[last_pos][1]) if offsets is not None else -1
        spans = (Span(first_scored, last_pos + 1, start_char, end_char, n_units, total_hits, whole.p_value,
                      whole.p_value),)  # fmt: skip
    prompt_tokens = int(min(prompt_length, ids.shape[0]))
    counts = _Counts(
        tokens_total=int(ids.shape[0]),
        tokens_scored=n_units,
        tokens_repeated=answer_units - n_units,
        tokens_in_prompt=prompt_tokens,
        tokens_unscorable=int(ids.shape[0]) - prompt_tokens - answer_units,
        hits=total_hits,
    )
    outcome = _Outcome(whole.p_value, whole.log10_p_value, whole.p_value, spans=spans)
    return _verdict(scheme, counts, outcome, alpha=alpha, canonicalization=canonicalization)


def detect_tokens(
    token_ids: NDArray[np.int64],
    key: TextKey,
    *,
    prompt_length: int = 0,
    alpha: float = DEFAULT_ALPHA,
    deduplicate: bool = True,
    scan_windows: bool = True,
    offsets: NDArray[np.int64] | None = None,
    canonicalization: FrozenJSONObject | None = None,
    explain: bool = False,
) -> Verdict:
    """Test token ids for the watermark of ``key``; ``token_ids[:prompt_length]`` is the prompt."""
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError("alpha must lie strictly between 0 and 1")
    scheme = load_scheme(key)
    ids = np.asarray(token_ids, dtype=np.int64)
    if deduplicate and not scan_windows and not explain and bulk_scheme(scheme) is not None:
        return _verdict_from_distinct_units(scheme, ids, prompt_length, alpha, offsets, canonicalization)
    units: ScoredUnits = scheme.score(ids)
    in_answer = units.positions >= prompt_length
    unique = first_occurrences(units.unit_keys, key.vocab_size) if deduplicate else np.ones_like(in_answer)
    # de-duplicate among answer units only: a unit first seen in the prompt still counts once in the answer
    if deduplicate and prompt_length:
        answer_keys = units.unit_keys[in_answer]
        unique = np.zeros_like(in_answer)
        unique[np.nonzero(in_answer)[0]] = first_occurrences(answer_keys, key.vocab_size)
    kept = in_answer & unique
    hits = units.hits[kept]
    kept_positions = units.positions[kept]
    n_units = int(hits.shape[0])
    total_hits = int(hits.sum())
    trials = n_units * scheme.trials_per_unit
    probability = scheme.success_probability
    whole = binomial_upper_tail(total_hits, trials, probability)

    tested: int = 0
    windows: list[tuple[int, int, int, float, float]] = []
    if scan_windows:
        tested, windows = _window_scan(hits, scheme.trials_per_unit, probability, alpha)
    p_value, log10_p, method = whole.p_value, whole.log10_p_value, "binomial-exact"
    spans: list[Span] = []
    if tested:
        best_window = min(w[4] for w in windows)
        best = min(whole.p_value, best_window)
        p_value = min(1.0, 2.0 * best)
        if best == whole.p_value:
            log10_p = min(0.0, whole.log10_p_value + math.log10(2.0))
        else:
            log10_p = math.log10(p_value) if p_value > 0 else -math.inf
        method = f"binomial-exact; min(whole text, {tested} windows Bonferroni) x2"
        for start, end, p_raw, p_corr in _select_spans([w for w in windows if w[4] <= alpha]):
            first_pos = int(kept_positions[start])
            last_pos = int(kept_positions[end - 1])
            start_char = int(offsets[first_pos][0]) if offsets is not None else -1
            end_char = int(offsets[last_pos][1]) if offsets is not None else -1
            spans.append(Span(first_pos, last_pos + 1, start_char, end_char, end - start,
                              int(hits[start:end].sum()), p_raw, p_corr))  # fmt: skip
    elif n_units and whole.p_value <= alpha:
        first_pos, last_pos = int(kept_positions[0]), int(kept_positions[-1])
        start_char = int(offsets[first_pos][0]) if offsets is not None else -1
        end_char = int(offsets[last_pos][1]) if offsets is not None else -1
        spans.append(Span(first_pos, last_pos + 1, start_char, end_char, n_units, total_hits,
                          whole.p_value, whole.p_value))  # fmt: skip

    extra = tuple(
        Statistic(s.name, s.score, s.p_value, s.log10_p_value, s.method)
        for s in scheme.extra_statistics(
            ScoredUnits(
                positions=kept_positions,
                unit_keys=units.unit_keys[kept],
                hits=hits,
                layer_values=None if units.layer_values is None else units.layer_values[kept],
            )
        )
    )
    marks: tuple[TokenMark, ...] = ()
    if explain and offsets is not None:
        status = np.full(ids.shape[0], "context", dtype=object)
        status[:prompt_length] = "prompt"
        status[units.positions[in_answer & ~unique]] = "repeat"
        status[kept_positions] = np.where(hits > 0, "hit", "miss")
        marks = tuple(TokenMark(int(o[0]), int(o[1]), str(s)) for o, s in zip(offsets, status, strict=True))

    prompt_tokens = int(min(prompt_length, ids.shape[0]))
    counts = _Counts(
        tokens_total=int(ids.shape[0]),
        tokens_scored=n_units,
        tokens_repeated=int(np.count_nonzero(in_answer & ~unique)),
        tokens_in_prompt=prompt_tokens,
        tokens_unscorable=int(ids.shape[0]) - prompt_tokens - int(np.count_nonzero(in_answer)),
        hits=total_hits,
    )
    outcome = _Outcome(
        p_value,
        log10_p,
        whole.p_value,
        method=method,
        deduplicated=deduplicate,
        windows_tested=tested,
        correction=f"Bonferroni over {tested} windows, then x2 for (whole text, best window)" if tested else "none",
        spans=tuple(spans),
        statistics=extra,
    )
    return _verdict(scheme, counts, outcome, alpha=alpha, canonicalization=canonicalization, token_marks=marks)


def detect_watermark(
    text: str,
    key: TextKey,
    tokenizer: TextTokenizer,
    *,
    prompt: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    deduplicate: bool = True,
    scan_windows: bool = True,
    explain: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> Verdict:
    """Test ``text`` for the watermark of ``key``; the tokenizer comes from the model directory.

    The text (and the prompt, if given) is canonicalised before tokenising.  When the
    text starts with the prompt, the prompt part is removed first; prompt tokens give
    context to the first answer tokens but are never scored.
    """
    if not isinstance(text, str):
        raise InvalidInputError("text must be a str")
    if len(text) > max_chars:
        raise InvalidInputError(f"text has {len(text)} characters; the limit is {max_chars}")
    if "\x00" in text:
        raise InvalidInputError("text contains NUL characters: binary input is not text")
    check_key_fits(key, tokenizer)
    canonical = canonicalize(text)
    body = canonical.text
    prompt_ids = np.empty(0, dtype=np.int64)
    prompt_offsets = np.empty((0, 2), dtype=np.int64)
    if prompt:
        canonical_prompt = canonicalize(prompt).text
        if body.startswith(canonical_prompt):
            body = body[len(canonical_prompt) :]
        encoded_prompt = tokenizer.encode(canonical_prompt)
        prompt_ids = encoded_prompt.ids
        prompt_offsets = np.full((prompt_ids.shape[0], 2), 0, dtype=np.int64)
    if not body.strip():
        raise InvalidInputError("no text to test (empty after removing the prompt and invisible characters)")
    encoded = tokenizer.encode(body)
    ids = np.concatenate([prompt_ids, encoded.ids])
    offsets = np.concatenate([prompt_offsets, encoded.offsets])
    return detect_tokens(
        ids,
        key,
        prompt_length=int(prompt_ids.shape[0]),
        alpha=alpha,
        deduplicate=deduplicate,
        scan_windows=scan_windows,
        offsets=offsets,
        canonicalization={
            "form": "NFKC+invisible-removed+confusables-mapped",
            "invisible_removed": canonical.invisible_removed,
            "confusables_mapped": canonical.confusables_mapped,
            "nfkc_changed": canonical.nfkc_changed,
            "text": body,
        },
        explain=explain,
    )
