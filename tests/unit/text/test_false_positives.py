"""False-positive rates on unmarked human text: prose and source code, every scheme, many keys.

The p-values are exact, so the share of windows at or below alpha must not exceed alpha
beyond sampling error.  (The benchmark ``bench/bench_text_fpr.py`` runs the same check
on over a million windows.)
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tests.conftest import REFERENCE_MODEL
from tests.support.calibrate import clopper_pearson, false_positive_rates, window_p_values
from tests.support.corpora import python_prose, python_source
from tracemark.keys import Keyring
from tracemark.text import SCHEME_NAMES, TextTokenizer, new_text_key

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
    for rate in false_positive_rates(joined, (1e-2, 1e-3, 1e-4, 1e-6)):
        low, _ = clopper_pearson(rate.false_positives, rate.windows, confidence=0.999)
        assert low <= rate.alpha, rate


def test_counting_repeats_makes_code_windows_extreme(corpora: dict[str, np.ndarray]) -> None:
    """Scoring every position (not each distinct unit once) breaks the null on source code.

    Code repeats the same bigrams (indentation, ``self.``) many times per window, so a
    window's count moves in blocks: which way depends on whether the key colours those
    bigrams green or red.  Either way far too many windows land in a 1e-3 tail, for every
    key; de-duplicated windows stay at the nominal two-sided rate.
    """
    keyring = Keyring()
    keyring.create()
    edge = stats.norm.isf(1e-3)
    for _ in range(4):
        key = new_text_key(keyring, "kgw", REFERENCE_MODEL, params={"seeding_scheme": "lefthash"})
        z_counted = stats.norm.isf(window_p_values(key, corpora["code"], WINDOW, deduplicate=False))
        z_dedup = stats.norm.isf(window_p_values(key, corpora["code"], WINDOW))
        extreme_counted = float(np.mean(np.abs(z_counted) > edge))
        extreme_dedup = float(np.mean(np.abs(z_dedup) > edge))
        assert extreme_dedup <= 5e-3, key.key_id
        assert extreme_counted > 10 * max(extreme_dedup, 1e-3), key.key_id
