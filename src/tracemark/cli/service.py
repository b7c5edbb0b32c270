"""``tracemark service``: run the HTTP service and web page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracemark.cli._common import add_json_flag, emit
from tracemark.errors import MissingExtraError
from tracemark.keys import Keyring, mint_api_token


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``service`` and its verbs."""
    parser = subparsers.add_parser("service", help="the HTTP service and web page")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    run = verbs.add_parser("run", help="serve the API and the web page")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--model", type=Path, help="model directory (default: the bundled reference model)")
    run.add_argument("--db", type=Path, help="SQLite database (default: TRACEMARK_HOME/tracemark.sqlite3)")
    run.add_argument("--dev-token", action="store_true", help="mint and print an API token for this session")
    add_json_flag(run)
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise MissingExtraError("the HTTP service", "service") from None
    from tracemark.service import ServiceSettings, create_app

    overrides = {}
    if args.model:
        overrides["model_dir"] = args.model
    if args.db:
        overrides["database"] = args.db
    settings = ServiceSettings(**overrides)
    app = create_app(settings)
    if args.dev_token:
        token = mint_api_token(Keyring(settings.home), label="dev (service run)")
        emit(args, {"url": f"http://{args.host}:{args.port}/", "api_token": token},
             f"tracemark service on http://{args.host}:{args.port}/  (API token for writes: {token})")  # fmt: skip
        sys.stdout.flush()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
