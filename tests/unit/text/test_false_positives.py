"""False-positive rates on unmarked human text: prose and source code, every scheme, many keys.

The p-values are exact, so the share of windows at or below alpha must not exceed alpha.
Each claimed level is checked with the exact one-sided binomial test of "rate <= alpha",
rejecting at 1 %, on enough windows that the test itself asserts its power: a rate of 1.5
times alpha at 1e-2, or 3 times alpha at 1e-3, is rejected with probability 0.9.  Smaller
levels need far more windows than a unit test can score; ``bench/bench_text_fpr.py`` measures
them.

Windows scored under one key are not independent: they share units (indentation, ``self.``),
which one key colours the same way in every window, so one key's count spreads far more than
a binomial count.  Each key therefore scores only its own slice of 1,700 windows (twelve keys
in all); windows of different keys are independent whatever their text.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.conftest import REFERENCE_MODEL
from tests.support.calibrate import detectable_rate, fresh_text_key, p_value_of_excess, window_p_values
from tests.support.corpora import python_prose, python_source
from tracemark.text import SCHEME_NAMES, TextTokenizer

WINDOW = 100
KEYS = 12
WINDOWS_PER_KEY = 1700
#: The exact test of excess rejects at this level.
TEST_LEVEL = 0.01
#: Level claimed -> the multiple of it that the test detects with probability 0.9.
CLAIMED_LEVELS = {1e-2: 1.5, 1e-3: 3.0}
KGW_LEFTHASH = {"seeding_scheme": "lefthash", "context_width": 1}


def windows_of(token_ids: NDArray[np.int64]) -> NDArray[np.int64]:
    full = token_ids.shape[0] // WINDOW
    return token_ids[: full * WINDOW].reshape(full, WINDOW)


@pytest.fixture(scope="module")
def corpora() -> dict[str, NDArray[np.int64]]:
    """Windows of prose, of source code, and of both shuffled together (rows of WINDOW tokens)."""
    tokenizer = TextTokenizer(REFERENCE_MODEL)
    prose = windows_of(np.concatenate([tokenizer.encode(t).ids for t in python_prose(limit_chars=600_000)]))
    code = windows_of(np.concatenate([tokenizer.encode(t).ids for t in python_source(limit_chars=1_200_000)]))
    both = np.concatenate([prose, code])
    return {"prose": prose, "code": code, "both": both[np.random.default_rng(17).permutation(both.shape[0])]}


def sliced_p_values(
    scheme: str, params: dict[str, Any], windows: NDArray[np.int64], *, also_every_position: bool = False
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Window p-values, each of KEYS fresh keys scoring its own WINDOWS_PER_KEY consecutive windows.

    The second array counts every position (no de-duplication) under the same keys, when asked.
    """
    deduplicated, every_position = [], []
    for index in range(KEYS):
        key = fresh_text_key(scheme, REFERENCE_MODEL, params)
        rows = np.arange(index * WINDOWS_PER_KEY, (index + 1) * WINDOWS_PER_KEY)
        stream = np.take(windows, rows, axis=0, mode="wrap").ravel()
        deduplicated.append(window_p_values(key, stream, WINDOW))
        if also_every_position:
            every_position.append(window_p_values(key, stream, WINDOW, deduplicate=False))
    return np.concatenate(deduplicated), np.concatenate(every_position or [np.empty(0)])


def levels_with_excess(p_values: NDArray[np.float64]) -> dict[float, tuple[int, float]]:
    """The claimed levels whose exact test of "rate <= alpha" rejects: level -> (false positives, p-value)."""
    windows = int(p_values.shape[0])
    rejected = {}
    for alpha, factor in CLAIMED_LEVELS.items():
        assert detectable_rate(windows, alpha, power=0.9, level=TEST_LEVEL) <= factor * alpha, "too few windows"
        count = int(np.count_nonzero(p_values <= alpha))
        p_value = p_value_of_excess(count, windows, alpha)
        if p_value <= TEST_LEVEL:
            rejected[alpha] = (count, p_value)
    return rejected


@pytest.mark.parametrize("scheme", SCHEME_NAMES)
def test_empirical_rate_does_not_exceed_nominal(corpora: dict[str, NDArray[np.int64]], scheme: str) -> None:
    p_values, _ = sliced_p_values(scheme, {}, corpora["both"])
    assert p_values.shape[0] >= 19_000  # a window with no scorable unit gives no test
    assert levels_with_excess(p_values) == {}


def test_kgw_on_source_code_stays_within_nominal_and_the_check_can_fail(corpora: dict[str, NDArray[np.int64]]) -> None:
    """KGW (lefthash, the transformers default) on source code alone, the case issue #17 reported.

    The detector scores each distinct (previous token, token) unit once, so its p-values hold
    on code.  Counting every position instead (transformers' default) moves a window's count in
    blocks of repeated units, and the same check rejects it at every claimed level: the check
    has teeth on this very corpus.
    """
    deduplicated, every_position = sliced_p_values("kgw", KGW_LEFTHASH, corpora["code"], also_every_position=True)
    assert levels_with_excess(deduplicated) == {}
    assert set(levels_with_excess(every_position)) == set(CLAIMED_LEVELS)
