"""False-positive rates on unmarked human text: prose and source code, every scheme, many keys.

The p-values are exact, so the share of windows at or below alpha must not exceed alpha
beyond sampling error.  (The benchmark ``bench/bench_text_fpr.py`` runs the same check
on over a million windows.)
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import REFERENCE_MODEL
from tracemark.keys import Keyring
from tracemark.text import SCHEME_NAMES, TextTokenizer, new_text_key
from tracemark.text._calibrate import clopper_pearson, false_positive_rates, window_p_values
from tracemark.text._corpora import python_prose, python_source

WINDOW = 100


@pytest.fixture(scope="module")
def corpora() -> dict[str, np.ndarray]:
    tokenizer = TextTokenizer(REFERENCE_MODEL)
    return {
        "prose": np.concatenate([tokenizer.encode(t).ids for t in python_prose(limit_chars=600_000)]),
        "code": np.concatenate([tokenizer.encode(t).ids for t in python_source(limit_chars=1_200_000)]),
    }


@pytest.mark.parametrize("scheme", SCHEME_NAMES)
def test_empirical_rate_does_not_exceed_nominal(corpora: dict[str, np.ndarray], scheme: str) -> None:
    keyring = Keyring()
    keyring.create()
    p_values = []
    for _ in range(4):
        key = new_text_key(keyring, scheme, REFERENCE_MODEL)
        for ids in corpora.values():
            p_values.append(window_p_values(key, ids, WINDOW))
    joined = np.concatenate(p_values)
    assert joined.shape[0] > 20_000
    for rate in false_positive_rates(joined, (1e-2, 1e-3)):
        low, _ = clopper_pearson(rate.false_positives, rate.windows, confidence=0.999)
        assert low <= rate.alpha, rate
    assert np.count_nonzero(joined <= 1e-6) == 0


def test_counting_repeats_inflates_false_positives_on_code(corpora: dict[str, np.ndarray]) -> None:
    keyring = Keyring()
    keyring.create()
    counted, deduplicated = [], []
    for _ in range(4):
        key = new_text_key(keyring, "kgw", REFERENCE_MODEL, params={"seeding_scheme": "lefthash"})
        counted.append(window_p_values(key, corpora["code"], WINDOW, deduplicate=False))
        deduplicated.append(window_p_values(key, corpora["code"], WINDOW))
    rate_counted = float(np.mean(np.concatenate(counted) <= 1e-3))
    rate_dedup = float(np.mean(np.concatenate(deduplicated) <= 1e-3))
    assert rate_dedup <= 2e-3
    assert rate_counted > 3 * max(rate_dedup, 1e-3)
