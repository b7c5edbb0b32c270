"""The native scheme: keying, parameter validation, packing and detection power."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.support.keys import fixed_secret
from tracemark._json import as_float
from tracemark.errors import KeyMismatchError
from tracemark.keys import TextKey
from tracemark.text import detect_tokens
from tracemark.text._schemes.native import NativeScheme, aes_encrypt_rows


def make_key(vocab_size: int = 8192, **params: Any) -> TextKey:
    """A native key; trigram units (width 2) unless ``context_width`` is given: these tests lay units out so."""
    return NativeScheme.new_key(
        secret_source=fixed_secret,
        vocab_size=vocab_size,
        tokenizer_sha256="a" * 64,
        params={"context_width": 2, **params},
    )


def marked_sequence(scheme: NativeScheme, length: int, rng: np.random.Generator, strength: float = 0.8) -> list[int]:
    """Mimic generation: among 8 candidates, prefer a green one with probability ``strength``."""
    width = scheme.context_width
    sequence = [int(t) for t in rng.integers(0, scheme.vocab_size, 2)]
    for _ in range(length):
        candidates = rng.integers(0, scheme.vocab_size, 8)
        units = np.array([[*sequence[len(sequence) - width :], c] for c in candidates])
        green = scheme.green(units)
        pick = candidates[int(np.argmax(green))] if green.any() and rng.random() < strength else candidates[0]
        sequence.append(int(pick))
    return sequence


def test_keys_are_128_bit_and_distinct() -> None:
    first, second = make_key(), make_key()
    assert len(bytes.fromhex(str(first.secret["aes_key"]))) == 16
    assert first.secret["aes_key"] != second.secret["aes_key"]
    assert first.key_id != second.key_id
    assert "aes_key" not in repr(first)
    assert "secret" not in first.public_record()


@pytest.mark.parametrize(
    "params",
    [
        {"gamma": 0.0},
        {"gamma": 1.0},
        {"delta": -1.0},
        {"context_width": 3},
        {"colour": "green"},
        {"gamma": "a quarter"},
        {"delta": None},
        {"context_width": [2]},
    ],
)
def test_bad_parameters_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(KeyMismatchError):
        make_key(**params)


def test_huge_vocabulary_is_refused() -> None:
    with pytest.raises(KeyMismatchError):
        make_key(vocab_size=(1 << 21) + 1)


def test_green_fraction_matches_gamma() -> None:
    for gamma in (0.25, 0.5):
        scheme = NativeScheme(make_key(gamma=gamma))
        units = np.random.default_rng(3).integers(0, 8192, (100_000, 3))
        assert abs(scheme.green(units).mean() - gamma) < 0.006
        assert scheme.success_probability == pytest.approx(gamma, abs=1e-15)


def test_aes_rows_match_the_fips_197_vector() -> None:
    # FIPS-197 appendix C.1: AES-128, key 000102..0f, plaintext 00112233..ff
    plaintext = np.frombuffer(bytes.fromhex("00112233445566778899aabbccddeeff"), dtype="<u4").reshape(1, 4).copy()
    ciphertext = aes_encrypt_rows(bytes(range(16)), plaintext, np.zeros((2, 4), dtype="<u4"))
    assert ciphertext.tobytes().hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"
    assert plaintext.tobytes().hex() == "00112233445566778899aabbccddeeff"  # the input is left alone


def test_aes_rows_refuse_an_overlapping_output() -> None:
    # the bug cryptography 51 exposed: encrypting in place through aliased buffers
    buffer = np.zeros((3, 4), dtype="<u4")
    with pytest.raises(ValueError, match="overlap"):
        aes_encrypt_rows(bytes(range(16)), buffer[:2], buffer)


def test_green_is_stable_when_the_output_buffer_is_reused() -> None:
    scheme = NativeScheme(make_key())
    units = np.random.default_rng(5).integers(0, 8192, (5_000, 3))
    first = scheme.green(units)
    scheme.green(units[:7])  # a smaller call reuses the same buffer
    scheme.green(np.random.default_rng(6).integers(0, 8192, (9_000, 3)))  # a larger one grows it
    assert np.array_equal(scheme.green(units), first)
    assert scheme.green(np.zeros((0, 3), dtype=np.int64)).shape == (0,)


@pytest.mark.parametrize("width", [1, 2])
def test_green_is_the_documented_aes_function_of_the_whole_unit(width: int) -> None:
    key = make_key(context_width=width)
    scheme = NativeScheme(key)
    aes_key = bytes.fromhex(str(key.secret["aes_key"]))
    units = np.random.default_rng(width).integers(0, 8192, (300, width + 1))
    units[1] = units[0]
    units[1, -1] += 1  # neighbours differing in one token
    expected = []
    for unit in units.tolist():
        block = struct.pack("<4I", *(unit + [0] * (3 - len(unit))), width)
        cipher = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor().update(block)
        expected.append(int.from_bytes(cipher[:8], "little") < int(as_float(key.params["gamma"]) * 2**64))
    assert scheme.green(units).tolist() == expected
    assert scheme.green(units.reshape(3, 100, width + 1)).ravel().tolist() == expected


def test_score_rows_follow_the_interface() -> None:
    scheme = NativeScheme(make_key())
    ids = np.array([1, 2, 3, 4, 5])
    units = scheme.score(ids)
    assert units.positions.tolist() == [2, 3, 4]
    assert units.unit_keys.tolist() == [[1, 2, 3], [2, 3, 4], [3, 4, 5]]
    assert set(units.hits.tolist()) <= {0, 1}


def test_marked_text_is_detected_and_another_key_finds_nothing() -> None:
    key = make_key()
    rng = np.random.default_rng(11)
    sequence = np.array(marked_sequence(NativeScheme(key), 200, rng))
    verdict = detect_tokens(sequence, key)
    assert verdict.marked
    assert verdict.p_value < 1e-20
    other = detect_tokens(sequence, make_key())
    assert not other.marked
    assert other.p_value > 1e-4


def test_context_width_one_works() -> None:
    key = make_key(context_width=1)
    scheme = NativeScheme(key)
    units = scheme.score(np.array([4, 5, 6]))
    assert units.unit_keys.tolist() == [[4, 5], [5, 6]]
