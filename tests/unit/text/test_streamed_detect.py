"""Streamed detection of long inputs: the in-memory verdict, in memory bounded by distinct units (#23)."""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import REFERENCE_MODEL
from tests.support.corpora import python_prose, python_source
from tracemark.cli._main import main
from tracemark.keys import Keyring, TextKey
from tracemark.text import (
    TextTokenizer,
    VerdictJSON,
    detect_watermark,
    detect_watermark_stream,
    load_scheme,
    new_text_key,
)
from tracemark.text._stream import UnitSet

PIECE, ABOVE = 2_000, 3_000


def _word(token: int) -> str:
    return "[UNK]" if token == 0 else f"w{token - 1}"


def _marked_ids(key: TextKey, length: int, rng: np.random.Generator, context: list[int]) -> list[int]:
    """Mimic generation for any scheme: of 8 candidates, take the one with the most hits."""
    scheme = load_scheme(key)
    width = scheme.context_width
    sequence = list(context)
    for _ in range(length):
        candidates = rng.integers(0, key.vocab_size, 8)
        rows = np.array([[*sequence[-width:], int(c)] for c in candidates])
        hits = [int(scheme.score(row).hits[-1]) for row in rows]
        sequence.append(int(candidates[int(np.argmax(hits))]))
    return sequence[len(context) :]


