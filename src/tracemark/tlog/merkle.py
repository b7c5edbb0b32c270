"""RFC 9162 Merkle tree primitives (raw building blocks; prefer the recipes in :mod:`tracemark.tlog`).

Hashing (§2.1.1), inclusion proofs (§2.1.3) and consistency proofs (§2.1.4), with proofs
generated from a node store in ``O(log n)`` reads and verifiers that raise
:class:`~tracemark.errors.InclusionProofError` / :class:`~tracemark.errors.ConsistencyProofError`.
"""

from tracemark.tlog._merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_PROOF_HASHES,
    MAX_TREE_SIZE,
    CompactRange,
    Hash,
    NodeAddress,
    as_hash,
    consistency_subtrees,
    hash_children,
    hash_leaf,
    inclusion_subtrees,
    node_id,
    prove_consistency,
    prove_inclusion,
    range_nodes,
    root_from_inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_PROOF_HASHES",
    "MAX_TREE_SIZE",
    "CompactRange",
    "Hash",
    "NodeAddress",
    "as_hash",
    "consistency_subtrees",
    "hash_children",
    "hash_leaf",
    "inclusion_subtrees",
    "node_id",
    "prove_consistency",
    "prove_inclusion",
    "range_nodes",
    "root_from_inclusion_proof",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]
