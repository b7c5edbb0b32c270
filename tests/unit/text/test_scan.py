"""Corpus scans: marked documents found, unmarked ones not, resumable, the same on Ray, hostile input typed."""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tracemark._stats import benjamini_hochberg
from tracemark.cli import main
from tracemark.errors import InvalidInputError, MissingExtraError
from tracemark.keys import Keyring, TextKey
from tracemark.text import (
    ScanOptions,
    ScanProgress,
    TextTokenizer,
    detect_watermark,
    load_scheme,
    new_text_key,
    read_documents,
    scan_corpus,
)
from tracemark.text._schemes.native import NativeScheme

from .test_native import marked_sequence

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None


def _setup(word_model: Path) -> tuple[TextKey, TextTokenizer]:
    keyring = Keyring()
    keyring.create()
    return new_text_key(keyring, "native", word_model, make_default=True), TextTokenizer(word_model)


def _texts(key: TextKey, tokenizer: TextTokenizer, marked: int, unmarked: int, seed: int = 0) -> dict[str, str]:
    """``m*`` documents generated with the key (mimicked sampling), ``u*`` documents of random words."""
    scheme = load_scheme(key)
    assert isinstance(scheme, NativeScheme)
    rng = np.random.default_rng(seed)
    texts = {}
    for i in range(marked):
        texts[f"m{i}"] = tokenizer.decode(marked_sequence(scheme, 150, rng))
    for i in range(unmarked):
        texts[f"u{i}"] = tokenizer.decode(rng.integers(1, tokenizer.vocab_size, 150).tolist())
    return texts


def _write_jsonl(path: Path, texts: dict[str, str]) -> Path:
    with path.open("w") as handle:
        for doc_id, text in texts.items():
            handle.write(json.dumps({"id": doc_id, "text": text}) + "\n")
    return path


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_marked_documents_are_found_and_match_single_detection(word_model: Path, tmp_path: Path) -> None:
    key, tokenizer = _setup(word_model)
    texts = _texts(key, tokenizer, marked=20, unmarked=200)
    corpus = _write_jsonl(tmp_path / "corpus.jsonl", texts)
    out = tmp_path / "results.jsonl"
    summary = scan_corpus([corpus], key, tokenizer, out, ScanOptions(batch_size=64))
    rows = {str(r["id"]): r for r in _rows(out)}
    assert set(rows) == set(texts)
    assert {i for i, r in rows.items() if r["marked"]} == {f"m{i}" for i in range(20)}
    for doc_id in ("m0", "m7", "u0", "u150"):
        single = detect_watermark(texts[doc_id], key, tokenizer, scan_windows=False)
        assert rows[doc_id]["p_value"] == single.p_value
        assert rows[doc_id]["tokens_scored"] == single.tokens_scored
        assert rows[doc_id]["key_id"] == key.key_id
        assert rows[doc_id]["scheme_version"] == key.scheme_version
    span = rows["m0"]["spans"][0]  # type: ignore[index]
    assert span["start_char"] >= 0
    assert span["end_char"] == len(texts["m0"])
    assert rows["u0"]["spans"] == []
    assert (summary.documents, summary.documents_tested, summary.errors, summary.marked) == (220, 220, 0, 20)
    assert summary.expected_false_positives == pytest.approx(220 * 1e-6)
    assert summary.bonferroni_threshold == pytest.approx(1e-6 / 220)
    assert summary.bonferroni_marked == 20
    assert summary.benjamini_hochberg_discoveries >= 20
    assert "Benjamini-Hochberg" in summary.to_json()["multiple_testing"]


def test_unmarked_corpus_false_positives_stay_at_alpha(word_model: Path, tmp_path: Path) -> None:
    key, tokenizer = _setup(word_model)
    n, alpha = 3000, 0.01
    corpus = _write_jsonl(tmp_path / "corpus.jsonl", _texts(key, tokenizer, marked=0, unmarked=n, seed=3))
    summary = scan_corpus([corpus], key, tokenizer, tmp_path / "r.jsonl", ScanOptions(alpha=alpha))
    assert summary.documents_tested == n
    assert summary.expected_false_positives == pytest.approx(alpha * n)
    # binomial p-values are conservative: the count stays under alpha * n plus three standard deviations
    assert summary.marked <= alpha * n + 3 * math.sqrt(alpha * n)
    assert summary.bonferroni_marked == 0
    assert summary.benjamini_hochberg_discoveries <= 1


