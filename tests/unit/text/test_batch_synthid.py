"""SynthID batch detection: one vectorised pass gives the per-text verdicts' numbers (#23)."""

from __future__ import annotations

import numpy as np
import pytest

from tracemark.text import detect_batch, detect_tokens

from .test_synthid import synthid_key


@pytest.mark.parametrize("version", ["0.2.1", "sha256"])
def test_synthid_batch_columns_equal_one_verdict_per_text(version: str) -> None:
    rng = np.random.default_rng(40)
    key = synthid_key([int(k) for k in rng.integers(0, 1 << 31, 30)], vocab_size=500, version=version)
    sequences = [rng.integers(0, 500, int(n)) for n in rng.integers(0, 260, 60)]
    sequences[0] = np.tile(rng.integers(0, 500, 7), 20)  # repeated n-grams are scored once
    sequences[1] = np.arange(3)  # too short for one n-gram
    batch = detect_batch(sequences, key)
    for row, ids in enumerate(sequences):
        single = detect_tokens(ids, key, scan_windows=False)
        assert (int(batch.hits[row]), int(batch.tokens_scored[row]), int(batch.tokens_repeated[row])) == (
            single.hits, single.tokens_scored, single.tokens_repeated)  # fmt: skip
        assert float(batch.p_values[row]) == pytest.approx(single.p_value, rel=1e-12)
    # a row's verdict still carries the weighted mean, computed when asked for
    assert batch[5].statistics == detect_tokens(sequences[5], key, scan_windows=False).statistics
