"""Electron fuses read from the bytes of a packaged executable.

Fuses are build-time switches flipped in the binary itself (``@electron/fuses``).  The wire is
the sentinel ``dL7pKGdnNz796PbbjQWNKmHXBZaB9tsX``, one version byte, one length byte, then one
byte per fuse: ASCII ``0`` (off), ``1`` (on) or ``r`` (removed).  A universal macOS binary holds
one wire per architecture; every wire is read and they must agree.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from tracemark.errors import ElectronAuditError

SENTINEL = b"dL7pKGdnNz796PbbjQWNKmHXBZaB9tsX"

#: Fuse order on the wire (``@electron/fuses`` ``FuseV1Options``).
FUSE_NAMES: tuple[str, ...] = (
    "RunAsNode",
    "EnableCookieEncryption",
    "EnableNodeOptionsEnvironmentVariable",
    "EnableNodeCliInspectArguments",
    "EnableEmbeddedAsarIntegrityValidation",
    "OnlyLoadAppFromAsar",
    "LoadBrowserProcessSpecificV8Snapshot",
    "GrantFileProtocolExtraPrivileges",
)


class FuseState(StrEnum):
    """The state of one fuse on the wire."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    REMOVED = "removed"


_STATE_BYTES = {0x30: FuseState.DISABLED, 0x31: FuseState.ENABLED, 0x72: FuseState.REMOVED}


class FuseWireError(ElectronAuditError):
    """The fuse wire is truncated, holds an unknown state byte, or differs between architectures."""


@dataclass(frozen=True)
class FuseWire:
    """One decoded fuse wire: its version and the state of each fuse, in wire order."""

    version: int
    offset: int
    states: tuple[tuple[str, FuseState], ...]

    def state(self, name: str) -> FuseState | None:
        """The state of the named fuse, or None when this wire is too short to hold it."""
        for fuse, value in self.states:
            if fuse == name:
                return value
        return None

    def as_dict(self) -> dict[str, str]:
        return {name: state.value for name, state in self.states}


def decode_fuse_wire(data: bytes | mmap.mmap, offset: int) -> FuseWire:
    """Decode the wire whose sentinel starts at ``offset``; raises :class:`FuseWireError` if malformed."""
    start = offset + len(SENTINEL)
    if start + 2 > len(data):
        raise FuseWireError(f"fuse wire at byte {offset} is truncated before its version and length")
    version = data[start]
    length = data[start + 1]
    if version != 1:
        raise FuseWireError(f"fuse wire at byte {offset} has unknown version {version}")
    body = bytes(data[start + 2 : start + 2 + length])
    if len(body) != length:
        raise FuseWireError(f"fuse wire at byte {offset} declares {length} fuses but holds {len(body)}")
    states: list[tuple[str, FuseState]] = []
    for index, byte in enumerate(body):
        state = _STATE_BYTES.get(byte)
        if state is None:
            raise FuseWireError(f"fuse {index} at byte {start + 2 + index} has unknown state byte {byte:#04x}")
        name = FUSE_NAMES[index] if index < len(FUSE_NAMES) else f"Fuse{index}"
        states.append((name, state))
    return FuseWire(version=version, offset=offset, states=tuple(states))


def find_fuse_wires(data: bytes | mmap.mmap) -> list[FuseWire]:
    """Every fuse wire in ``data``, in file order (empty when the binary has none)."""
    wires: list[FuseWire] = []
    position = data.find(SENTINEL)
    while position != -1:
        wires.append(decode_fuse_wire(data, position))
        position = data.find(SENTINEL, position + len(SENTINEL))
    return wires


def read_fuses(path: Path) -> FuseWire | None:
    """The fuse wire of an executable, or None when it holds no sentinel (not an Electron binary).

    The file is memory-mapped so a 200 MB executable is searched without reading it into memory.
    Several wires (a universal binary) must agree, else :class:`FuseWireError`.
    """
    try:
        with path.open("rb") as handle:
            if path.stat().st_size == 0:
                return None
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                wires = find_fuse_wires(mapped)
    except OSError as exc:
        raise ElectronAuditError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not wires:
        return None
    first = wires[0]
    for other in wires[1:]:
        if other.states != first.states:
            raise FuseWireError(f"{path} holds fuse wires that disagree (bytes {first.offset} and {other.offset})")
    return first


def encode_fuse_wire(states: dict[str, FuseState] | list[FuseState], version: int = 1) -> bytes:
    """The wire bytes for the given states (used to build test binaries and fixtures)."""
    values = list(states.values()) if isinstance(states, dict) else list(states)
    inverse = {state: byte for byte, state in _STATE_BYTES.items()}
    return SENTINEL + bytes([version, len(values)]) + bytes(inverse[state] for state in values)
