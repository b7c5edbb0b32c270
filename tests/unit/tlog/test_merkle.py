"""RFC 9162 primitives: known answers, a recursive reference on random trees, proofs, pitfalls."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence

import pytest

from tests.unit.tlog import _reference as ref
from tracemark.errors import ConsistencyProofError, InclusionProofError, TlogFormatError
from tracemark.tlog.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeAddress,
    hash_children,
    hash_leaf,
    node_id,
    prove_consistency,
    prove_inclusion,
    range_nodes,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# transparency-dev/merkle testonly/constants.go: the leaves and a few of their roots.
KAT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
KAT_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


class NodeStore:
    """Perfect nodes of a tree built with CompactRange, and a read counter."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.reads = 0
        compact = CompactRange()
        for index, leaf in enumerate(leaf_hashes):
            self.nodes[(0, index)] = leaf
            self.nodes.update(((level, i), value) for level, i, value in compact.append(leaf))
        self.root = compact.root()

    def read(self, nodes: Sequence[NodeAddress]) -> Mapping[NodeAddress, bytes]:
        self.reads += 1
        return {n: self.nodes[(n.level, n.index)] for n in nodes if (n.level, n.index) in self.nodes}


def random_leaves(rng: random.Random, n: int) -> list[bytes]:
    return [hash_leaf(rng.randbytes(rng.randrange(0, 40))) for _ in range(n)]


def test_known_answers() -> None:
    leaves = [hash_leaf(bytes.fromhex(x)) for x in KAT_LEAVES]
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for size, expected in KAT_ROOTS.items():
        assert root_hash(leaves[:size]).hex() == expected
    for size in range(len(leaves) + 1):
        assert root_hash(leaves[:size]) == ref.mth(leaves[:size])


def test_roots_match_the_recursive_definition_on_random_trees() -> None:
    rng = random.Random(9162)
    sizes = [*range(0, 130), *(rng.randrange(130, 3000) for _ in range(40))]
    for size in sizes:
        leaves = random_leaves(rng, size)
        assert root_hash(leaves) == ref.mth(leaves), size


def test_node_ids_are_post_order_and_dense() -> None:
    compact = CompactRange()
    produced: list[int] = []
    for i in range(1000):
        produced.append(node_id(0, i))
        produced.extend(node_id(level, index) for level, index, _ in compact.append(hash_leaf(i.to_bytes(4, "big"))))
    assert produced == list(range(len(produced)))
    assert node_id(0, 0) == 0
    assert node_id(1, 0) == 2
    assert node_id(2, 0) == 6
    assert NodeAddress(3, 5).node_id == node_id(3, 5)


def test_range_nodes_cover_the_range() -> None:
    for start_level in range(6):
        for size in range(1, 1 << start_level):
            start = 5 << start_level
            pieces = range_nodes(start, start + size)
            covered = [leaf for piece in pieces for leaf in range(piece.start, piece.end)]
            assert covered == list(range(start, start + size))


def test_proofs_match_the_rfc_recursion_for_every_index_and_size() -> None:
    rng = random.Random(6962)
    leaves = random_leaves(rng, 70)
    store = NodeStore(leaves)
    for size in range(1, 71):
        root = ref.mth(leaves[:size])
        for index in range(size):
            proof = prove_inclusion(index, size, store.read)
            assert proof == ref.path(index, leaves[:size])
            verify_inclusion(index, size, leaves[index], proof, root)
        for old in range(1, size + 1):
            proof = prove_consistency(old, size, store.read)
            assert proof == ref.proof(old, leaves[:size])
            verify_consistency(old, size, ref.mth(leaves[:old]), root, proof)


def test_proofs_read_the_store_once() -> None:
    rng = random.Random(1)
    store = NodeStore(random_leaves(rng, 5000))
    store.reads = 0
    prove_inclusion(1234, 4999, store.read)
    prove_consistency(777, 4999, store.read)
    assert store.reads == 2


