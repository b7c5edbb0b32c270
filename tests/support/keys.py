"""Test keys that are fixed by the running test, so a statistical assertion gives the same answer on every run."""

from __future__ import annotations

import hashlib
import os

_draws: dict[str, int] = {}


def fixed_secret(label: str) -> bytes:
    """A 32-byte secret from the current test's id and how many secrets it drew before: distinct keys within a
    test, the same keys on every run and every machine (a random key made a margin-thin assertion flaky in CI)."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "outside-a-test").rsplit(" ", 1)[0]
    draw = _draws[test] = _draws.get(test, 0) + 1
    return hashlib.sha256(f"{test}\x00{draw}\x00{label}".encode()).digest()
