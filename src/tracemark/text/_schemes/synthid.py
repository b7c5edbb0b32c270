"""The ``synthid`` scheme: SynthID-Text tournament watermarking, read and written bit for bit.

SynthID-Text (Dathathri et al., Nature 634, 2024) scores every token by ``depth`` binary
g-values, one per layer key, each a keyed function of the token's n-gram (the
``ngram_len - 1`` tokens before it and the token itself).  Generation runs a 2-leaf
tournament per layer, which is non-distortionary on average over keys; detection
counts g-values equal to 1.  Two incompatible hash generations exist and both are
implemented, named by ``key.scheme_version``:

``"0.2.1"``
    PyPI ``synthid-text`` 0.2.1 and transformers' ``SynthIDTextWatermarkLogitsProcessor``
    (``transformers/generation/logits_process.py``, checked against transformers 5.24).
    The LCG fold ``h = (h + x) * 6364136223846793005 + 1`` (int64, wrapping) runs from
    ``h = 1`` over the n-gram; layer ``j`` then takes one more step with its key,
    ``h_j = (h + k_j) * M + 1`` (every layer from the same n-gram hash: the keys are
    not chained), and indexes a table of 2**16 bits: ``g = table[h_j mod size]`` with
    Python/torch modulo (``torch.remainder``).  The table is
    ``torch.randint(0, 2, (size,), generator=manual_seed(seed))``; torch's CPU generator
    is MT19937 initialised by ``init_genrand(seed mod 2**32)``, and ``randint`` over a
    small range takes one 32-bit output per element modulo the range (checked for ranges
    up to 2**16; ranges of 2**30 and more draw differently), so the table is the low bit
    of the first ``size`` MT19937 outputs (reproduced here without torch, checked
    against torch in the tests).
``"sha256"``
    google-deepmind/synthid-text at GitHub HEAD after PR #32 "Remove hash table lookup"
    (2025-06-13; read at commit 32197c3 of ``logits_processing.py``, and
    ``hashing_function.py``'s unchanged LCG; the research note describes the same
    algorithm at addb4a1).  The fold starts from the IV
    ``int.from_bytes(sha256(keys as little-endian int64 bytes), "big") mod (2**63 - 1)``
    for n-grams and contexts alike; the layer hash then goes through 12 rounds of
    ``x = ((x + 1) * M + 1) >> 5`` (arithmetic shift on int64) and ``g = (x >> 30) mod 2``.
    The sampling table parameters are carried but unused.

Why the table version needs care (and what ``score`` does about it): only ``h mod 2**16``
reaches the table, and reduction modulo a power of two commutes with the wrapping
arithmetic, so every g-value of an n-gram is a function of ``h_ngram mod 2**16`` alone.
Distinct n-grams with the same 16-bit hash carry *identical* g-vectors: a given pair
collides with probability 2**-16, and n-grams whose tokens agree modulo 65,536 always
collide (vocabularies above 65,536 cannot tell ``t`` from ``t + 65536``).  ``score``
therefore gives rows that share a table index the same ``unit_keys`` (the first n-gram
seen with that index), so the detector's de-duplication scores each g-vector once.
For keys uniform modulo the table size, the g-values of one index are independent
Bernoulli(table's fraction of ones); ``success_probability`` is ``max(1/2, fraction)``
so the binomial test is never anti-conservative (the seed-0 table holds 32,743 ones:
0.49962).  Two distinct indices see table cells at a key-independent offset, so their
g-values are independent only up to the table's autocorrelation (for the seed-0 table,
P(1, 1) departs from the product of marginals by at most 0.004 at any offset, 0 on
average): the binomial p-value is exact for the ``sha256`` variant's hash and exact up to
that table effect for 0.2.1.  Tables must have a power-of-two size.

De-duplication versus transformers' mask: transformers' detector drops a position when
its *context* ((n-1)-gram) hash occurred among the previous ``context_history_size``
contexts (with a history that starts as zeros), and drops positions from the first EOS
on.  tracemark's detector instead scores each distinct *n-gram* (per the rule above)
once over the whole text: a repeated context followed by a different token is scored
(it is a distinct unit, independent under the null; at generation time it was left
unwatermarked, so this costs a little power and never validity).
:meth:`SynthIDScheme.transformers_context_mask` and :meth:`SynthIDScheme.transformers_eos_mask`
reproduce transformers' masks exactly for interoperability checks.

The weighted-mean statistic (synthid-text ``detector_mean.weighted_mean_score``: weights
``linspace(10, 1, depth)`` normalised to sum to ``depth``) is reported with a p-value
from the exact null distribution of the integer-scaled weighted sum when that is cheap
enough (:data:`EXACT_WEIGHTED_BUDGET`) and from a Chernoff bound otherwise
(:func:`tracemark._stats.weighted_binomial_upper_tail`, which radioactivity uses too).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypedDict

import numpy as np
from numpy.typing import NDArray

from tracemark._json import JSONObject, JSONValue
from tracemark._stats import weighted_binomial_upper_tail
from tracemark.errors import KeyMismatchError
from tracemark.keys import TextKey, make_text_key
from tracemark.text._schemes._base import (
    ExtraStatistic,
    GenerationSettings,
    ScoredUnits,
    SecretSource,
    WatermarkScheme,
    check_token_ids,
    float_param,
    int_param,
)

LCG_MULTIPLIER = 6364136223846793005
LCG_INCREMENT = 1
_MASK64 = (1 << 64) - 1
_INT64_MAX = (1 << 63) - 1
# synthid-text HEAD get_gvals: 12 hash rounds, shift 64 // 12, g-value = bit 30
_SHA256_ROUNDS = 12
_SHA256_SHIFT = 64 // _SHA256_ROUNDS
_SHA256_BIT = 30
#: New keys stay below 2**31: transformers and synthid-text take any int64, and an int32 consumer still holds them.
NEW_KEY_BOUND = 1 << 31
#: Above this many table cells the per-index g-vector matrix is not materialised.
_MATRIX_CELLS_LIMIT = 1 << 23
_CHUNK_ROWS = 4096
#: Work limit (multiply-adds, tens of milliseconds) of the weighted mean's exact p-value; above it a bound is reported.
EXACT_WEIGHTED_BUDGET = 60_000_000


class SynthIDParams(TypedDict):
    """A synthid key's parameters (its record's ``params``, in this order)."""

    ngram_len: int
    depth: int
    top_k: int
    sampling_table_size: int
    sampling_table_seed: int
    context_history_size: int
    temperature: float


DEFAULT_PARAMS: SynthIDParams = {
    "ngram_len": 5,
    "depth": 30,
    "top_k": 40,
    "sampling_table_size": 65536,
    "sampling_table_seed": 0,
    "context_history_size": 1024,
    "temperature": 1.0,
}


# -- signed 64-bit helpers (torch.long semantics) ---------------------------------------
def to_int64(value: int) -> int:
    """Two's-complement reinterpretation of ``value mod 2**64`` as a signed 64-bit integer."""
    value &= _MASK64
    return value - (1 << 64) if value > _INT64_MAX else value


