"""Shared fixtures: an isolated TRACEMARK_HOME and a small tokenizer/model directory."""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
from pathlib import Path

import pytest

#: postgres_server / postgres_url fixtures and the TRACEMARK_TEST_POSTGRES=0 switch.
pytest_plugins = ["tests.support.postgres"]

REPO = Path(__file__).resolve().parents[1]
REFERENCE_MODEL = REPO / "models" / "reference"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own TRACEMARK_HOME; the user's keyring is never touched."""
    home = tmp_path / "tracemark-home"
    monkeypatch.setenv("TRACEMARK_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(autouse=True)
def reproducible_secrets(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Key material in tests comes from a generator seeded by the test's id.

    Many tests assert statistics of freshly made keys (false-positive rates, detection
    power); with truly random keys such a test fails by chance now and then.  Seeding per
    test keeps every run, and every re-run of one failing test, the same.
    """
    rng = random.Random(request.node.nodeid)
    monkeypatch.setattr(secrets, "token_bytes", lambda nbytes=32: rng.randbytes(nbytes))
    monkeypatch.setattr(secrets, "token_hex", lambda nbytes=32: rng.randbytes(nbytes).hex())

    def token_urlsafe(nbytes: int = 32) -> str:
        return base64.urlsafe_b64encode(rng.randbytes(nbytes)).rstrip(b"=").decode()

    monkeypatch.setattr(secrets, "token_urlsafe", token_urlsafe)


def write_word_level_model_dir(directory: Path, words: list[str], vocab_size: int | None = None) -> Path:
    """A tiny model directory: a whitespace word-level tokenizer.json and a config.json (no weights)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "config.json").write_text(json.dumps({"vocab_size": vocab_size or len(vocab)}))
    return directory


@pytest.fixture
def word_model(tmp_path: Path) -> Path:
    """A word-level 'model' directory with a 2,000-word vocabulary."""
    words = [f"w{i}" for i in range(2000)]
    return write_word_level_model_dir(tmp_path / "word-model", words)


def require_oracle(present: bool, what: str) -> None:
    """A cross-check against a test-time oracle: skip on a developer's machine without it, fail in CI.

    ``make test`` installs every oracle, so in CI a missing one means the set-up broke, not
    that the check may be dropped.
    """
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing in CI, where make test installs it")
    pytest.skip(f"{what} is not installed (make test installs it)")
