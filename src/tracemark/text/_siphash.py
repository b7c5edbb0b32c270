"""SipHash, the keyed pseudo-random function of the native scheme.

SipHash (Aumasson and Bernstein, 2012) is a 128-bit-keyed PRF on 64-bit words built
only from additions, rotations and xors, so a whole array of messages can be hashed
with a few dozen numpy operations.  The native scheme uses SipHash-1-3 (one
compression round, three finalisation rounds: the variant CPython and Rust use for
their hash tables) on one 8-byte message per scored unit.

:func:`siphash_reference` is a plain scalar implementation of the specification for
any message and round counts; tests check it against the published SipHash-2-4
vectors and check the vectorised :func:`siphash13_words` against it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_MASK = (1 << 64) - 1
_C0, _C1, _C2, _C3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK


def siphash_reference(key: bytes, message: bytes, c_rounds: int = 2, d_rounds: int = 4) -> int:
    """Scalar SipHash-c-d of ``message`` under a 16-byte ``key`` (little-endian words)."""
    if len(key) != 16:
        raise ValueError("SipHash needs a 16-byte key")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    v = [k0 ^ _C0, k1 ^ _C1, k0 ^ _C2, k1 ^ _C3]

    def sip_round() -> None:
        v[0] = (v[0] + v[1]) & _MASK
        v[1] = _rotl(v[1], 13) ^ v[0]
        v[0] = _rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & _MASK
        v[3] = _rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & _MASK
        v[3] = _rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & _MASK
        v[1] = _rotl(v[1], 17) ^ v[2]
        v[2] = _rotl(v[2], 32)

    whole = len(message) - len(message) % 8
    for offset in range(0, whole, 8):
        m = int.from_bytes(message[offset : offset + 8], "little")
        v[3] ^= m
        for _ in range(c_rounds):
            sip_round()
        v[0] ^= m
    last = ((len(message) & 0xFF) << 56) | int.from_bytes(message[whole:], "little")
    v[3] ^= last
    for _ in range(c_rounds):
        sip_round()
    v[0] ^= last
    v[2] ^= 0xFF
    for _ in range(d_rounds):
        sip_round()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


_U = np.uint64


def _round(v0: NDArray[np.uint64], v1: NDArray[np.uint64], v2: NDArray[np.uint64], v3: NDArray[np.uint64],
           tmp: NDArray[np.uint64]) -> None:  # fmt: skip
    """One SipRound on arrays, in place (numpy uint64 arithmetic wraps modulo 2**64)."""
    v0 += v1
    np.left_shift(v1, _U(13), out=tmp)
    v1 >>= _U(51)
    v1 |= tmp
    v1 ^= v0
    np.left_shift(v0, _U(32), out=tmp)
    v0 >>= _U(32)
    v0 |= tmp
    v2 += v3
    np.left_shift(v3, _U(16), out=tmp)
    v3 >>= _U(48)
    v3 |= tmp
    v3 ^= v2
    v0 += v3
    np.left_shift(v3, _U(21), out=tmp)
    v3 >>= _U(43)
    v3 |= tmp
    v3 ^= v0
    v2 += v1
    np.left_shift(v1, _U(17), out=tmp)
    v1 >>= _U(47)
    v1 |= tmp
    v1 ^= v2
    np.left_shift(v2, _U(32), out=tmp)
    v2 >>= _U(32)
    v2 |= tmp


def siphash13_words(key: bytes, words: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SipHash-1-3 of each element of ``words`` taken as an 8-byte little-endian message."""
    if len(key) != 16:
        raise ValueError("SipHash needs a 16-byte key")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    m = np.asarray(words, dtype=np.uint64)
    v0 = np.full(m.shape, k0 ^ _C0, dtype=np.uint64)
    v1 = np.full(m.shape, k1 ^ _C1, dtype=np.uint64)
    v2 = np.full(m.shape, k0 ^ _C2, dtype=np.uint64)
    v3 = m ^ _U(k1 ^ _C3)
    tmp = np.empty_like(m)
    _round(v0, v1, v2, v3, tmp)
    v0 ^= m
    final_block = _U(8 << 56)
    v3 ^= final_block
    _round(v0, v1, v2, v3, tmp)
    v0 ^= final_block
    v2 ^= _U(0xFF)
    for _ in range(3):
        _round(v0, v1, v2, v3, tmp)
    v0 ^= v1
    v2 ^= v3
    v0 ^= v2
    return v0
