"""Corpus scans on Ray with worker-side reading: the shards read back as the corpus, and a scan
on Ray writes what the in-process scan writes (hostile lines, duplicates, resuming, a corrupt file)."""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tracemark.errors import InvalidInputError, MissingExtraError
from tracemark.keys import Keyring, TextKey
from tracemark.text import ScanOptions, ScanProgress, TextTokenizer, new_text_key, read_documents, scan_corpus

HAS_RAY = importlib.util.find_spec("ray") is not None
HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None


def _setup(word_model: Path) -> tuple[TextKey, TextTokenizer]:
    keyring = Keyring()
    keyring.create()
    return new_text_key(keyring, "native", word_model, make_default=True), TextTokenizer(word_model)


def _line(rng: np.random.Generator, doc_id: object, words: int = 40) -> str:
    return json.dumps({"id": doc_id, "text": " ".join(f"w{int(i)}" for i in rng.integers(1, 2000, words))})


def _hostile_corpus(folder: Path, rng: np.random.Generator) -> Path:
    """JSONL with blank lines, lines without ids, a line over the bound, bad JSON and a last line
    without a newline; a gzip JSONL; plain files; all in one folder."""
    folder.mkdir()
    lines = []
    for i in range(37):
        if i % 9 == 4:
            lines.append("")
        elif i == 11:
            lines.append(json.dumps({"id": "huge", "text": "w1 " * 3000}))
        elif i == 17:
            lines.append("{not json")
        elif i % 7 == 3:
            lines.append(json.dumps({"text": "w5 w6 w7 w8 w9"}))  # named FILE:LINE
        else:
            lines.append(_line(rng, f"a{i}"))
    (folder / "a.jsonl").write_text("\n".join(lines))  # no newline after the last line
    packed = "".join(_line(rng, f"g{i}") + "\n" for i in range(6))
    (folder / "b.jsonl.gz").write_bytes(gzip.compress(packed.encode()))
    for i in range(3):
        (folder / f"c{i}.txt").write_text(" ".join(f"w{int(j)}" for j in rng.integers(1, 2000, 30)))
    return folder


def _shard_read(inputs: list[Path | str], lines: int, max_chars: int) -> Iterator[tuple[str, str | None, str | None]]:
    from tracemark.text._scan_ray import plan_shards, shard_documents

    for shard in plan_shards(inputs, lines):
        for doc in shard_documents(json.loads(json.dumps(shard)), max_chars):
            yield doc.id, doc.text, doc.error


@pytest.mark.parametrize("lines", [1, 2, 5, 64])
def test_shards_read_back_as_the_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: int) -> None:
    monkeypatch.chdir(tmp_path)
    _hostile_corpus(tmp_path / "corpus", np.random.default_rng(1))
    inputs: list[Path | str] = ["corpus"]  # relative: documents are named by the path as given
    expected = [(d.id, d.text, d.error) for d in read_documents(inputs, max_chars=1000)]
    assert any(doc_id == "corpus/a.jsonl:4" for doc_id, _, _ in expected)  # the line numbering is exercised
    assert any(error and "longer than" in error for _, _, error in expected)
    assert list(_shard_read(inputs, lines, 1000)) == expected


def test_jsonl_shards_cut_at_line_breaks(tmp_path: Path) -> None:
    from tracemark.text._scan_ray import plan_shards

    path = tmp_path / "c.jsonl"
    rng = np.random.default_rng(2)
    path.write_text("".join(_line(rng, i, int(rng.integers(1, 80))) + "\n" for i in range(50)))
    data = path.read_bytes()
    shards = plan_shards([path], 8)
    assert [s["line"] for s in shards] == [0, 8, 16, 24, 32, 40, 48]
    assert shards[0]["start"] == 0
    assert shards[-1]["end"] == len(data)
    for shard, following in itertools.pairwise(shards):
        assert shard["end"] == following["start"]
        assert data[shard["end"] - 1 : shard["end"]] == b"\n"
        assert data[shard["start"] : shard["end"]].count(b"\n") == 8


