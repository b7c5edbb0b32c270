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

The windows decide; they do not delimit.  A marked text's spans are its maximum-scoring
segments (:mod:`._spans`), whose ends follow the marked passage's boundaries, each with
its exact p-value and a Bonferroni correction over every segment the search could pick.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import metadata
from typing import TypedDict, Unpack

import numpy as np
from numpy.typing import NDArray

from tracemark._json import FrozenDict, FrozenJSONObject, JSONValue
from tracemark._stats import binomial_upper_tail, binomial_upper_tail_array, binomial_z_score
from tracemark.errors import InvalidInputError, KeyMismatchError
from tracemark.keys import TextKey
from tracemark.text._canonical import CanonicalText, OffsetMap, canonicalize, offset_map
from tracemark.text._schemes import ScoredUnits, WatermarkScheme, load_scheme
from tracemark.text._spans import find_segments
from tracemark.text._tokenizer import TextTokenizer
from tracemark.text._units import bulk_scheme, count_distinct_units
from tracemark.text._variants import TextVariant, text_variants
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


def _segment_spans(
    hits: NDArray[np.int64],
    kept_positions: NDArray[np.int64],
    offsets: NDArray[np.int64] | None,
    scheme: WatermarkScheme,
    windows: list[tuple[int, int, int, float, float]],
    alpha: float,
) -> list[Span]:
    """Spans of a marked text: maximum-scoring segments of the kept units (:mod:`._spans`)."""
    trials = scheme.trials_per_unit
    significant = [w for w in windows if w[4] <= alpha] or windows
    densities = [w[2] / ((w[1] - w[0]) * trials) for w in significant]
    initial = max(densities) if densities else float(hits.sum()) / max(1, hits.shape[0] * trials)
    spans = []
    for segment in find_segments(hits, trials, scheme.success_probability, initial_rate=initial, alpha=alpha):
        first_pos = int(kept_positions[segment.start])
        last_pos = int(kept_positions[segment.end - 1])
        start_char = int(offsets[first_pos][0]) if offsets is not None else -1
        end_char = int(offsets[last_pos][1]) if offsets is not None else -1
        spans.append(Span(first_pos, last_pos + 1, start_char, end_char, segment.end - segment.start,
                          segment.hits, segment.p_value, segment.p_value_corrected))  # fmt: skip
    return spans


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
    bulk = bulk_scheme(scheme)
    if bulk is not None and first_scored == width:  # a leading token the scheme never scores (KGW's BOS)
        first_scored += ids.shape[0] - bulk.skip_leading(ids).shape[0]
    counted = count_distinct_units(scheme, [ids[first_scored - width :]], from_start=False)
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
        if p_value <= alpha:
            spans = _segment_spans(hits, kept_positions, offsets, scheme, windows, alpha)
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


def _combine_variants(verdicts: list[tuple[str, Verdict]], alpha: float) -> Verdict:
    """One verdict for ``k`` variants of a text: the best variant's, its p-value times ``k`` (Bonferroni)."""
    if len(verdicts) == 1:
        return verdicts[0][1]
    count = len(verdicts)
    name, best = min(verdicts, key=lambda item: (item[1].log10_p_value, item[1].p_value))
    p_value = min(1.0, count * best.p_value)
    log10_p = min(0.0, best.log10_p_value + math.log10(count))
    names = ", ".join(n for n, _ in verdicts)
    tokens_scored = best.tokens_scored
    return replace(
        best,
        p_value=p_value,
        log10_p_value=log10_p,
        marked=bool(tokens_scored > 0 and p_value <= alpha),
        p_value_method=f"{best.p_value_method}; best of {count} text variants ({name} won), Bonferroni x{count}",
        correction=f"{best.correction}; then x{count} for the text variants tested ({names})",
        spans=best.spans if p_value <= alpha else (),
        canonicalization={**dict(best.canonicalization), "variant": name, "variants_tested": count},
    )


def _encode_body(
    tokenizer: TextTokenizer, text: str, prompt: str | None
) -> tuple[str, NDArray[np.int64], NDArray[np.int64], int, int, CanonicalText]:
    """Canonical body (prompt removed), prompt ids, their offsets, the body's shift in the canonical text."""
    canonical = canonicalize(text)
    body = canonical.text
    shift = 0
    prompt_ids = np.empty(0, dtype=np.int64)
    if prompt:
        canonical_prompt = canonicalize(prompt).text
        if body.startswith(canonical_prompt):
            body = body[len(canonical_prompt) :]
            shift = len(canonical_prompt)
        prompt_ids = tokenizer.encode(canonical_prompt).ids
    if not body.strip():
        raise InvalidInputError("no text to test (empty after removing the prompt and invisible characters)")
    prompt_offsets = np.full((prompt_ids.shape[0], 2), 0, dtype=np.int64)
    return body, prompt_ids, prompt_offsets, shift, int(prompt_ids.shape[0]), canonical


