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
