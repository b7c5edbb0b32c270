"""Cross-check inclusion proofs with sigstore-python's Merkle verifier on thousands of random trees.

sigstore's verifier is a private API (``sigstore._internal.merkle``), so the test pins
nothing at import time.  sigstore is a development dependency: outside CI a checkout
without it skips; under CI, where make test installs it, its absence fails the run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import require_oracle
from tests.unit.tlog import _reference as ref
from tracemark.errors import InclusionProofError
from tracemark.tlog.merkle import CompactRange, NodeAddress, hash_leaf, prove_inclusion, verify_inclusion

try:
    import sigstore._internal.merkle as _oracle
    import sigstore.errors as _sigstore_errors
except ImportError:
    _oracle = _sigstore_errors = None  # type: ignore[assignment]

oracle: Any = _oracle
sigstore_errors: Any = _sigstore_errors


@pytest.fixture(autouse=True)
def _sigstore_present() -> None:
    require_oracle(oracle is not None, "sigstore (test-only Merkle oracle)")


TREES = 2000


def _sigstore_entry(body: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> Any:
    inclusion = SimpleNamespace(log_index=index, tree_size=size, hashes=proof, root_hash=root)
    return SimpleNamespace(_inner=SimpleNamespace(canonicalized_body=body, inclusion_proof=inclusion))


def _reader(nodes: dict[NodeAddress, bytes]) -> Callable[[Sequence[NodeAddress]], Mapping[NodeAddress, bytes]]:
    return lambda ids: {i: nodes[i] for i in ids}


def test_inclusion_proofs_agree_with_sigstore_on_random_trees() -> None:
    rng = random.Random(20240917)
    checked = rejected = 0
    for _ in range(TREES):
        size = rng.randrange(1, 300)
        bodies = [i.to_bytes(4, "big") + rng.randbytes(rng.randrange(0, 24)) for i in range(size)]
        nodes: dict[NodeAddress, bytes] = {}
        compact = CompactRange()
        for i, body in enumerate(bodies):
            leaf = hash_leaf(body)
            nodes[NodeAddress(0, i)] = leaf
            nodes.update((NodeAddress(level, j), value) for level, j, value in compact.append(leaf))
        root = compact.root()
        index = rng.randrange(size)
        proof: list[bytes] = list(prove_inclusion(index, size, _reader(nodes)))
        # Both accept the genuine proof (sigstore hashes the body itself).
        oracle.verify_merkle_inclusion(_sigstore_entry(bodies[index], index, size, proof, root))
        verify_inclusion(index, size, hash_leaf(bodies[index]), proof, root)
        checked += 1
        # Both reject the same tampering: a flipped bit, or a proof for another index.
        if proof:
            tampered = list(proof)
            position = rng.randrange(len(tampered))
            flipped = bytearray(tampered[position])
            flipped[rng.randrange(32)] ^= 1 << rng.randrange(8)
            tampered[position] = bytes(flipped)
            with pytest.raises(sigstore_errors.VerificationError):
                oracle.verify_merkle_inclusion(_sigstore_entry(bodies[index], index, size, tampered, root))
            with pytest.raises(InclusionProofError):
                verify_inclusion(index, size, hash_leaf(bodies[index]), tampered, root)
            rejected += 1
        if size > 1:
            other = (index + 1 + rng.randrange(size - 1)) % size
            with pytest.raises(sigstore_errors.VerificationError):
                oracle.verify_merkle_inclusion(_sigstore_entry(bodies[other], index, size, proof, root))
            with pytest.raises(InclusionProofError):
                verify_inclusion(index, size, hash_leaf(bodies[other]), proof, root)
    assert checked == TREES
    assert rejected > TREES * 0.9


def test_sigstore_and_the_rfc_recursion_agree_on_small_trees() -> None:
    rng = random.Random(5)
    for size in range(1, 40):
        bodies = [rng.randbytes(8) for _ in range(size)]
        leaves = [ref.leaf(b) for b in bodies]
        root = ref.mth(leaves)
        for index in range(size):
            proof = ref.path(index, leaves)
            inner, border = oracle._decomp_inclusion_proof(index, size)
            assert inner + border == len(proof)
            chained = oracle._chain_border_right(
                oracle._chain_inner(leaves[index], proof[:inner], index), proof[inner:]
            )
            assert chained == root
