"""``tracemark electron audit PATH``: audit an Electron app and print a table, JSON, SARIF, Markdown or HTML."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from tracemark.cli._report import add_report_options, write_report
from tracemark.errors import InvalidInputError, MissingExtraError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``electron`` and its verbs."""
    parser = subparsers.add_parser("electron", help="audit Electron apps: settings, IPC sinks, fuses, ASAR, version")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    audit = verbs.add_parser("audit", help="audit a source folder, an app.asar, or a packaged app")
    audit.add_argument("path", help="source folder, .asar archive, packaged app folder or Electron executable")
    audit.add_argument(
        "--advisories", metavar="OSV", help="offline OSV database (folder or all.zip) for the version check"
    )
    audit.add_argument(
        "--advisories-max-age-days",
        type=float,
        default=30.0,
        help="refuse an advisory database older than this (default 30)",
    )
    audit.add_argument("--asar-header-sha256", metavar="HEX", help="the archive's expected header hash")
    audit.add_argument(
        "--max-file-mb",
        type=float,
        default=8.0,
        help="parse source files up to this size; larger ones are only scanned for literal settings and "
        "reported as not fully audited (default 8; a parse needs about 60 MB of memory per MB)",
    )
    add_report_options(audit, fail_on="high")
    audit.set_defaults(handler=_audit)


def _audit(args: argparse.Namespace) -> int:
    try:
        from tracemark.electron import audit
    except ImportError:
        raise MissingExtraError("the Electron audit", "electron") from None
    database = None
    if args.advisories:
        from tracemark.advisories import OsvDatabase

        database = OsvDatabase.open(args.advisories, max_age=datetime.timedelta(days=args.advisories_max_age_days))
    expected = args.asar_header_sha256
    if expected is not None and (len(expected) != 64 or any(c not in "0123456789abcdefABCDEF" for c in expected)):
        raise InvalidInputError("--asar-header-sha256 must be 64 hexadecimal characters")
    if not args.max_file_mb > 0:
        raise InvalidInputError("--max-file-mb must be positive")
    report = audit(
        Path(args.path),
        advisories=database,
        expected_asar_header_sha256=expected,
        max_file_bytes=int(args.max_file_mb * 1024 * 1024),
    )
    return write_report(args, report.to_report())
