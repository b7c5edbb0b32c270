"""Fuzz targets: one function per parser of hostile input, shared by the hypothesis and the atheris harness.

Each target takes arbitrary bytes and holds the parser to its contract: the input parses, or the
parser raises the error its module documents (a :class:`~tracemark.errors.TracemarkError`
subclass).  Any other exception escapes the target and is a crash.  A broken property (a forged
receipt that verifies, a strict parser whose output does not print back to its input, a scanner
that hid a crash behind a ``scan.error`` finding) raises :class:`PropertyViolationError`.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import functools
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz import _seeds
from tests.fuzz._catalog import CATALOG
from tracemark.advisories import AdvisoryDatabaseError, OsvDatabase
from tracemark.electron import (
    FUSE_NAMES,
    SENTINEL,
    AsarFormatError,
    FuseWireError,
    check_integrity,
    csp_weaknesses,
    decode_fuse_wire,
    encode_fuse_wire,
    open_asar,
    parse_csp,
    read_fuses,
)
from tracemark.electron._fuses import find_fuse_wires
from tracemark.electron._html import HtmlPage
from tracemark.electron._js import Module, Project
from tracemark.errors import ElectronAuditError, ImageInputError, InvalidInputError, KeyringError, TlogError
from tracemark.keys import TextKey
from tracemark.media import decode_image, encode_image
from tracemark.supply import SEVERITIES, ScanLimits, _formats, analyse_pickle, scan_bytes
from tracemark.tlog import (
    AddCheckpointRequest,
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    ProvenanceRecord,
    Receipt,
    SignedNote,
    open_note,
    verify_checkpoint,
    verify_receipt,
)


class PropertyViolationError(AssertionError):
    """The parser returned, but what it returned breaks its contract."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise PropertyViolationError(message)


@dataclass(frozen=True)
class Target:
    """A fuzz target: the function both harnesses call, the modules it exercises, its seeds and bounds."""

    name: str
    run: Callable[[bytes], None]
    #: Where the reports measure coverage (see :mod:`tests.fuzz._catalog`).
    scope: tuple[str, ...]
    #: Largest input the coverage-guided fuzzer generates.
    max_len: int
    #: Examples per hypothesis run in ``make test``.
    examples: int


#: Archive limits for fuzzing: small enough that a generated bomb costs milliseconds, not gigabytes.
FUZZ_LIMITS = ScanLimits(max_member_bytes=8 << 20, max_total_bytes=32 << 20, max_members=2000)


