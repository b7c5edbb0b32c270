"""``tracemark media``: mark an image (watermark, signed C2PA manifest, log entry) and verify any image.

The media library (Pillow, scipy, c2pa) and the keyring are imported by the verbs, not here, so
``tracemark media --help`` starts quickly and works without the ``media`` extra.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tracemark.cli._common import add_json_flag, emit, read_file_bytes
from tracemark.errors import InvalidInputError, TlogStorageError, UnknownKeyError

if TYPE_CHECKING:
    from tracemark.keys import Keyring
    from tracemark.media import LogChecker, LogRecorder, MediaVerdict
    from tracemark.tlog import ProvenanceRecord

#: Exit status of ``verify`` by outcome (``Outcome`` values): 0 when provenance is verified, 1 when there
#: is none, 7 when it is broken.
VERIFY_EXIT = {
    "trusted": 0,
    "recovered-via-soft-binding": 0,
    "valid-untrusted": 1,
    "watermark-only": 1,
    "unmarked": 1,
    "invalid": 7,
}
#: Exit status of ``verify`` when the verdict has a ``conflict`` (whatever its outcome): another manifest was
#: signed over a marked image, so the file's own claim cannot be taken at its word.
CONFLICT_EXIT = 7
#: Exit status of any verb for an image that cannot be used (``ImageInputError``: truncated, animated,
#: malformed, too large) and for an output that cannot be written.
INPUT_ERROR_EXIT = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``media`` and its verbs."""
    parser = subparsers.add_parser("media", help="image watermarks and C2PA content credentials: mark, verify")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    mark = verbs.add_parser("mark", help="watermark an image, sign a C2PA manifest and record it in the log")
    mark.add_argument("input", help="JPEG, PNG or WebP image")
    mark.add_argument("output", help="where to write the marked image (.jpg, .png or .webp)")
    mark.add_argument("--model-id", default="tracemark/unspecified-model", help="the model that made the image")
    mark.add_argument("--cert", metavar="PEM", help="signing certificate chain, leaf first (default: development)")
    mark.add_argument("--key", metavar="PEM", help="private key of --cert")
    mark.add_argument("--no-log", action="store_true", help="do not record the image in the transparency log")
    mark.add_argument("--db", metavar="PATH", help="database (default: TRACEMARK_HOME/tracemark.sqlite3)")
    add_json_flag(mark)
    mark.set_defaults(handler=_mark)

    verify = verbs.add_parser("verify", help="verify an image: manifest, watermark, recovered manifest, log")
    verify.add_argument("file", help="JPEG, PNG or WebP image")
    verify.add_argument(
        "--trust-anchor", action="append", default=[], metavar="PEM", help="trusted root (default: development root)"
    )
    verify.add_argument("--no-search", action="store_true", help="skip the crop and rotation search (faster)")
    verify.add_argument("--db", metavar="PATH", help="database (default: TRACEMARK_HOME/tracemark.sqlite3)")
    add_json_flag(verify)
    verify.set_defaults(handler=_verify)

    scan = verbs.add_parser("scan", help="look for this keyring's watermark in every image of folders")
    scan.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (.jpg, .jpeg, .png, .webp)")
    scan.add_argument("--out", required=True, help="results (JSONL); resumed if present")
    scan.add_argument("--fdr", type=float, default=0.05, help="false discovery rate for Benjamini-Hochberg")
    scan.add_argument("--no-search", action="store_true", help="skip the crop and rotation search (faster)")
    scan.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    add_json_flag(scan)
    scan.set_defaults(handler=_scan)


def _db(args: argparse.Namespace) -> Path:
    from tracemark.keys import default_database_path

    return Path(args.db) if args.db else default_database_path()


def _record_in_log(database: Path, keyring: Keyring, model_id: str) -> LogRecorder | None:
    from tracemark.keys import load_log_key
    from tracemark.tlog import TransparencyLog, image_recorder

    try:
        signer = load_log_key(keyring)
    except UnknownKeyError:
        return None

    def append(entry: ProvenanceRecord) -> int:
        with TransparencyLog.open(database, signer=signer) as log:
            return log.append(entry).index

    return image_recorder(append, model_id)


def _log_checker(database: Path) -> LogChecker:
    import sqlite3

    from tracemark.tlog import TransparencyLog, image_log_checker

    def read(index: int) -> ProvenanceRecord:
        try:
            with TransparencyLog.open(database) as log:
                return log.record(index)
        except sqlite3.Error as exc:  # the store turns what it expects into TlogStorageError already
            raise TlogStorageError(f"log database {database}: {exc}") from None

    return image_log_checker(read)