@pytest.mark.skipif(not HAS_PYARROW, reason="Parquet needs pyarrow (tracemark[scale])")
def test_parquet_row_groups_are_shards(tmp_path: Path) -> None:
    import pyarrow as pa  # type: ignore[import-untyped,import-not-found,unused-ignore]
    import pyarrow.parquet as pq  # type: ignore[import-untyped,import-not-found,unused-ignore]

    from tracemark.text._scan_ray import plan_shards

    path = tmp_path / "c.parquet"
    texts = [f"w{i} w{i + 1} w{i + 2}" for i in range(25)]
    pq.write_table(pa.table({"text": texts}), path, row_group_size=10)  # no ids: rows are named FILE:ROW
    assert [(s["kind"], s["group"], s["row"]) for s in plan_shards([path], 4)] == [
        ("parquet", 0, 0),
        ("parquet", 1, 10),
        ("parquet", 2, 20),
    ]
    expected = [(d.id, d.text, d.error) for d in read_documents([path])]
    assert expected[12][0] == f"{path}:13"
    assert list(_shard_read([path], 4, 10_000)) == expected


def test_an_unreadable_file_is_planned_whole_and_fails_typed_when_read(tmp_path: Path) -> None:
    from tracemark.text._scan_ray import plan_shards, shard_documents

    path = tmp_path / "x.parquet"
    path.write_bytes(b"not parquet at all")
    (shard,) = plan_shards([path], 4)
    assert shard["kind"] == "file"
    # without pyarrow (tracemark[scale]) reading any Parquet file is the one-line missing-extra error
    expected = InvalidInputError if HAS_PYARROW else MissingExtraError
    with pytest.raises(expected, match=r"x\.parquet" if expected is InvalidInputError else r"tracemark\[scale\]"):
        list(shard_documents(shard, 1000))
    with pytest.raises(InvalidInputError, match="no such file"):
        plan_shards([tmp_path / "missing.jsonl"], 4)


# ---------------------------------------------------------------- on Ray


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    if not HAS_RAY:
        pytest.skip("Ray is the optional scale extra")
    import ray  # type: ignore[import-not-found,unused-ignore]

    yield
    ray.shutdown()


def _rows_text(path: Path) -> str:
    return path.read_text()