def test_benjamini_hochberg_step_up() -> None:
    # Benjamini and Hochberg's textbook pattern: the 2nd passes its line, none above it does.
    p = np.array([0.205, 0.001, 0.039, 0.008, 0.041, 0.042, 0.06, 0.074])
    assert benjamini_hochberg(p, 0.05) == (2, 0.008)
    # step-up: a p-value over its own line is discovered when a larger one passes its line
    assert benjamini_hochberg(np.array([0.02, 0.024, 0.5]), 0.05) == (2, 0.024)
    assert benjamini_hochberg(np.array([0.9, 0.5]), 0.05) == (0, None)
    assert benjamini_hochberg(np.array([]), 0.05) == (0, None)


def test_an_interrupted_scan_resumes_and_writes_each_document_once(word_model: Path, tmp_path: Path) -> None:
    key, tokenizer = _setup(word_model)
    texts = _texts(key, tokenizer, marked=5, unmarked=95)
    corpus = _write_jsonl(tmp_path / "corpus.jsonl", texts)
    out = tmp_path / "results.jsonl"

    def stop_after_two_batches(progress: ScanProgress) -> None:
        if progress.documents >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan_corpus([corpus], key, tokenizer, out, ScanOptions(batch_size=10), progress=stop_after_two_batches)
    assert len(_rows(out)) == 20
    with out.open("a") as handle:  # a write torn by kill -9
        handle.write('{"format": "tracemark.text.scan-row/v1", "id": "u9')
    summary = scan_corpus([corpus], key, tokenizer, out, ScanOptions(batch_size=10))
    ids = [str(r["id"]) for r in _rows(out)]
    assert sorted(ids) == sorted(texts)
    assert summary.resumed_documents == 20
    assert (summary.documents, summary.marked) == (100, 5)
    again = scan_corpus([corpus], key, tokenizer, out, ScanOptions(batch_size=10))
    assert len(_rows(out)) == 100
    assert again.resumed_documents == 100
    # The summary is tallied from the rows read back and the rows written, not by re-reading the file:
    # whichever mix, it is the summary of one uninterrupted scan.
    fresh = scan_corpus([corpus], key, tokenizer, tmp_path / "fresh.jsonl", ScanOptions(batch_size=10))
    for resumed in (summary, again):
        assert replace(resumed, out=fresh.out, resumed_documents=0) == fresh


def test_hostile_lines_become_error_rows_and_the_scan_goes_on(word_model: Path, tmp_path: Path) -> None:
    key, tokenizer = _setup(word_model)
    corpus = tmp_path / "corpus.jsonl"
    lines = [
        json.dumps({"id": "ok1", "text": "w1 w2 w3 w4 w5"}),
        "{not json",
        json.dumps({"id": "no-text", "body": "w1"}),
        json.dumps({"id": "huge", "text": "w1 " * 5000}),
        json.dumps(["a", "list"]),
        json.dumps({"id": "blank", "text": "\u200b  "}),
        json.dumps({"id": 7, "text": "w9 w8 w7 w6"}),
    ]
    corpus.write_text("\n".join(lines) + "\n")
    out = tmp_path / "r.jsonl"
    summary = scan_corpus([corpus], key, tokenizer, out, ScanOptions(max_chars=1000))
    rows = {str(r["id"]): r for r in _rows(out)}
    assert rows["ok1"]["error"] is None
    assert rows["7"]["error"] is None
    assert f"{corpus}:2" in rows
    assert "JSON" in str(rows[f"{corpus}:2"]["error"])
    assert "text" in str(rows["no-text"]["error"])
    assert "longer than" in str(rows[f"{corpus}:4"]["error"])  # never parsed: the line is over the bound
    assert rows[f"{corpus}:5"]["error"] == "not a JSON object"
    assert "empty" in str(rows["blank"]["error"])
    assert all(r["marked"] is None and r["p_value"] is None for r in rows.values() if r["error"])
    assert (summary.documents, summary.documents_tested, summary.errors) == (7, 2, 5)


