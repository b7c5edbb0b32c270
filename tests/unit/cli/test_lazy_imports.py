"""The CLI imports only the capability it runs, and a missing extra is one line and exit 5.

Each check runs in a fresh interpreter, since this test process has imported everything.
Missing extras are simulated by an import hook that refuses their modules (``sys.modules[name] = None``
would not do: scipy looks into ``sys.modules`` for torch); the install matrix
(``scripts/ci/install_matrix.py``) checks the same on real installs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REFERENCE_MODEL
from tracemark.cli import build_parser
from tracemark.cli._main import CAPABILITIES, EXTRA_FOR_MODULE

HEAVY = ("PIL", "scipy", "torch", "transformers", "fastapi", "tree_sitter", "c2pa", "model_signing")

_PROBE = """
import json, sys
blocked = set(json.loads(sys.argv[1]))

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
from tracemark.cli import main
try:
    status = main(sys.argv[2:])
except SystemExit as exc:
    status = exc.code
heavy = sorted({name.partition(".")[0] for name in sys.modules if sys.modules[name] is not None})
print(json.dumps({"status": status, "imported": heavy}), file=sys.__stderr__)
"""


def probe(*argv: str, blocked: tuple[str, ...] = ()) -> tuple[int, set[str], str]:
    """Run the CLI in a fresh interpreter: exit status, top-level modules imported, other stderr lines."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(blocked)), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    *errors, last = done.stderr.strip().splitlines()
    result: dict[str, Any] = json.loads(last)
    return int(result["status"] or 0), set(result["imported"]), "\n".join(errors)


def test_version_imports_no_heavy_module() -> None:
    status, imported, _ = probe("--version")
    assert status == 0
    assert imported.isdisjoint(HEAVY), imported & set(HEAVY)


@pytest.mark.parametrize(
    "argv", [("tlog", "--help"), ("keys", "list"), ("--help",), ("media", "--help"), ("media", "verify", "--help")]
)
def test_commands_without_statistics_skip_scipy(argv: tuple[str, ...]) -> None:
    status, imported, _ = probe(*argv)
    assert status == 0
    assert imported.isdisjoint(HEAVY), imported & set(HEAVY)


def test_media_help_works_without_the_media_extra() -> None:
    """Only running a verb needs Pillow and c2pa (the missing-extra cases below); asking for help does not."""
    status, imported, errors = probe("media", "mark", "--help", blocked=_OPTIONAL)
    assert status == 0, errors
    assert imported.isdisjoint(HEAVY), imported & set(HEAVY)


def test_every_capability_help_line_matches_its_module() -> None:
    parser = build_parser()
    capabilities: Any = next(a for a in parser._actions if a.dest == "capability")
    registered = {action.dest: action.help for action in capabilities._choices_actions}
    assert registered == {c.name: c.help for c in CAPABILITIES}


_OPTIONAL = tuple(EXTRA_FOR_MODULE)


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (("text", "generate", "--model", "{model}", "--prompt", "hi"), "text"),
        (("service", "run"), "service"),
        (("supply", "sign", "{model}", "--signature", "{tmp}/s", "--private-key", "{tmp}/k.pem"), "supply"),
        (("supply", "bom", "{model}"), "supply"),
        (("electron", "audit", "{tmp}"), "electron"),
        (("media", "verify", "{tmp}/x.png"), "media"),
        (("media", "mark", "{tmp}/x.png", "{tmp}/y.png"), "media"),
        (
            ("theft", "identify", "--endpoint-model", "{model}", "--reference", "a={model}", "--prompts", "{model}"),
            "text",
        ),
    ],
)
def test_missing_extra_is_one_line_and_exit_5(
    argv: tuple[str, ...], extra: str, word_model: Path, tmp_path: Path
) -> None:
    if argv[0] == "text":  # generation looks up its key before it needs torch
        status, _, errors = probe("keys", "init", "--model", str(word_model), blocked=_OPTIONAL)
        assert status == 0, errors
    filled = [
        a.format(model=word_model, tmp=tmp_path, reference=REFERENCE_MODEL, prompts=word_model / "config.json")
        for a in argv
    ]
    status, _, errors = probe(*filled, blocked=_OPTIONAL)
    assert status == 5, errors
    assert len(errors.splitlines()) == 1, errors
    assert errors.startswith("tracemark: error: ")
    assert errors.endswith(f"pip install 'tracemark[{extra}]'")


def test_weight_provenance_runs_without_any_extra() -> None:
    # safetensors checkpoints are read by tracemark's own header parser, tensor by tensor (no torch)
    status, imported, errors = probe("theft", "weights", str(REFERENCE_MODEL), str(REFERENCE_MODEL), blocked=_OPTIONAL)
    assert status == 0, errors
    assert not {"torch", "safetensors", "transformers"} & imported


def test_base_detection_runs_without_any_extra(word_model: Path, tmp_path: Path) -> None:
    status, _, errors = probe("keys", "init", "--model", str(word_model), blocked=_OPTIONAL)
    assert status == 0, errors
    text = tmp_path / "plain.txt"
    text.write_text(" ".join(f"w{i}" for i in range(0, 400, 7)))
    status, imported, errors = probe("text", "detect", "--model", str(word_model), str(text), blocked=_OPTIONAL)
    assert status == 0, errors
    assert "scipy" in imported  # the exact p-value needs it; nothing optional was reachable