_M64 = np.int64(LCG_MULTIPLIER)
_C64 = np.int64(LCG_INCREMENT)


def lcg_fold(start: NDArray[np.int64], data: NDArray[np.int64]) -> NDArray[np.int64]:
    """``h = (h + x) * M + 1`` over the columns of ``data`` (int64, wrapping like torch.long)."""
    h = np.array(start, dtype=np.int64, copy=True)
    for column in range(data.shape[-1]):
        np.add(h, data[..., column], out=h)
        np.multiply(h, _M64, out=h)
        np.add(h, _C64, out=h)
    return h


# -- MT19937 (torch CPU generator) -----------------------------------------------------
_MT_N, _MT_M = 624, 397
_MT_UPPER, _MT_LOWER, _MT_MATRIX = np.uint32(0x80000000), np.uint32(0x7FFFFFFF), np.uint32(0x9908B0DF)


def _mt_twist(state: NDArray[np.uint32]) -> None:
    """One MT19937 state regeneration in place, in four vectorised blocks.

    Step ``i`` reads ``mt[i+1]`` (still old for ``i < 623``) and ``mt[(i+397) mod 624]``
    (old for ``i < 227``, already regenerated after), so the blocks [0,227), [227,454),
    [454,623) and {623} each depend only on values final before the block starts.
    """
    bounds = ((0, 227), (227, 454), (454, 623))
    for lo, hi in bounds:
        y = (state[lo:hi] & _MT_UPPER) | (state[lo + 1 : hi + 1] & _MT_LOWER)
        far = state[lo + _MT_M : hi + _MT_M] if hi <= _MT_N - _MT_M else state[lo - 227 : hi - 227]
        state[lo:hi] = far ^ (y >> np.uint32(1)) ^ np.where(y & np.uint32(1), _MT_MATRIX, np.uint32(0))
    y_last = (state[623] & _MT_UPPER) | (state[0] & _MT_LOWER)
    state[623] = state[396] ^ (y_last >> np.uint32(1)) ^ (_MT_MATRIX if y_last & np.uint32(1) else np.uint32(0))


