"""The numpy MT19937 and randperm reproduce torch's CPU generator and Python's Mersenne Twister exactly."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracemark.text import _mt19937 as mt

SEEDS = [0, 1, 5489, 15485863, 2**31 - 1, 2**32 - 1]


@pytest.fixture(scope="module")
def torch() -> Any:
    return pytest.importorskip("torch")


def python_random_after_init_genrand(seed: int) -> random.Random:
    """Python's MT19937 with the state of ``init_genrand(seed)`` (``random.seed`` uses ``init_by_array``)."""
    state = [seed & 0xFFFFFFFF]
    for i in range(1, 624):
        state.append((1812433253 * (state[-1] ^ (state[-1] >> 30)) + i) & 0xFFFFFFFF)
    generator = random.Random()
    generator.setstate((3, (*state, 624), None))
    return generator


def torch_randperm(torch: Any, n: int, seed: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    generator = torch.Generator()
    generator.manual_seed(seed)
    result: np.ndarray[Any, np.dtype[np.int64]] = torch.randperm(n, generator=generator).numpy()
    return result


def prefix_mask(torch: Any, n: int, k: int, seed: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    mask = np.zeros(n, dtype=np.bool_)
    mask[torch_randperm(torch, n, seed)[:k]] = True
    return mask


def unpack(bitsets: np.ndarray[Any, np.dtype[np.uint8]], n: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    return np.unpackbits(bitsets, axis=1, count=n, bitorder="little").astype(np.bool_)


def mt_draws(seeds: np.ndarray[Any, np.dtype[np.uint32]], count: int) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """The first ``count`` 32-bit outputs of MT19937 for every seed, shape ``(count, len(seeds))``."""
    generators = mt.MT19937Batch(seeds)
    out = np.empty((count, generators.count), dtype=np.uint32)
    for start in range(0, count, mt.MT_STATE_WORDS):
        block = generators.next_block()
        stop = min(count, start + mt.MT_STATE_WORDS)
        out[start:stop] = block[: stop - start]
    return out


def test_draws_equal_python_mersenne_twister_across_blocks() -> None:
    seeds = np.array([*SEEDS, 123456789], dtype=np.uint32)  # an odd count exercises the lane padding
    draws = mt_draws(seeds, 2000)  # 2000 > 3 * 624: three twists
    for column, seed in enumerate(seeds.tolist()):
        generator = python_random_after_init_genrand(seed)
        assert draws[:, column].tolist() == [generator.getrandbits(32) for _ in range(2000)]


def test_batched_generators_are_independent_of_their_neighbours() -> None:
    seeds = np.array([7, 8, 9, 10, 11], dtype=np.uint32)
    together = mt_draws(seeds, 700)
    for column, seed in enumerate(seeds.tolist()):
        alone = mt_draws(np.array([seed], dtype=np.uint32), 700)[:, 0]
        assert np.array_equal(together[:, column], alone)


def test_seed_reduction_matches_torch_manual_seed(torch: Any) -> None:
    # torch keeps only the low 32 bits; negative seeds wrap modulo 2**64
    assert mt.mt_seed(5 + 2**32) == 5
    assert mt.mt_seed(-5) == (2**64 - 5) & 0xFFFFFFFF
    for seed in (5 + 2**32, 2**64 - 1, -5, -(2**63)):
        assert np.array_equal(mt.randperm(50, seed), torch_randperm(torch, 50, seed))
    with pytest.raises(ValueError, match="seeds"):
        mt.mt_seed(2**64)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 623, 624, 625, 1000, 32000])
def test_randperm_equals_torch(torch: Any, n: int) -> None:
    for seed in SEEDS:
        assert np.array_equal(mt.randperm(n, seed), torch_randperm(torch, n, seed)), seed


def test_selfhash_table_size_permutation_equals_torch(torch: Any) -> None:
    assert np.array_equal(mt.randperm(1_000_003, 15485863), torch_randperm(torch, 1_000_003, 15485863))


@pytest.mark.parametrize(
    ("n", "ratio"), [(2, 0.5), (10, 0.5), (1000, 0.25), (32000, 0.25), (50257, 0.5), (128256, 0.25), (200000, 0.5)]
)
def test_green_bitsets_equal_torch_prefix(torch: Any, n: int, ratio: float) -> None:
    k = int(n * ratio)
    seeds = np.array([*SEEDS, 42, 2**32 - 2], dtype=np.uint32)
    bitsets = mt.green_bitsets(seeds, n, k)
    assert bitsets.shape == (seeds.shape[0], (n + 7) // 8)
    got = unpack(bitsets, n)
    for row, seed in enumerate(seeds.tolist()):
        assert np.array_equal(got[row], prefix_mask(torch, n, k, seed)), seed
    assert (got.sum(axis=1) == k).all()


def test_write_order_fallback_gives_the_same_sets() -> None:
    seeds = np.arange(12, dtype=np.uint32)
    for n, k in ((1000, 250), (5000, 2500), (300, 299)):
        offsets = np.ascontiguousarray(mt.fisher_yates_offsets(seeds, n, k).T)
        trusted = mt._green_rows(offsets, n, k)
        explicit = mt._green_rows(offsets, n, k, trust_write_order=False)
        assert np.array_equal(trusted, explicit)
        targets = np.arange(k, dtype=np.int64) + offsets[0]
        assert np.array_equal(mt._last_writers(targets, n), mt._last_writers(targets, n, trust_write_order=False))


def test_empty_and_full_prefixes() -> None:
    seeds = np.array([3, 4], dtype=np.uint32)
    assert not mt.green_bitsets(seeds, 100, 0).any()
    assert unpack(mt.green_bitsets(seeds, 100, 99), 100).sum() == 2 * 99
    with pytest.raises(ValueError, match="prefix"):
        mt.green_bitsets(seeds, 100, 100)
    with pytest.raises(ValueError, match="small-n"):
        mt.green_bitsets(seeds, mt.TORCH_SMALL_N_LIMIT, 5)


@pytest.mark.parametrize(("n", "k"), [(2, 1), (17, 8), (500, 125), (999, 998)])
def test_following_one_token_agrees_with_the_whole_set_everywhere(n: int, k: int) -> None:
    seeds = np.array([0, 1, 99, 15485863, 2**32 - 1], dtype=np.uint32)
    every_seed = np.repeat(seeds, n)
    every_token = np.tile(np.arange(n, dtype=np.int64), seeds.shape[0])
    followed = mt.in_prefix(every_seed, every_token, n, k).reshape(seeds.shape[0], n)
    assert np.array_equal(followed, unpack(mt.green_bitsets(seeds, n, k), n))


def test_following_one_token_at_vocabulary_scale(torch: Any) -> None:
    rng = np.random.default_rng(11)
    n, k = 50257, 25128
    seeds = rng.integers(0, 2**32, 40).astype(np.uint32)
    tokens = rng.integers(0, n, 40)
    tokens[:4] = [0, n - 1, k - 1, k]
    got = mt.in_prefix(seeds, tokens, n, k)
    expected = [prefix_mask(torch, n, k, s)[t] for s, t in zip(seeds.tolist(), tokens.tolist(), strict=True)]
    assert got.tolist() == expected


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 3000), ratio=st.floats(0.01, 0.99), seed=st.integers(0, 2**32 - 1))
def test_green_sets_match_a_plain_fisher_yates(n: int, ratio: float, seed: int) -> None:
    k = max(1, min(n - 1, int(n * ratio)))
    generator = python_random_after_init_genrand(seed)
    values = list(range(n))
    for i in range(n - 1):  # torch's CPU randperm, small-n branch
        j = i + generator.getrandbits(32) % (n - i)
        values[i], values[j] = values[j], values[i]
    expected = np.zeros(n, dtype=np.bool_)
    expected[values[:k]] = True
    assert np.array_equal(unpack(mt.green_bitsets(np.array([seed], dtype=np.uint32), n, k), n)[0], expected)
    assert np.array_equal(mt.randperm(n, seed), np.array(values))
    token = seed % n
    assert mt.in_prefix(np.array([seed], dtype=np.uint32), np.array([token]), n, k)[0] == expected[token]