def test_corrupt_compressed_files_are_typed_errors(word_model: Path, tmp_path: Path) -> None:
    key, tokenizer = _setup(word_model)
    not_gzip = tmp_path / "a.jsonl.gz"
    not_gzip.write_bytes(b"this is not gzip at all")
    with pytest.raises(InvalidInputError, match=r"a\.jsonl\.gz"):
        scan_corpus([not_gzip], key, tokenizer, tmp_path / "r.jsonl")
    whole = gzip.compress(b'{"id": "x", "text": "w1 w2 w3"}\n' * 1000)
    truncated = tmp_path / "b.jsonl.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InvalidInputError, match=r"b\.jsonl\.gz"):
        list(read_documents([truncated]))
    with pytest.raises(InvalidInputError, match="no such file"):
        list(read_documents([tmp_path / "missing.jsonl"]))


def test_zst_without_zstandard_is_one_clear_error(
    word_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)
    path = tmp_path / "c.jsonl.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(InvalidInputError, match="zstandard"):
        list(read_documents([path]))


def test_folders_of_text_files_and_gzip_jsonl(word_model: Path, tmp_path: Path) -> None:
    key, tokenizer = _setup(word_model)
    texts = _texts(key, tokenizer, marked=2, unmarked=3)
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "m0.txt").write_text(texts["m0"])
    (folder / "sub" / "u0.txt.gz").write_bytes(gzip.compress(texts["u0"].encode()))
    packed = tmp_path / "rest.jsonl.gz"
    packed.write_bytes(
        gzip.compress("".join(json.dumps({"id": k, "text": texts[k]}) + "\n" for k in ("m1", "u1")).encode())
    )
    out = tmp_path / "r.jsonl"
    summary = scan_corpus([folder, packed], key, tokenizer, out)
    marked = {str(r["id"]) for r in _rows(out) if r["marked"]}
    assert marked == {str(folder / "m0.txt"), "m1"}
    assert summary.documents == 4


@pytest.mark.skipif(not HAS_PYARROW, reason="Parquet needs pyarrow (tracemark[scale])")
def test_parquet_in_and_out_resumes(word_model: Path, tmp_path: Path) -> None:
    import pyarrow as pa  # type: ignore[import-untyped,import-not-found,unused-ignore]
    import pyarrow.parquet as pq  # type: ignore[import-untyped,import-not-found,unused-ignore]

    key, tokenizer = _setup(word_model)
    texts = _texts(key, tokenizer, marked=3, unmarked=17)
    source = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"id": list(texts), "text": list(texts.values())}), source)
    out = tmp_path / "r.parquet"
    first = scan_corpus([source], key, tokenizer, out)
    table = pq.read_table(out).to_pylist()
    assert first.marked == 3
    assert {r["id"] for r in table if r["marked"]} == {"m0", "m1", "m2"}
    assert not (tmp_path / "r.parquet.partial.jsonl").exists()
    again = scan_corpus([source], key, tokenizer, out)
    assert again.resumed_documents == 20
    assert len(pq.read_table(out)) == 20