class DetectOptions(TypedDict, total=False):
    """Keyword options of :func:`detect_watermark` (each optional; defaults in brackets)."""

    #: The prompt the text answered: its tokens give context but are never scored [None].
    prompt: str | None
    #: Decision level: marked when ``p_value <= alpha`` [:data:`DEFAULT_ALPHA`].
    alpha: float
    #: Score each distinct unit once [True].
    deduplicate: bool
    #: Windowed scan for marked passages inside longer text [True].
    scan_windows: bool
    #: Per-token marks in the verdict [False].
    explain: bool
    #: Longest accepted text in characters [:data:`DEFAULT_MAX_CHARS`].
    max_chars: int
    #: Also test case/line-wrap variants of a text that looks re-cased or re-wrapped [True].
    variants: bool
    #: Put the canonical text in ``canonicalization["text"]`` [False].
    include_canonical_text: bool


def detect_watermark(text: str, key: TextKey, tokenizer: TextTokenizer, **options: Unpack[DetectOptions]) -> Verdict:
    """Test ``text`` for the watermark of ``key``; the tokenizer comes from the model directory.

    The text (and the prompt, if given) is canonicalised before tokenising.  When the
    text starts with the prompt, the prompt part is removed first; prompt tokens give
    context to the first answer tokens but are never scored.  Span and ``token_marks``
    offsets count characters of ``text`` as given (not of its canonical form).

    With ``variants`` (default), a text that looks upper- or title-cased or re-wrapped is
    also tested lower-cased, sentence-cased or unwrapped (:mod:`._variants`), and the best
    p-value is multiplied by the number of variants tested.  ``include_canonical_text``
    puts the canonical text into ``canonicalization["text"]`` (left out by default: it
    doubled the verdict's size).  See :class:`DetectOptions` for every option.
    """
    max_chars = options.get("max_chars", DEFAULT_MAX_CHARS)
    alpha = options.get("alpha", DEFAULT_ALPHA)
    prompt = options.get("prompt")
    if not isinstance(text, str):
        raise InvalidInputError("text must be a str")
    if len(text) > max_chars:
        raise InvalidInputError(f"text has {len(text)} characters; the limit is {max_chars}")
    if "\x00" in text:
        raise InvalidInputError("text contains NUL characters: binary input is not text")
    check_key_fits(key, tokenizer)
    body, prompt_ids, prompt_offsets, shift, prompt_length, canonical = _encode_body(tokenizer, text, prompt)
    back = offset_map(text, canonical.text)
    summary: dict[str, JSONValue] = {
        "form": "NFKC+invisible-removed+confusables-mapped",
        "invisible_removed": canonical.invisible_removed,
        "confusables_mapped": canonical.confusables_mapped,
        "nfkc_changed": canonical.nfkc_changed,
        "offsets": "characters of the text as given",
    }
    if options.get("include_canonical_text", False):
        summary["text"] = body
    tested = text_variants(body) if options.get("variants", True) else [TextVariant("as given", body)]
    verdicts: list[tuple[str, Verdict]] = []
    for variant in tested:
        encoded = tokenizer.encode(variant.text)
        body_offsets = encoded.offsets if back is None and not shift else _to_original(back, encoded.offsets, shift)
        verdict = detect_tokens(
            np.concatenate([prompt_ids, encoded.ids]),
            key,
            prompt_length=prompt_length,
            alpha=alpha,
            deduplicate=options.get("deduplicate", True),
            scan_windows=options.get("scan_windows", True),
            offsets=np.concatenate([prompt_offsets, body_offsets]),
            canonicalization=summary,
            explain=options.get("explain", False),
        )
        verdicts.append((variant.name, verdict))
    return _combine_variants(verdicts, alpha)


def _to_original(back: OffsetMap | None, offsets: NDArray[np.int64], shift: int) -> NDArray[np.int64]:
    if back is None:
        return offsets + shift
    return back.to_original(offsets, shift)
