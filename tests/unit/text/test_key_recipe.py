"""Every scheme's ``new_key`` makes the same records as before the recipe became one template method."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from tracemark.text._schemes import scheme_class

VECTORS = json.loads((Path(__file__).parents[2] / "fixtures" / "text" / "key_recipe.json").read_text())


def _seeded_source(label: str) -> bytes:
    return hashlib.sha256(b"tracemark key-recipe vector\n" + label.encode()).digest()


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda case: f"{case['scheme']}-{case['scheme_version']}")
def test_new_key_matches_recorded_record(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    counter = itertools.count()

    def token_hex(nbytes: int = 32) -> str:
        return hashlib.sha256(f"nonce {next(counter)}".encode()).hexdigest()[: 2 * nbytes]

    monkeypatch.setattr(secrets, "token_hex", token_hex)
    extra = {"scheme_version": case["scheme_version"]} if case["scheme_version"] else {}
    key = scheme_class(case["scheme"]).new_key(
        secret_source=_seeded_source,
        vocab_size=32000,
        tokenizer_sha256="ab" * 32,
        params=case["params"],
        label="vector",
        **extra,
    )
    key = dataclasses.replace(key, created_at=case["record"]["created_at"])
    assert key.to_json() == json.dumps(case["record"], sort_keys=True, indent=2).encode() + b"\n"
