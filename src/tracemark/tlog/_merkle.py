"""RFC 9162 Merkle tree primitives: hashing, roots, proof planning, proof verification.

These are raw building blocks.  Most callers want the recipes in :mod:`tracemark.tlog`
(:class:`~tracemark.tlog.TransparencyLog`, :func:`~tracemark.tlog.verify_receipt`), which
check whole receipts and checkpoints under a key policy.

Addressing.  A *perfect* subtree of ``2**level`` leaves starting at leaf ``index * 2**level``
is named ``NodeAddress(level, index)``.  Its hash never changes once the tree has grown past
it, so a log stores exactly these nodes.  ``node_id`` numbers them in the order they are
completed while appending (post-order), so a node table keyed by it only grows at its end.
Every subtree an RFC 9162 proof refers to is either perfect or lies on the tree's right
border; a right-border subtree's hash is folded from at most ``log2(n)`` perfect nodes.
Producing a proof is therefore ``O(log n)`` node reads, done in one batch.

Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency) literally,
checks that every hash is exactly 32 bytes, and raises :class:`InclusionProofError` or
:class:`ConsistencyProofError` with a reason; it never returns ``False``.  (One exception to
the length check, as in transparency-dev/merkle: two trees of the same non-zero size are
"consistent" exactly when their roots are the same bytes, since nothing else is proven.)

Consistency from tree size 0 (a policy choice, see ``docs/tlog.md``): accepted when the
proof is empty and the old root is the empty-tree hash ``SHA-256("")``, as in the C2SP
tlog-witness protocol; transparency-dev/merkle rejects it instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NewType

from tracemark.errors import ConsistencyProofError, InclusionProofError, TlogFormatError

#: A 32-byte SHA-256 Merkle tree hash (leaf, interior node or root).
Hash = NewType("Hash", bytes)

HASH_SIZE = 32

#: RFC 9162 §2.1.1: the hash of an empty tree is the hash of the empty string.
EMPTY_ROOT = Hash(hashlib.sha256(b"").digest())

#: Tree sizes are unsigned 64-bit integers (tlog-checkpoint, tlog-proof); proofs are at most 64 hashes.
MAX_TREE_SIZE = 2**63 - 1
MAX_PROOF_HASHES = 64

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def hash_leaf(data: bytes) -> Hash:
    """RFC 9162 §2.1.1: ``SHA-256(0x00 || data)``."""
    return Hash(hashlib.sha256(_LEAF_PREFIX + data).digest())


def hash_children(left: bytes, right: bytes) -> Hash:
    """RFC 9162 §2.1.1: ``SHA-256(0x01 || left || right)``."""
    return Hash(hashlib.sha256(_NODE_PREFIX + left + right).digest())


def as_hash(value: bytes, what: str = "hash") -> Hash:
    """Check that ``value`` is exactly 32 bytes and type it as a :data:`Hash`."""
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise TlogFormatError(f"{what} must be {HASH_SIZE} bytes, got {size}")
    return Hash(bytes(value))


def _largest_power_of_two_below(n: int) -> int:
    """RFC 9162 §2.1.1: k, the largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """A perfect subtree: ``2**level`` leaves starting at leaf ``index << level``."""

    level: int
    index: int

    @property
    def node_id(self) -> int:
        """Post-order number: how many perfect nodes are completed before this one while appending."""
        return ((self.index + 1) << (self.level + 1)) - self.index.bit_count() - 2

    @property
    def start(self) -> int:
        """First leaf covered."""
        return self.index << self.level

    @property
    def end(self) -> int:
        """One past the last leaf covered."""
        return (self.index + 1) << self.level


def node_id(level: int, index: int) -> int:
    """Post-order id of the perfect node at ``(level, index)``."""
    return ((index + 1) << (level + 1)) - index.bit_count() - 2