@functools.cache
def _scratch() -> Path:
    """A private folder for targets whose parser reads files (removed when the process ends)."""
    folder = Path(tempfile.mkdtemp(prefix="tracemark-fuzz-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _write(name: str, data: bytes) -> Path:
    path = _scratch() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _check_issues(issues: list[tuple[str, str, str]], prefixes: tuple[str, ...]) -> None:
    for rule, severity, message in issues:
        check(rule.startswith(prefixes), f"unexpected rule {rule!r}")
        check(severity in SEVERITIES, f"unknown severity {severity!r}")
        check(bool(message), "empty finding message")


def _scan_holds(data: bytes, name: str) -> None:
    """``scan_bytes`` never raises; a ``scan.error`` finding means a parser crashed and the scanner hid it."""
    report = scan_bytes(data, name, limits=FUZZ_LIMITS)
    errors = [finding.message for finding in report.findings if finding.rule_id == "scan.error"]
    check(not errors, f"a parser crashed inside the scanner: {errors[:1]}")


# --- supply --------------------------------------------------------------------------------------


def pickle_target(data: bytes) -> None:
    """``analyse_pickle`` never raises; offsets stay inside the data; bytes and memoryview agree."""
    analysis = analyse_pickle(data)
    check(0 <= analysis.end <= len(data), f"end {analysis.end} outside the data")
    for issue in analysis.issues:
        check(0 <= issue.offset <= len(data), f"issue offset {issue.offset} outside the data")
        check(issue.severity in SEVERITIES, f"unknown severity {issue.severity!r}")
    check(not analysis.safe or analysis.complete, "safe but incomplete")
    again = analyse_pickle(memoryview(data))
    check(again.issues == analysis.issues and again.end == analysis.end, "bytes and memoryview disagree")


def scan_target(data: bytes) -> None:
    """The content-sniffing scanner over any bytes, archives included."""
    _scan_holds(data, "fuzz.bin")


def safetensors_target(data: bytes) -> None:
    if _formats.looks_like_safetensors(data[:10], len(data)):
        _check_issues(_formats.check_safetensors(data, len(data)), ("safetensors.",))
    _scan_holds(data, "model.safetensors")


def gguf_target(data: bytes) -> None:
    _check_issues(_formats.check_gguf(data, len(data)), ("gguf.",))
    _scan_holds(data, "model.gguf")


def onnx_target(data: bytes) -> None:
    locations = _formats.onnx_external_locations(data)
    for location in locations or []:
        _formats.location_escapes(location)
    _scan_holds(data, "model.onnx")


def npy_target(data: bytes) -> None:
    header, offset, issues = _formats.parse_npy_header(data, len(data))
    _check_issues(issues, ("numpy.",))
    if header is not None:
        check(offset <= len(data), "data offset past the end")
        _formats.npy_has_objects(header["descr"])
    _scan_holds(data, "array.npy")


# --- electron ------------------------------------------------------------------------------------


def asar_target(data: bytes) -> None:
    """``open_asar`` raises only :class:`AsarFormatError`; reading and integrity checks never crash."""
    path = _write("app.asar", data)
    try:
        archive = open_asar(path)
    except ElectronAuditError:
        return
    check(archive.data_offset <= len(data), "data offset past the end")
    problems = check_integrity(archive, "0" * 64)
    check(any(problem.kind == "header" for problem in problems), "a wrong header hash was not reported")
    for name in archive.entries:
        try:
            archive.read(name, max_bytes=1 << 20)
        except AsarFormatError:
            continue


def fuses_target(data: bytes) -> None:
    """Fuse wires decode or raise :class:`FuseWireError`, and a decoded wire encodes back to its bytes."""
    for buffer in (data, SENTINEL + data):
        try:
            wires = find_fuse_wires(buffer)
        except FuseWireError:
            continue
        for wire in wires:
            raw = encode_fuse_wire([state for _, state in wire.states], wire.version)
            check(buffer[wire.offset : wire.offset + len(raw)] == raw, "decoded wire does not encode back")
            names = [name for name, _ in wire.states]
            check(names[: len(FUSE_NAMES)] == list(FUSE_NAMES[: len(names)]), "fuses decoded out of wire order")
    with contextlib.suppress(FuseWireError):
        decode_fuse_wire(data, 0)
    with contextlib.suppress(ElectronAuditError):
        read_fuses(_write("electron", data))


def html_target(data: bytes) -> None:
    page = HtmlPage("index.html", data)
    for tag in page.tags:
        check(tag.line >= 1 and tag.column >= 1, "tag position before the start")
    for policy, _tag in page.csp_policies():
        csp_weaknesses(policy)


def csp_target(data: bytes) -> None:
    """Directive names are lower case; every weakness names the effective script directive."""
    policy = data.decode("utf-8", "surrogateescape")
    directives = parse_csp(policy)
    check(all(name == name.lower() for name in directives), "directive name not lower-cased")
    for weakness in csp_weaknesses(policy):
        check(weakness.directive in ("script-src", "default-src"), f"weakness on {weakness.directive}")


#: Expressions evaluated per module at most, so one input cannot take seconds by sheer size.
_JS_EVALUATIONS = 400


def js_target(data: bytes) -> None:
    """The resolver evaluates every declaration, call and ``new`` of hostile code without raising."""
    for kind in ("js", "ts"):
        module = Module(f"main.{kind}", data, kind)
        helper = Module("helper.js", _seeds.JS_HELPER, "js")
        project = Project([module, helper])
        budget = _JS_EVALUATIONS
        for bindings in module.declarations.values():
            for binding, _declaring in bindings[:4]:
                project.lookup(module, binding, 0)
                budget -= 1
        for node in [*module.calls, *module.news][: max(budget, 0)]:
            project.evaluate(module, node)
            function = node.child_by_field_name("function") or node.child_by_field_name("constructor")
            if function is not None:
                project.qualified_name(module, function)
        project.exports(module, 0)


# --- transparency log ----------------------------------------------------------------------------


@functools.cache
def _log_keys() -> tuple[NoteVerifier, NoteVerifier]:
    world = _seeds.log_world()
    return NoteVerifier.from_vkey(world.log_vkey), NoteVerifier.from_vkey(world.witness_vkey)


def receipt_target(data: bytes) -> None:
    """Receipts parse strictly (print back byte for byte) and never verify unless the log really signed them.

    The log's key is fixed and its signatures cannot be forged by mutation, so a receipt that
    verifies must prove an entry the log holds, at its index, in a checkpoint the log signed.
    """
    world = _seeds.log_world()
    log_key, witness_key = _log_keys()
    try:
        parsed = Receipt.parse(data)
    except TlogError:
        pass
    else:
        check(parsed.to_text().encode() == data, "a parsed receipt does not print back to its input")
    for witnesses, quorum in (((), 0), ((witness_key,), 1)):
        try:
            verified = verify_receipt(data, log_key, witnesses=witnesses, quorum=quorum)
        except TlogError:
            continue
        check(verified.index < len(world.entries), f"verified an index the log never had: {verified.index}")
        check(verified.entry == world.entries[verified.index], f"forged entry verified at index {verified.index}")
        check(verified.checkpoint.checkpoint.body() in world.signed_bodies, "forged checkpoint verified")


def note_target(data: bytes) -> None:
    """Signed notes, checkpoints and witness requests parse strictly; only notes the log signed open."""
    world = _seeds.log_world()
    log_key, witness_key = _log_keys()
    try:
        note = SignedNote.parse(data)
    except TlogError:
        note = None
    if note is not None:
        check(note.to_text().encode() == data, "a parsed note does not print back to its input")
        try:
            checkpoint = Checkpoint.parse(note.text)
        except TlogError:
            pass
        else:
            check(checkpoint.body() == note.text, "a parsed checkpoint does not print back to its input")
        try:
            opened = open_note(note, [log_key, witness_key])
        except TlogError:
            pass
        else:
            check(opened.text in world.signed_bodies, "a note the log never signed was opened")
    for witnesses, quorum in (((), 0), ((witness_key,), 1)):
        try:
            verified = verify_checkpoint(data, log_key, witnesses=witnesses, quorum=quorum)
        except TlogError:
            continue
        check(verified.checkpoint.body() in world.signed_bodies, "a checkpoint the log never signed verified")
    try:
        request = AddCheckpointRequest.parse(data)
    except TlogError:
        return
    check(request.to_text().encode() == data, "a parsed witness request does not print back to its input")


def record_target(data: bytes) -> None:
    """Provenance records are accepted only in their canonical form."""
    try:
        record = ProvenanceRecord.from_json(data)
    except TlogError:
        return
    check(record.to_json() == data, "an accepted record is not canonical")


def note_keys_target(data: bytes) -> None:
    """Verifier and signer key strings (as from a file, an argument or the environment) parse or raise."""
    text = data.decode("utf-8", "surrogateescape")
    try:
        verifier = NoteVerifier.from_vkey(text)
    except TlogError:
        pass
    else:
        check(verifier.vkey == text.strip(), "a parsed verifier key does not print back")
    try:
        signer = NoteSigner.from_skey(text)
    except TlogError:
        pass
    else:
        check(signer.skey == text.strip(), "a parsed signer key does not print back")
        check(signer.skey not in repr(signer), "the signer's repr shows its secret")


# --- advisories ----------------------------------------------------------------------------------

_QUERY_VERSIONS = ("0", "1.0", "1.4.1", "22.0.0-beta.10", "2.9.9", "3.0.0-0", "999999.0.0")
_NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


def _query_all(database: OsvDatabase, extra_versions: list[str]) -> None:
    for ecosystem in ("PyPI", "npm"):
        for name in sorted(database.packages(ecosystem))[:8]:
            for version in [*_QUERY_VERSIONS, *extra_versions[:8]]:
                try:
                    database.affected(ecosystem=ecosystem, name=name, version=version)
                except InvalidInputError:
                    continue


def _versions_in(data: bytes) -> list[str]:
    """Version-like strings of the record itself, so hostile event versions are also queried."""
    text = data.decode("utf-8", "replace")
    return [part for part in text.replace('"', " ").split() if part[:1].isdigit()][:8]


def osv_target(data: bytes) -> None:
    """The bytes as an OSV record, as the manifest beside a valid record, and as a zip export.

    Opening raises only :class:`AdvisoryDatabaseError`; queries raise only
    :class:`InvalidInputError` (for a query version the ecosystem cannot parse).
    """
    roles = {
        "as-record": {"record.json": data},
        "as-manifest": {"record.json": _seeds.OSV_ANCHOR_RECORD, "osv-manifest.json": data},
    }
    for role, files in roles.items():
        folder = _scratch() / role
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for name, content in files.items():
            (folder / name).write_bytes(content)
        for max_age in (None, datetime.timedelta(days=30)):
            try:
                database = OsvDatabase.open(folder, max_age=max_age, now=_NOW)
            except AdvisoryDatabaseError:
                continue
            _query_all(database, _versions_in(data))
    export = _write("all.zip", data)
    try:
        database = OsvDatabase.open(export, max_age=None)
    except AdvisoryDatabaseError:
        return
    _query_all(database, [])
    names = [("npm", name) for name in database.packages("npm")] + [("PyPI", n) for n in database.packages("PyPI")]
    try:
        OsvDatabase.open(export, max_age=None, packages=names)
    except AdvisoryDatabaseError as exc:
        raise PropertyViolationError(f"the package prefilter refused an export that opens without it: {exc}") from None


# --- media ---------------------------------------------------------------------------------------

#: Largest decoded image re-encoded for the round-trip check (pixels).
_ROUND_TRIP_PIXELS = 1 << 16


def image_target(data: bytes) -> None:
    """Decoding raises only :class:`ImageInputError`; what decodes is 8-bit grey or RGB and survives PNG."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow on malformed EXIF tags: noise here
            image = decode_image(data, min_side=1)
    except ImageInputError:
        return
    pixels = image.pixels
    check(str(pixels.dtype) == "uint8", f"pixels are {pixels.dtype}")
    check(pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3), f"pixel shape {pixels.shape}")
    if image.alpha is not None:
        check(image.alpha.shape == pixels.shape[:2], "alpha plane does not match the pixels")
    if pixels.shape[0] * pixels.shape[1] <= _ROUND_TRIP_PIXELS:
        again = decode_image(encode_image(image, "PNG"), min_side=1)
        check(bool((again.pixels == pixels).all()), "PNG round trip changed the pixels")


# --- keys ----------------------------------------------------------------------------------------


def key_record_target(data: bytes) -> None:
    """Key records load or raise :class:`KeyringError`; a loaded record round-trips and hides its secret."""
    try:
        key = TextKey.from_json(data)
    except KeyringError:
        return
    check(TextKey.from_json(key.to_json()) == key, "a key record does not round-trip")
    public = repr(key) + repr(key.public_record())
    for value in key.secret.values():
        secret = str(value)
        check(len(secret) < 8 or secret not in public, "the secret shows in repr or the public record")


_FUNCTIONS: dict[str, Callable[[bytes], None]] = {
    "pickle": pickle_target,
    "scan": scan_target,
    "safetensors": safetensors_target,
    "gguf": gguf_target,
    "onnx": onnx_target,
    "npy": npy_target,
    "asar": asar_target,
    "fuses": fuses_target,
    "html": html_target,
    "csp": csp_target,
    "js": js_target,
    "receipt": receipt_target,
    "note": note_target,
    "record": record_target,
    "note-keys": note_keys_target,
    "osv": osv_target,
    "image": image_target,
    "key-record": key_record_target,
}

TARGETS: dict[str, Target] = {
    name: Target(name, _FUNCTIONS[name], entry.scope, entry.max_len, entry.examples) for name, entry in CATALOG.items()
}
