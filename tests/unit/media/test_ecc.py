"""The convolutional code: round trips, corrects scattered errors, and uses soft reliabilities."""

from __future__ import annotations

import numpy as np

from tracemark.media import _ecc


def test_round_trip_and_length() -> None:
    bits = np.random.default_rng(1).integers(0, 2, 176).astype(np.uint8)
    coded = _ecc.encode(bits)
    assert len(coded) == _ecc.coded_length(176) == (176 + 6) * 3
    soft = 1.0 - 2.0 * coded.astype(np.float64)
    assert np.array_equal(_ecc.decode_soft(soft, 176), bits)


def test_corrects_scattered_hard_errors() -> None:
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2, 176).astype(np.uint8)
    soft = 1.0 - 2.0 * _ecc.encode(bits).astype(np.float64)
    flipped = rng.choice(len(soft), size=len(soft) // 12, replace=False)  # ~8% of the coded bits wrong
    soft[flipped] *= -1
    assert np.array_equal(_ecc.decode_soft(soft, 176), bits)


def test_soft_values_beat_hard_decisions() -> None:
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2, 176).astype(np.uint8)
    clean = 1.0 - 2.0 * _ecc.encode(bits).astype(np.float64)
    noisy = clean + rng.normal(0, 1.0, clean.shape)
    soft_errors = int(np.sum(_ecc.decode_soft(noisy, 176) != bits))
    hard_errors = int(np.sum(_ecc.decode_soft(np.sign(noisy), 176) != bits))
    assert soft_errors <= hard_errors
    assert soft_errors == 0


def test_list_decoding_holds_the_message_the_best_path_misses() -> None:
    # A check code picks the right message out of the list: at this noise the single best path is wrong
    # for about a third of the messages, the 128 best paths miss about one in twenty.
    rng = np.random.default_rng(4)
    best_wrong = list_wrong = 0
    for _ in range(40):
        bits = rng.integers(0, 2, 176).astype(np.uint8)
        noisy = 1.0 - 2.0 * _ecc.encode(bits).astype(np.float64) + rng.normal(0, 1.1, (176 + 6) * 3)
        messages = _ecc.decode_soft_list(noisy, 176, 128)
        assert np.array_equal(messages[0], _ecc.decode_soft(noisy, 176))
        best_wrong += not np.array_equal(messages[0], bits)
        list_wrong += not any(np.array_equal(message, bits) for message in messages)
    assert best_wrong >= 8
    assert list_wrong <= best_wrong // 3


def test_list_is_distinct_paths_most_likely_first() -> None:
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2, 176).astype(np.uint8)
    noisy = 1.0 - 2.0 * _ecc.encode(bits).astype(np.float64) + rng.normal(0, 1.0, (176 + 6) * 3)
    messages = _ecc.decode_soft_list(noisy, 176, 32)
    assert messages.shape == (32, 176)
    assert len({message.tobytes() for message in messages}) == 32
    metrics = [float(np.sum(noisy * (1.0 - 2.0 * _ecc.encode(message)))) for message in messages]
    assert np.all(np.diff(metrics) <= 1e-9)
