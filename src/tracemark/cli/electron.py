"""``tracemark electron audit PATH``: audit an Electron app and print a table, JSON or SARIF."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from tracemark.cli._common import add_json_flag
from tracemark.errors import InvalidInputError, MissingExtraError

#: Exit status when findings at or above ``--fail-on`` exist (errors use their own statuses).
FINDINGS_EXIT_STATUS = 1
_THRESHOLDS = ("critical", "high", "medium", "low", "info", "never")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``electron`` and its verbs."""
    parser = subparsers.add_parser("electron", help="audit Electron apps: settings, IPC sinks, fuses, ASAR, version")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    audit = verbs.add_parser("audit", help="audit a source folder, an app.asar, or a packaged app")
    audit.add_argument("path", help="source folder, .asar archive, packaged app folder or Electron executable")
    audit.add_argument("--format", choices=("table", "json", "sarif"), default="table", help="output format")
    audit.add_argument("--output", "-o", metavar="FILE", help="write the report here instead of standard output")
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
        "--fail-on",
        choices=_THRESHOLDS,
        default="high",
        help="exit 1 when findings at or above this severity exist (default high)",
    )
    add_json_flag(audit)
    audit.set_defaults(handler=_audit)


def _audit(args: argparse.Namespace) -> int:
    try:
        from tracemark.electron import Severity, audit, render_table, to_json, to_sarif
    except ImportError:
        raise MissingExtraError("the Electron audit", "electron") from None
    database = None
    if args.advisories:
        from tracemark.advisories import OsvDatabase

        database = OsvDatabase.open(args.advisories, max_age=datetime.timedelta(days=args.advisories_max_age_days))
    expected = args.asar_header_sha256
    if expected is not None and (len(expected) != 64 or any(c not in "0123456789abcdefABCDEF" for c in expected)):
        raise InvalidInputError("--asar-header-sha256 must be 64 hexadecimal characters")
    report = audit(Path(args.path), advisories=database, expected_asar_header_sha256=expected)
    output_format = "json" if args.json else args.format
    if output_format == "json":
        rendered = json.dumps(to_json(report), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    elif output_format == "sarif":
        rendered = json.dumps(to_sarif(report), indent=2, ensure_ascii=False) + "\n"
    else:
        rendered = render_table(report) + "\n"
    if args.output:
        from tracemark._fs import atomic_write_bytes

        atomic_write_bytes(Path(args.output), rendered.encode("utf-8"))
    else:
        sys.stdout.write(rendered)
    if args.fail_on == "never":
        return 0
    return FINDINGS_EXIT_STATUS if report.count_at_least(Severity(args.fail_on)) else 0
