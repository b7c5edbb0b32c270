"""The model scanner: walks files and archives by content, never by name, and never loads anything.

Each file is identified by its bytes (zip, tar, gzip, bz2, xz, zlib, 7z, numpy, safetensors,
GGUF, HDF5, ONNX, JSON, pickle) and archives are opened in memory, layer by layer, under
limits on depth, member size, decompressed size and compression ratio.  Nothing is ever
extracted to disk, so member names such as ``../../etc/passwd`` are reported, not followed.

PyTorch zip checkpoints are recognised by their ``<prefix>/data.pkl`` member; their tensor
storages (``<prefix>/data/<n>``) are never read, which is why a 200 MB checkpoint scans in
milliseconds.  PyTorch never unpickles those members.
"""

from __future__ import annotations

import bz2
import contextlib
import fnmatch
import io
import json
import lzma
import mmap
import os
import pickletools
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracemark.errors import InvalidInputError
from tracemark.report import Finding, Location, Severity
from tracemark.supply import _formats
from tracemark.supply._code import chat_template_issues, torchscript_issues
from tracemark.supply._findings import RULE_TITLES, ScannedFile, ScanReport
from tracemark.supply._pickle import UNANALYSABLE, analyse_pickle

#: The magic number that opens a legacy (non-zip) ``torch.save`` file.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_MEMBER = re.compile(r"^(?P<prefix>.*)/data/\d+$")
#: TorchScript's program: Python-syntax source under ``code/`` (``.debug_pkl`` members are pickles).
_TORCHSCRIPT_CODE = re.compile(r"^(?:.*/)?code/.+\.py$")
_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
#: Bytes that open a pickle opcode: a file of another format starting with one may also load as a pickle.
_PICKLE_OPCODE_BYTES = frozenset(ord(opcode.code) for opcode in pickletools.opcodes)
#: What a pickle reading of another format's bytes reports: what the loader would import or call.
_POLYGLOT_RULES = frozenset(
    {
        "pickle.global-denied",
        "pickle.computed-call",
        "pickle.global-mutation",
        "pickle.dynamic-global",
        "pickle.extension",
    }
)
#: Compressed input fed to a decompressor per step, and the most output taken from one call.
_INFLATE_IN_STEP = 64 * 1024
_INFLATE_OUT_STEP = 1 << 20


@dataclass(frozen=True)
class ScanLimits:
    """Bounds that keep hostile archives from exhausting memory or time."""

    max_depth: int = 6
    #: Largest archive member or decompressed stream inspected (bytes).
    max_member_bytes: int = 1024 * 1024 * 1024
    #: Total bytes decompressed for one scan.
    max_total_bytes: int = 8 * 1024 * 1024 * 1024
    #: Larger expansion ratios on members above 1 MiB are treated as bombs (checked while inflating).
    max_ratio: int = 200
    max_members: int = 100_000
    #: Decompressed bytes held at once by all the nested layers being inspected.
    max_resident_bytes: int = 2 * 1024 * 1024 * 1024


def parse_allowed(specs: Iterable[str]) -> frozenset[tuple[str, str]]:
    """``module:name`` strings (``argparse:Namespace``) as allowlist entries; raises on bad syntax."""
    allowed = set()
    for spec in specs:
        module, sep, name = spec.partition(":")
        if not sep or not _IDENTIFIER_PATH.match(module) or not _IDENTIFIER_PATH.match(name):
            raise InvalidInputError(f"--allow {spec!r}: expected module:name, e.g. argparse:Namespace")
        allowed.add((module, name))
    return frozenset(allowed)


