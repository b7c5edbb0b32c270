"""The ``tracemark`` command: ``tracemark <capability> <verb> [--json]``.

The CLI only parses, calls the library and prints.  Any :class:`TracemarkError`
becomes one line on stderr and the error's exit status; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tracemark import __version__
from tracemark.errors import TracemarkError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (capabilities register their own verbs)."""
    from tracemark.cli import electron, keys, media, service, supply, text, theft, tlog

    parser = argparse.ArgumentParser(prog="tracemark", description="Mark, record and verify AI model output.")
    parser.add_argument("--version", action="version", version=f"tracemark {__version__}")
    capabilities = parser.add_subparsers(dest="capability", required=True, metavar="CAPABILITY")
    for module in (keys, text, service, tlog, electron, supply, media, theft):
        module.register(capabilities)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except TracemarkError as exc:
        sys.stderr.write(f"tracemark: error: {exc.diagnostics()}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("tracemark: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    return status
