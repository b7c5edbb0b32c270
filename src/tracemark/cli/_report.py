"""The output options of every verb that reports findings, and the ``--fail-on`` gate they share."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracemark._fs import atomic_write_bytes
from tracemark.cli._common import add_json_flag
from tracemark.report import FAIL_ON_CHOICES, FORMAT_NAMES, Report, Severity, fail_on_threshold, render

#: Exit status when a finding reaches ``--fail-on`` (errors exit with their own statuses).
FINDINGS_EXIT_STATUS = 1


def add_report_options(parser: argparse.ArgumentParser, *, fail_on: str) -> None:
    """``--format``, ``--json``, ``--output`` and ``--fail-on`` (whose default is ``fail_on``)."""
    parser.add_argument("--format", choices=FORMAT_NAMES, default="table", help="output format (default: table)")
    add_json_flag(parser)
    parser.add_argument("--output", "-o", metavar="FILE", help="write the report to this file instead of stdout")
    parser.add_argument(
        "--fail-on",
        choices=FAIL_ON_CHOICES,
        default=fail_on,
        help=f"exit 1 when a finding is at least this severe (default: {fail_on}; never: always exit 0)",
    )


def threshold(args: argparse.Namespace) -> Severity | None:
    """The severity ``--fail-on`` names (``None`` for ``never``)."""
    return fail_on_threshold(args.fail_on)


def write_report(args: argparse.Namespace, report: Report) -> int:
    """Render the report as ``--format`` (or JSON under ``--json``), write it, and return the exit status."""
    text = render(report, "json" if args.json else args.format).rstrip("\n") + "\n"
    if args.output:
        atomic_write_bytes(Path(args.output), text.encode("utf-8"))
    else:
        sys.stdout.write(text)
    return FINDINGS_EXIT_STATUS if report.fails(threshold(args)) else 0