class _MappedFile(io.RawIOBase):
    """A seekable file over a memory map, so zipfile reads members without copying the file."""

    def __init__(self, mapped: mmap.mmap) -> None:
        self._mapped = mapped
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._mapped)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        chunk = self._mapped[self._pos : self._pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


class _BudgetError(Exception):
    """Raised when a layer would exceed the scan's limits."""


class _LimitError(Exception):
    """Raised while inflating when the output passes a limit (already reported as a finding)."""


def _decoder_output(decoder: Any, data: bytes) -> Iterator[bytes]:
    """What ``decoder`` makes of ``data``, at most ``_INFLATE_OUT_STEP`` bytes per call."""
    if hasattr(decoder, "unconsumed_tail"):  # zlib
        while True:
            out = decoder.decompress(data, _INFLATE_OUT_STEP)
            data = decoder.unconsumed_tail
            if out:
                yield out
            if decoder.eof or (not data and len(out) < _INFLATE_OUT_STEP):
                return
    out = decoder.decompress(data, _INFLATE_OUT_STEP)  # bz2, lzma
    while True:
        if out:
            yield out
        if decoder.eof or decoder.needs_input:
            return
        out = decoder.decompress(b"", _INFLATE_OUT_STEP)


def _inflate_into(output: bytearray, view: memoryview, factory: Any, guard: Callable[[int], None]) -> bool:
    """Inflate the concatenated streams in ``view`` into ``output``, calling ``guard`` with the size so far
    after every step; whether the last stream ended (False: truncated)."""
    pos, size = 0, len(view)
    while pos < size:
        decoder = factory()
        while pos < size and not decoder.eof:
            piece = bytes(view[pos : pos + _INFLATE_IN_STEP])
            pos += len(piece)
            for out in _decoder_output(decoder, piece):
                output += out
                guard(len(output))
        if not decoder.eof:
            return False
        pos -= len(decoder.unused_data)
    return True


class _Scan:
    def __init__(self, root: Path, limits: ScanLimits, allow: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.root = root
        self.limits = limits
        self.allow = allow
        self.files: list[ScannedFile] = []
        self.findings: list[Finding] = []
        self.decompressed = 0
        #: Decompressed bytes of the layers now open (a gzip inside a zip inside a tar ...).
        self.resident = 0
        #: Symlinks that resolve inside this folder are read through (a Hugging Face cache's blobs).
        self.link_root: Path | None = None

    def finding(self, rule: str, severity: str, location: str, message: str, offset: int | None = None) -> None:
        where = (Location(location, offset=offset),)
        self.findings.append(Finding(rule, Severity(severity), message, where, title=RULE_TITLES.get(rule, "")))

    # -- dispatch by content -------------------------------------------------------------------

    def blob(self, data: Any, location: str, depth: int, folder: Path | None) -> None:
        """Identify ``data`` by its leading bytes and inspect it; a failure to analyse is a finding."""
        try:
            self.dispatch(data, location, depth, folder)
        except _BudgetError:
            raise
        except (Exception, RecursionError) as exc:  # fail closed: hostile bytes must never pass by crashing us
            self.finding("scan.error", "high", location, f"cannot be analysed ({type(exc).__name__}: {exc})"[:300])

    def dispatch(self, data: Any, location: str, depth: int, folder: Path | None) -> None:
        """Identify ``data`` by its leading bytes and inspect it."""
        head = bytes(data[:16])
        if depth > self.limits.max_depth:
            self.finding("archive.too-deep", "high", location, f"archives nested deeper than {self.limits.max_depth}")
            return
        if not (
            self.container(data, head, location, depth, folder)
            or self.model_file(data, head, location, depth)
            or self.structured(data, head, location, depth, folder)
        ):
            if _formats.has_zip_directory(data):
                # A zip found by its end-of-central-directory record: loaders (Keras, PyTorch) open
                # archives from the end, so bytes prefixed to one do not hide it.
                self.zip(data, location, depth, folder)
            else:
                self.pickle_or_data(data, location, depth)
        elif head[:1] and head[0] in _PICKLE_OPCODE_BYTES and head[:1] != b"\x80":
            self.polyglot(data, location)

    def polyglot(self, data: Any, location: str) -> None:
        """A file read as another format (tar, GGUF, ...) may load as a pickle too: ``pickle.load`` reads
        from byte 0 and ignores what follows ``STOP``.  What that reading would import or call is a finding."""
        analysis = analyse_pickle(data, allow=self.allow)
        if not analysis.evidence:
            return
        for item in analysis.issues:
            if item.rule in _POLYGLOT_RULES or item.rule == UNANALYSABLE:
                self.finding(item.rule, item.severity, location, f"read as a pickle: {item.message}", item.offset)

    def container(self, data: Any, head: bytes, location: str, depth: int, folder: Path | None) -> bool:
        """Pickles, archives and compressed streams, by their magic bytes; False when ``data`` is none of them."""
        size = len(data)
        if head[:1] == b"\x80" and not _formats.looks_like_safetensors(head[:10], size):
            # PROTO; only a safetensors header length can also start with 0x80.
            self.pickle_or_data(data, location, depth)
        elif head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            self.zip(data, location, depth, folder)
        elif size >= 512 and bytes(data[257:262]) == b"ustar":
            self.tar(data, location, depth, folder)
        elif head.startswith(b"\x1f\x8b"):
            self.decompress(data, location, depth, "gzip", lambda: zlib.decompressobj(wbits=31), folder)
        elif head.startswith(b"BZh") and head[4:10] == b"1AY&SY":
            self.decompress(data, location, depth, "bzip2", bz2.BZ2Decompressor, folder)
        elif head.startswith(b"\xfd7zXZ\x00"):
            self.decompress(data, location, depth, "xz", lzma.LZMADecompressor, folder)
        elif head.startswith(b"7z\xbc\xaf\x27\x1c"):
            self.add(location, "7z", size)
            self.finding("archive.unsupported", "high", location, "7z archive: its contents cannot be inspected")
        else:
            return False
        return True

    def model_file(self, data: Any, head: bytes, location: str, depth: int) -> bool:
        """NumPy, GGUF, HDF5 and safetensors files, by magic bytes or name; False when ``data`` is none of them."""
        size = len(data)
        if head.startswith(b"\x93NUMPY"):
            self.npy(data, location, depth)
        elif head.startswith(b"GGUF"):
            self.add(location, "gguf", size)
            self.issues(_formats.check_gguf(data, size), location)
        elif head.startswith(b"\x89HDF\r\n\x1a\n"):
            self.add(location, "hdf5", size)
            try:
                for config in _formats.embedded_keras_configs(data):
                    self.issues(_formats.keras_lambda_issues(config, "HDF5 model config"), location)
            except _formats.EmbeddedJsonBudgetError:
                self.finding("keras.config-unreadable", "high", location, "too many JSON candidates to read them all")
        elif _formats.looks_like_safetensors(bytes(data[:10]), size):
            self.add(location, "safetensors", size)
            self.issues(_formats.check_safetensors(data, size), location)
        elif location.endswith(".safetensors"):
            self.add(location, "safetensors", size)
            self.finding("safetensors.invalid-header", "high", location, "the header length does not fit the file")
        elif location.endswith(".gguf"):
            self.add(location, "gguf", size)
            self.finding("gguf.invalid-header", "high", location, "no GGUF magic")
        else:
            return False
        return True

    def structured(self, data: Any, head: bytes, location: str, depth: int, folder: Path | None) -> bool:
        """zlib streams, ONNX protobufs and JSON configs: recognised only when they parse."""
        if _is_zlib(head) and self.try_zlib(data, location, depth, folder):
            return True
        if head[:1] == b"\x08" and (self.saved_model(data, location) or self.onnx(data, location, folder)):
            return True
        return head.lstrip()[:1] == b"{" and self.json(data, location)

    def add(self, location: str, kind: str, size: int) -> None:
        self.files.append(ScannedFile(location, kind, size))

    def issues(self, issues: list[tuple[str, str, str]], location: str) -> None:
        for rule, severity, message in issues:
            self.finding(rule, severity, location, message)

    # -- pickles -------------------------------------------------------------------------------

    def pickle_or_data(self, data: Any, location: str, depth: int) -> None:
        analysis = analyse_pickle(data, allow=self.allow)
        size = len(data)
        head = bytes(data[:2])
        claims_pickle = len(head) == 2 and head[0] == 0x80 and head[1] <= 5
        if not analysis.evidence and not claims_pickle:
            self.add(location, "data", size)
            return
        kind = "pickle"
        for item in analysis.issues:
            self.finding(item.rule, item.severity, location, item.message, item.offset)
        names = [f"{module}:{name}" for module, name in analysis.globals]
        end = analysis.end
        if analysis.complete and analysis.result == TORCH_LEGACY_MAGIC and not isinstance(analysis.result, bool):
            kind = "pytorch-legacy"
            # torch.save legacy layout: magic, protocol, sys info, the object, the storage keys, raw storages.
            for _ in range(4):
                following = analyse_pickle(data, end, allow=self.allow)
                names += [f"{module}:{name}" for module, name in following.globals]
                for item in following.issues:
                    self.finding(item.rule, item.severity, location, item.message, item.offset)
                if not following.complete:
                    break
                end = following.end
            end = size
        if analysis.complete and end < size:
            self.finding(
                "pickle.trailing-data",
                "high",
                location,
                f"{size - end} bytes follow the pickle's STOP opcode",
                end,
            )
        self.files.append(ScannedFile(location, kind, size, tuple(dict.fromkeys(names))))

    # -- archives ------------------------------------------------------------------------------

    def zip(self, data: Any, location: str, depth: int, folder: Path | None) -> None:
        source: Any = _MappedFile(data) if isinstance(data, mmap.mmap) else io.BytesIO(bytes(data))
        try:
            archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            self.add(location, "zip", len(data))
            self.finding("archive.corrupt", "high", location, f"zip archive cannot be read: {exc}")
            return
        with archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            prefixes = {n[: -len("data.pkl")].rstrip("/") for n in names if n == "data.pkl" or n.endswith("/data.pkl")}
            torchscript = any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in names)
            kind = ("torchscript" if torchscript else "pytorch-zip") if prefixes else "zip"
            self.add(location, kind, len(data))
            if len(infos) > self.limits.max_members:
                self.finding("archive.too-many-members", "high", location, f"{len(infos)} members")
                return
            if len(set(names)) != len(names):
                self.finding(
                    "archive.duplicate-member",
                    "high",
                    location,
                    "duplicate member names: loaders and scanners may read different members",
                )
            for info in infos:
                member = f"{location}!{info.filename}"
                self.check_member_name(info.filename, member)
                # Not ZipInfo.is_dir(): it raises IndexError on a member with an empty name.
                if info.filename.endswith("/"):
                    continue
                storage = _STORAGE_MEMBER.match(info.filename)
                if storage and storage.group("prefix") in prefixes:
                    continue
                payload = self.read_zip_member(archive, info, member)
                if payload is None:
                    continue
                if torchscript and _TORCHSCRIPT_CODE.match(info.filename):
                    self.add(member, "torchscript-code", len(payload))
                    source = payload.decode("utf-8", "replace")
                    self.issues(torchscript_issues(source, info.filename), member)
                    continue
                self.nested(payload, member, depth + 1, None)

    def read_zip_member(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, member: str) -> bytes | None:
        limits = self.limits
        if info.file_size > limits.max_member_bytes:
            self.finding("archive.member-too-large", "high", member, f"{info.file_size} bytes: not inspected")
            return None
        if info.file_size > 1 << 20 and info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
            self.finding("archive.bomb", "high", member, f"compression ratio {info.file_size // info.compress_size}")
            return None
        try:
            with archive.open(info) as handle:
                # Read leniently (as loaders that ignore CRCs do) and report a bad CRC separately.
                if hasattr(handle, "_expected_crc"):
                    handle._expected_crc = None
                read = self.read_bounded(handle, info.compress_size, member)
                if read is None:
                    return None
                payload = read
        except (
            zipfile.BadZipFile,
            OSError,
            EOFError,
            NotImplementedError,
            RuntimeError,
            ValueError,
            zlib.error,
        ) as exc:
            self.finding("archive.corrupt", "high", member, f"member cannot be read: {exc}")
            # Loaders such as PyTorch's read members from the directory's offsets and ignore local
            # names and flag bits (CVE-2025-1944, CVE-2025-1945): look at those bytes too.
            lenient = _lenient_member(archive, info, limits.max_member_bytes)
            if lenient is None:
                return None
            payload = lenient
        self.charge(len(payload), member)
        if len(payload) > limits.max_member_bytes:
            self.finding("archive.member-too-large", "high", member, "larger than its header says: not inspected")
            return None
        if zlib.crc32(payload) != info.CRC:
            self.finding("archive.crc-mismatch", "high", member, "CRC-32 does not match the zip directory")
        return payload

    def read_bounded(self, handle: Any, compressed: int, member: str) -> bytes | None:
        """A member's bytes, read a step at a time so that the size and ratio limits apply while inflating
        (the sizes a zip directory states are the attacker's to choose)."""
        limits = self.limits
        ceiling = limits.max_ratio * max(1, compressed)
        chunks: list[bytes] = []
        size = 0
        while piece := handle.read(_INFLATE_OUT_STEP):
            chunks.append(piece)
            size += len(piece)
            if size > limits.max_member_bytes:
                self.finding("archive.member-too-large", "high", member, "larger than its header says: not inspected")
                return None
            if size > 1 << 20 and size > ceiling:
                self.finding("archive.bomb", "high", member, f"expands more than {limits.max_ratio}-fold")
                return None
            if self.resident + size > limits.max_resident_bytes:
                self.finding("archive.bomb", "high", member, "nested layers exceed the scan's memory limit")
                return None
        return b"".join(chunks)

    def check_member_name(self, name: str, member: str) -> None:
        unified = name.replace("\\", "/")
        if _formats.location_escapes(unified) or "/../" in f"/{unified}/":
            self.finding("archive.path-traversal", "high", member, "member path leaves the extraction folder")

    def tar(self, data: Any, location: str, depth: int, folder: Path | None) -> None:
        self.add(location, "tar", len(data))
        try:
            archive = tarfile.open(fileobj=io.BytesIO(bytes(data)), mode="r:")  # noqa: SIM115 - closed below
        except (tarfile.TarError, OSError, EOFError) as exc:
            self.finding("archive.corrupt", "high", location, f"tar archive cannot be read: {exc}")
            return
        with archive:
            try:
                for count, info in enumerate(archive):
                    if count >= self.limits.max_members:
                        self.finding("archive.too-many-members", "high", location, "too many members")
                        return
                    member = f"{location}!{info.name}"
                    self.check_member_name(info.name, member)
                    if info.issym() or info.islnk():
                        target = info.linkname
                        # A symlink resolves from its own folder, a hard link from the archive root.
                        base = posixpath_dir(info.name) if info.issym() else ""
                        if _formats.location_escapes(_join(base, target)):
                            self.finding(
                                "archive.link-escape", "high", member, f"link to {target!r} leaves the archive"
                            )
                        continue
                    if info.isdev() or info.isfifo():
                        self.finding("archive.special-file", "medium", member, "device or FIFO member")
                        continue
                    if not info.isreg():
                        continue
                    if info.size > self.limits.max_member_bytes:
                        self.finding("archive.member-too-large", "high", member, f"{info.size} bytes: not inspected")
                        continue
                    handle = archive.extractfile(info)
                    if handle is None:
                        continue
                    payload = handle.read(self.limits.max_member_bytes + 1)
                    self.charge(len(payload), member)
                    self.nested(payload, member, depth + 1, None)
            except (tarfile.TarError, OSError, EOFError) as exc:
                self.finding("archive.corrupt", "high", location, f"tar archive is damaged: {exc}")

    def decompress(self, data: Any, location: str, depth: int, kind: str, factory: Any, folder: Path | None) -> None:
        self.add(location, kind, len(data))
        output = self.inflate(data, location, kind, factory)
        if output is not None:
            self.nested(output, f"{location}!{kind}", depth + 1, folder)

    def nested(self, payload: Any, location: str, depth: int, folder: Path | None) -> None:
        """Inspect a decompressed layer, counting its bytes as resident until it is done with."""
        self.resident += len(payload)
        try:
            self.blob(payload, location, depth, folder)
        finally:
            self.resident -= len(payload)

    def inflate(self, data: Any, location: str, kind: str, factory: Any) -> bytearray | None:
        """Decompress every concatenated stream; the size, ratio and memory limits apply while inflating,
        so a bomb is stopped after at most ``max_ratio`` times its own size, never after it has expanded."""
        limits = self.limits
        ceiling = min(limits.max_member_bytes, max(1 << 20, limits.max_ratio * max(1, len(data))))
        output = bytearray()
        view = memoryview(data) if not isinstance(data, mmap.mmap) else memoryview(data).toreadonly()
        try:
            with view:
                complete = _inflate_into(output, view, factory, self.inflate_guard(location, kind, ceiling))
        except _LimitError:
            return None
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
            self.finding("archive.corrupt", "high", location, f"{kind} stream cannot be decompressed: {exc}")
            return None
        if not complete:
            self.finding("archive.corrupt", "high", location, f"{kind} stream is truncated")
        try:
            self.charge(len(output), location)
        except _BudgetError:
            return None
        return output

    def inflate_guard(self, location: str, kind: str, ceiling: int) -> Callable[[int], None]:
        limits = self.limits

        def guard(size: int) -> None:
            if size > ceiling:
                if ceiling == limits.max_member_bytes:
                    message = f"{kind} stream expands beyond {ceiling} bytes"
                else:
                    message = f"{kind} stream expands more than {limits.max_ratio}-fold"
                self.finding("archive.bomb", "high", location, message)
                raise _LimitError
            if self.resident + size > limits.max_resident_bytes:
                self.finding("archive.bomb", "high", location, "nested layers exceed the scan's memory limit")
                raise _LimitError
            if self.decompressed + size > limits.max_total_bytes:
                self.finding("archive.bomb", "high", location, "total decompressed size exceeds the scan limit")
                raise _LimitError

        return guard

    def try_zlib(self, data: Any, location: str, depth: int, folder: Path | None) -> bool:
        decoder = zlib.decompressobj()
        try:
            decoder.decompress(bytes(data[:4096]), 1)
        except zlib.error:
            return False
        self.decompress(data, location, depth, "zlib", zlib.decompressobj, folder)
        return True

    def charge(self, size: int, location: str) -> None:
        self.decompressed += size
        if self.decompressed > self.limits.max_total_bytes:
            self.finding("archive.bomb", "high", location, "total decompressed size exceeds the scan limit")
            raise _BudgetError

    # -- other formats -------------------------------------------------------------------------

    def npy(self, data: Any, location: str, depth: int) -> None:
        size = len(data)
        header, offset, issues = _formats.parse_npy_header(data, size)
        self.issues(issues, location)
        if header is None:
            self.add(location, "npy", size)
            return
        if _formats.npy_has_objects(header["descr"]):
            self.add(location, "npy-object", size)
            self.pickle_or_data(memoryview(data)[offset:], f"{location}!objects", depth)
            if not self.files[-1].format.startswith("pickle"):
                self.finding("numpy.object-array", "high", location, "object array whose data is not a pickle")
        else:
            self.add(location, "npy", size)

    def saved_model(self, data: Any, location: str) -> bool:
        """A TensorFlow SavedModel (``saved_model.pb``): graph ops that reach files or run Python."""
        if len(data) > 1 << 30:
            return False
        ops = _formats.saved_model_ops(bytes(data))
        if ops is None:
            return False
        self.add(location, "tf-saved-model", len(data))
        risky = sorted(ops & _formats.SAVED_MODEL_RISKY_OPS)
        if risky:
            self.finding(
                "tensorflow.risky-op",
                "critical",
                location,
                f"graph ops that read/write files or run Python: {', '.join(risky)}",
            )
        return True

    def onnx(self, data: Any, location: str, folder: Path | None) -> bool:
        locations = _formats.onnx_external_locations(bytes(data))
        if locations is None:
            return False
        self.add(location, "onnx", len(data))
        for item in locations:
            if _formats.location_escapes(item):
                self.finding(
                    "onnx.external-data-escape", "critical", location, f"external data {item!r} leaves the model folder"
                )
            elif folder is not None:
                target = (folder / item).resolve()
                if not target.is_relative_to(self.root.resolve()):
                    self.finding(
                        "onnx.external-data-escape", "critical", location, f"external data {item!r} resolves outside"
                    )
        return True

    def json(self, data: Any, location: str) -> bool:
        if len(data) > 64 * 1024 * 1024:
            return False
        try:
            document = json.loads(bytes(data))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return False
        self.add(location, "json", len(data))
        self.issues(_formats.keras_lambda_issues(document, "model config"), location)
        if isinstance(document, dict):
            self.chat_templates(document.get("chat_template"), location)
        return True

    def chat_templates(self, value: Any, location: str) -> None:
        """``chat_template`` of a ``tokenizer_config.json``: one template, or a list of named ones."""
        if isinstance(value, str):
            self.issues(chat_template_issues(value, "chat_template"), location)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and isinstance(item.get("template"), str):
                    self.issues(chat_template_issues(item["template"], f"chat_template {item.get('name')!r}"), location)


def _lenient_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes | None:
    """A member's bytes read from its local header as a lenient loader would, or ``None``."""
    handle = archive.fp
    if handle is None or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return None
    try:
        handle.seek(info.header_offset)
        header = handle.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            return None
        name_length = int.from_bytes(header[26:28], "little")
        extra_length = int.from_bytes(header[28:30], "little")
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        raw = handle.read(min(info.compress_size, limit + 1))
        if info.compress_type == zipfile.ZIP_STORED:
            return raw
        return zlib.decompressobj(-15).decompress(raw, limit + 1)
    except (OSError, ValueError, zlib.error):
        return None


def posixpath_dir(name: str) -> str:
    return name.replace("\\", "/").rpartition("/")[0]


def _join(base: str, target: str) -> str:
    if target.startswith("/") or not base:
        return target
    return f"{base}/{target}"


def _is_zlib(head: bytes) -> bool:
    return len(head) >= 2 and head[0] & 0x0F == 8 and head[0] >> 4 <= 7 and (head[0] << 8 | head[1]) % 31 == 0


def _walk(root: Path) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        base = Path(directory)
        for name in sorted(filenames + [d for d in dirnames if (base / d).is_symlink()]):
            yield base / name


def _selected(relative: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """``--include``/``--exclude``: shell patterns over the path inside the scanned folder (or its name)."""
    name = relative.rpartition("/")[2]

    def matches(pattern: str) -> bool:
        return fnmatch.fnmatchcase(relative, pattern) or fnmatch.fnmatchcase(name, pattern)

    if include and not any(matches(pattern) for pattern in include):
        return False
    return not any(matches(pattern) for pattern in exclude)


def hugging_face_snapshot(repo_id: str, revision: str = "main", cache: str | Path | None = None) -> Path:
    """The local snapshot folder of a Hugging Face model in the hub cache (nothing is downloaded).

    The cache is ``cache``, else ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``~/.cache/huggingface/hub``; ``revision`` is a branch or tag under ``refs/`` or a commit hash.
    """
    org, sep, name = repo_id.partition("/")
    if not sep or not org or not name or "/" in name or ".." in repo_id:
        raise InvalidInputError(f"{repo_id!r}: a Hugging Face repo id is 'owner/name'")
    if cache is None:
        hub = os.environ.get("HF_HUB_CACHE")
        home = os.environ.get("HF_HOME")
        cache = hub or (Path(home) / "hub" if home else Path.home() / ".cache" / "huggingface" / "hub")
    folder = Path(cache) / f"models--{org}--{name}"
    if not folder.is_dir():
        raise InvalidInputError(f"{repo_id}: not in the Hugging Face cache {cache}")
    ref = folder / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    snapshot = folder / "snapshots" / commit
    if not re.fullmatch(r"[0-9a-f]{40}", commit) or not snapshot.is_dir():
        available = sorted(p.name for p in (folder / "refs").glob("*")) if (folder / "refs").is_dir() else []
        raise InvalidInputError(f"{repo_id}: no snapshot for revision {revision!r} (refs: {', '.join(available)})")
    return snapshot


def scan_hugging_face(
    repo_id: str,
    revision: str = "main",
    *,
    cache: str | Path | None = None,
    limits: ScanLimits | None = None,
    allow: frozenset[tuple[str, str]] = frozenset(),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> ScanReport:
    """Scan a model as the Hugging Face cache holds it: the snapshot's links are read through to the
    repo's blobs (a link out of the repo's cache folder is still a finding)."""
    snapshot = hugging_face_snapshot(repo_id, revision, cache)
    scan = _Scan(snapshot, limits or ScanLimits(), allow)
    scan.link_root = snapshot.parents[1]
    for file in _walk(snapshot):
        relative = file.relative_to(snapshot).as_posix()
        if _selected(relative, include, exclude):
            scan_file(scan, file, relative)
    return ScanReport(target=f"hf://{repo_id}@{snapshot.name}", files=tuple(scan.files), findings=tuple(scan.findings))


def scan_path(
    path: str | Path,
    *,
    limits: ScanLimits | None = None,
    allow: frozenset[tuple[str, str]] = frozenset(),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> ScanReport:
    """Scan a model file or folder; every file is identified by content and nothing is loaded.

    ``allow`` extends the pickle allowlist with ``(module, name)`` globals the caller trusts
    (see :func:`parse_allowed`).  In a folder, ``include`` keeps only the files whose path
    (relative to the folder) or name matches one of its shell patterns, and ``exclude`` drops
    those that match one of its own; a file named directly is always scanned.

    Raises :class:`InvalidInputError` when ``path`` does not exist.  Problems with the
    files themselves are findings, not errors.
    """
    target = Path(path)
    try:
        info = target.lstat()
        if stat.S_ISLNK(info.st_mode):
            info = target.stat()
            linked = True
        else:
            linked = False
    except FileNotFoundError:
        raise InvalidInputError(f"{target}: no such file or directory") from None
    except OSError as exc:
        raise InvalidInputError(f"{target}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        scan = _Scan(target, limits or ScanLimits(), allow)
        for file in _walk(target):
            relative = file.relative_to(target).as_posix()
            if _selected(relative, include, exclude):
                scan_file(scan, file, relative)
    else:
        scan = _Scan(target.parent, limits or ScanLimits(), allow)
        scan_file(scan, target, target.name, None if linked else info)
    return ScanReport(target=str(target), files=tuple(scan.files), findings=tuple(scan.findings))


#: Files up to this size are read into memory; larger ones are memory-mapped.
_READ_LIMIT = 1 << 20


def scan_file(scan: _Scan, file: Path, location: str, info: os.stat_result | None = None) -> None:
    """Scan one file of the walk: symlinks must stay inside the scanned folder."""
    try:
        info = info or file.lstat()
    except OSError as exc:
        scan.finding("file.unreadable", "high", location, f"cannot stat: {exc.strerror}")
        return
    if stat.S_ISLNK(info.st_mode):
        resolved = file.resolve()
        inside = resolved.is_relative_to((scan.link_root or scan.root).resolve())
        if not inside:
            scan.finding("file.symlink-escape", "high", location, f"symlink to {resolved} leaves the model folder")
        elif scan.link_root is not None and resolved.is_file():
            # A snapshot file is a link to its blob: what the loader reads is the blob's content.
            scan_file(scan, resolved, location)
            return
        scan.add(location, "symlink", 0)
        return
    if not stat.S_ISREG(info.st_mode):
        scan.finding("file.special", "medium", location, "not a regular file")
        return
    if info.st_size == 0:
        scan.add(location, "empty", 0)
        return
    try:
        with open(file, "rb") as handle:
            if info.st_size <= _READ_LIMIT:
                with contextlib.suppress(_BudgetError):
                    scan.blob(handle.read(), location, 0, file.parent)
                return
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped, contextlib.suppress(_BudgetError):
                scan.blob(mapped, location, 0, file.parent)
    except OSError as exc:
        scan.finding("file.unreadable", "high", location, f"cannot read: {exc.strerror}")


def scan_bytes(data: bytes, name: str = "<bytes>", *, limits: ScanLimits | None = None) -> ScanReport:
    """Scan an in-memory file (used by tests and by callers that already hold the bytes)."""
    scan = _Scan(Path.cwd(), limits or ScanLimits())
    with contextlib.suppress(_BudgetError):
        scan.blob(data, name, 0, None)
    return ScanReport(target=name, files=tuple(scan.files), findings=tuple(scan.findings))