def _text(key: TextKey, seed: int, words: int = 6_000) -> str:
    """Human words with two marked passages, zero-width characters inside some words, a few line breaks."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, key.vocab_size, words).tolist()
    for start in (words // 5, 3 * words // 5):
        ids[start : start + 300] = _marked_ids(key, 300, rng, ids[start - 8 : start])
    out = []
    for i, token in enumerate(ids):
        word = _word(token)
        if i % 97 == 5:
            word = word[:1] + "\u200b" + word[1:]
        out.append(word + ("\n" if i % 211 == 7 else " "))
    return "".join(out).rstrip()


def _same(whole: VerdictJSON, streamed: VerdictJSON) -> None:
    pieces = streamed["canonicalization"].pop("streamed_pieces")
    assert isinstance(pieces, int)
    assert pieces > 5  # it did stream
    whole_fields: Mapping[str, object] = whole
    streamed_fields: Mapping[str, object] = streamed
    assert [k for k in whole_fields if whole_fields[k] != streamed_fields[k]] == []


@pytest.mark.parametrize("scheme", ["native", "kgw", "synthid"])
def test_streamed_verdict_equals_the_in_memory_one(word_model: Path, scheme: str) -> None:
    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, scheme, word_model)
    tokenizer = TextTokenizer(word_model)
    text = _text(key, seed=len(scheme))
    options: list[dict[str, Any]] = [{}, {"scan_windows": False}, {"prompt": text[:40]}, {"deduplicate": False}]
    for option in options:
        whole = detect_watermark(text, key, tokenizer, variants=False, max_chars=len(text), **option).to_json()
        for source in (text, io.BytesIO(text.encode())):
            streamed = detect_watermark_stream(
                source, key, tokenizer, piece_chars=PIECE, stream_above_chars=ABOVE, **option
            ).to_json()
            _same(whole, streamed)
        if not option:
            assert whole["marked"]
            assert len(whole["spans"]) >= 2  # both passages, located through the second pass
            invisible = whole["canonicalization"]["invisible_removed"]
            assert isinstance(invisible, int)
            assert invisible > 0  # offsets map back through removed chars


def test_streamed_verdict_equals_the_in_memory_one_on_prose_and_code() -> None:
    # byte-level BPE, repeated boilerplate (code), non-ASCII: the reference model's tokenizer
    keyring = Keyring()
    keyring.create()
    tokenizer = TextTokenizer(REFERENCE_MODEL)
    text = ("\n".join(python_prose(limit_chars=20_000)) + "\n" + "\n".join(python_source(limit_chars=20_000)))[:40_000]
    for scheme in ("native", "synthid"):
        key = new_text_key(keyring, scheme, REFERENCE_MODEL)
        whole = detect_watermark(text, key, tokenizer, variants=False).to_json()
        streamed = detect_watermark_stream(text, key, tokenizer, piece_chars=PIECE, stream_above_chars=ABOVE)
        _same(whole, streamed.to_json())
        assert whole["tokens_repeated"] > 0


def test_a_short_text_is_tested_whole_with_its_variants(word_model: Path) -> None:
    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "native", word_model)
    tokenizer = TextTokenizer(word_model)
    text = " ".join(f"W{i % 1999}" for i in range(300))  # upper-cased: the variants are tested
    streamed = detect_watermark_stream(text, key, tokenizer).to_json()
    assert streamed == detect_watermark(text, key, tokenizer).to_json()
    assert streamed["canonicalization"]["variants_tested"] == 3


def test_the_tokenizer_never_sees_more_than_a_piece(word_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "native", word_model)
    tokenizer = TextTokenizer(word_model)
    seen: list[int] = []
    original = TextTokenizer.encode

    def spy(self: TextTokenizer, text: str, **kwargs: Any) -> Any:
        seen.append(len(text))
        return original(self, text, **kwargs)

    monkeypatch.setattr(TextTokenizer, "encode", spy)
    text = _text(key, seed=3)
    detect_watermark_stream(text, key, tokenizer, piece_chars=PIECE, stream_above_chars=ABOVE)
    assert len(seen) > 10
    assert max(seen) <= ABOVE


def test_unit_set_is_exact() -> None:
    rng = np.random.default_rng(7)
    unit_set, reference = UnitSet(), set[int]()
    for _ in range(30):
        codes = np.unique(rng.integers(0, 5_000, 400).astype(np.uint64) * np.uint64(0x10001) + np.uint64(2**63))
        fresh = unit_set.add(codes)
        assert fresh.tolist() == [int(c) not in reference for c in codes]
        reference.update(int(c) for c in codes)
    assert unit_set.size == len(reference)


def _peak_bytes(text: str, key: TextKey, tokenizer: TextTokenizer) -> int:
    tracemalloc.start()
    try:
        detect_watermark_stream(text, key, tokenizer, piece_chars=1 << 15, stream_above_chars=1 << 15)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_grows_by_a_few_bytes_per_token(word_model: Path) -> None:
    # before streaming, detection held ~170 bytes per token (bench/bench_text_memory.py)
    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "native", word_model)
    tokenizer = TextTokenizer(word_model)
    rng = np.random.default_rng(11)
    small, large = 60_000, 240_000
    words = [_word(int(t)) for t in rng.integers(1, key.vocab_size, large)]
    peak_small = _peak_bytes(" ".join(words[:small]), key, tokenizer)
    peak_large = _peak_bytes(" ".join(words), key, tokenizer)
    per_token = (peak_large - peak_small) / (large - small)
    # the large text itself (5.5 bytes per word) is held by the caller here, not counted by tracemalloc's peak
    print(f"peak {peak_small} -> {peak_large} bytes: {per_token:.1f} bytes per token")
    assert per_token < 20, per_token


def test_cli_streams_a_file_and_standard_input(
    capsys: pytest.CaptureFixture[str], word_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["keys", "init", "--model", str(word_model)]) == 0
    capsys.readouterr()
    sample = tmp_path / "long.txt"
    rng = np.random.default_rng(5)
    text = " ".join(_word(int(t)) for t in rng.integers(1, 2001, 80_000))
    sample.write_text(text)
    assert main(["text", "detect", "--model", str(word_model), str(sample), "--json", "--max-bytes", "10000000"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert from_file["canonicalization"]["streamed_pieces"] >= 2
    assert from_file["tokens_total"] == 80_000
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert main(["text", "detect", "--model", str(word_model), "-", "--json", "--max-bytes", "10000000"]) == 0
    assert json.loads(capsys.readouterr().out) == from_file


def _all_windows(hits: np.ndarray, trials: int, p0: float) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Every dyadic window at once, as the scan computed them before it worked in batches."""
    from tracemark._stats import binomial_upper_tail_array

    n = hits.shape[0]
    cumulative = np.concatenate([[0], np.cumsum(hits)])
    starts_all, sizes_all = [], []
    size = 32
    while size < n:
        starts = np.arange(0, n - size + 1, size // 2)
        if starts[-1] != n - size:
            starts = np.append(starts, n - size)
        starts_all.append(starts)
        sizes_all.append(np.full(starts.shape[0], size))
        size *= 2
    starts_v, sizes_v = np.concatenate(starts_all), np.concatenate(sizes_all)
    window_hits = cumulative[starts_v + sizes_v] - cumulative[starts_v]
    p_raw = binomial_upper_tail_array(window_hits, sizes_v * trials, p0)
    return int(starts_v.shape[0]), p_raw, window_hits, sizes_v * trials


@pytest.mark.parametrize(("n", "trials"), [(64, 1), (1000, 1), (70_001, 1), (3_333, 30)])
def test_the_batched_window_scan_equals_every_window_at_once(n: int, trials: int, monkeypatch: Any) -> None:
    from tracemark.text import _detect

    monkeypatch.setattr(_detect, "_WINDOW_BATCH", 97)  # many batches, a tail window inside and at their edge
    rng = np.random.default_rng(n)
    rate = np.where(np.arange(n) % 5000 < 300, 0.5, 0.25) if trials == 1 else np.full(n, 0.52)
    hits = rng.binomial(trials, rate).astype(np.uint8)
    p0, alpha = (0.25 if trials == 1 else 0.5), 1e-6
    scan = _detect._window_scan(hits, trials, p0, alpha)
    assert scan is not None
    tested, p_raw, window_hits, window_trials = _all_windows(hits.astype(np.int64), trials, p0)
    assert scan.tested == tested
    assert scan.best_p_corrected == min(1.0, float(p_raw.min()) * tested)
    significant = np.minimum(1.0, p_raw * tested) <= alpha
    best = int(np.argmin(p_raw))
    expected = (window_hits[significant] / window_trials[significant]).max() if significant.any() else None
    assert scan.initial_rate == (expected if expected is not None else window_hits[best] / window_trials[best])


def test_the_blockwise_segment_search_equals_the_whole_array_one(monkeypatch: Any) -> None:
    from tracemark.text import _spans

    rng = np.random.default_rng(9)
    for _ in range(20):
        scores = rng.normal(-0.1, 1.0, int(rng.integers(1, 3000)))
        cumulative = np.concatenate([[0.0], np.cumsum(scores)])
        gains = cumulative[1:] - np.minimum.accumulate(cumulative[:-1])
        end = int(np.argmax(gains)) + 1
        expected = (int(np.argmin(cumulative[:end])), end, float(gains[end - 1]))
        monkeypatch.setattr(_spans, "SEARCH_BLOCK", int(rng.integers(1, 200)))
        assert _spans.best_segment(scores) == expected
