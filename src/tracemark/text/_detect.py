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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from importlib import metadata
from typing import TypedDict, Unpack

import numpy as np
from numpy.typing import NDArray

from tracemark._json import FrozenDict, FrozenJSONObject, JSONValue
from tracemark._stats import TailProbability, binomial_upper_tail, binomial_upper_tail_array, binomial_z_score
from tracemark.errors import InvalidInputError, KeyMismatchError
from tracemark.keys import TextKey
from tracemark.text._canonical import CanonicalText, OffsetMap, canonicalize, offset_map
from tracemark.text._schemes import ScoredUnits, WatermarkScheme, load_scheme
from tracemark.text._spans import Segment, find_segments
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


#: Windows whose p-values are computed in one vectorised call (bounds the scan's memory).
_WINDOW_BATCH = 1 << 16


@dataclass(frozen=True)
class WindowScan:
    """What the windowed scan decides with: how many windows, the best one, the marked rate to start from."""

    tested: int
    best_p_corrected: float
    #: Hit rate per trial of the densest window significant at alpha after correction, else of the best window.
    initial_rate: float


def _window_starts(n: int, size: int) -> tuple[NDArray[np.int64], bool]:
    """Starts of the windows of ``size`` at half-window strides, and whether ``n - size`` comes after them."""
    starts = np.arange(0, n - size + 1, size // 2, dtype=np.int64)
    return starts, int(starts[-1]) != n - size


def _window_scan(
    hits: NDArray[np.integer], trials_per_unit: int, probability: float, alpha: float
) -> WindowScan | None:
    """Test every window of dyadic size (``MIN_WINDOW`` up to below ``n`` units) at half-window strides.

    Each window's exact binomial p-value is multiplied by the number of windows (Bonferroni).
    None when the text is shorter than two smallest windows.  Memory stays at about one byte
    per unit: window sums come from prefix sums at every ``MIN_WINDOW // 2`` units (every
    window starts and ends on one, except the last window of each size, summed directly),
    and p-values are computed :data:`_WINDOW_BATCH` windows at a time.
    """
    n = int(hits.shape[0])
    if n < 2 * MIN_WINDOW:
        return None
    step = MIN_WINDOW // 2
    full = n // step
    blocks = hits[: full * step].reshape(full, step).sum(axis=1, dtype=np.int64)
    prefix = np.concatenate([[0], np.cumsum(blocks)])  # prefix[j] = hits in units [0, j * step)

    def hits_before(index: int) -> int:
        return int(prefix[index // step]) + int(hits[(index // step) * step : index].sum())

    sizes = []
    size = MIN_WINDOW
    while size < n:
        sizes.append(size)
        size *= 2
    tested = sum(len(s) + int(tail) for s, tail in (_window_starts(n, size) for size in sizes))
    best_p, best_rate = math.inf, 0.0
    densest: float | None = None
    total = hits_before(n)
    for size in sizes:
        starts, tail = _window_starts(n, size)
        count = starts.shape[0] + int(tail)
        trials = size * trials_per_unit
        for lo in range(0, count, _WINDOW_BATCH):
            chunk = starts[lo : lo + _WINDOW_BATCH]
            window_hits = prefix[(chunk + size) // step] - prefix[chunk // step]
            if tail and count - 1 < lo + _WINDOW_BATCH:  # the last window of this size, ending at n
                window_hits = np.append(window_hits, total - hits_before(n - size))
            p_raw = binomial_upper_tail_array(window_hits, np.full(window_hits.shape[0], trials), probability)
            at = int(np.argmin(p_raw))
            if p_raw[at] < best_p:
                best_p, best_rate = float(p_raw[at]), int(window_hits[at]) / trials
            significant = np.minimum(1.0, p_raw * tested) <= alpha
            if significant.any():
                rate = float((window_hits[significant] / trials).max())
                densest = rate if densest is None else max(densest, rate)
    return WindowScan(tested, min(1.0, best_p * tested), best_rate if densest is None else densest)


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


@dataclass(frozen=True)
class Decision:
    """The test of the kept units' hits: whole text, windows, and the marked segments (unit indices)."""

    whole: TailProbability
    p_value: float
    log10_p_value: float
    method: str
    windows_tested: int
    segments: tuple[Segment, ...]

    def outcome(self, deduplicated: bool, spans: tuple[Span, ...], statistics: tuple[Statistic, ...]) -> _Outcome:
        tested = self.windows_tested
        return _Outcome(
            self.p_value,
            self.log10_p_value,
            self.whole.p_value,
            method=self.method,
            deduplicated=deduplicated,
            windows_tested=tested,
            correction=f"Bonferroni over {tested} windows, then x2 for (whole text, best window)" if tested else "none",
            spans=spans,
            statistics=statistics,
        )


def decide(
    hits: NDArray[np.integer], trials_per_unit: int, probability: float, alpha: float, *, scan_windows: bool
) -> Decision:
    """Whole-text exact binomial test, the windowed scan, and where the mark is when the text is marked.

    ``hits`` holds the kept units' hits in text order; with the scan, the p-value is
    ``min(1, 2 * min(p_whole, p_best_window_corrected))`` and a marked text's segments are its
    maximum-scoring segments (:mod:`._spans`); without it, a marked text's one segment is all of it.
    """
    n = int(hits.shape[0])
    total = int(hits.sum())
    whole = binomial_upper_tail(total, n * trials_per_unit, probability)
    scan = _window_scan(hits, trials_per_unit, probability, alpha) if scan_windows else None
    if scan is None:
        segments = (Segment(0, n, total, whole.p_value, whole.p_value),) if n and whole.p_value <= alpha else ()
        return Decision(whole, whole.p_value, whole.log10_p_value, "binomial-exact", 0, segments)
    best = min(whole.p_value, scan.best_p_corrected)
    p_value = min(1.0, 2.0 * best)
    if best == whole.p_value:
        log10_p = min(0.0, whole.log10_p_value + math.log10(2.0))
    else:
        log10_p = math.log10(p_value) if p_value > 0 else -math.inf
    method = f"binomial-exact; min(whole text, {scan.tested} windows Bonferroni) x2"
    found: tuple[Segment, ...] = ()
    if p_value <= alpha:
        found = tuple(find_segments(hits, trials_per_unit, probability, initial_rate=scan.initial_rate, alpha=alpha))
    return Decision(whole, p_value, log10_p, method, scan.tested, found)


CharLookup = Callable[[list[int]], dict[int, tuple[int, int]]]


def _offset_lookup(offsets: NDArray[np.int64] | None) -> CharLookup:
    """Character spans of token positions from an offsets array ((-1, -1) without one)."""

    def lookup(positions: list[int]) -> dict[int, tuple[int, int]]:
        if offsets is None:
            return {p: (-1, -1) for p in positions}
        return {p: (int(offsets[p][0]), int(offsets[p][1])) for p in positions}

    return lookup


def spans_of(segments: tuple[Segment, ...], position: Callable[[int], int], chars: CharLookup) -> tuple[Span, ...]:
    """Spans in tokens and characters of segments of kept units (``position(i)``: token of kept unit ``i``)."""
    ends = [(position(seg.start), position(seg.end - 1)) for seg in segments]
    found = chars(sorted({p for pair in ends for p in pair}))
    spans = []
    for seg, (first, last) in zip(segments, ends, strict=True):
        spans.append(Span(first, last + 1, found[first][0], found[last][1], seg.end - seg.start, seg.hits,
                          seg.p_value, seg.p_value_corrected))  # fmt: skip
    return tuple(spans)


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
    probability = scheme.success_probability
    decision = decide(hits, scheme.trials_per_unit, probability, alpha, scan_windows=scan_windows)
    spans = spans_of(decision.segments, lambda i: int(kept_positions[i]), _offset_lookup(offsets))

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
    outcome = decision.outcome(deduplicate, spans, extra)
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
    tested = text_variants(body, tokenizer) if options.get("variants", True) else [TextVariant("as given", body)]
    verdicts: list[tuple[str, Verdict]] = []
    for variant in tested:
        encoded = tokenizer.encode(variant.text)
        own = variant.body_offsets(encoded.offsets)
        body_offsets = own if back is None and not shift else _to_original(back, own, shift)
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