def test_an_unknown_ray_engine_is_refused_before_ray_starts(word_model: Path, tmp_path: Path) -> None:
    key, tokenizer = _setup(word_model)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(_line(np.random.default_rng(6), "d0") + "\n")
    with pytest.raises(InvalidInputError, match="ray engine"):
        scan_corpus([corpus], key, tokenizer, tmp_path / "out.jsonl", ScanOptions(ray=True, ray_engine="dask"))
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RAY, reason="Ray is the optional scale extra")
@pytest.mark.parametrize("engine", ["actors", "data"])
def test_on_ray_hostile_input_duplicates_and_order_match_in_process(
    word_model: Path, tmp_path: Path, ray_session: None, engine: str
) -> None:
    key, tokenizer = _setup(word_model)
    rng = np.random.default_rng(3)
    folder = _hostile_corpus(tmp_path / "corpus", rng)
    extra = tmp_path / "z.jsonl"  # a duplicate id with another text: the first copy in corpus order is kept
    extra.write_text(_line(rng, "a0") + "\n" + _line(rng, "z1") + "\n" + _line(rng, "z1") + "\n")
    options = ScanOptions(batch_size=4, max_chars=1000)
    local = scan_corpus([folder, extra], key, tokenizer, tmp_path / "local.jsonl", options)
    on_ray = scan_corpus(
        [folder, extra],
        key,
        tokenizer,
        tmp_path / "ray.jsonl",
        ScanOptions(batch_size=4, max_chars=1000, ray=True, workers=2, ray_engine=engine),
    )
    assert _rows_text(tmp_path / "ray.jsonl") == _rows_text(tmp_path / "local.jsonl")  # byte for byte, in order
    assert on_ray.documents == local.documents == 33 + 6 + 3 + 1  # 4 blank lines; a0 and z1 once
    assert on_ray.errors == local.errors >= 2


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RAY, reason="Ray is the optional scale extra")
def test_on_ray_an_interrupted_scan_resumes_each_document_once(
    word_model: Path, tmp_path: Path, ray_session: None
) -> None:
    key, tokenizer = _setup(word_model)
    rng = np.random.default_rng(4)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(_line(rng, f"d{i}") + "\n" for i in range(120)))
    local = tmp_path / "local.jsonl"
    scan_corpus([corpus], key, tokenizer, local, ScanOptions(batch_size=10))
    out = tmp_path / "ray.jsonl"
    options = ScanOptions(batch_size=10, ray=True, workers=2)

    def stop(progress: ScanProgress) -> None:
        if progress.documents >= 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan_corpus([corpus], key, tokenizer, out, options, progress=stop)
    written = _rows_text(out).splitlines(keepends=True)
    assert 30 <= len(written) < 120
    with out.open("a") as handle:  # a write torn by kill -9
        handle.write('{"format": "tracemark.text.scan-row/v1", "id": "d9')
    summary = scan_corpus([corpus], key, tokenizer, out, options)
    assert summary.resumed_documents == len(written)
    assert summary.documents == 120
    rows = _rows_text(out).splitlines(keepends=True)
    assert rows[: len(written)] == written
    assert sorted(rows) == sorted(_rows_text(local).splitlines(keepends=True))  # each once, the same rows
    again = scan_corpus([corpus], key, tokenizer, out, options)
    assert again.resumed_documents == 120
    assert len(_rows_text(out).splitlines()) == 120


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RAY, reason="Ray is the optional scale extra")
def test_on_ray_a_corrupt_file_mid_corpus_stops_where_in_process_stops(
    word_model: Path, tmp_path: Path, ray_session: None
) -> None:
    key, tokenizer = _setup(word_model)
    rng = np.random.default_rng(5)
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(_line(rng, f"a{i}") + "\n" for i in range(25)))
    whole = gzip.compress("".join(_line(rng, f"b{i}") + "\n" for i in range(40)).encode())
    (folder / "b.jsonl.gz").write_bytes(whole[: len(whole) // 2])  # truncated mid-stream
    (folder / "c.jsonl").write_text("".join(_line(rng, f"c{i}") + "\n" for i in range(25)))
    results = {}
    for name, ray in (("local", False), ("ray", True)):
        out = tmp_path / f"{name}.jsonl"
        with pytest.raises(InvalidInputError, match=r"b\.jsonl\.gz"):
            scan_corpus([folder], key, tokenizer, out, ScanOptions(batch_size=5, ray=ray, workers=2))
        results[name] = [json.loads(line)["id"] for line in _rows_text(out).splitlines()]
    # every row before b is written before the scan stops, and nothing after b (outputs keep corpus order);
    # b's documents decoded before the damage are written in whole batches in-process, all of them on Ray
    assert results["local"][:25] == [f"a{i}" for i in range(25)]
    assert results["ray"][: len(results["local"])] == results["local"]
    assert all(doc_id.startswith("b") for doc_id in results["ray"][25:])
    (folder / "b.jsonl.gz").unlink()  # the file is left out; the scan resumes
    resumed = scan_corpus(
        [folder], key, tokenizer, tmp_path / "ray.jsonl", ScanOptions(batch_size=5, ray=True, workers=2)
    )
    ids = [json.loads(line)["id"] for line in _rows_text(tmp_path / "ray.jsonl").splitlines()]
    assert len(ids) == len(set(ids))  # each document once
    assert set(ids) == {f"a{i}" for i in range(25)} | {f"c{i}" for i in range(25)} | set(results["ray"])
    assert resumed.documents == len(ids)
    assert resumed.resumed_documents == len(results["ray"])
