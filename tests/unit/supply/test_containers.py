"""Containers and formats: content sniffing, hostile archives, header validation."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import pytest

from tracemark.errors import InvalidInputError
from tracemark.supply import ScanLimits, scan_bytes, scan_path

PAYLOAD = b"\x80\x02cos\nsystem\n(X\x02\x00\x00\x00idtR."


def zipped(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def rules(data: bytes, name: str = "file", limits: ScanLimits | None = None) -> list[str]:
    return [f.rule_id for f in scan_bytes(data, name, limits=limits).findings]


def test_file_names_do_not_matter() -> None:
    for name in ("model.safetensors.txt", "README", "weights.bin", "x.json"):
        assert rules(PAYLOAD, name) == ["pickle.global-denied"]


def test_nested_layers_are_reported_with_their_path() -> None:
    data = gzip.compress(zipped({"inner.zip": zipped({"archive/data.xyz": PAYLOAD})}), mtime=0)
    (finding,) = scan_bytes(data, "model.bin").findings
    assert str(finding.location) == "model.bin!gzip!inner.zip!archive/data.xyz"


def test_pytorch_storages_are_not_read_but_other_members_are() -> None:
    checkpoint = zipped({"archive/data.pkl": pickle.dumps({}, protocol=2), "archive/data/0": PAYLOAD})
    report = scan_bytes(checkpoint, "model.pt")
    assert report.findings == ()
    assert "model.pt!archive/data/0" not in {f.location for f in report.files}
    # Without data.pkl the archive is not a checkpoint, so "data/0" is inspected.
    assert rules(zipped({"archive/data/0": PAYLOAD})) == ["pickle.global-denied"]


def test_depth_limit() -> None:
    data = PAYLOAD
    for _ in range(4):
        data = zipped({"x": data})
    assert rules(data, limits=ScanLimits(max_depth=2)) == ["archive.too-deep"]
    assert rules(data) == ["pickle.global-denied"]


def test_zip_bomb_is_not_inflated() -> None:
    bomb = zipped({"zeros": b"\x00" * (8 << 20)}, zipfile.ZIP_DEFLATED)
    assert rules(bomb) == ["archive.bomb"]


def test_gzip_bomb_and_member_limits() -> None:
    assert rules(gzip.compress(b"\x00" * (8 << 20))) == ["archive.bomb"]
    big = gzip.compress(os.urandom(1 << 16))
    assert rules(big, limits=ScanLimits(max_member_bytes=1 << 10)) == ["archive.bomb"]


def test_traversal_and_duplicates_in_zip() -> None:
    assert rules(zipped({"../../evil": b"hello"})) == ["archive.path-traversal"]
    assert rules(zipped({"/etc/cron.d/x": b"hello"})) == ["archive.path-traversal"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.pkl", pickle.dumps(1))
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("a.pkl", pickle.dumps(2))
    assert rules(buffer.getvalue()) == ["archive.duplicate-member"]


def test_corrupt_archives_are_findings_not_crashes() -> None:
    assert rules(b"PK\x03\x04" + b"\x00" * 40) == ["archive.corrupt"]
    # A truncated stream is reported, and what could be inflated is still inspected.
    assert rules(gzip.compress(PAYLOAD)[:-12]) == ["archive.corrupt", "pickle.global-denied", "pickle.truncated"]


def test_symlinks_must_stay_in_the_model_folder(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (tmp_path / "secret").write_bytes(b"x")
    (model / "weights.bin").write_bytes(pickle.dumps({"w": 1}))
    (model / "alias.bin").symlink_to("weights.bin")
    assert scan_path(model).findings == ()
    (model / "leak.bin").symlink_to(tmp_path / "secret")
    assert [f.rule_id for f in scan_path(model).findings] == ["file.symlink-escape"]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        scan_path(tmp_path / "nope")


def safetensors(header: dict[str, object], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize(
    ("header", "data", "ok"),
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 8, True),
        ({"__metadata__": {"k": "v"}, "a": {"dtype": "U8", "shape": [], "data_offsets": [0, 1]}}, b"\x00", True),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 9, False),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\x00" * 8, False),
        ({"a": {"dtype": "X9", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 8, False),
        ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}, b"\x00" * 4, False),
        ({"__metadata__": {"k": 1}}, b"", False),
    ],
)
def test_safetensors_headers(header: dict[str, object], data: bytes, ok: bool) -> None:
    found = rules(safetensors(header, data), "m.safetensors")
    assert found == ([] if ok else ["safetensors.invalid-header"])


def test_gguf_truncated_header() -> None:
    assert rules(b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + b"\x05\x00", "m.gguf") == ["gguf.invalid-header"]
    assert rules(b"GGUF" + struct.pack("<I", 9) + b"\x00" * 16) == ["gguf.invalid-header"]


def test_damaged_corpus_files_never_crash_the_scanner() -> None:
    """Seeded byte flips, truncations and insertions: findings or data, never an exception."""
    import random

    corpus = Path(__file__).resolve().parents[2] / "fixtures" / "supply"
    rng = random.Random(20260801)
    files = sorted(p for p in corpus.glob("*/*") if p.stat().st_size < 200_000)
    for path in rng.sample(files, 25):
        original = path.read_bytes()
        for _ in range(6):
            data = bytearray(original)
            kind = rng.randrange(3)
            if kind == 0:
                for _ in range(rng.randint(1, 4)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            elif kind == 1:
                data = data[: rng.randrange(len(data))]
            else:
                at = rng.randrange(len(data) + 1)
                data[at:at] = rng.randbytes(rng.randint(1, 8))
            report = scan_bytes(bytes(data), path.name)
            assert all(f.rule_id != "scan.error" for f in report.findings), (path.name, report.findings)


def test_an_analysis_failure_is_a_finding_not_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracemark.supply import _formats

    def broken(data: object, size: int) -> list[tuple[str, str, str]]:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(_formats, "check_gguf", broken)
    (finding,) = scan_bytes(b"GGUF" + b"\x00" * 40, "m.gguf").findings
    assert finding.rule_id == "scan.error"
    assert finding.severity == "high"