def range_nodes(start: int, end: int) -> list[NodeAddress]:
    """Perfect nodes whose concatenation is leaves ``[start, end)``, largest (leftmost) first.

    ``start`` must be a multiple of every piece: true for the whole tree (``start == 0``)
    and for every subtree an RFC 9162 proof names.
    """
    pieces: list[NodeAddress] = []
    size = end - start
    position = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            pieces.append(NodeAddress(level, position >> level))
            position += 1 << level
    return pieces


def fold_range(hashes: Sequence[bytes]) -> Hash:
    """Hash of a subtree from its :func:`range_nodes` hashes (RFC 9162 §2.1.1 split, right to left)."""
    if not hashes:
        return EMPTY_ROOT
    accumulator = hashes[-1]
    for piece in reversed(hashes[:-1]):
        accumulator = hash_children(piece, accumulator)
    return Hash(accumulator)


def root_hash(leaf_hashes: Sequence[bytes]) -> Hash:
    """MTH over leaf hashes (RFC 9162 §2.1.1), computed with a compact range in O(n)."""
    compact = CompactRange()
    for leaf in leaf_hashes:
        compact.append(leaf)
    return compact.root()


# -- proof planning ----------------------------------------------------------------------------

Subtree = tuple[int, int]


def inclusion_subtrees(index: int, size: int) -> list[Subtree]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]): the subtrees whose hashes form the proof, leaf side first."""
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is outside a tree of size {size}")
    path: list[Subtree] = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if index < start + k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
    path.reverse()
    return path


def consistency_subtrees(old_size: int, new_size: int) -> list[Subtree]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true), in proof order."""
    if not 0 <= old_size <= new_size:
        raise ConsistencyProofError(f"cannot prove consistency from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        # Equal sizes: the empty proof; from 0: the empty proof (our documented policy).
        return []
    path: list[Subtree] = []
    start, end = 0, new_size
    m = old_size
    whole = True  # SUBPROOF's flag b: is the subtree D[0:m] a complete prefix named by the old root?
    while True:
        n = end - start
        if m == n:
            if not whole:
                path.append((start, end))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
            m -= k
            whole = False
    path.reverse()
    return path


def subtree_nodes(subtrees: Iterable[Subtree]) -> list[list[NodeAddress]]:
    """The perfect nodes each subtree is folded from."""
    return [range_nodes(start, end) for start, end in subtrees]


#: Reads stored perfect nodes: returns the hashes of those among the addresses it holds.
NodeReader = Callable[[Sequence[NodeAddress]], Mapping[NodeAddress, bytes]]


def fold_plans(plans: Sequence[Sequence[NodeAddress]], found: Mapping[NodeAddress, bytes]) -> list[Hash]:
    """Fold each plan's node hashes (from ``found``) into its subtree hash."""
    hashes: list[Hash] = []
    for plan in plans:
        pieces: list[bytes] = []
        for node in plan:
            value = found.get(node)
            if value is None:
                raise TlogFormatError(f"node ({node.level}, {node.index}) is missing from the store")
            pieces.append(value)
        hashes.append(fold_range(pieces))
    return hashes


def resolve_subtrees(subtrees: Sequence[Subtree], read_nodes: NodeReader) -> list[Hash]:
    """Hashes of ``subtrees``, reading every perfect node they need in one call."""
    plans = subtree_nodes(subtrees)
    wanted = sorted({node for plan in plans for node in plan}, key=lambda n: (n.level, n.index))
    found = read_nodes(wanted) if wanted else {}
    return fold_plans(plans, found)


def prove_inclusion(index: int, size: int, read_nodes: NodeReader) -> list[Hash]:
    """RFC 9162 §2.1.3.1: the inclusion proof for leaf ``index`` in the tree of ``size`` leaves."""
    return resolve_subtrees(inclusion_subtrees(index, size), read_nodes)


def prove_consistency(old_size: int, new_size: int, read_nodes: NodeReader) -> list[Hash]:
    """RFC 9162 §2.1.4.1: the consistency proof from ``old_size`` to ``new_size``."""
    return resolve_subtrees(consistency_subtrees(old_size, new_size), read_nodes)


# -- verification ------------------------------------------------------------------------------


def _check_hashes(proof: Sequence[bytes], error: type[InclusionProofError | ConsistencyProofError]) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise error(f"proof has {len(proof)} hashes; no valid proof has more than {MAX_PROOF_HASHES}")
    for position, value in enumerate(proof):
        if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
            raise error(f"proof hash {position} is not {HASH_SIZE} bytes")


def _check_size(size: int, what: str, error: type[InclusionProofError | ConsistencyProofError]) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        raise error(f"{what} {size!r} is not a tree size (0 to 2^63-1)")


def root_from_inclusion_proof(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> Hash:
    """RFC 9162 §2.1.3.2 steps 1-5: the root that ``proof`` implies; raises if the proof is malformed."""
    _check_size(size, "tree size", InclusionProofError)
    _check_size(index, "leaf index", InclusionProofError)
    if index >= size:
        raise InclusionProofError(f"leaf index {index} is not below tree size {size}")
    if len(leaf_hash) != HASH_SIZE:
        raise InclusionProofError(f"leaf hash is {len(leaf_hash)} bytes, not {HASH_SIZE}")
    _check_hashes(proof, InclusionProofError)
    # The proof length is fixed by (index, size): reject a wrong length before hashing anything.
    inner = (index ^ (size - 1)).bit_length()
    expected = inner + (index >> inner).bit_count()
    if len(proof) != expected:
        raise InclusionProofError(f"proof has {len(proof)} hashes; index {index} in size {size} needs {expected}")
    # RFC 9162 §2.1.3.2 step 2: fn = leaf_index, sn = tree_size - 1, r = hash.
    fn, sn = index, size - 1
    r = bytes(leaf_hash)
    for p in proof:
        # Step 3a: if sn is 0, fail.
        if sn == 0:
            raise InclusionProofError("proof is longer than the path to the root")
        # Step 3b: if LSB(fn) is set or fn == sn, the proof hash is on the left.
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            # Step 3b.ii: shift until LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            # Step 3c: the proof hash is on the right.
            r = hash_children(r, p)
        # Step 3d: shift once.
        fn >>= 1
        sn >>= 1
    # Step 4: sn must be 0 at the end.
    if sn != 0:
        raise InclusionProofError("proof is shorter than the path to the root")
    return Hash(r)


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: check that leaf ``index`` with ``leaf_hash`` is in the tree ``(size, root)``.

    Raises :class:`~tracemark.errors.InclusionProofError` with the reason on any failure.
    """
    if len(root) != HASH_SIZE:
        raise InclusionProofError(f"root hash is {len(root)} bytes, not {HASH_SIZE}")
    computed = root_from_inclusion_proof(index, size, leaf_hash, proof)
    # Step 5: compare with the root hash.
    if computed != root:
        raise InclusionProofError(f"inclusion proof for index {index} does not lead to the root of size {size}")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: check that tree ``(old_size, old_root)`` is a prefix of ``(new_size, new_root)``.

    Raises :class:`~tracemark.errors.ConsistencyProofError` with the reason on any failure.
    """
    _check_size(old_size, "old size", ConsistencyProofError)
    _check_size(new_size, "new size", ConsistencyProofError)
    _check_hashes(proof, ConsistencyProofError)
    if old_size > new_size:
        raise ConsistencyProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size and old_size > 0:
        _check_same_tree(old_size, old_root, new_root, proof)
        return
    if len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        raise ConsistencyProofError(f"root hashes must be {HASH_SIZE} bytes")
    if old_size == 0:
        _check_from_empty_tree(new_size, old_root, new_root, proof)
        return
    first_hash, second_hash = _roots_from_consistency_proof(old_size, new_size, old_root, proof)
    # Step 7: fr must equal first_hash, sr second_hash (sn == 0 is checked with the path).
    if first_hash != old_root:
        raise ConsistencyProofError(f"proof does not match the old root of size {old_size}")
    if second_hash != new_root:
        raise ConsistencyProofError(f"proof does not match the new root of size {new_size}")


def _check_same_tree(size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    # Nothing is proven beyond "the two roots are the same value", so, as in transparency-dev/merkle,
    # this is a plain comparison; parsed checkpoints always carry 32-byte roots.
    if proof:
        raise ConsistencyProofError("trees of equal size need an empty proof")
    if old_root != new_root:
        raise ConsistencyProofError(f"two different roots for the same tree size {size}")


def _check_from_empty_tree(new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    # Policy (docs/tlog.md): the empty tree is a prefix of every tree; the proof must be empty
    # (C2SP tlog-witness) and the old root must be the empty-tree hash (RFC 9162 §2.1.1).
    if proof:
        raise ConsistencyProofError("a consistency proof from size 0 must be empty")
    if old_root != EMPTY_ROOT:
        raise ConsistencyProofError("the root of an empty tree must be SHA-256 of the empty string")
    if new_size == 0 and new_root != EMPTY_ROOT:
        raise ConsistencyProofError("two different roots for the empty tree")


def _roots_from_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """RFC 9162 §2.1.4.2 steps 1 to 7 for ``0 < old_size < new_size``: the two roots the proof leads to."""
    # Step 1: an empty path fails.
    if not proof:
        raise ConsistencyProofError(f"empty proof from size {old_size} to size {new_size}")
    path = list(proof)
    # Step 2: if first is an exact power of 2, prepend first_hash.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Step 3: fn = first - 1, sn = second - 1.
    fn, sn = old_size - 1, new_size - 1
    # Step 4: if LSB(fn) is set, shift both right until it is not.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5: fr = sr = c[0].
    fr = sr = bytes(path[0])
    # Step 6: for each subsequent c.
    for c in path[1:]:
        # Step 6a: if sn is 0, fail.
        if sn == 0:
            raise ConsistencyProofError("proof is longer than needed")
        # Step 6b: if LSB(fn) is set or fn == sn.
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            # Step 6b.iii: shift until LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            # Step 6c: sr = HASH(0x01 || sr || c).
            sr = hash_children(sr, c)
        # Step 6d: shift once.
        fn >>= 1
        sn >>= 1
    # Step 7: sn must be 0.
    if sn != 0:
        raise ConsistencyProofError("proof is shorter than needed")
    return fr, sr


# -- appending ---------------------------------------------------------------------------------


class CompactRange:
    """The right border of a growing tree: one perfect-subtree hash per set bit of its size.

    ``append`` returns the interior perfect nodes each new leaf completes: with the leaf
    hashes themselves, exactly what a log must store.  It is the Merkle Mountain Range view of RFC 9162 §2.1.1.
    """

    __slots__ = ("_hashes", "_levels", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        pieces = range_nodes(0, size)
        if len(pieces) != len(hashes):
            raise TlogFormatError(f"a compact range of size {size} has {len(pieces)} hashes, got {len(hashes)}")
        self.size = size
        self._levels = [node.level for node in pieces]
        self._hashes = [as_hash(h, "compact range hash") for h in hashes]

    @staticmethod
    def addresses(size: int) -> list[NodeAddress]:
        """The perfect nodes a compact range of ``size`` leaves holds, largest first."""
        return range_nodes(0, size)

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, Hash]]:
        """Add one leaf; returns ``(level, index, hash)`` of the interior nodes it completes, lowest first."""
        index = self.size
        current = Hash(leaf_hash)
        level = 0
        completed: list[tuple[int, int, Hash]] = []
        levels, hashes = self._levels, self._hashes
        while levels and levels[-1] == level:
            levels.pop()
            current = hash_children(hashes.pop(), current)
            level += 1
            completed.append((level, index >> level, current))
        levels.append(level)
        hashes.append(current)
        self.size = index + 1
        return completed

    def root(self) -> Hash:
        """The tree's root hash (RFC 9162 §2.1.1)."""
        return fold_range(self._hashes)

    @property
    def hashes(self) -> tuple[Hash, ...]:
        """The border hashes, largest subtree first."""
        return tuple(self._hashes)