def mt19937_outputs(seed: int, count: int) -> NDArray[np.uint32]:
    """The first ``count`` 32-bit outputs of MT19937 after ``init_genrand(seed mod 2**32)``.

    This is torch's CPU ``Generator.manual_seed(seed)`` (only the low 32 bits of the seed
    matter) and the reference ``mt19937ar.c`` generator.
    """
    mt = [seed & 0xFFFFFFFF]
    for i in range(1, _MT_N):
        previous = mt[-1]
        mt.append((1812433253 * (previous ^ (previous >> 30)) + i) & 0xFFFFFFFF)
    state = np.array(mt, dtype=np.uint32)
    blocks = []
    for _ in range(-(-count // _MT_N)):
        _mt_twist(state)
        y = state.copy()
        y ^= y >> np.uint32(11)
        y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
        y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
        y ^= y >> np.uint32(18)
        blocks.append(y)
    return np.concatenate(blocks)[:count] if blocks else np.empty(0, dtype=np.uint32)


@functools.lru_cache(maxsize=8)
def table_one_fraction(seed: int, size: int) -> float:
    """Fraction of ones in the sampling table: the exact null P(g = 1) for keys uniform modulo ``size``."""
    return int(sampling_table(seed, size).sum(dtype=np.int64)) / size


@functools.lru_cache(maxsize=8)
def sampling_table(seed: int, size: int) -> NDArray[np.uint8]:
    """transformers' SynthID table: ``torch.randint(0, 2, (size,), generator=manual_seed(seed))``."""
    table = (mt19937_outputs(seed, size) & np.uint32(1)).astype(np.uint8)
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=64)
def sha256_initial_hash(keys: tuple[int, ...]) -> int:
    """synthid-text HEAD's hash IV: SHA-256 of the keys as int64 bytes, big-endian integer, mod 2**63 - 1."""
    digest = hashlib.sha256(np.array(keys, dtype="<i8").tobytes()).digest()
    return int.from_bytes(digest, "big") % _INT64_MAX


@functools.lru_cache(maxsize=64)
def _layer_offsets(keys: tuple[int, ...]) -> NDArray[np.int64]:
    """``k_j * M + 1`` per layer: layer ``j``'s hash is one LCG step of the n-gram hash with key ``j``.

    transformers and synthid-text vmap ``accumulate_hash`` over the key axis, so every
    layer starts from the n-gram hash (keys are not chained): ``h_j = (h + k_j) * M + 1``.
    """
    offsets = np.array([to_int64(k * LCG_MULTIPLIER + LCG_INCREMENT) for k in keys], dtype=np.int64)
    offsets.setflags(write=False)
    return offsets


@functools.lru_cache(maxsize=8)
def _table_g_matrix(keys: tuple[int, ...], seed: int, size: int) -> NDArray[np.uint8]:
    """Row ``u`` = the g-vector of every n-gram whose hash is ``u`` modulo ``size`` (version 0.2.1)."""
    table = sampling_table(seed, size)
    offsets = _layer_offsets(keys)
    scaled = np.arange(size, dtype=np.int64) * np.int64(LCG_MULTIPLIER)
    matrix = np.empty((size, len(keys)), dtype=np.uint8)
    for layer in range(len(keys)):
        matrix[:, layer] = table[(scaled + offsets[layer]) & np.int64(size - 1)]
    matrix.setflags(write=False)
    return matrix


def _ngram_rows(ids: NDArray[np.int64], ngram_len: int) -> NDArray[np.int64]:
    """Rows ``ids[t - ngram_len + 1 .. t]`` for every full n-gram (``context_windows`` without its overhead)."""
    count = max(ids.shape[0] - ngram_len + 1, 0)
    rows = np.empty((count, ngram_len), dtype=np.int64)
    for column in range(ngram_len):
        rows[:, column] = ids[column : column + count]
    return rows


def _first_occurrence(values: NDArray[np.int64], bound: int) -> NDArray[np.int64]:
    """For each entry of ``values`` (all in [0, bound)), the index of the first entry equal to it."""
    ordered = np.sort(values)
    if not np.any(ordered[1:] == ordered[:-1]):
        return np.arange(values.shape[0], dtype=np.int64)
    if bound <= 8 * values.shape[0]:
        first = np.full(bound, values.shape[0], dtype=np.int64)
        np.minimum.at(first, values, np.arange(values.shape[0], dtype=np.int64))
        return first[values]
    _, first_index, inverse = np.unique(values, return_index=True, return_inverse=True)
    return np.asarray(first_index[inverse.reshape(-1)], dtype=np.int64)


# -- parameters and keys -------------------------------------------------------------------
def _validate_params(params: Mapping[str, object], vocab_size: int) -> SynthIDParams:
    merged = {**DEFAULT_PARAMS, **params}
    unknown = set(merged) - set(DEFAULT_PARAMS)
    if unknown:
        raise KeyMismatchError(f"unknown synthid parameters: {', '.join(sorted(unknown))}")
    try:
        checked: SynthIDParams = {
            "ngram_len": int_param(merged["ngram_len"]),
            "depth": int_param(merged["depth"]),
            "top_k": int_param(merged["top_k"]),
            "sampling_table_size": int_param(merged["sampling_table_size"]),
            "sampling_table_seed": int_param(merged["sampling_table_seed"]),
            "context_history_size": int_param(merged["context_history_size"]),
            "temperature": float_param(merged["temperature"]),
        }
    except (TypeError, ValueError):
        raise KeyMismatchError("synthid parameters must be numbers, all but temperature whole numbers") from None
    if not 2 <= checked["ngram_len"] <= 32:
        raise KeyMismatchError("ngram_len must lie in 2..32")
    if not 1 <= checked["depth"] <= 256:
        raise KeyMismatchError("depth (the number of layer keys) must lie in 1..256")
    if checked["top_k"] < 2:
        raise KeyMismatchError("top_k must be at least 2 (the processor keeps min(top_k, vocabulary) candidates)")
    size = checked["sampling_table_size"]
    if not 2 <= size <= 1 << 24 or size & (size - 1):
        raise KeyMismatchError("sampling_table_size must be a power of two in 2..2**24")
    if not 0 <= checked["sampling_table_seed"] < 1 << 64:
        raise KeyMismatchError("sampling_table_seed must lie in 0..2**64-1")
    if not (math.isfinite(checked["temperature"]) and checked["temperature"] > 0.0):
        raise KeyMismatchError("temperature must be a positive number")
    if not 1 <= checked["context_history_size"] <= 1 << 20:
        raise KeyMismatchError("context_history_size must lie in 1..2**20")
    if vocab_size < 2:
        raise KeyMismatchError("the vocabulary must hold at least two tokens")
    return checked


def _parse_keys(secret: Mapping[str, object], depth: int, key_id: str) -> tuple[int, ...]:
    raw = secret.get("keys")
    if not isinstance(raw, list | tuple) or not all(isinstance(k, int) and not isinstance(k, bool) for k in raw):
        raise KeyMismatchError(f"key {key_id} has no valid synthid layer keys")
    if len(raw) != depth:
        raise KeyMismatchError(f"key {key_id} holds {len(raw)} layer keys but its depth parameter is {depth}")
    if any(not -(1 << 63) <= k <= _INT64_MAX for k in raw):
        raise KeyMismatchError(f"key {key_id}: synthid layer keys must fit in int64")
    return tuple(int(k) for k in raw)


# -- the weighted-mean statistic ------------------------------------------------------------
def integer_weights(depth: int) -> NDArray[np.int64]:
    """Smallest integers proportional to ``linspace(10, 1, depth)``: ``10(d-1) - 9l`` over their gcd."""
    if depth == 1:
        return np.ones(1, dtype=np.int64)
    weights = 10 * (depth - 1) - 9 * np.arange(depth, dtype=np.int64)
    reduced: NDArray[np.int64] = weights // np.int64(np.gcd.reduce(weights))
    return reduced


class SynthIDScheme(WatermarkScheme):
    """SynthID-Text, bit-exact with transformers / synthid-text 0.2.1 or synthid-text HEAD (see module docstring)."""

    name: ClassVar[str] = "synthid"
    versions: ClassVar[tuple[str, ...]] = ("0.2.1", "sha256")
    summary: ClassVar[str] = (
        "SynthID-Text tournament sampling; g-values identical to transformers / synthid-text 0.2.1 "
        "(or synthid-text HEAD's SHA-256 IV hashing); exact binomial and weighted-mean tests"
    )

    def __init__(self, key: TextKey) -> None:
        super().__init__(key)
        params = _validate_params(key.params, key.vocab_size)
        self.ngram_len: int = params["ngram_len"]
        self.depth: int = params["depth"]
        self.top_k: int = params["top_k"]
        self.temperature: float = params["temperature"]
        self.context_history_size: int = params["context_history_size"]
        self.sampling_table_size: int = params["sampling_table_size"]
        self.sampling_table_seed: int = params["sampling_table_seed"]
        self.layer_keys: tuple[int, ...] = _parse_keys(key.secret, self.depth, key.key_id)
        self.version = key.scheme_version
        self._offsets = _layer_offsets(self.layer_keys)
        if self.version == "0.2.1":
            self.initial_hash = 1
            self.table_one_fraction = table_one_fraction(self.sampling_table_seed, self.sampling_table_size)
        else:
            self.initial_hash = sha256_initial_hash(self.layer_keys)
            self.table_one_fraction = 0.5

    # -- interface --------------------------------------------------------------------
    @property
    def trials_per_unit(self) -> int:
        return self.depth

    @property
    def success_probability(self) -> float:
        return float(max(0.5, self.table_one_fraction))

    @property
    def context_width(self) -> int:
        return self.ngram_len - 1

    # -- hashing (transformers' compute_ngram_keys / sample_g_values) --------------------
    def ngram_hashes(self, ngrams: NDArray[np.int64]) -> NDArray[np.int64]:
        """The LCG fold of each n-gram row from the version's initial hash (before any key)."""
        start = np.full(ngrams.shape[:-1], self.initial_hash, dtype=np.int64)
        return lcg_fold(start, ngrams)

    def context_hashes(self, contexts: NDArray[np.int64]) -> NDArray[np.int64]:
        """The fold of each (n-1)-gram context: the value transformers keeps in its context history."""
        return self.ngram_hashes(contexts)

    def layer_hashes(self, hashes: NDArray[np.int64]) -> NDArray[np.int64]:
        """Per-layer keys ``(..., depth)``: transformers' ``compute_ngram_keys`` given the n-gram hashes."""
        return hashes[..., None] * _M64 + self._offsets

    def g_values_from_hashes(self, hashes: NDArray[np.int64]) -> NDArray[np.uint8]:
        """g-values ``(..., depth)`` of n-grams given their hashes (transformers' ``sample_g_values``)."""
        flat = hashes.reshape(-1)
        out = np.empty((flat.shape[0], self.depth), dtype=np.uint8)
        if self.version == "0.2.1" and self.sampling_table_size * self.depth <= _MATRIX_CELLS_LIMIT:
            matrix = _table_g_matrix(self.layer_keys, self.sampling_table_seed, self.sampling_table_size)
            np.take(matrix, flat & np.int64(self.sampling_table_size - 1), axis=0, out=out)
            return out.reshape((*hashes.shape, self.depth))
        for start in range(0, flat.shape[0], _CHUNK_ROWS):
            block = self.layer_hashes(flat[start : start + _CHUNK_ROWS])
            if self.version == "0.2.1":
                table = sampling_table(self.sampling_table_seed, self.sampling_table_size)
                out[start : start + _CHUNK_ROWS] = table[block & np.int64(self.sampling_table_size - 1)]
            else:
                out[start : start + _CHUNK_ROWS] = self._sha256_bits(block)
        return out.reshape((*hashes.shape, self.depth))

    @staticmethod
    def _sha256_bits(layer_hashes: NDArray[np.int64]) -> NDArray[np.uint8]:
        # synthid-text HEAD get_gvals: x = accumulate_hash(x, [1]) >> 5, twelve times; g = (x >> 30) % 2
        x = layer_hashes.copy()
        step = np.int64(to_int64(LCG_MULTIPLIER + LCG_INCREMENT))  # (x + 1) * M + 1 == x * M + (M + 1)
        for _ in range(_SHA256_ROUNDS):
            np.multiply(x, np.int64(LCG_MULTIPLIER), out=x)
            np.add(x, step, out=x)
            np.right_shift(x, _SHA256_SHIFT, out=x)
        return ((x >> _SHA256_BIT) & 1).astype(np.uint8)

    def g_values(self, ngrams: NDArray[np.int64]) -> NDArray[np.uint8]:
        """g-values ``(rows, depth)`` of n-gram rows ``[context..., token]`` (transformers' ``compute_g_values``)."""
        return self.g_values_from_hashes(self.ngram_hashes(np.asarray(ngrams, dtype=np.int64)))

    def candidate_g_values(self, contexts: NDArray[np.int64], candidates: NDArray[np.int64]) -> NDArray[np.uint8]:
        """g-values ``(batch, k, depth)`` of ``k`` candidate tokens after each row's context ``(batch, n-1)``."""
        context_hash = self.context_hashes(np.asarray(contexts, dtype=np.int64))
        hashes = (context_hash[:, None] + np.asarray(candidates, dtype=np.int64)) * np.int64(LCG_MULTIPLIER)
        return self.g_values_from_hashes(hashes + np.int64(LCG_INCREMENT))

    # -- detection ------------------------------------------------------------------------
    def score(self, token_ids: NDArray[np.int64]) -> ScoredUnits:
        """One row per token with a full ``ngram_len - 1`` context; ``hits`` = layers with g = 1.

        For version 0.2.1, rows whose n-grams share a table index have identical
        g-vectors; they all get the unit key of the first such n-gram so that the
        detector scores that g-vector once (see the module docstring).
        """
        ids = check_token_ids(token_ids, self.vocab_size)
        ngrams = _ngram_rows(ids, self.ngram_len)
        rows = ngrams.shape[0]
        hashes = self.ngram_hashes(ngrams)
        g = self.g_values_from_hashes(hashes)
        unit_keys = ngrams
        if self.version == "0.2.1" and rows:
            index = hashes & np.int64(self.sampling_table_size - 1)
            representative = _first_occurrence(index, self.sampling_table_size)
            if np.any(representative != np.arange(rows)):
                unit_keys = ngrams[representative]
        positions = np.arange(self.ngram_len - 1, self.ngram_len - 1 + rows, dtype=np.int64)
        return ScoredUnits(
            positions=positions,
            unit_keys=unit_keys,
            hits=g.sum(axis=1, dtype=np.int64),
            layer_values=g.astype(np.float64),
        )

    def batch_counts(
        self, sequences: Sequence[NDArray[np.int64]]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """Scorable positions, distinct units and their hits for many whole texts in one vectorised pass.

        The same numbers as :meth:`score` followed by the detector's de-duplication, per
        sequence: all sequences are laid end to end, n-grams that cross a boundary are
        dropped, and units are told apart by ``(sequence, table index)`` (version 0.2.1,
        where the index fixes the g-vector) or ``(sequence, n-gram)`` (``sha256``).
        """
        count = len(sequences)
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=count)
        units = np.maximum(lengths - (self.ngram_len - 1), 0)
        distinct = np.zeros(count, dtype=np.int64)
        hits = np.zeros(count, dtype=np.int64)
        if not units.any():
            return units, distinct, hits
        flat = check_token_ids(np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]), self.vocab_size)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        owner = np.repeat(np.arange(count, dtype=np.int64), units)
        # n-gram rows that start inside their sequence: start of sequence j plus 0 .. units[j] - 1
        row_starts = np.repeat(starts, units) + (np.arange(owner.shape[0]) - np.repeat(np.cumsum(units) - units, units))
        ngrams = np.empty((row_starts.shape[0], self.ngram_len), dtype=np.int64)
        for column in range(self.ngram_len):
            ngrams[:, column] = flat[row_starts + column]
        hashes = self.ngram_hashes(ngrams)
        row_hits = self.g_values_from_hashes(hashes).sum(axis=1, dtype=np.int64)
        if self.version == "0.2.1":
            shift = np.int64(max(1, (self.sampling_table_size - 1).bit_length()))
            codes = (owner << shift) | (hashes & np.int64(self.sampling_table_size - 1))
            _, first = np.unique(codes, return_index=True)
        else:
            keyed = np.column_stack([owner, ngrams])
            rows = np.ascontiguousarray(keyed).view(np.dtype((np.void, keyed.itemsize * keyed.shape[1]))).ravel()
            _, first = np.unique(rows, return_index=True)
        distinct = np.bincount(owner[first], minlength=count).astype(np.int64)
        hits = np.bincount(owner[first], weights=row_hits[first], minlength=count).round().astype(np.int64)
        return units, distinct, hits

    def extra_totals(self, units: ScoredUnits) -> tuple[int, ...]:
        """The weighted g-value sum over the kept units (an integer: weights and g-values are)."""
        if units.layer_values is not None:
            g = np.asarray(units.layer_values)
        else:
            g = self.g_values(units.unit_keys).astype(np.float64)
        if g.shape[0] == 0:
            return (0,)
        # integer row sums below 2**53 are exact in float64
        return (round(float((g @ integer_weights(self.depth).astype(np.float64)).sum())),)

    def extra_statistics_from_totals(self, totals: tuple[int, ...], units: int) -> list[ExtraStatistic]:
        """synthid-text's weighted-mean score over ``units`` kept units, with an exact or bounded p-value."""
        if units == 0:
            return [ExtraStatistic("weighted_mean", 0.0, 1.0, 0.0, "weighted-binomial-exact")]
        (observed,) = totals
        weights = integer_weights(self.depth)
        # weights normalised to sum to depth, divided by depth * n: the integer weights over their sum
        score = observed / (units * int(weights.sum()))
        tail = weighted_binomial_upper_tail(
            observed, weights, np.full(self.depth, units), self.success_probability, max_work=EXACT_WEIGHTED_BUDGET
        )
        return [ExtraStatistic("weighted_mean", score, tail.p_value, tail.log10_p_value, tail.method)]

    def dedup_codes(self, units: ScoredUnits) -> NDArray[np.uint64] | None:
        """Version 0.2.1: the table index of each row's n-gram, which fixes its g-vector (module docstring)."""
        if self.version != "0.2.1":
            return None
        index = self.ngram_hashes(units.unit_keys) & np.int64(self.sampling_table_size - 1)
        return index.astype(np.uint64)

    def transformers_context_mask(self, token_ids: NDArray[np.int64]) -> NDArray[np.bool_]:
        """transformers' ``compute_context_repetition_mask`` (True = scored) for one sequence.

        Entry ``i`` belongs to the n-gram ending at token ``i + ngram_len - 1``.  Its
        context is repeated when the same context hash occurs among the previous
        ``context_history_size`` contexts, or when the hash is 0 while the history
        still holds some of its initial zeros (``i < context_history_size``).
        """
        ids = np.asarray(token_ids, dtype=np.int64)
        width = self.ngram_len - 1
        count = ids.shape[0] - width
        if count <= 0:
            return np.zeros(0, dtype=np.bool_)
        hashes = self.context_hashes(np.lib.stride_tricks.sliding_window_view(ids[:-1], width))
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        previous = np.full(count, -1, dtype=np.int64)
        same = ordered[1:] == ordered[:-1]
        previous[order[1:][same]] = order[:-1][same]
        index = np.arange(count)
        repeated = (previous >= 0) & (index - previous <= self.context_history_size)
        repeated |= (hashes == 0) & (index < self.context_history_size)
        return ~repeated

    def transformers_eos_mask(self, token_ids: NDArray[np.int64], eos_token_id: int) -> NDArray[np.bool_]:
        """transformers' detector EOS mask over n-gram positions: False from the first EOS token on."""
        ids = np.asarray(token_ids, dtype=np.int64)
        mask = np.ones(ids.shape[0], dtype=np.bool_)
        found = np.flatnonzero(ids == eos_token_id)
        if found.size:
            mask[found[0] :] = False
        return mask[self.ngram_len - 1 :]

    # -- generation ---------------------------------------------------------------------------
    def generation_kwargs(self) -> GenerationSettings:
        """The processor applies its own temperature and top-k; generate()'s warpers must be neutral."""
        return {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0}

    def to_transformers_config(self) -> Any:
        """A transformers ``SynthIDTextWatermarkingConfig`` with these keys (version 0.2.1 only)."""
        if self.version != "0.2.1":
            raise KeyMismatchError("transformers implements SynthID version 0.2.1 only, not " + repr(self.version))
        from transformers import SynthIDTextWatermarkingConfig

        return SynthIDTextWatermarkingConfig(
            ngram_len=self.ngram_len,
            keys=list(self.layer_keys),
            context_history_size=self.context_history_size,
            sampling_table_seed=self.sampling_table_seed,
            sampling_table_size=self.sampling_table_size,
        )

    # -- keys -------------------------------------------------------------------------------------
    @classmethod
    def _new_key_params(cls, params: Mapping[str, object], vocab_size: int) -> SynthIDParams:
        return _validate_params(params, vocab_size)

    @classmethod
    def _derive_secret(
        cls, secret_source: SecretSource, *, version: str, nonce: str, params: Mapping[str, object]
    ) -> JSONObject:
        """``depth`` layer keys in [0, 2**31)."""
        keys: list[JSONValue] = [
            int.from_bytes(secret_source(f"tracemark/text/synthid/{version}/layer-key/{nonce}/{i}")[:8], "big")
            % NEW_KEY_BOUND
            for i in range(int_param(params["depth"]))
        ]
        return {"keys": keys}

    @classmethod
    def key_from_transformers_config(
        cls,
        config: Any,
        *,
        vocab_size: int,
        tokenizer_sha256: str,
        top_k: int = DEFAULT_PARAMS["top_k"],
        temperature: float = DEFAULT_PARAMS["temperature"],
        label: str = "",
    ) -> TextKey:
        """Import the keys of a transformers ``SynthIDTextWatermarkingConfig`` (or its ``to_dict()``) as a 0.2.1 key.

        ``top_k`` and ``temperature`` are tracemark's generation settings (transformers
        leaves them to ``generate()``); ``skip_first_ngram_calls`` only changes which
        early tokens transformers watermarks and is not needed for detection.
        """
        fields = dict(config) if isinstance(config, Mapping) else vars(config)
        if fields.get("debug_mode"):
            raise KeyMismatchError("a SynthID config in debug_mode does not watermark; refusing to import it")
        try:
            keys = [int(k) for k in fields["keys"]]
            params = {
                "ngram_len": int(fields["ngram_len"]),
                "depth": len(keys),
                "top_k": top_k,
                "sampling_table_size": int(fields.get("sampling_table_size", 1 << 16)),
                "sampling_table_seed": int(fields.get("sampling_table_seed", 0)),
                "temperature": temperature,
                "context_history_size": int(fields.get("context_history_size", 1024)),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyMismatchError(f"not a SynthID watermarking config: {exc}") from None
        checked = _validate_params(params, vocab_size)
        _parse_keys({"keys": keys}, checked["depth"], "(imported)")
        return make_text_key(
            scheme=cls.name,
            scheme_version="0.2.1",
            params=checked,
            vocab_size=vocab_size,
            tokenizer_sha256=tokenizer_sha256,
            secret={"keys": keys},
            label=label,
        )
