"""Fuse wires: every one of the 256 on/off combinations reads back exactly; malformed wires are refused."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.unit.electron._packaged import executable_bytes
from tracemark.electron import (
    FUSE_NAMES,
    FUSE_RULES,
    SENTINEL,
    FuseState,
    FuseWireError,
    audit,
    decode_fuse_wire,
    encode_fuse_wire,
    read_fuses,
)

ALL_COMBINATIONS = list(itertools.product((FuseState.DISABLED, FuseState.ENABLED), repeat=8))


def test_all_256_combinations_read_exactly(tmp_path: Path) -> None:
    assert len(ALL_COMBINATIONS) == 256
    binary = tmp_path / "electron"
    for states in ALL_COMBINATIONS:
        binary.write_bytes(executable_bytes(encode_fuse_wire(list(states))))
        wire = read_fuses(binary)
        assert wire is not None
        assert wire.version == 1
        assert [state for _, state in wire.states] == list(states)
        assert [name for name, _ in wire.states] == list(FUSE_NAMES)


def test_wire_bytes_are_the_documented_format() -> None:
    wire = encode_fuse_wire([FuseState.ENABLED, FuseState.DISABLED, FuseState.REMOVED])
    assert wire == SENTINEL + b"\x01\x03" + b"10r"


def test_removed_and_extra_fuses() -> None:
    data = b"xx" + SENTINEL + b"\x01\x0a" + b"r0101010" + b"11"
    wire = decode_fuse_wire(data, 2)
    assert wire.state("RunAsNode") == FuseState.REMOVED
    assert wire.states[8] == ("Fuse8", FuseState.ENABLED)
    assert len(wire.states) == 10


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (b"", "truncated"),
        (b"\x01", "truncated"),
        (b"\x02\x01" + b"1", "unknown version"),
        (b"\x01\x08" + b"1010", "declares 8"),
        (b"\x01\x02" + b"1x", "unknown state"),
    ],
)
def test_malformed_wires_are_refused(tmp_path: Path, tail: bytes, reason: str) -> None:
    binary = tmp_path / "electron"
    binary.write_bytes(b"\0" * 10 + SENTINEL + tail)
    with pytest.raises(FuseWireError, match=reason):
        read_fuses(binary)


def test_universal_binary_wires_must_agree(tmp_path: Path) -> None:
    binary = tmp_path / "electron"
    on = encode_fuse_wire([FuseState.ENABLED] * 8)
    off = encode_fuse_wire([FuseState.DISABLED] * 8)
    binary.write_bytes(b"\0" * 4 + on + b"\0" * 4 + on)
    wire = read_fuses(binary)
    assert wire is not None
    assert wire.state("RunAsNode") == FuseState.ENABLED
    binary.write_bytes(b"\0" * 4 + on + b"\0" * 4 + off)
    with pytest.raises(FuseWireError, match="disagree"):
        read_fuses(binary)


def test_no_sentinel_means_no_wire(tmp_path: Path) -> None:
    binary = tmp_path / "electron"
    binary.write_bytes(b"\0" * 100)
    assert read_fuses(binary) is None
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert read_fuses(empty) is None


@pytest.mark.parametrize("states", [ALL_COMBINATIONS[0], ALL_COMBINATIONS[-1], ALL_COMBINATIONS[0b10110010]])
def test_audit_reports_exactly_the_weak_fuses(tmp_path: Path, states: tuple[FuseState, ...]) -> None:
    (tmp_path / "resources" / "app").mkdir(parents=True)
    (tmp_path / "resources" / "app" / "main.js").write_text("console.log(1)\n")
    (tmp_path / "demo").write_bytes(executable_bytes(encode_fuse_wire(list(states))))
    report = audit(tmp_path)
    by_name = dict(zip(FUSE_NAMES, states, strict=True))
    expected = {rule for name, bad, rule, _ in FUSE_RULES if by_name[name] == bad}
    reported = {f.rule_id for f in report.findings if f.rule_id.startswith("fuse-")}
    assert reported == expected
    assert report.fuses == {name: state.value for name, state in by_name.items()}
    assert any("not packed in an ASAR" in notice for notice in report.notices)