def test_cache_answers_like_the_sets_and_builds_only_for_recurring_seeds() -> None:
    n, k = 4000, 1000
    cache = mt.GreenListCache(n, k)
    rng = np.random.default_rng(3)
    seeds = rng.integers(0, 2**32, 300).astype(np.uint32)
    tokens = rng.integers(0, n, 300)
    truth = mt.in_prefix(seeds, tokens, n, k)
    assert np.array_equal(cache.contains(seeds, tokens), truth)
    assert cache.bitsets_built == 0  # each seed asked about one token: no set built
    assert cache.tokens_followed == 300
    assert np.array_equal(cache.contains(seeds, tokens), truth)
    assert cache.tokens_followed == 300  # the same questions are remembered
    other = (tokens + 1) % n
    assert np.array_equal(cache.contains(seeds, other), mt.in_prefix(seeds, other, n, k))
    assert cache.bitsets_built == 300  # a second token for a seed builds its set
    assert len(cache) == 300
    repeated = np.repeat(seeds[:5], 3)
    some = rng.integers(0, n, 15)
    assert np.array_equal(cache.contains(repeated, some), mt.in_prefix(repeated, some, n, k))
    assert np.array_equal(cache.bitsets(seeds[:3]), mt.green_bitsets(seeds[:3], n, k))


