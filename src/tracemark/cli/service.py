"""``tracemark service``: run the HTTP service and web page."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TypedDict

from tracemark.cli._common import add_json_flag, emit
from tracemark.errors import InvalidInputError, MissingExtraError
from tracemark.keys import DEV_TOKEN_LIFETIME, Keyring, ensure_witness_key, mint_api_token


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``service`` and its verbs."""
    parser = subparsers.add_parser("service", help="the HTTP service and web page")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    run = verbs.add_parser("run", help="serve the API and the web page")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--model", type=Path, help="model directory (default: the bundled reference model)")
    run.add_argument("--model-id", help="model id recorded in the log (default: folder name and a hash of its files)")
    run.add_argument(
        "--db", type=_database, help="SQLite file or postgresql:// URL (default: TRACEMARK_HOME/tracemark.sqlite3)"
    )
    run.add_argument("--workers", type=int, default=1, help="worker processes (default 1; 2 on a 2-core machine)")
    run.add_argument("--allowed-hosts", metavar="NAMES",
                     help="Host names served besides the loopback names and --host, comma-separated ('*': any); "
                          "others get 421 (against DNS rebinding)")  # fmt: skip
    run.add_argument("--dev-token", action="store_true", help="mint and print an API token that expires in 12 hours")
    run.add_argument("--no-preload", action="store_true", help="load the model on the first request, not at start-up")
    run.add_argument("--checkpoint-interval", type=float, metavar="SECONDS",
                     help="least time between published checkpoints (default 1; 0: one per append batch)")  # fmt: skip
    run.add_argument("--witness-policy", type=Path, metavar="FILE",
                     help="witness the policy's 'log' lines at POST /add-checkpoint; publish this log's checkpoints "
                          "once its 'witness' lines reach the 'quorum'")  # fmt: skip
    add_json_flag(run)
    run.set_defaults(handler=_run)


class _Overrides(TypedDict, total=False):
    """The settings ``service run`` takes from its options (the others come from ``TRACEMARK_SERVICE_*``)."""

    preload: bool
    bind_host: str
    allowed_hosts: str
    model_dir: Path
    model_id: str
    database: Path | str
    checkpoint_interval: float


def _database(value: str) -> Path | str:
    """A SQLite path, or a PostgreSQL URL kept as text (a Path would fold its '//')."""
    return value if value.startswith(("postgresql://", "postgres://")) else Path(value)


def _run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise MissingExtraError("the HTTP service", "service") from None
    from tracemark.service import ServiceSettings, create_app

    if not 1 <= args.workers <= 64:
        raise InvalidInputError("--workers must lie in 1..64")
    overrides: _Overrides = {"preload": not args.no_preload, "bind_host": args.host}
    if args.allowed_hosts:
        overrides["allowed_hosts"] = args.allowed_hosts
    if args.model:
        overrides["model_dir"] = args.model
    if args.model_id:
        overrides["model_id"] = args.model_id
    if args.db:
        overrides["database"] = args.db
    if args.checkpoint_interval is not None:
        overrides["checkpoint_interval"] = args.checkpoint_interval
    settings = dataclasses.replace(ServiceSettings.from_environment(), **overrides)
    if args.witness_policy:
        from tracemark.tlog import WitnessPolicy

        policy = WitnessPolicy.load(args.witness_policy)  # a bad policy: one line and exit 6 before serving
        settings = dataclasses.replace(settings, witness_policy=args.witness_policy.resolve())
        if policy.logs:
            vkey = ensure_witness_key(Keyring(settings.home)).vkey
            print(f"witnessing {len(policy.logs)} log key(s) at POST /add-checkpoint as {vkey}", file=sys.stderr)
    url = f"http://{args.host}:{args.port}/"
    if args.dev_token:
        token = mint_api_token(Keyring(settings.home), label="dev (service run)", lifetime=DEV_TOKEN_LIFETIME)
        emit(args, {"url": url, "api_token": token},
             f"tracemark service on {url}  (API token for writes: {token})")  # fmt: skip
    else:
        emit(args, {"url": url}, f"tracemark service on {url}")
    sys.stdout.flush()
    if args.workers == 1:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning", access_log=False)
        return 0
    # Worker processes build their own app from the settings, passed through the environment.
    os.environ.update(settings.to_environment())
    uvicorn.run("tracemark.service._app:create_app_from_environment", factory=True, workers=args.workers,
                host=args.host, port=args.port, log_level="warning", access_log=False)  # fmt: skip
    return 0
