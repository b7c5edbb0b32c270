"""Running ``tracemark`` in this process from a test: its exit status, what it printed, its JSON output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tracemark.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``tracemark ARGV``: the exit status, stdout and stderr."""
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def run_cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    """``tracemark ARGV --json``: the exit status, the JSON object printed (``{}`` when nothing was) and stderr."""
    status, out, err = run_cli(capsys, *argv, "--json")
    payload: dict[str, Any] = json.loads(out) if out.strip() else {}
    return status, payload, err


def assert_one_line_error(err: str) -> str:
    """The CLI's error contract: one ``tracemark: error:`` line on stderr, no traceback; returns the line."""
    assert err.startswith("tracemark: error: "), err
    assert err.count("\n") == 1, err  # one line, no traceback
    return err