def test_every_mutation_of_a_valid_proof_is_rejected() -> None:
    rng = random.Random(7)
    leaves = random_leaves(rng, 23)
    root = ref.mth(leaves)
    for index in range(23):
        proof = ref.path(index, leaves)
        for position in range(len(proof)):
            for bit in (0, 7, 255):
                mutated = list(proof)
                changed = bytearray(mutated[position])
                changed[bit % 32] ^= 1 << (bit % 8)
                mutated[position] = bytes(changed)
                with pytest.raises(InclusionProofError):
                    verify_inclusion(index, 23, leaves[index], mutated, root)
        with pytest.raises(InclusionProofError):
            verify_inclusion(index, 23, leaves[index], [*proof, proof[-1]], root)
        with pytest.raises(InclusionProofError):
            verify_inclusion(index, 23, leaves[index], proof[:-1], root)
        with pytest.raises(InclusionProofError):
            verify_inclusion(index, 46, leaves[index], proof, root)
        with pytest.raises(InclusionProofError):
            verify_inclusion((index + 1) % 23, 23, leaves[index], proof, root)
    for old in range(1, 23):
        proof = ref.proof(old, leaves)
        old_root = ref.mth(leaves[:old])
        for position in range(len(proof)):
            mutated = list(proof)
            mutated[position] = hash_children(mutated[position], b"x")
            with pytest.raises(ConsistencyProofError):
                verify_consistency(old, 23, old_root, root, mutated)
        with pytest.raises(ConsistencyProofError):
            verify_consistency(old, 23, old_root, root, [*proof, proof[0]])
        with pytest.raises(ConsistencyProofError):
            verify_consistency(old, 23, ref.mth(leaves[: old - 1]), root, proof)
        with pytest.raises(ConsistencyProofError):
            verify_consistency(old, 22, old_root, ref.mth(leaves[:22]), proof)


class TestPitfalls:
    """The bugs other implementations shipped (research notes A2)."""

    def test_hashes_must_be_32_bytes(self) -> None:
        empty = b""
        # An empty root and an empty leaf must not "verify" at size 1.
        with pytest.raises(InclusionProofError, match="32"):
            verify_inclusion(0, 1, empty, [], empty)
        leaves = random_leaves(random.Random(2), 4)
        proof = ref.path(1, leaves)
        with pytest.raises(InclusionProofError, match="not 32 bytes"):
            verify_inclusion(1, 4, leaves[1], [proof[0][:31], proof[1]], ref.mth(leaves))
        with pytest.raises(InclusionProofError):
            verify_inclusion(1, 4, leaves[1] + b"\x00", proof, ref.mth(leaves))
        with pytest.raises(ConsistencyProofError, match="32"):
            verify_consistency(1, 4, leaves[0][:16], ref.mth(leaves), ref.proof(1, leaves))

    def test_huge_proofs_are_refused_before_hashing(self) -> None:
        huge = [b"\x00" * 32] * 10_000
        with pytest.raises(InclusionProofError, match="no valid proof has more than 64"):
            verify_inclusion(3, 2**40, b"\x00" * 32, huge, b"\x00" * 32)
        with pytest.raises(ConsistencyProofError, match="no valid proof has more than 64"):
            verify_consistency(3, 2**40, b"\x00" * 32, b"\x00" * 32, huge)

    def test_index_and_size_bounds(self) -> None:
        zero = b"\x00" * 32
        for index, size in [(0, 0), (5, 5), (6, 5), (-1, 5)]:
            with pytest.raises(InclusionProofError):
                verify_inclusion(index, size, zero, [], zero)
        with pytest.raises(InclusionProofError):
            verify_inclusion(0, 2**64, zero, [], zero)
        with pytest.raises(ConsistencyProofError):
            verify_consistency(5, 4, zero, zero, [])

    def test_equal_sizes(self) -> None:
        root = b"\x01" * 32
        verify_consistency(7, 7, root, root, [])
        with pytest.raises(ConsistencyProofError):
            verify_consistency(7, 7, root, b"\x02" * 32, [])
        with pytest.raises(ConsistencyProofError):
            verify_consistency(7, 7, root, root, [root])

    def test_compact_range_rejects_a_wrong_border(self) -> None:
        with pytest.raises(TlogFormatError):
            CompactRange(3, [b"\x00" * 32])
        with pytest.raises(TlogFormatError):
            CompactRange(1, [b"\x00" * 31])


class TestSizeZeroPolicy:
    """docs/tlog.md: from size 0 an empty proof is accepted iff the old root is SHA-256("")."""

    def test_empty_proof_from_the_empty_tree_is_accepted(self) -> None:
        leaves = random_leaves(random.Random(3), 9)
        for size in range(10):
            verify_consistency(0, size, EMPTY_ROOT, ref.mth(leaves[:size]), [])

    def test_a_non_empty_proof_from_zero_is_refused(self) -> None:
        with pytest.raises(ConsistencyProofError, match="must be empty"):
            verify_consistency(0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])

    def test_the_old_root_must_be_the_empty_hash(self) -> None:
        with pytest.raises(ConsistencyProofError, match="empty string"):
            verify_consistency(0, 3, b"\x00" * 32, b"\x01" * 32, [])
        with pytest.raises(ConsistencyProofError):
            verify_consistency(0, 0, b"\x00" * 32, b"\x00" * 32, [])

    def test_proof_generation_from_zero_is_empty(self) -> None:
        store = NodeStore(random_leaves(random.Random(4), 5))
        assert prove_consistency(0, 5, store.read) == []
