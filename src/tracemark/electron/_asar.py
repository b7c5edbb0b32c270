"""ASAR archives: read them without extracting and check their integrity.

Layout (``@electron/asar``): an 8-byte Chromium Pickle holding ``(4, header_size)``, then a Pickle
of ``header_size`` bytes holding ``(payload_size, json_length, json bytes, padding to 4)``.  File
data starts at ``8 + header_size``; each file entry gives ``size``, ``offset`` (a decimal string,
relative to the data start) and, since asar 3, ``integrity`` ``{algorithm, hash, blockSize, blocks}``
with SHA-256 over the whole file and over each ``blockSize`` block.  Electron checks the SHA-256
of the JSON header string against the value recorded in the app (``ElectronAsarIntegrity`` in
``Info.plist`` on macOS, a resource on Windows) when the asar-integrity fuse is on.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tracemark._json import JSONValue
from tracemark.errors import ElectronAuditError

#: Largest JSON header accepted (bytes); real headers of very large apps stay well under this.
MAX_HEADER_BYTES = 64 * 1024 * 1024
_MAX_DEPTH = 64


class AsarFormatError(ElectronAuditError):
    """The archive is truncated, its header is not valid JSON, or an entry points outside the archive."""


@dataclass(frozen=True)
class AsarIntegrity:
    """A file's integrity record (asar 3): the SHA-256 of the whole file and of each ``block_size`` block.

    The values are the header's, as strings (hashes are compared case-insensitively); only
    ``algorithm`` ``SHA256`` with a positive ``block_size`` can be checked.
    """

    algorithm: str
    hash: str
    block_size: int
    blocks: tuple[str, ...]


@dataclass(frozen=True)
class AsarEntry:
    """One file in the archive.

    ``integrity`` is ``None`` when the header gives no record for the file, or one that lacks a
    member or has a member of the wrong type (then ``integrity_malformed`` is true).
    """

    path: str
    size: int
    offset: int
    unpacked: bool
    executable: bool
    integrity: AsarIntegrity | None
    integrity_malformed: bool = False


@dataclass(frozen=True)
class IntegrityProblem:
    """One integrity failure: which file (or the header), what kind, and a sentence saying why."""

    path: str
    kind: str  # "header", "file", "block", "missing", "unanchored"
    message: str


@dataclass
class AsarArchive:
    """An opened archive: its raw header string and its entries, with file data read on demand."""

    path: Path
    header_string: str
    data_offset: int
    entries: dict[str, AsarEntry] = field(default_factory=dict)

    @property
    def header_sha256(self) -> str:
        """SHA-256 of the JSON header string: the value Electron's asar integrity check pins."""
        return hashlib.sha256(self.header_string.encode("utf-8")).hexdigest()

    def read(self, name: str, max_bytes: int | None = None) -> bytes:
        """The bytes of one file (unpacked files come from ``<archive>.unpacked/``)."""
        entry = self.entries[name]
        if max_bytes is not None and entry.size > max_bytes:
            raise AsarFormatError(f"{name} in {self.path.name} is {entry.size} bytes; the limit is {max_bytes}")
        if entry.unpacked:
            unpacked = self.path.with_name(self.path.name + ".unpacked") / name
            try:
                return unpacked.read_bytes()
            except (OSError, ValueError):  # ValueError: a name the OS cannot encode
                raise AsarFormatError(f"unpacked file {name} is missing next to {self.path.name}") from None
        with self.path.open("rb") as handle:
            handle.seek(self.data_offset + entry.offset)
            data = handle.read(entry.size)
        if len(data) != entry.size:
            raise AsarFormatError(f"{name} runs past the end of {self.path.name}")
        return data

    def chunks(self, name: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The bytes of one file in pieces of at most ``chunk_size``: a large file is never held whole."""
        entry = self.entries[name]
        if entry.unpacked:
            source = self.path.with_name(self.path.name + ".unpacked") / name
            start, remaining = 0, None
        else:
            source, start, remaining = self.path, self.data_offset + entry.offset, entry.size
        try:
            with source.open("rb") as handle:
                handle.seek(start)
                while remaining is None or remaining > 0:
                    piece = handle.read(chunk_size if remaining is None else min(chunk_size, remaining))
                    if not piece:
                        break
                    if remaining is not None:
                        remaining -= len(piece)
                    yield piece
        except (OSError, ValueError):
            raise AsarFormatError(f"{name} cannot be read from {self.path.name}") from None
        if remaining:
            raise AsarFormatError(f"{name} runs past the end of {self.path.name}")


def _u32(data: bytes, at: int) -> int:
    value: int = struct.unpack_from("<I", data, at)[0]
    return value


def open_asar(path: Path) -> AsarArchive:
    """Parse an archive's header; raises :class:`AsarFormatError` on any malformed structure."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(16)
            if len(prefix) < 16:
                raise AsarFormatError(f"{path.name} is too short to be an asar archive")
            if _u32(prefix, 0) != 4:
                raise AsarFormatError(f"{path.name} does not start with an asar size pickle")
            header_size = _u32(prefix, 4)
            payload_size = _u32(prefix, 8)
            json_length = _u32(prefix, 12)
            if header_size > MAX_HEADER_BYTES or json_length > header_size or 8 + header_size > size:
                raise AsarFormatError(f"{path.name} declares a header of {header_size} bytes that does not fit")
            if payload_size + 4 != header_size or json_length + 4 > payload_size:
                raise AsarFormatError(f"{path.name} has inconsistent header pickle sizes")
            raw = handle.read(json_length)
    except OSError as exc:
        raise ElectronAuditError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        header_string = raw.decode("utf-8")
        header = json.loads(header_string)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AsarFormatError(f"{path.name} has a header that is not valid JSON: {exc}") from None
    except RecursionError:
        raise AsarFormatError(f"{path.name} has a header nested too deeply to parse") from None
    archive = AsarArchive(path=path, header_string=header_string, data_offset=8 + header_size)
    data_size = size - archive.data_offset
    for entry in _walk(header, "", 0, path.name):
        if not entry.unpacked and entry.offset + entry.size > data_size:
            raise AsarFormatError(f"{entry.path} in {path.name} points past the end of the archive")
        archive.entries[entry.path] = entry
    return archive


def _walk(node: JSONValue, prefix: str, depth: int, archive_name: str) -> Iterator[AsarEntry]:
    if depth > _MAX_DEPTH:
        raise AsarFormatError(f"{archive_name} nests folders deeper than {_MAX_DEPTH}")
    files = node.get("files") if isinstance(node, dict) else None
    if not isinstance(files, dict):
        raise AsarFormatError(f"{archive_name} has a folder entry without a 'files' object at '{prefix or '/'}'")
    for name, child in files.items():
        if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\x00"):
            raise AsarFormatError(f"{archive_name} has an unsafe entry name {name!r}")
        path = f"{prefix}{name}"
        if not isinstance(child, dict):
            raise AsarFormatError(f"{archive_name} entry {path} is not an object")
        if "files" in child:
            yield from _walk(child, path + "/", depth + 1, archive_name)
        elif "link" in child:
            continue
        else:
            try:
                size = _whole_number(child["size"])
                unpacked = bool(child.get("unpacked", False))
                offset = 0 if unpacked else _whole_number(child["offset"])
            except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: 1e999 is infinity
                raise AsarFormatError(f"{archive_name} entry {path} lacks a valid size or offset") from None
            if size < 0 or offset < 0:
                raise AsarFormatError(f"{archive_name} entry {path} has a negative size or offset")
            record = child.get("integrity")
            integrity = _integrity(record) if isinstance(record, dict) else None
            yield AsarEntry(
                path=path,
                size=size,
                offset=offset,
                unpacked=unpacked,
                executable=bool(child.get("executable", False)),
                integrity=integrity,
                integrity_malformed=isinstance(record, dict) and integrity is None,
            )


def _whole_number(value: JSONValue) -> int:
    """``int(value)`` for a JSON scalar (a number or a numeric string); ``TypeError`` for null, arrays, objects."""
    if value is None or isinstance(value, list | dict):
        raise TypeError(f"expected a number, not {type(value).__name__}")
    return int(value)


_INTEGRITY_MEMBERS = ("algorithm", "hash", "blockSize", "blocks")


def _integrity(record: dict[str, JSONValue]) -> AsarIntegrity | None:
    """The typed record, or ``None`` when it is malformed.

    Malformed: a member is missing, ``blocks`` is not an array, ``blockSize`` is not a whole
    number, or an array or object stands where a value belongs.  Values are never walked, so a
    hostile record costs no more than its four members.
    """
    if any(key not in record for key in _INTEGRITY_MEMBERS):
        return None
    algorithm, digest, size, blocks = (record[key] for key in _INTEGRITY_MEMBERS)
    if not isinstance(blocks, list) or any(isinstance(value, list | dict) for value in (algorithm, digest, *blocks)):
        return None
    try:
        block_size = _whole_number(size)
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e999 is infinity
        return None
    return AsarIntegrity(str(algorithm), str(digest), block_size, tuple(str(block) for block in blocks))


def check_integrity(archive: AsarArchive, expected_header_sha256: str | None) -> list[IntegrityProblem]:
    """Every integrity failure of the archive (empty when it is intact).

    The header hash anchors everything: without it an attacker rewrites a file together with its
    recorded hashes, so a missing anchor is itself reported (kind ``unanchored``).
    """
    problems: list[IntegrityProblem] = []
    if expected_header_sha256 is None:
        problems.append(
            IntegrityProblem(
                "", "unanchored", "no header hash is recorded for this archive, so edits cannot be detected"
            )
        )
    elif expected_header_sha256.lower() != archive.header_sha256:
        problems.append(
            IntegrityProblem(
                "",
                "header",
                f"header SHA-256 {archive.header_sha256} differs from the recorded {expected_header_sha256}",
            )
        )
    for entry in archive.entries.values():
        problems.extend(_check_entry(archive, entry))
    return problems


def _check_entry(archive: AsarArchive, entry: AsarEntry) -> list[IntegrityProblem]:
    integrity = entry.integrity
    if integrity is None:
        reason = (
            "the integrity record is malformed" if entry.integrity_malformed else "the file has no integrity record"
        )
        return [IntegrityProblem(entry.path, "missing", reason)]
    algorithm, whole, block_size = integrity.algorithm, integrity.hash.lower(), integrity.block_size
    blocks = [block.lower() for block in integrity.blocks]
    if algorithm != "SHA256" or block_size <= 0:
        return [IntegrityProblem(entry.path, "missing", f"unsupported integrity algorithm {algorithm!r}")]
    try:
        data = archive.read(entry.path)
    except AsarFormatError as exc:
        return [IntegrityProblem(entry.path, "file", str(exc))]
    problems: list[IntegrityProblem] = []
    if hashlib.sha256(data).hexdigest() != whole:
        problems.append(IntegrityProblem(entry.path, "file", "the file's SHA-256 differs from its integrity record"))
    actual_blocks = [
        hashlib.sha256(data[start : start + block_size]).hexdigest()
        for start in range(0, max(len(data), 1), block_size)
    ]
    if len(actual_blocks) != len(blocks):
        problems.append(
            IntegrityProblem(
                entry.path, "block", f"{len(blocks)} block hashes recorded for {len(actual_blocks)} blocks"
            )
        )
    else:
        for index, (actual, recorded) in enumerate(zip(actual_blocks, blocks, strict=True)):
            if actual != recorded:
                problems.append(IntegrityProblem(entry.path, "block", f"block {index} differs from its recorded hash"))
    return problems
