"""transparency-dev/merkle's test vectors: every valid proof accepted, every mutated one rejected.

The vectors are a copy, unchanged, in ``tests/vectors/transparency-dev-merkle`` (Apache-2.0,
see its SOURCE.md and LICENSE), so every clone runs them.
Size-0 consistency cases all carry roots that are not 32 bytes (or a non-empty proof), so
our size-0 policy (docs/tlog.md) rejects them just as transparency-dev/merkle does.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tracemark.errors import ConsistencyProofError, InclusionProofError
from tracemark.tlog.merkle import verify_consistency, verify_inclusion

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO / "tests" / "vectors" / "transparency-dev-merkle" / "testdata"


def _files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


INCLUSION = _files("inclusion")
CONSISTENCY = _files("consistency")


def test_the_corpus_is_complete() -> None:
    assert len(INCLUSION) >= 90
    assert len(CONSISTENCY) >= 90
    valid = sum(not _load(p)["wantErr"] for p in INCLUSION + CONSISTENCY)
    invalid = sum(bool(_load(p)["wantErr"]) for p in INCLUSION + CONSISTENCY)
    assert valid >= 10
    assert invalid >= 150


@pytest.mark.parametrize("path", INCLUSION, ids=_id)
def test_inclusion_vector(path: Path) -> None:
    case = _load(path)
    proof = [_b64(h) for h in case["proof"] or []]
    args = (case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), proof, _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(InclusionProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", CONSISTENCY, ids=_id)
def test_consistency_vector(path: Path) -> None:
    case = _load(path)
    proof = [_b64(h) for h in case["proof"] or []]
    args = (case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), proof)
    if case["wantErr"]:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)
