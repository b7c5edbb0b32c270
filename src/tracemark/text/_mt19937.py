"""torch's CPU random permutations, reproduced bit for bit in numpy and vectorised across seeds.

transformers' KGW watermark draws each green list with ``torch.randperm(V, generator=g)``
after ``g.manual_seed(seed)`` on a CPU generator.  Detection must not import torch, so this
module re-implements exactly what torch does:

* ``manual_seed(s)`` seeds the Mersenne Twister MT19937 with ``init_genrand(s mod 2**32)``:
  only the low 32 bits of the seed matter (``s`` and ``s + 2**32`` give the same stream);
* ``randperm(n)`` (CPU, ``n < (2**32 - 1) / 20``, the "small n" branch of
  ``aten/src/ATen/native/TensorFactories.cpp``) fills ``0..n-1`` and runs a forward
  Fisher-Yates shuffle with one 32-bit draw per step:
  ``for i in 0..n-2: j = i + mt() % (n - i); swap(p[i], p[j])``.

A green list is the first ``k = int(V * gamma)`` entries, so only the first ``k`` draws matter.
Position ``i`` is final after step ``i`` (later steps only touch positions ``> i``), which
gives the set of the first ``k`` entries without running the shuffle step by step:

* an element ``p >= k`` is in the prefix iff some step ``i < k`` targets ``j_i = p``;
* an element ``x < k`` leaves the prefix iff it is the value that the *last* step targeting
  some ``p >= k`` carries out; that step ``i`` carries the value that sat at position ``i``
  just before it, which is found by following "last earlier step that targeted this position"
  links down to a position never targeted before (its original value).

Everything is vectorised over many seeds at once (one MT19937 state per column), and
:class:`GreenListCache` keeps the green sets of seeds already computed as bitsets keyed by
the 32-bit seed (transformers' own ``lru_cache`` is keyed by fresh tensors and never hits).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

MT_STATE_WORDS = 624
_SHIFT_SIZE = 397
_FIRST_RANGE = MT_STATE_WORDS - _SHIFT_SIZE  # 227 words twist from words not yet updated
#: torch's CPU ``randperm`` uses the Fisher-Yates loop below for ``n`` under this bound.
TORCH_SMALL_N_LIMIT = (2**32 - 1) // 20
#: Largest seed ``torch.Generator.manual_seed`` accepts (it also takes negatives down to ``-2**63``).
TORCH_SEED_MAX = 2**64 - 1

_U32 = np.uint32
_U64 = np.uint64


def _both_halves(word: int) -> np.uint64:
    """``word`` repeated in both 32-bit halves: one uint64 lane then runs two generators."""
    return _U64(word | (word << 32))


_UPPER_MASK = _both_halves(0x80000000)
_LOWER_MASK = _both_halves(0x7FFFFFFF)
_LOW_BIT = _both_halves(1)
_MATRIX_A = _U64(0x9908B0DF)  # multiplied by 0 or 1 in each half, so no spill between halves
_TEMPER_B = _both_halves(0x9D2C5680)
_TEMPER_C = _both_halves(0xEFC60000)
_AFTER_SHIFT_11 = _both_halves(0xFFFFFFFF >> 11)
_AFTER_SHIFT_18 = _both_halves(0xFFFFFFFF >> 18)
_AFTER_SHIFT_1 = _both_halves(0xFFFFFFFF >> 1)

#: Elements of a (steps x seeds) work array processed at once (bounds memory to tens of MB).
_WORK_ELEMENTS = 1 << 22
#: Bytes of the per-seed scratch arrays kept together (stays inside a core's L2 cache).
_SCRATCH_BYTES = 1 << 18


def mt_seed(seed: int) -> int:
    """The 32-bit MT19937 seed that ``torch.Generator().manual_seed(seed)`` uses."""
    if not -(2**63) <= seed <= TORCH_SEED_MAX:
        raise ValueError(f"torch accepts seeds in [-2**63, 2**64 - 1], not {seed}")
    return seed & 0xFFFFFFFF


def init_genrand(seeds: NDArray[np.uint32]) -> NDArray[np.uint32]:
    """MT19937 ``init_genrand`` for every seed: the state, shape ``(624, len(seeds))``."""
    seeds = np.asarray(seeds, dtype=_U32)
    state = np.empty((MT_STATE_WORDS, seeds.shape[0]), dtype=_U32)
    state[0] = seeds
    rows = list(state)
    for i in range(1, MT_STATE_WORDS):
        # mt[i] = 1812433253 * (mt[i-1] ^ (mt[i-1] >> 30)) + i  (mod 2**32)
        row = rows[i]
        np.right_shift(rows[i - 1], _U32(30), out=row)
        np.bitwise_xor(row, rows[i - 1], out=row)
        np.multiply(row, _U32(1812433253), out=row)
        np.add(row, _U32(i), out=row)
    return state


class MT19937Batch:
    """Independent MT19937 generators, one per seed, producing 624 outputs per seed at a time.

    The state is stored with two generators per uint64 lane: the twist and tempering
    operations are lane-wise (every shift is masked so no bit crosses into the other half).
    """

    def __init__(self, seeds: NDArray[np.uint32]) -> None:
        seeds = np.asarray(seeds, dtype=_U32).ravel()
        self.count = int(seeds.shape[0])
        padded = np.zeros(self.count + (self.count & 1), dtype=_U32)
        padded[: self.count] = seeds
        self._state = init_genrand(padded).view(_U64)
        lanes = self._state.shape[1]
        self._y = np.empty((_FIRST_RANGE, lanes), dtype=_U64)
        self._t = np.empty((_FIRST_RANGE, lanes), dtype=_U64)
        self._out = np.empty((MT_STATE_WORDS, lanes), dtype=_U64)
        self._tmp = np.empty((MT_STATE_WORDS, lanes), dtype=_U64)

    def _twist_range(self, lo: int, hi: int, far: int) -> None:
        # y = (mt[i] & UPPER) | (mt[i+1] & LOWER); mt[i] = mt[i+397] ^ (y >> 1) ^ (y & 1) * MATRIX_A
        mt = self._state
        y = self._y[: hi - lo]
        t = self._t[: hi - lo]
        np.bitwise_and(mt[lo:hi], _UPPER_MASK, out=y)
        np.bitwise_and(mt[lo + 1 : hi + 1], _LOWER_MASK, out=t)
        np.bitwise_or(y, t, out=y)
        np.bitwise_and(y, _LOW_BIT, out=t)
        np.multiply(t, _MATRIX_A, out=t)
        np.right_shift(y, _U64(1), out=y)
        np.bitwise_and(y, _AFTER_SHIFT_1, out=y)
        np.bitwise_xor(y, t, out=y)
        np.bitwise_xor(y, mt[far : far + hi - lo], out=mt[lo:hi])

    def next_block(self) -> NDArray[np.uint32]:
        """The next 624 tempered outputs of every generator, shape ``(624, count)`` (a reused buffer)."""
        mt = self._state
        # the twist reads mt[i + 397 mod 624], already updated once i >= 227: three aligned ranges
        first, last = _FIRST_RANGE, MT_STATE_WORDS - 1
        self._twist_range(0, first, _SHIFT_SIZE)
        self._twist_range(first, 2 * first, 0)
        self._twist_range(2 * first, last, first)
        y_last = (mt[last] & _UPPER_MASK) | (mt[0] & _LOWER_MASK)
        mt[last] = mt[_SHIFT_SIZE - 1] ^ ((y_last >> _U64(1)) & _AFTER_SHIFT_1) ^ ((y_last & _LOW_BIT) * _MATRIX_A)
        # tempering
        y, t = self._out, self._tmp
        np.right_shift(mt, _U64(11), out=t)
        np.bitwise_and(t, _AFTER_SHIFT_11, out=t)
        np.bitwise_xor(mt, t, out=y)
        np.left_shift(y, _U64(7), out=t)
        np.bitwise_and(t, _TEMPER_B, out=t)
        np.bitwise_xor(y, t, out=y)
        np.left_shift(y, _U64(15), out=t)
        np.bitwise_and(t, _TEMPER_C, out=t)
        np.bitwise_xor(y, t, out=y)
        np.right_shift(y, _U64(18), out=t)
        np.bitwise_and(t, _AFTER_SHIFT_18, out=t)
        np.bitwise_xor(y, t, out=y)
        return y.view(_U32)[:, : self.count]


def _check_sizes(n: int, k: int) -> None:
    if not 0 < n < TORCH_SMALL_N_LIMIT:
        raise ValueError(f"permutation size must lie in [1, {TORCH_SMALL_N_LIMIT}) (torch's small-n randperm)")
    if not 0 <= k < n:
        raise ValueError("prefix length must lie in [0, n)")


def fisher_yates_offsets(seeds: NDArray[np.uint32], n: int, k: int) -> NDArray[np.uint32]:
    """``r[i, s] = mt_s() % (n - i)`` for the first ``k`` steps: step ``i`` swaps ``i`` and ``i + r``."""
    _check_sizes(n, k)
    generators = MT19937Batch(seeds)
    out = np.empty((k, generators.count), dtype=_U32)
    divisors = (n - np.arange(k, dtype=np.int64)).astype(_U32)[:, None]
    for start in range(0, k, MT_STATE_WORDS):
        block = generators.next_block()
        stop = min(k, start + MT_STATE_WORDS)
        np.remainder(block[: stop - start], divisors[start:stop], out=out[start:stop])
    return out


def randperm(n: int, seed: int) -> NDArray[np.int64]:
    """``torch.randperm(n, generator=torch.Generator().manual_seed(seed))`` on the CPU."""
    _check_sizes(n, 0)
    steps = n - 1
    perm = np.arange(n, dtype=np.int64)
    if steps == 0:
        return perm
    offsets = fisher_yates_offsets(np.array([mt_seed(seed)], dtype=_U32), n, steps)[:, 0]
    index = np.arange(steps, dtype=np.int64)
    targets = index + offsets
    last_writer = _last_writers(targets, n)
    before = _values_before_steps(last_writer, steps)
    # step i leaves at position i the value that sat at targets[i]: what the previous step
    # with the same target carried there, else the original value targets[i]
    order = np.argsort(targets, kind="stable")
    same_target = targets[order[1:]] == targets[order[:-1]]
    previous = np.full(steps, -1, dtype=np.int64)
    previous[order[1:][same_target]] = order[:-1][same_target]
    perm[:steps] = np.where(previous >= 0, before[np.maximum(previous, 0)], targets)
    fixed = offsets == 0
    perm[:steps][fixed] = before[fixed]
    writer = int(last_writer[steps])
    perm[steps] = before[writer] if writer >= 0 else steps
    return perm


def _last_writers(targets: NDArray[np.int64], n: int, *, trust_write_order: bool = True) -> NDArray[np.int64]:
    """For each position, the last step that swapped something into it (-1 if none); one seed."""
    index = np.arange(targets.shape[0], dtype=np.int64)
    moving = targets != index
    written, writers = targets[moving], index[moving]
    last_writer = np.full(n, -1, dtype=np.int64)
    if trust_write_order:
        last_writer[written] = writers  # numpy assigns repeated indices in order: the last step wins
        if (last_writer[written] >= writers).all():
            return last_writer
        last_writer.fill(-1)
    np.maximum.at(last_writer, written, writers)
    return last_writer


def _values_before_steps(last_writer: NDArray[np.int64], k: int) -> NDArray[np.int64]:
    """``before[i]``: the value at position ``i`` just before step ``i``, for ``i < k`` (one seed).

    Position ``i`` was last written before step ``i`` by step ``w = last_writer[i] < i``, which
    carried the value that sat at position ``w`` before step ``w``: follow the links down to a
    position no step wrote to, whose value is its own index.
    """
    before = np.arange(k, dtype=np.int64)
    link = last_writer[:k]
    pending = np.flatnonzero(link >= 0)
    current = link[pending]
    while pending.size:
        nxt = link[current]
        done = nxt < 0
        before[pending[done]] = current[done]
        pending = pending[~done]
        current = nxt[~done]
    return before


def _green_rows(offsets: NDArray[np.uint32], n: int, k: int, *, trust_write_order: bool = True) -> NDArray[np.uint8]:
    """Bitsets (little bit order) of the first ``k`` entries, one row per seed; ``offsets`` is (seeds, k)."""
    rows = offsets.shape[0]
    width = n + 1  # one spare slot per seed absorbs the no-op steps (offset 0)
    step_dtype = np.dtype(np.uint16) if k < 0xFFFF else np.dtype(np.uint32)
    none = np.iinfo(step_dtype).max
    steps = np.arange(k, dtype=np.int64)
    base = (np.arange(rows, dtype=np.int64) * width)[:, None]
    targets = offsets.astype(np.int64)
    targets += steps
    flat = targets + base
    np.copyto(flat, base + n, where=offsets == 0)
    step_ids = steps.astype(step_dtype)
    last_writer = np.full(rows * width, none, dtype=step_dtype)
    if trust_write_order:
        last_writer[flat] = step_ids  # numpy assigns repeated indices in order: the last step wins
    seen = last_writer.take(flat)
    if not trust_write_order or not (seen >= step_ids).all():
        shifted = np.zeros(rows * width, dtype=np.int64)
        np.maximum.at(shifted, flat.ravel(), np.broadcast_to(steps + 1, flat.shape).ravel())
        last_writer = np.where(shifted > 0, shifted - 1, none).astype(step_dtype)
        seen = last_writer.take(flat)
    green = np.zeros(rows * width, dtype=np.uint8)
    green.reshape(rows, width)[:, :k] = 1
    green[flat] = 1  # every target p >= k enters the prefix (targets < k are in it already)
    # the last step into each p >= k carries out the value that sat at its own position
    carries_out = seen == step_ids
    carries_out &= targets >= k
    links = last_writer.reshape(rows, width)[:, :k]
    origin = np.broadcast_to(steps, (rows, k)).copy()
    linked = np.flatnonzero(links != none)
    if linked.size:
        row_base = (linked // k) * width
        current = links.ravel()[linked].astype(np.int64)
        pending = np.arange(linked.size)
        while pending.size:
            nxt = last_writer.take(row_base[pending] + current[pending])
            more = nxt != none
            pending = pending[more]
            current[pending] = nxt[more]
        origin.ravel()[linked] = current
    green[np.where(carries_out, base + origin, base + n)] = 0
    return np.packbits(green.reshape(rows, width)[:, :n].view(np.bool_), axis=1, bitorder="little")


def green_bitsets(seeds: NDArray[np.uint32], n: int, k: int) -> NDArray[np.uint8]:
    """Bitsets of ``set(randperm(n, seed)[:k])`` per 32-bit seed: shape ``(len(seeds), ceil(n / 8))``.

    Bit ``x`` of row ``s`` is ``(row[x >> 3] >> (x & 7)) & 1``.
    """
    _check_sizes(n, k)
    seeds = np.asarray(seeds, dtype=_U32).ravel()
    out = np.zeros((seeds.shape[0], (n + 7) // 8), dtype=np.uint8)
    if k == 0:
        return out
    per_batch = max(1, _WORK_ELEMENTS // k)
    per_chunk = max(1, _SCRATCH_BYTES // (2 * (n + 1)))
    for start in range(0, seeds.shape[0], per_batch):
        stop = min(seeds.shape[0], start + per_batch)
        offsets = np.ascontiguousarray(fisher_yates_offsets(seeds[start:stop], n, k).T)
        for c in range(0, stop - start, per_chunk):
            end = min(stop - start, c + per_chunk)
            out[start + c : start + end] = _green_rows(offsets[c:end], n, k)
    return out


def in_prefix(seeds: NDArray[np.uint32], tokens: NDArray[np.int64], n: int, k: int) -> NDArray[np.bool_]:
    """Whether ``tokens[s]`` is among the first ``k`` entries of ``randperm(n)`` seeded with ``seeds[s]``.

    Follows the one token through the shuffle instead of building the whole set: a token
    at position ``p`` is pulled into the prefix by the first later step that targets ``p``;
    if none does and ``p < k``, step ``p`` moves it to ``p + r_p`` (or fixes it when ``r_p = 0``).
    """
    _check_sizes(n, k)
    seeds = np.asarray(seeds, dtype=_U32).ravel()
    tokens = np.asarray(tokens, dtype=np.int64).ravel()
    if seeds.shape != tokens.shape:
        raise ValueError("one token per seed")
    result = np.zeros(seeds.shape[0], dtype=np.bool_)
    if k == 0 or seeds.shape[0] == 0:
        return result
    steps = np.arange(k, dtype=np.int32)[:, None]
    per_batch = max(1, _WORK_ELEMENTS // k)
    for start in range(0, seeds.shape[0], per_batch):
        stop = min(seeds.shape[0], start + per_batch)
        targets = fisher_yates_offsets(seeds[start:stop], n, k).view(np.int32)
        targets += steps
        result[start:stop] = _follow_tokens(targets, tokens[start:stop], k)
    return result


def _follow_tokens(targets: NDArray[np.int32], tokens: NDArray[np.int64], k: int) -> NDArray[np.bool_]:
    columns = targets.shape[1]
    inside = np.zeros(columns, dtype=np.bool_)
    position = tokens.astype(np.int32)
    after = np.full(columns, -1, dtype=np.int32)  # steps <= after can no longer move the token
    pending = np.arange(columns)
    first = True
    while pending.size:
        if first:
            hit = (targets == position).any(axis=0)
            first = False
        else:
            block = targets[:, pending]
            matches = block == position[pending]
            matches &= np.arange(k, dtype=np.int32)[:, None] > after[pending]
            hit = matches.any(axis=0)
        inside[pending[hit]] = True
        pending = pending[~hit & (position[pending] < k)]
        # nothing pulled the token in before step p = its position: step p moves it (or fixes it)
        after[pending] = position[pending]
        moved_to = targets[position[pending], pending]
        fixed = moved_to == position[pending]
        inside[pending[fixed]] = True
        pending = pending[~fixed]
        position[pending] = moved_to[~fixed]
    return inside


def bitset_members(bitsets: NDArray[np.uint8], rows: NDArray[np.int64], tokens: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Whether ``tokens[i]`` is in the set of ``bitsets[rows[i]]``."""
    selected: NDArray[np.uint8] = bitsets[rows, tokens >> 3]
    shifted: NDArray[np.uint8] = selected >> (tokens & 7).astype(np.uint8)
    return (shifted & 1).astype(np.bool_)


