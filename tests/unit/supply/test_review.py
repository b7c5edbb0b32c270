"""What reviewers asked the anchors for (issue 20, point 6): globals listed, include/exclude, SavedModel ops."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from tracemark.cli import main
from tracemark.supply import scan_bytes, scan_path

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "supply"


def test_globals_are_listed_for_review(capsys: pytest.CaptureFixture[str]) -> None:
    evil = str(CORPUS / "malicious" / "p0_int_octal_prefix.pkl")
    good = str(CORPUS / "benign" / "sklearn_function_transformer_log1p.pkl")
    assert main(["supply", "scan", "--globals", good, evil]) == 1
    out = capsys.readouterr().out
    assert "  allowed  numpy:log1p" in out
    assert "  allowed  sklearn.preprocessing._function_transformer:FunctionTransformer" in out
    assert "  REFUSED  os:system" in out
    assert main(["supply", "scan", "--json", good]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["reports"][0]["files"]
    assert entry["globals"] == ["sklearn.preprocessing._function_transformer:FunctionTransformer", "numpy:log1p"]


def test_files_without_globals_list_none(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": [1, 2]}))
    assert main(["supply", "scan", "--globals", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("no pickle globals")


def test_include_and_exclude_patterns(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.pkl").write_bytes(b"cos\nsystem\n(S'id'\ntR.")
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "config.json").write_text("{}")
    everything = scan_path(tmp_path)
    assert sorted(f.location for f in everything.files) == ["config.json", "notes.txt", "weights/model.pkl"]
    only_pickles = scan_path(tmp_path, include=["*.pkl"])
    assert [f.location for f in only_pickles.files] == ["weights/model.pkl"]
    assert only_pickles.fails("high")
    skipped = scan_path(tmp_path, exclude=["weights/*"])
    assert sorted(f.location for f in skipped.files) == ["config.json", "notes.txt"]
    assert not skipped.fails("low")
    # A file named directly is scanned whatever the patterns say.
    assert scan_path(tmp_path / "weights" / "model.pkl", exclude=["*.pkl"]).fails("high")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _saved_model(graph_ops: list[str], function_ops: tuple[str, ...] = ()) -> bytes:
    nodes = b"".join(_field(1, _field(1, f"n{i}".encode()) + _field(2, op.encode())) for i, op in enumerate(graph_ops))
    library = b""
    if function_ops:
        function = b"".join(_field(3, _field(1, b"f") + _field(2, op.encode())) for op in function_ops)
        library = _field(2, _field(1, function))
    meta_graph = _field(2, nodes + library)
    return _varint(1 << 3) + _varint(1) + _field(2, meta_graph)


def test_saved_model_graphs_that_read_files_or_run_python_are_findings() -> None:
    benign = scan_bytes(_saved_model(["Placeholder", "MatMul", "SaveV2", "RestoreV2"]), "saved_model.pb")
    assert benign.files[0].format == "tf-saved-model"
    assert benign.findings == ()
    reads = scan_bytes(_saved_model(["Placeholder", "ReadFile", "MatMul"]), "saved_model.pb")
    assert [(f.rule_id, f.severity.value) for f in reads.findings] == [("tensorflow.risky-op", "critical")]
    assert "ReadFile" in reads.findings[0].message
    hidden = scan_bytes(_saved_model(["Placeholder"], function_ops=("EagerPyFunc", "WriteFile")), "saved_model.pb")
    assert "EagerPyFunc, WriteFile" in hidden.findings[0].message


def test_decompile_shows_what_loading_would_do(capsys: pytest.CaptureFixture[str]) -> None:
    from tracemark.supply import analyse_pickle

    program = analyse_pickle(b"cos\nsystem\n(S'id'\ntR.", decompile=True).program
    assert program == ["from os import system", "_v0 = os.system('id')", "result = _v0"]
    assert main(["supply", "decompile", str(CORPUS / "malicious" / "pytorch_zip_malicious.pt")]) == 0
    out = capsys.readouterr().out
    assert "pytorch_zip_malicious.pt!archive/data.pkl" in out
    assert "_v0 = os.system('id')" in out
    assert "# critical: pickle.global-denied" in out
    assert (
        main(["supply", "decompile", "--json", str(CORPUS / "benign" / "sklearn_function_transformer_log1p.pkl")]) == 0
    )
    (stream,) = json.loads(capsys.readouterr().out)["streams"]
    assert "from numpy import log1p" in stream["program"]
    assert any(line.startswith("_v0.__setstate__({'func': numpy.log1p") for line in stream["program"])
    assert stream["issues"] == []


def _hf_cache(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """A hub cache laid out as huggingface_hub writes it: blobs by hash, snapshot links, refs/main."""
    import hashlib

    repo = tmp_path / "hub" / "models--acme--tiny"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name, content in files.items():
        blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
        blob.write_bytes(content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../" * (name.count("/") + 2)) / "blobs" / blob.name)
    return tmp_path / "hub"


def test_a_hugging_face_cache_snapshot_is_scanned_by_repo_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracemark.supply import scan_hugging_face

    evil = b"cos\nsystem\n(S'id'\ntR."
    cache = _hf_cache(tmp_path, {"config.json": b"{}", "pytorch_model.bin": evil, "sub/extra.pkl": pickle.dumps([1])})
    report = scan_hugging_face("acme/tiny", cache=cache)
    assert report.target == "hf://acme/tiny@0123456789abcdef0123456789abcdef01234567"
    assert sorted((f.location, f.format) for f in report.files) == [
        ("config.json", "json"),
        ("pytorch_model.bin", "pickle"),
        ("sub/extra.pkl", "pickle"),
    ]
    assert [(f.rule_id, f.locations[0].path) for f in report.findings] == [
        ("pickle.global-denied", "pytorch_model.bin")
    ]
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert main(["supply", "scan", "--hf-repo", "acme/tiny"]) == 1
    assert "pytorch_model.bin" in capsys.readouterr().out
    assert main(["supply", "scan", "--hf-repo", "acme/tiny", "--exclude", "*.bin"]) == 0
    capsys.readouterr()
    assert main(["supply", "scan", "--hf-repo", "acme/absent"]) == 2
    assert main(["supply", "scan", "--hf-repo", "acme/tiny@v9"]) == 2
    assert "no snapshot for revision 'v9'" in capsys.readouterr().err


def test_a_snapshot_link_out_of_the_repo_cache_is_still_refused(tmp_path: Path) -> None:
    from tracemark.supply import scan_hugging_face

    cache = _hf_cache(tmp_path, {"config.json": b"{}"})
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the model")
    snapshot = next((cache / "models--acme--tiny" / "snapshots").iterdir())
    (snapshot / "leak.txt").symlink_to(outside)
    rules = [f.rule_id for f in scan_hugging_face("acme/tiny", cache=cache).findings]
    assert rules == ["file.symlink-escape"]
