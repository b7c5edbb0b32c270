"""The ``tracemark`` command: ``tracemark <capability> <verb> [--json]``.

The CLI only parses, calls the library and prints.  Any :class:`TracemarkError`
becomes one line on stderr and the error's exit status; no traceback.

Only the capability named on the command line is imported, so a base install
(numpy, scipy, tokenizers, platformdirs, cryptography) runs every command whose
capability it can import, ``tracemark tlog`` starts without scipy, and a command
whose optional dependency is missing prints one line naming the extra to install
(:class:`MissingExtraError`, exit status 5).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from tracemark import __version__
from tracemark.errors import MissingExtraError, TracemarkError


@dataclass(frozen=True)
class _Capability:
    name: str
    help: str


#: Capabilities in the order ``tracemark --help`` lists them; each lives in ``tracemark.cli.<name>``,
#: whose ``register`` uses the same help line (``tests/unit/cli/test_lazy_cli.py`` checks it).
CAPABILITIES = (
    _Capability("keys", "manage the local keyring"),
    _Capability("text", "text watermarks: generate and detect"),
    _Capability("service", "the HTTP service and web page"),
    _Capability("tlog", "transparency log: append, checkpoint, prove, verify, audit, witness"),
    _Capability("electron", "audit Electron apps: settings, IPC sinks, fuses, ASAR, version"),
    _Capability("supply", "model supply chain: scan, sign, verify, bom, deps"),
    _Capability("advisories", "offline OSV advisory database: import an export, fetch one"),
    _Capability("media", "image watermarks and C2PA content credentials: mark, verify"),
    _Capability("theft", "model theft: radioactivity, endpoint identity, weight provenance"),
    _Capability("redteam", "red team: attack our watermarks, probe model endpoints"),
    _Capability("agents", "agent guard: policies, traces, MCP proxy, tool pins, gateway audit, certificates"),
    _Capability("comply", "EU AI Act: Article 50 marking and labelling, Article 12 logs, signed report"),
)

#: Top-level import name of each optional dependency and the extra that installs it.
EXTRA_FOR_MODULE = {
    "torch": "text",
    "transformers": "text",
    "safetensors": "text",
    "fastapi": "service",
    "starlette": "service",
    "uvicorn": "service",
    "orjson": "service",
    "model_signing": "supply",
    "cyclonedx": "supply",
    "packaging": "supply",
    "jsonschema": "supply",
    "tree_sitter": "electron",
    "tree_sitter_javascript": "electron",
    "tree_sitter_typescript": "electron",
    "tree_sitter_html": "electron",
    "mcp": "agents",
    "yaml": "agents",
    "PIL": "media",
    "c2pa": "media",
}


class _CapabilityModule(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def _missing_extra(exc: ModuleNotFoundError, feature: str) -> MissingExtraError | None:
    """The :class:`MissingExtraError` for an optional dependency that failed to import, else None."""
    extra = EXTRA_FOR_MODULE.get((exc.name or "").partition(".")[0])
    return None if extra is None else MissingExtraError(feature, extra)


def _import_capability(name: str) -> _CapabilityModule:
    """``tracemark.cli.<name>``; a missing optional dependency becomes :class:`MissingExtraError`."""
    try:
        module = importlib.import_module(f"tracemark.cli.{name}")
    except ModuleNotFoundError as exc:
        error = _missing_extra(exc, f"'tracemark {name}'")
        if error is None:
            raise
        raise error from None
    return cast(_CapabilityModule, module)


def _add_unavailable(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], capability: _Capability, error: MissingExtraError
) -> None:
    """A capability that cannot be imported: any use of it raises ``error``."""

    def unavailable(_args: argparse.Namespace) -> int:
        raise error

    stub = subparsers.add_parser(capability.name, help=capability.help, add_help=False)
    stub.add_argument("arguments", nargs=argparse.REMAINDER)
    stub.set_defaults(handler=unavailable)


def _parser(selected: str | None, *, everything: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracemark", description="Mark, record and verify AI model output.")
    parser.add_argument("--version", action="version", version=f"tracemark {__version__}")
    capabilities = parser.add_subparsers(dest="capability", required=True, metavar="CAPABILITY")
    for capability in CAPABILITIES:
        if everything or capability.name == selected:
            try:
                _import_capability(capability.name).register(capabilities)
            except MissingExtraError as error:
                if not everything:
                    raise
                _add_unavailable(capabilities, capability, error)
        else:
            # Listed for --help and choice checking; never parsed into, since it is not the one selected.
            capabilities.add_parser(capability.name, help=capability.help)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (capabilities register their own verbs).

    Imports every capability; one whose optional dependency is missing accepts any arguments
    and raises :class:`MissingExtraError` when run.
    """
    return _parser(None, everything=True)


def _selected_capability(argv: Sequence[str]) -> str | None:
    """The capability named on the command line (the top level has only flags without values)."""
    for argument in argv:
        if argument == "--":
            continue
        if not argument.startswith("-"):
            return argument if any(c.name == argument for c in CAPABILITIES) else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    selected = _selected_capability(arguments)
    command = ["tracemark", selected or ""]
    try:
        parser = _parser(selected, everything=False)
        args = parser.parse_args(arguments)
        command.append(getattr(args, "verb", None) or "")
        status: int = args.handler(args)
    except TracemarkError as exc:
        sys.stderr.write(f"tracemark: error: {exc.diagnostics()}\n")
        return exc.exit_code
    except ModuleNotFoundError as exc:
        # A library path that imports an optional dependency without its own MissingExtraError.
        error = _missing_extra(exc, "'" + " ".join(filter(None, command)) + "'")
        if error is None:
            raise
        sys.stderr.write(f"tracemark: error: {error.diagnostics()}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("tracemark: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    return status
