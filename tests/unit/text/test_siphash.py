"""SipHash: the published SipHash-2-4 vectors, and the vectorised SipHash-1-3 against the scalar one."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tracemark.text._siphash import siphash13_words, siphash_reference

KEY = bytes(range(16))


def test_published_siphash24_vectors() -> None:
    # Aumasson & Bernstein, SipHash reference vectors (key 00..0f, message 00..len-1)
    assert siphash_reference(KEY, b"") == 0x726FDB47DD0E0E31
    assert siphash_reference(KEY, bytes(range(8))) == 0x93F5F5799A932462
    assert siphash_reference(KEY, bytes(range(15))) == 0xA129CA6149BE45E5


@given(st.binary(min_size=16, max_size=16), st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=50))
def test_vectorised_siphash13_equals_reference(key: bytes, words: list[int]) -> None:
    got = siphash13_words(key, np.array(words, dtype=np.uint64))
    expected = [siphash_reference(key, w.to_bytes(8, "little"), 1, 3) for w in words]
    assert got.tolist() == expected


def test_output_bits_are_balanced() -> None:
    words = np.arange(200_000, dtype=np.uint64)
    out = siphash13_words(KEY, words)
    top_bit = (out >> np.uint64(63)).astype(np.int64)
    assert abs(top_bit.mean() - 0.5) < 0.005