def test_cache_evicts_least_recently_used_and_stays_correct() -> None:
    n, k = 1600, 400
    cache = mt.GreenListCache(n, k, max_bytes=20 * 200)  # room for 20 sets of 200 bytes
    assert cache.max_rows == 20
    rng = np.random.default_rng(4)
    for _ in range(6):
        seeds = np.repeat(rng.integers(0, 2**32, 12).astype(np.uint32), 2)
        tokens = rng.integers(0, n, 24)
        assert np.array_equal(cache.contains(seeds, tokens), mt.in_prefix(seeds, tokens, n, k))
        assert len(cache) <= 20
    recent = rng.integers(0, 2**32, 8).astype(np.uint32)
    cache.bitsets(recent)
    cache.bitsets(rng.integers(0, 2**32, 12).astype(np.uint32))
    built = cache.bitsets_built
    cache.bitsets(recent)  # the 8 most recent sets survived the last insertion
    assert cache.bitsets_built == built
    many = rng.integers(0, 2**32, 30).astype(np.uint32)
    many_tokens = rng.integers(0, n, 60)
    doubled = np.repeat(many, 2)
    assert np.array_equal(cache.contains(doubled, many_tokens), mt.in_prefix(doubled, many_tokens, n, k))
    assert np.array_equal(cache.bitsets(many), mt.green_bitsets(many, n, k))


def test_cache_warm_builds_every_set_once() -> None:
    cache = mt.GreenListCache(3000, 750)
    seeds = np.arange(50, dtype=np.uint32)
    cache.warm(np.concatenate([seeds, seeds]))
    assert cache.bitsets_built == 50
    tokens = np.arange(50, dtype=np.int64) * 7
    assert np.array_equal(cache.contains(seeds, tokens), mt.in_prefix(seeds, tokens, 3000, 750))
    assert cache.bitsets_built == 50
    assert cache.tokens_followed == 0


def test_green_bitsets_across_batch_and_chunk_boundaries(torch: Any) -> None:
    """Many seeds at a small vocabulary: batches and scratch chunks do not line up (a past bug)."""
    from tracemark.text import _mt19937 as mt

    n, k = 8192, 2048
    seeds = np.arange(3000, dtype=np.uint32) * np.uint32(2654435761)
    bitsets = mt.green_bitsets(seeds, n, k)
    for row in (0, 1, 1499, 2999):
        expected = np.zeros(n, dtype=np.uint8)
        expected[torch.randperm(n, generator=torch.Generator().manual_seed(int(seeds[row])))[:k].numpy()] = 1
        got = np.unpackbits(bitsets[row], bitorder="little")[:n]
        assert np.array_equal(got, expected)
