"""``tracemark advisories``: build the offline OSV database that ``supply deps`` and ``electron audit`` read."""

from __future__ import annotations

import argparse
import datetime

from tracemark.cli._common import add_json_flag, emit
from tracemark.errors import InvalidInputError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("advisories", help="offline OSV advisory database: import an export, fetch one")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    imported = verbs.add_parser("import", help="add an OSV export zip you downloaded (validated first)")
    imported.add_argument("export", metavar="ZIP", help="an ecosystem's OSV all.zip")
    _common(imported)
    imported.add_argument(
        "--exported", metavar="TIME", help="when the export was made, ISO 8601 (default: its newest record)"
    )
    imported.set_defaults(handler=_import)

    fetch = verbs.add_parser("fetch", help="download an ecosystem's OSV export and import it (network)")
    _common(fetch)
    fetch.add_argument("--url", help="download from this mirror instead of osv-vulnerabilities.storage.googleapis.com")
    fetch.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server (default: 60)")
    fetch.set_defaults(handler=_fetch)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ecosystem", required=True, choices=("PyPI", "npm"), help="whose advisories these are")
    parser.add_argument("--db", required=True, metavar="DIR", help="the database folder (created when missing)")
    add_json_flag(parser)


def _time(text: str | None) -> datetime.datetime | None:
    if text is None:
        return None
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"--exported {text!r}: not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def _import(args: argparse.Namespace) -> int:
    from tracemark.advisories import import_export

    result = import_export(args.export, args.db, ecosystem=args.ecosystem, exported=_time(args.exported))
    emit(args, dict(result.to_json()), _summary(result.ecosystem, result.records, result.exported, args.db))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from tracemark.advisories import fetch_export

    result = fetch_export(args.db, ecosystem=args.ecosystem, url=args.url, timeout=args.timeout)
    emit(args, dict(result.to_json()), _summary(result.ecosystem, result.records, result.exported, args.db))
    return 0


def _summary(ecosystem: str, records: int, exported: datetime.datetime, database: str) -> str:
    return f"imported {records} {ecosystem} advisories (exported {exported.isoformat()}) into {database}"