def test_cli_scan_prints_the_summary_and_a_progress_line(
    capsys: pytest.CaptureFixture[str], word_model: Path, tmp_path: Path
) -> None:
    key, tokenizer = _setup(word_model)
    corpus = _write_jsonl(tmp_path / "c.jsonl", _texts(key, tokenizer, marked=3, unmarked=10))
    out = tmp_path / "r.jsonl"
    status = main(["text", "scan", str(corpus), "--model", str(word_model), "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert status == 0
    summary = json.loads(captured.out)
    assert summary["format"] == "tracemark.text.scan-summary/v1"
    assert (summary["documents"], summary["marked"]) == (13, 3)
    assert "scanned 13 documents, 3 marked" in captured.err
    assert main(["text", "scan", str(tmp_path / "nope.jsonl"), "--model", str(word_model), "--out", str(out)]) == 2
    assert "nope.jsonl" in capsys.readouterr().err


def test_cli_ray_without_the_extra_is_one_line_and_exit_5(
    capsys: pytest.CaptureFixture[str], word_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    key, tokenizer = _setup(word_model)
    corpus = _write_jsonl(tmp_path / "c.jsonl", _texts(key, tokenizer, marked=1, unmarked=1))
    argv = ["text", "scan", str(corpus), "--model", str(word_model), "--out", str(tmp_path / "r.jsonl"), "--ray"]
    assert main(argv) == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1]
        == "tracemark: error: 'tracemark text scan --ray' needs the 'scale' extra: pip install 'tracemark[scale]'"
    )
    assert not (tmp_path / "r.jsonl").exists()  # refused before the results file is made
    with pytest.raises(MissingExtraError):
        scan_corpus([corpus], key, tokenizer, tmp_path / "r2.jsonl", ScanOptions(ray=True))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is the optional scale extra")
def test_ray_gives_the_same_rows_as_in_process(word_model: Path, tmp_path: Path) -> None:
    import ray  # type: ignore[import-not-found,unused-ignore]

    key, tokenizer = _setup(word_model)
    texts = _texts(key, tokenizer, marked=10, unmarked=90)
    corpus = _write_jsonl(tmp_path / "corpus.jsonl", texts)
    with corpus.open("a") as handle:
        handle.write('{"id": "bad", "text": 5}\n')
    local = scan_corpus([corpus], key, tokenizer, tmp_path / "local.jsonl", ScanOptions(batch_size=16))
    try:
        on_ray = scan_corpus(
            [corpus], key, tokenizer, tmp_path / "ray.jsonl", ScanOptions(batch_size=16, ray=True, workers=2)
        )
    finally:
        ray.shutdown()
    by_id = {str(r["id"]): r for r in _rows(tmp_path / "local.jsonl")}
    ray_rows = _rows(tmp_path / "ray.jsonl")
    assert len(ray_rows) == 101
    assert by_id["bad"]["error"] == "no 'text' string"
    assert {str(r["id"]): r for r in ray_rows} == by_id
    assert on_ray == local.__class__(**{**local.__dict__, "out": str(tmp_path / "ray.jsonl")})


def test_windows_find_a_marked_passage_inside_a_long_document(word_model: Path, tmp_path: Path) -> None:
    key, tokenizer = _setup(word_model)
    scheme = load_scheme(key)
    assert isinstance(scheme, NativeScheme)
    rng = np.random.default_rng(8)
    human = [rng.integers(1, tokenizer.vocab_size, 900).tolist() for _ in range(2)]
    passage = marked_sequence(scheme, 150, rng)
    text = tokenizer.decode(human[0] + passage + human[1])
    corpus = _write_jsonl(tmp_path / "c.jsonl", {"mixed": text})
    whole = scan_corpus([corpus], key, tokenizer, tmp_path / "whole.jsonl")
    windowed = scan_corpus([corpus], key, tokenizer, tmp_path / "windows.jsonl", ScanOptions(windows=True))
    assert whole.marked == 0
    assert windowed.marked == 1
    (row,) = _rows(tmp_path / "windows.jsonl")
    assert row["p_value"] == detect_watermark(text, key, tokenizer).p_value
    spans = row["spans"]
    assert isinstance(spans, list)
    span = min(spans, key=lambda s: s["p_value_corrected"])
    assert span["start_token"] >= 850
    assert span["end_token"] <= 1110


def test_scan_span_offsets_count_characters_of_the_document_as_given(word_model: Path, tmp_path: Path) -> None:
    key, tokenizer = _setup(word_model)
    marked = _texts(key, tokenizer, marked=1, unmarked=0)["m0"]
    text = "\u200b\u200b\ufeff" + marked.replace(" ", " \u200b", 5)  # invisible characters before and inside
    out = tmp_path / "results.jsonl"
    scan_corpus([_write_jsonl(tmp_path / "c.jsonl", {"z": text})], key, tokenizer, out, ScanOptions())
    (row,) = _rows(out)
    span = row["spans"][0]  # type: ignore[index]
    assert span["end_char"] == len(text)
    first_scored = marked.split()[load_scheme(key).context_width]  # the first token with a full context
    assert text[span["start_char"] :].replace("\u200b", "").startswith(first_scored)