class _OutputFile:
    """The CLI's image writer for :func:`tracemark.media.mark_image`: temporary file in the target directory,
    fsync, rename, directory fsync; removed again when a later step fails."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def publish(self, data: bytes) -> None:
        from tracemark._fs import atomic_write_bytes

        try:
            atomic_write_bytes(self.path, data)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise InvalidInputError(
                f"cannot write the marked image to {self.path}: {reason}; nothing was recorded"
            ) from None

    def unpublish(self) -> None:
        from tracemark._fs import fsync_directory

        self.path.unlink(missing_ok=True)
        fsync_directory(self.path.parent)


def _mark(args: argparse.Namespace) -> int:
    from tracemark.keys import Keyring, load_media_certificate
    from tracemark.media import (
        MAX_IMAGE_BYTES,
        SoftBindingRepository,
        format_for_path,
        mark_image,
        media_key,
        signer_for,
    )

    data = read_file_bytes(args.input, MAX_IMAGE_BYTES)
    output_format = format_for_path(args.output)
    keyring = Keyring()
    key = media_key(keyring)
    if args.cert or args.key:
        if not (args.cert and args.key):
            raise UnknownKeyError("--cert and --key go together")
        signer = signer_for(read_file_bytes(args.cert, 1 << 20), read_file_bytes(args.key, 1 << 20))
    else:
        certificate = load_media_certificate(keyring)
        signer = signer_for(certificate.chain_pem, certificate.private_key_pem)
    database = _db(args)
    recorder = None if args.no_log else _record_in_log(database, keyring, args.model_id)
    with SoftBindingRepository(database) as repository:
        marked = mark_image(data, key=key, signer=signer, model_id=args.model_id, output_format=output_format,
                            title=Path(args.output).name, repository=repository, record=recorder,
                            writer=_OutputFile(Path(args.output)))  # fmt: skip
    payload = {**marked.to_json(), "output": args.output}
    logged = f"log entry {marked.log_index}" if marked.log_index is not None else "not logged"
    emit(args, payload, f"marked {args.output}: record {marked.record_id}, manifest {marked.manifest_id}, {logged}")
    return 0


def _human(verdict: MediaVerdict) -> str:
    lines = [f"outcome: {verdict.outcome.value}" + (f" ({', '.join(verdict.codes)})" if verdict.codes else "")]
    if verdict.manifest_id:
        lines.append(f"manifest: {verdict.manifest_id}")
    mark = verdict.watermark
    if mark is not None and mark.found:
        lines.append(f"watermark: key {mark.key_id}, record {mark.record_id}, false-positive bound "
                     f"{mark.false_positive_bound:.1e} ({mark.geometry})")  # fmt: skip
    lines.append("EU AI Act Art. 50 layers:")
    for layer in verdict.layers:
        lines.append(f"  [{'x' if layer.found else ' '}] {layer.name}: {layer.proves}")
        if layer.name == "signed-metadata" and layer.found:
            details = layer.details
            anchors = details.get("trust_anchors")
            subjects = [str(a.get("subject")) for a in anchors if isinstance(a, Mapping)] if isinstance(
                anchors, tuple | list) else []  # fmt: skip
            lines.append(f"      signer {details.get('signer') or '-'}; model {details.get('model_id') or '-'}; "
                         f"claim time {details.get('claim_time') or 'not stated (no timestamp)'}; trust anchors "
                         f"{', '.join(subjects) or 'none configured'}")  # fmt: skip
    lines += [f"  CONTRADICTION: {sentence}" for sentence in verdict.contradictions]
    conflict = verdict.conflict
    if conflict is not None:
        lines.append("CONFLICT: the embedded manifest and the watermark's own manifest make different claims")
        for side in ("embedded", "recovered"):
            claim = conflict.get(side)
            if not isinstance(claim, Mapping):
                lines.append(f"  {side}: no manifest on file for the watermark's record")
                continue
            lines.append(f"  {side}: manifest {claim.get('manifest_id')} ({claim.get('outcome')}); signer "
                         f"{claim.get('signer') or '-'}; model {claim.get('model_id') or '-'}; claim time "
                         f"{claim.get('claim_time') or '-'}; source type "
                         f"{claim.get('digital_source_type') or '-'}")  # fmt: skip
    return "\n".join(lines)


def _verify(args: argparse.Namespace) -> int:
    from tracemark.keys import Keyring, load_media_certificate
    from tracemark.media import MAX_IMAGE_BYTES, SoftBindingRepository, media_key, verify_image

    data = read_file_bytes(args.file, MAX_IMAGE_BYTES)
    keyring = Keyring()
    keys = [media_key(keyring)] if keyring.exists() else []
    if args.trust_anchor:
        anchors: bytes | None = b"".join(read_file_bytes(path, 1 << 20) for path in args.trust_anchor)
    elif keyring.exists():
        try:
            anchors = load_media_certificate(keyring).root_pem
        except UnknownKeyError:
            anchors = None
    else:
        anchors = None
    database = _db(args)
    repository = SoftBindingRepository(database) if database.exists() else None
    try:
        verdict = verify_image(data, keys=keys, trust_anchors_pem=anchors, repository=repository,
                               check_log=_log_checker(database), search=not args.no_search)  # fmt: skip
    finally:
        if repository is not None:
            repository.close()
    emit(args, {"file": args.file, **verdict.to_json()}, _human(verdict))
    return CONFLICT_EXIT if verdict.conflict is not None else VERIFY_EXIT[verdict.outcome.value]


def _scan(args: argparse.Namespace) -> int:
    import sys

    from tracemark.keys import Keyring
    from tracemark.media import media_key, scan_images

    keyring = Keyring()
    if not keyring.exists():
        raise keyring.missing_error()
    last = [-1.0]

    def progress(images: int, marked: int, seconds: float) -> None:
        if args.quiet or (last[0] >= 0.0 and seconds - last[0] < 1.0):
            return
        last[0] = seconds
        sys.stderr.write(f"scanned {images} images, {marked} marked ({images / max(seconds, 1e-9):.1f} images/s)\n")

    summary = scan_images(args.inputs, media_key(keyring), args.out, fdr=args.fdr, search=not args.no_search,
                          progress=progress)  # fmt: skip
    human = (
        f"images: {summary.images} ({summary.images_tested} tested, {summary.errors} errors, "
        f"{summary.resumed_images} from an earlier run)\nmarked: {summary.marked}\n{summary.multiple_testing}\n"
        f"results in {summary.out}"
    )
    emit(args, summary.to_json(), human)
    return 0
