"""Bulk distinct-unit counting against a plain Python definition, across chunk boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracemark.errors import KeyMismatchError
from tracemark.text import _units
from tracemark.text._schemes.native import NativeScheme

from .test_native import make_key

SCHEME = NativeScheme(make_key(vocab_size=50))


def naive_counts(scheme: NativeScheme, ids: list[int]) -> tuple[int, int, int]:
    width = scheme.context_width
    units = [tuple(ids[t - width : t + 1]) for t in range(width, len(ids))]
    distinct = sorted(set(units))
    hits = int(scheme.green(np.array(distinct, dtype=np.int64).reshape(-1, width + 1)).sum()) if distinct else 0
    return len(units), len(distinct), hits


@settings(max_examples=60, deadline=None)
@given(
    sequences=st.lists(st.lists(st.integers(0, 49), max_size=40), max_size=30),
    chunk=st.sampled_from([1, 7, 64, 1 << 18]),
)
def test_counts_equal_the_definition(sequences: list[list[int]], chunk: int) -> None:
    # a tiny alphabet makes repeats common; small chunks cut the batch in many places
    original = _units._CHUNK_CODES
    _units._CHUNK_CODES = chunk
    try:
        counted = _units.count_distinct_units(SCHEME, [np.array(s, dtype=np.int64) for s in sequences])
    finally:
        _units._CHUNK_CODES = original
    for row, ids in enumerate(sequences):
        assert (int(counted.units[row]), int(counted.distinct[row]), int(counted.hits[row])) == naive_counts(
            SCHEME, ids
        )


def test_out_of_vocabulary_ids_are_refused() -> None:
    with pytest.raises(KeyMismatchError):
        _units.count_distinct_units(SCHEME, [np.array([1, 2, 3]), np.array([4, 50, 6])])
    with pytest.raises(KeyMismatchError):
        _units.count_distinct_units(SCHEME, [np.array([1, -2, 3])])


def test_vocabularies_too_wide_for_one_code_fall_back() -> None:
    # 21-bit tokens: a trigram plus the hit bit needs 64 bits, so there is no bulk path
    assert _units.bulk_scheme(NativeScheme(make_key(vocab_size=1 << 21))) is None
    assert _units.bulk_scheme(NativeScheme(make_key(vocab_size=1 << 20))) is not None


def test_batch_detection_without_a_bulk_path_gives_the_same_numbers() -> None:
    from tracemark.text import detect_batch, detect_tokens

    key = make_key(vocab_size=1 << 21)
    rng = np.random.default_rng(4)
    texts = [rng.integers(0, 1 << 21, n) for n in (0, 2, 3, 50)]
    for text, verdict in zip(texts, detect_batch(texts, key), strict=True):
        alone = detect_tokens(text, key, scan_windows=False)
        assert (verdict.tokens_scored, verdict.hits) == (alone.tokens_scored, alone.hits)
        assert verdict.p_value == alone.p_value


@pytest.mark.parametrize("scheme_params", [("native", {}), ("kgw", {"seeding_scheme": "lefthash"}), ("synthid", {})])
def test_window_p_values_are_whole_text_tests_of_each_window(scheme_params: tuple[str, dict[str, str]]) -> None:
    from tests.conftest import REFERENCE_MODEL
    from tests.support.calibrate import window_p_values
    from tracemark.keys import Keyring
    from tracemark.text import detect_tokens, new_text_key

    keyring = Keyring()
    keyring.create()
    scheme, params = scheme_params
    key = new_text_key(keyring, scheme, REFERENCE_MODEL, params=params)
    ids = np.random.default_rng(8).integers(0, 300, 1250)  # a small alphabet: repeats inside windows
    p_values = window_p_values(key, ids, 100)
    expected = [detect_tokens(ids[i : i + 100], key, scan_windows=False).p_value for i in range(0, 1200, 100)]
    assert p_values.tolist() == pytest.approx(expected, rel=1e-12)