#: Computes bitsets for 32-bit seeds (``green_bitsets`` by default; generation may pass torch's own).
BitsetFunction = Callable[[NDArray[np.uint32]], NDArray[np.uint8]]


class GreenListCache:
    """Green sets of ``randperm(n)[:k]`` keyed by 32-bit seed, shared by detection and generation.

    A question "is ``token`` in the set of ``seed``?" is answered from, in order: a cached
    bitset of the seed; the remembered answer to the same question; a new bitset when the
    seed is asked about a second distinct token (a seed that recurs, e.g. a frequent previous
    token, pays for its bitset); else by following the one token through the shuffle, which
    costs about a third of building the whole set.  Bitsets beyond ``max_bytes`` are evicted
    least recently used.
    """

    def __init__(self, n: int, k: int, *, max_bytes: int = 256 << 20, max_answers: int = 1 << 18) -> None:
        _check_sizes(n, k)
        self.n = n
        self.k = k
        self.row_bytes = (n + 7) // 8
        self.max_rows = max(16, max_bytes // self.row_bytes)
        self.max_answers = max_answers
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Forget every cached set and answer (and reset the counters)."""
        with self._lock:
            self._bits = np.zeros((min(self.max_rows, 64), self.row_bytes), dtype=np.uint8)
            self._row_seed = np.zeros(self._bits.shape[0], dtype=np.int64)
            self._last_use = np.zeros(self._bits.shape[0], dtype=np.int64)
            self._row_of: dict[int, int] = {}
            self._answers: dict[int, int] = {}  # seed -> token * 2 + inside
            self._clock = 0
            #: Bitsets built and tokens followed so far (for benchmarks and tests).
            self.bitsets_built = 0
            self.tokens_followed = 0

    def __len__(self) -> int:
        return len(self._row_of)

    def _lookup(self, seeds: list[int]) -> NDArray[np.int64]:
        """Rows of cached seeds (-1 if absent), marked as used now."""
        rows = np.array([self._row_of.get(seed, -1) for seed in seeds], dtype=np.int64)
        found = rows[rows >= 0]
        self._last_use[found] = self._clock
        return rows

    def _insert(self, seeds: list[int], bitsets: NDArray[np.uint8]) -> NDArray[np.int64] | None:
        """Cache new bitsets; None when they do not fit beside the rows used in this call."""
        used = len(self._row_of)
        busy = int(np.count_nonzero(self._last_use[:used] == self._clock))
        if len(seeds) + busy > self.max_rows:
            return None
        capacity = self._bits.shape[0]
        if used + len(seeds) > capacity and capacity < self.max_rows:
            size = min(self.max_rows, max(2 * capacity, used + len(seeds)))
            for name in ("_bits", "_row_seed", "_last_use"):
                old = getattr(self, name)
                grown = np.zeros((size, *old.shape[1:]), dtype=old.dtype)
                grown[:capacity] = old
                setattr(self, name, grown)
            capacity = size
        free = np.arange(used, min(capacity, used + len(seeds)), dtype=np.int64)
        evict = len(seeds) - free.shape[0]
        if evict > 0:
            # rows used in this call carry the current clock and are never the oldest ``evict``
            victims = np.argpartition(self._last_use[:used], evict - 1)[:evict].astype(np.int64)
            for row in victims.tolist():
                del self._row_of[int(self._row_seed[row])]
            free = np.concatenate([free, victims])
        self._bits[free] = bitsets
        self._row_seed[free] = seeds
        self._last_use[free] = self._clock
        for seed, row in zip(seeds, free.tolist(), strict=True):
            self._row_of[seed] = row
        return free

    def bitsets(self, seeds: NDArray[np.uint32], compute: BitsetFunction | None = None) -> NDArray[np.uint8]:
        """The bitset of every seed, shape ``(len(seeds), row_bytes)``, computing and caching missing ones.

        ``compute`` builds bitsets for the missing seeds (default: :func:`green_bitsets`).
        """
        with self._lock:
            return self._bitsets(seeds, compute)

    def _bitsets(self, seeds: NDArray[np.uint32], compute: BitsetFunction | None) -> NDArray[np.uint8]:
        self._clock += 1
        seeds = np.asarray(seeds, dtype=_U32).ravel()
        unique, inverse = np.unique(seeds, return_inverse=True)
        rows = self._lookup(unique.tolist())
        missing = np.flatnonzero(rows < 0)
        out = np.empty((unique.shape[0], self.row_bytes), dtype=np.uint8)
        present = rows >= 0
        out[present] = self._bits[rows[present]]
        if missing.size:
            built = (compute or self._compute)(unique[missing])
            self.bitsets_built += int(missing.size)
            out[missing] = built
            self._insert(unique[missing].tolist(), built)
        return out[inverse]

    def _compute(self, seeds: NDArray[np.uint32]) -> NDArray[np.uint8]:
        return green_bitsets(seeds, self.n, self.k)

    def contains(self, seeds: NDArray[np.uint32], tokens: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Whether each ``tokens[i]`` is in the green set of ``seeds[i]``."""
        with self._lock:
            return self._contains(seeds, tokens)

    def _contains(self, seeds: NDArray[np.uint32], tokens: NDArray[np.int64]) -> NDArray[np.bool_]:
        self._clock += 1
        seeds = np.asarray(seeds, dtype=_U32).ravel()
        tokens = np.asarray(tokens, dtype=np.int64).ravel()
        if seeds.shape != tokens.shape:
            raise ValueError("one token per seed")
        if seeds.size == 0:
            return np.zeros(0, dtype=np.bool_)
        pairs, inverse = np.unique((seeds.astype(_U64) << _U64(32)) | tokens.astype(_U64), return_inverse=True)
        pair_seed = (pairs >> _U64(32)).astype(np.int64)
        pair_token = (pairs & _U64(0xFFFFFFFF)).astype(np.int64)
        unique_seeds, first_pair, pair_count = np.unique(pair_seed, return_index=True, return_counts=True)
        seed_list = unique_seeds.tolist()
        rows = self._lookup(seed_list)
        answer = np.zeros(pairs.shape[0], dtype=np.bool_)
        remembered, build, follow = [], [], []
        answers = self._answers
        for i in np.flatnonzero(rows < 0).tolist():
            seed, first = seed_list[i], int(first_pair[i])
            known = answers.get(seed)
            if pair_count[i] > 1 or (known is not None and known >> 1 != int(pair_token[first])):
                build.append(i)
            elif known is not None:
                remembered.append(first)
                answer[first] = bool(known & 1)
            else:
                follow.append(first)
        if build:
            built_seeds = unique_seeds[build].astype(_U32)
            bits = green_bitsets(built_seeds, self.n, self.k)
            self.bitsets_built += len(build)
            new_rows = self._insert(built_seeds.tolist(), bits)
            if new_rows is None:  # too many for the cache: answer from the fresh bitsets directly
                local = np.full(unique_seeds.shape[0], -1, dtype=np.int64)
                local[build] = np.arange(len(build))
                pair_local = local[np.searchsorted(unique_seeds, pair_seed)]
                chosen = np.flatnonzero(pair_local >= 0)
                answer[chosen] = bitset_members(bits, pair_local[chosen], pair_token[chosen])
            else:
                rows[build] = new_rows
        pair_row = rows[np.searchsorted(unique_seeds, pair_seed)]
        cached = np.flatnonzero(pair_row >= 0)
        answer[cached] = bitset_members(self._bits, pair_row[cached], pair_token[cached])
        if follow:
            chosen = np.array(follow, dtype=np.int64)
            found = in_prefix(pair_seed[chosen].astype(_U32), pair_token[chosen], self.n, self.k)
            answer[chosen] = found
            self.tokens_followed += len(follow)
            if len(answers) + len(follow) > self.max_answers:
                kept = list(answers.items())[len(answers) // 2 :]
                answers.clear()
                answers.update(kept)
            codes = pair_token[chosen] * 2 + found
            answers.update(zip(pair_seed[chosen].tolist(), codes.tolist(), strict=True))
        return answer[inverse]

    def warm(self, seeds: NDArray[np.uint32]) -> None:
        """Build and cache the bitsets of ``seeds`` ahead of detection (e.g. of every previous token)."""
        seeds = np.unique(np.asarray(seeds, dtype=_U32).ravel())
        for start in range(0, seeds.shape[0], 4096):
            self.bitsets(seeds[start : start + 4096])
