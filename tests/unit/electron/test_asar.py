"""ASAR archives: reading, integrity (header, block and file tampering all detected), hostile headers."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

from tests.support.electron import pack_asar, pack_asar_header
from tests.unit.electron._packaged import header_of, swap_file_keep_hashes, swap_file_with_hashes, tamper_block
from tracemark.electron import AsarFormatError, AsarIntegrity, check_integrity, open_asar

FILES = {"main.js": b"console.log('main')\n", "lib/util.js": b"x" * 10_000, "empty.txt": b""}
#: The swap helpers rewrite top-level entries only.
FLAT = {"main.js": b"console.log('main')\n", "util.js": b"x" * 10_000, "empty.txt": b""}


def _write(tmp_path: Path, data: bytes, name: str = "app.asar") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_round_trip_and_header_hash(tmp_path: Path) -> None:
    data = pack_asar(FILES, block_size=4096)
    archive = open_asar(_write(tmp_path, data))
    assert sorted(archive.entries) == sorted(FILES)
    for name, content in FILES.items():
        assert archive.read(name) == content
    assert archive.header_sha256 == hashlib.sha256(header_of(data).encode()).hexdigest()
    integrity = archive.entries["lib/util.js"].integrity
    assert integrity is not None
    assert (integrity.algorithm, integrity.block_size, len(integrity.blocks)) == ("SHA256", 4096, 3)
    assert integrity.hash == hashlib.sha256(FILES["lib/util.js"]).hexdigest()
    assert check_integrity(archive, archive.header_sha256) == []


def _kinds(path: Path, expected: str) -> list[tuple[str, str]]:
    return sorted((p.kind, p.path) for p in check_integrity(open_asar(path), expected))


def test_block_tampering_is_detected(tmp_path: Path) -> None:
    data = pack_asar(FILES, block_size=4096)
    recorded = hashlib.sha256(header_of(data).encode()).hexdigest()
    tampered = _write(tmp_path, tamper_block(data, "main.js"))
    assert _kinds(tampered, recorded) == [("block", "main.js"), ("file", "main.js")]


def test_every_block_position_is_detected(tmp_path: Path) -> None:
    data = pack_asar({"big.bin": bytes(range(256)) * 64}, block_size=4096)
    recorded = hashlib.sha256(header_of(data).encode()).hexdigest()
    data_start = 8 + struct.unpack_from("<I", data, 4)[0]
    for position in range(0, 256 * 64, 1021):
        flipped = bytearray(data)
        flipped[data_start + position] ^= 0x80
        problems = check_integrity(open_asar(_write(tmp_path, bytes(flipped))), recorded)
        block = [p for p in problems if p.kind == "block"]
        assert len(block) == 1
        assert f"block {position // 4096} " in block[0].message


def test_header_tampering_is_detected(tmp_path: Path) -> None:
    data = pack_asar(FLAT)
    recorded = hashlib.sha256(header_of(data).encode()).hexdigest()
    swapped = _write(tmp_path, swap_file_with_hashes(data, "main.js", b"require('child_process').exec('id')\n"))
    assert _kinds(swapped, recorded) == [("header", "")]


def test_file_swap_keeping_old_hashes_is_detected(tmp_path: Path) -> None:
    data = pack_asar(FLAT)
    recorded = hashlib.sha256(header_of(data).encode()).hexdigest()
    swapped = _write(tmp_path, swap_file_keep_hashes(data, "main.js", b"evil()\n"))
    kinds = _kinds(swapped, recorded)
    assert ("header", "") in kinds
    assert ("file", "main.js") in kinds


def test_unanchored_and_missing_integrity_are_reported(tmp_path: Path) -> None:
    archive = open_asar(_write(tmp_path, pack_asar(FILES, with_integrity=False)))
    kinds = sorted({p.kind for p in check_integrity(archive, None)})
    assert kinds == ["missing", "unanchored"]


def test_unpacked_files_are_checked(tmp_path: Path) -> None:
    integrity = {
        "algorithm": "SHA256",
        "hash": hashlib.sha256(b"native").hexdigest(),
        "blockSize": 4,
        "blocks": [hashlib.sha256(b"nati").hexdigest(), hashlib.sha256(b"ve").hexdigest()],
    }
    header = {"files": {"addon.node": {"size": 6, "unpacked": True, "integrity": integrity}}}
    path = _write(tmp_path, pack_asar_header(json.dumps(header)))
    (tmp_path / "app.asar.unpacked").mkdir()
    (tmp_path / "app.asar.unpacked" / "addon.node").write_bytes(b"native")
    archive = open_asar(path)
    assert check_integrity(archive, archive.header_sha256) == []
    (tmp_path / "app.asar.unpacked" / "addon.node").write_bytes(b"nativE")
    assert {p.kind for p in check_integrity(archive, archive.header_sha256)} == {"file", "block"}


_GOOD_RECORD = {
    "algorithm": "SHA256",
    "hash": hashlib.sha256(b"ab").hexdigest().upper(),
    "blockSize": "4",
    "blocks": [hashlib.sha256(b"ab").hexdigest()],
}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (None, "the file has no integrity record"),
        ({k: v for k, v in _GOOD_RECORD.items() if k != "blocks"}, "the integrity record is malformed"),
        ({**_GOOD_RECORD, "blocks": "abc"}, "the integrity record is malformed"),
        ({**_GOOD_RECORD, "blocks": [["nested"]]}, "the integrity record is malformed"),
        ({**_GOOD_RECORD, "hash": {"a": 1}}, "the integrity record is malformed"),
        ({**_GOOD_RECORD, "blockSize": 1e999}, "the integrity record is malformed"),
        ({**_GOOD_RECORD, "blockSize": None}, "the integrity record is malformed"),
        ({**_GOOD_RECORD, "algorithm": "MD5"}, "unsupported integrity algorithm 'MD5'"),
        ({**_GOOD_RECORD, "blockSize": 0}, "unsupported integrity algorithm 'SHA256'"),
    ],
)
def test_missing_malformed_and_unsupported_records_are_reported(
    tmp_path: Path, record: dict[str, object] | None, message: str
) -> None:
    entry: dict[str, object] = {"size": 2, "offset": "0"}
    if record is not None:
        entry["integrity"] = record
    path = _write(tmp_path, pack_asar_header(json.dumps({"files": {"a.txt": entry}})) + b"ab")
    archive = open_asar(path)
    assert archive.entries["a.txt"].integrity_malformed == (message == "the integrity record is malformed")
    problems = check_integrity(archive, archive.header_sha256)
    assert [(p.kind, p.path, p.message) for p in problems] == [("missing", "a.txt", message)]


def test_a_well_formed_record_is_typed_and_checks_case_insensitively(tmp_path: Path) -> None:
    entry = {"size": 2, "offset": "0", "integrity": _GOOD_RECORD}
    archive = open_asar(_write(tmp_path, pack_asar_header(json.dumps({"files": {"a.txt": entry}})) + b"ab"))
    digest = hashlib.sha256(b"ab").hexdigest()
    assert archive.entries["a.txt"].integrity == AsarIntegrity("SHA256", digest.upper(), 4, (digest,))
    assert check_integrity(archive, archive.header_sha256) == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x04\x00\x00\x00", "too short"),
        (struct.pack("<IIII", 5, 8, 4, 0), "size pickle"),
        (struct.pack("<IIII", 4, 2**31, 2**31 - 4, 10), "does not fit"),
        (struct.pack("<IIII", 4, 12, 8, 4) + b"nope", "not valid JSON"),
        (pack_asar_header('{"files":{"a":{"size":10,"offset":"0"}}}'), "past the end"),
        (pack_asar_header('{"files":{"..":{"size":0,"offset":"0"}}}'), "unsafe entry name"),
        (pack_asar_header('{"files":{"a/b":{"size":0,"offset":"0"}}}'), "unsafe entry name"),
        (pack_asar_header('{"files":{"a":{"size":"x","offset":"0"}}}'), "valid size"),
        (pack_asar_header('{"nofiles":1}'), "without a 'files'"),
        (pack_asar_header('{"files":{"a":{"size":-1,"offset":"0"}}}'), "negative"),
    ],
)
def test_hostile_archives_are_refused(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(AsarFormatError, match=reason):
        open_asar(_write(tmp_path, data))


def test_deeply_nested_header_is_refused(tmp_path: Path) -> None:
    header = '{"files":{"a":' * 100 + '{"files":{}}' + "}}" * 100
    with pytest.raises(AsarFormatError, match="deeper"):
        open_asar(_write(tmp_path, pack_asar_header(header)))
