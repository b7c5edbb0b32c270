"""The synthid scheme: bit-exact g-values (transformers / synthid-text 0.2.1 and the SHA-256 HEAD variant),
exact weighted-mean p-values, the top-k tournament processor, and round trips with transformers' own SynthID."""

from __future__ import annotations

import hashlib
import itertools
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from transformers import GPT2Config, GPT2LMHeadModel, SynthIDTextWatermarkingConfig
from transformers.generation.logits_process import (
    SynthIDTextWatermarkLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
)

from tracemark._json import as_float, as_sequence
from tracemark._stats import binomial_upper_tail, chernoff_upper_bound, weighted_binomial_upper_tail
from tracemark.errors import KeyMismatchError
from tracemark.keys import TextKey, make_text_key
from tracemark.text import detect_tokens, logits_processor
from tracemark.text._hf_synthid import SynthIDLogitsProcessor
from tracemark.text._schemes import load_scheme
from tracemark.text._schemes.synthid import (
    LCG_MULTIPLIER,
    SynthIDScheme,
    integer_weights,
    mt19937_outputs,
    sampling_table,
)

# google-deepmind/synthid-text's DEFAULT_WATERMARKING_CONFIG keys (also transformers' documentation example)
UPSTREAM_KEYS = [654, 400, 836, 123, 340, 443, 597, 160, 57, 29, 590, 639, 13, 715, 468,
                 990, 966, 226, 324, 585, 118, 504, 421, 521, 129, 669, 732, 225, 90, 960]  # fmt: skip


def synthid_weights(depth: int) -> NDArray[np.float64]:
    """synthid-text's default weights: ``linspace(10, 1, depth)`` normalised to sum to ``depth``."""
    weights: NDArray[np.float64] = np.linspace(10.0, 1.0, depth)
    normalised: NDArray[np.float64] = weights * (depth / float(weights.sum()))
    return normalised


def synthid_key(keys: list[int], *, vocab_size: int = 32000, version: str = "0.2.1", **params: Any) -> TextKey:
    return make_text_key(
        scheme="synthid",
        scheme_version=version,
        params={"depth": len(keys), **params},
        vocab_size=vocab_size,
        tokenizer_sha256="a" * 64,
        secret={"keys": keys},
    )


def hf_processor(keys: list[int], **kwargs: Any) -> Any:
    settings: dict[str, Any] = {
        "ngram_len": 5,
        "sampling_table_size": 1 << 16,
        "sampling_table_seed": 0,
        "context_history_size": 1024,
        **kwargs,
    }
    return SynthIDTextWatermarkLogitsProcessor(keys=keys, device=torch.device("cpu"), **settings)


def _signed(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


# -- the sampling table ------------------------------------------------------------------------
@pytest.mark.parametrize(("seed", "size"), [(0, 1 << 16), (1, 1 << 10), (123456789, 1 << 12), ((1 << 32) + 7, 1 << 16)])
def test_sampling_table_equals_torch_randint(seed: int, size: int) -> None:
    expected = torch.randint(0, 2, (size,), generator=torch.Generator().manual_seed(seed)).numpy()
    assert np.array_equal(sampling_table(seed, size), expected)


def test_mt19937_matches_the_reference_generator() -> None:
    # mt19937ar.c with init_genrand(5489): the 10,000th output is 4123659995 (C++ std::mt19937 requirement)
    assert int(mt19937_outputs(5489, 10_000)[-1]) == 4123659995
    assert mt19937_outputs(0, 0).shape == (0,)


def test_default_table_fraction_and_null_probability() -> None:
    scheme = SynthIDScheme(synthid_key(UPSTREAM_KEYS))
    assert scheme.table_one_fraction == 32743 / 65536
    assert scheme.success_probability == 0.5  # max(1/2, fraction): never anti-conservative


# -- g-values identical to transformers (version 0.2.1) -------------------------------------------
KEY_SETS: list[list[int]] = [
    UPSTREAM_KEYS,
    [int(k) for k in np.random.default_rng(1).integers(0, 1 << 31, 30)],
    [int(k) for k in np.random.default_rng(2).integers(-(1 << 63), (1 << 63) - 1, 7, dtype=np.int64)],
]
CASES = [
    # (vocab, ngram_len, keys index, table size, table seed, sequences, length)
    (2, 5, 0, 1 << 16, 0, 100, 40),
    (100, 3, 1, 1 << 16, 0, 100, 40),
    (32000, 5, 0, 1 << 16, 0, 200, 50),
    (32000, 5, 1, 1 << 16, 0, 200, 50),
    (50257, 8, 2, 1 << 12, 99, 150, 40),
    (128256, 5, 1, 1 << 16, (1 << 32) + 3, 150, 40),
    (256000, 2, 2, 1 << 16, 0, 150, 40),
    (151936, 5, 0, 1 << 10, 7, 100, 40),
]


@pytest.mark.parametrize(("vocab", "ngram_len", "keys_index", "size", "seed", "rows", "length"), CASES)
def test_g_values_equal_transformers(
    vocab: int, ngram_len: int, keys_index: int, size: int, seed: int, rows: int, length: int
) -> None:
    keys = KEY_SETS[keys_index]
    rng = np.random.default_rng(vocab + ngram_len + keys_index)
    ids = rng.integers(0, vocab, (rows, length))
    ids[:, length // 2 : length // 2 + 12] = ids[:, :12]  # repeated contexts exercise the mask
    hf = hf_processor(keys, ngram_len=ngram_len, sampling_table_size=size, sampling_table_seed=seed)
    ours = SynthIDScheme(
        synthid_key(keys, vocab_size=vocab, ngram_len=ngram_len, sampling_table_size=size, sampling_table_seed=seed)
    )
    batch = torch.tensor(ids)
    expected_g = hf.compute_g_values(batch).numpy()
    expected_layer_keys = hf.compute_ngram_keys(batch.unfold(1, ngram_len, 1)).numpy()
    expected_mask = hf.compute_context_repetition_mask(batch).numpy()
    expected_eos = hf.compute_eos_token_mask(batch, eos_token_id=int(ids[0, length - 3]))[:, ngram_len - 1 :].numpy()
    for row in range(rows):
        units = ours.score(ids[row])
        assert units.layer_values is not None
        assert np.array_equal(units.layer_values, expected_g[row])
        assert np.array_equal(units.hits, expected_g[row].sum(axis=1))
        hashes = ours.ngram_hashes(sliding_window_view(ids[row], ngram_len))
        assert np.array_equal(ours.layer_hashes(hashes), expected_layer_keys[row])
        assert np.array_equal(ours.transformers_context_mask(ids[row]), expected_mask[row])
        assert np.array_equal(ours.transformers_eos_mask(ids[row], int(ids[0, length - 3])), expected_eos[row] == 1)


def test_candidate_g_values_equal_transformers_over_the_whole_vocabulary() -> None:
    keys = KEY_SETS[1]
    vocab = 5000
    rng = np.random.default_rng(4)
    contexts = rng.integers(0, vocab, (3, 4))
    hf = hf_processor(keys)
    everything = torch.arange(vocab).unsqueeze(0).expand(3, -1)
    layer_keys, _ = hf._compute_keys(torch.tensor(contexts), everything)
    expected = hf.sample_g_values(layer_keys).numpy()
    ours = SynthIDScheme(synthid_key(keys, vocab_size=vocab))
    assert np.array_equal(ours.candidate_g_values(contexts, everything.numpy()), expected)


def test_context_mask_treats_a_zero_hash_as_seen_while_the_history_holds_zeros() -> None:
    # transformers' history starts as zeros: a context whose hash is 0 counts as repeated
    keys = UPSTREAM_KEYS[:3]
    inverse = pow(LCG_MULTIPLIER, -1, 1 << 64)
    token = _signed(-inverse - 1)  # (1 + token) * M + 1 == 0 (mod 2**64)
    ids = np.array([5, token, 6, 7, token, 8], dtype=np.int64)
    ours = SynthIDScheme(synthid_key(keys, ngram_len=2))
    assert int(ours.context_hashes(np.array([[token]]))[0]) == 0
    expected = hf_processor(keys, ngram_len=2).compute_context_repetition_mask(torch.tensor(ids[None, :]))
    assert np.array_equal(ours.transformers_context_mask(ids), expected.numpy()[0])
    assert not ours.transformers_context_mask(ids)[1]


def test_context_history_window_is_respected() -> None:
    keys = KEY_SETS[1][:4]
    rng = np.random.default_rng(9)
    ids = rng.integers(0, 50, 300)
    ours = SynthIDScheme(synthid_key(keys, vocab_size=50, ngram_len=3, context_history_size=16))
    expected = hf_processor(keys, ngram_len=3, context_history_size=16).compute_context_repetition_mask(
        torch.tensor(ids[None, :])
    )
    assert np.array_equal(ours.transformers_context_mask(ids), expected.numpy()[0])


# -- the SHA-256 (synthid-text HEAD) variant -------------------------------------------------------
def reference_sha256_g_values(ngram: list[int], keys: list[int]) -> list[int]:
    """Scalar reference written from the algorithm (Python integers, explicit int64 wrapping)."""
    digest = hashlib.sha256(b"".join(k.to_bytes(8, "little", signed=True) for k in keys)).digest()
    state = int.from_bytes(digest, "big") % ((1 << 63) - 1)

    def lcg(h: int, x: int) -> int:
        return _signed((h + x) * LCG_MULTIPLIER + 1)

    for token in ngram:
        state = lcg(state, token)
    out = []
    for key in keys:
        x = lcg(state, key)
        for _ in range(12):
            x = lcg(x, 1) >> 5  # Python's >> floors: the arithmetic shift of a signed int64
        out.append((x >> 30) % 2)
    return out


def torch_sha256_g_values(ngrams: torch.Tensor, keys: list[int]) -> torch.Tensor:
    """The same algorithm with torch.long tensor arithmetic (checks numpy and torch wrap alike)."""
    digest = hashlib.sha256(torch.tensor(keys, dtype=torch.long).numpy().tobytes()).digest()
    h = torch.full(ngrams.shape[:1], int.from_bytes(digest, "big") % ((1 << 63) - 1), dtype=torch.long)
    for column in range(ngrams.shape[1]):
        h = (h + ngrams[:, column]) * LCG_MULTIPLIER + 1
    x = (h[:, None] + torch.tensor(keys, dtype=torch.long)[None, :]) * LCG_MULTIPLIER + 1
    for _ in range(12):
        x = ((x + 1) * LCG_MULTIPLIER + 1) >> 5
    return (x >> 30) % 2


def test_sha256_variant_matches_scalar_and_torch_references() -> None:
    rng = np.random.default_rng(12)
    key_sets = [UPSTREAM_KEYS, KEY_SETS[2], [0], [(1 << 63) - 1, -(1 << 63)]]
    for keys in key_sets:
        for vocab in (3, 32000, 256000):
            ours = SynthIDScheme(synthid_key(keys, vocab_size=vocab, version="sha256"))
            ngrams = rng.integers(0, vocab, (400, 5))
            g = ours.g_values(ngrams)
            assert np.array_equal(g, torch_sha256_g_values(torch.tensor(ngrams), keys).numpy())
            for row in range(0, 400, 40):
                assert g[row].tolist() == reference_sha256_g_values(ngrams[row].tolist(), keys)


def test_sha256_variant_differs_from_the_table_variant_and_is_balanced() -> None:
    rng = np.random.default_rng(13)
    ngrams = rng.integers(0, 32000, (20000, 5))
    table = SynthIDScheme(synthid_key(UPSTREAM_KEYS)).g_values(ngrams)
    sha = SynthIDScheme(synthid_key(UPSTREAM_KEYS, version="sha256")).g_values(ngrams)
    assert abs(float(sha.mean()) - 0.5) < 0.003
    assert abs(float((table == sha).mean()) - 0.5) < 0.01


# -- scoring rules ----------------------------------------------------------------------------------
def test_score_rows_follow_the_interface() -> None:
    scheme = SynthIDScheme(synthid_key(UPSTREAM_KEYS))
    units = scheme.score(np.arange(10, 17))
    assert units.positions.tolist() == [4, 5, 6]
    assert units.unit_keys.tolist() == [[10, 11, 12, 13, 14], [11, 12, 13, 14, 15], [12, 13, 14, 15, 16]]
    assert units.layer_values is not None
    assert units.layer_values.shape == (3, 30)
    assert scheme.trials_per_unit == 30
    assert scheme.context_width == 4
    empty = scheme.score(np.arange(4))
    assert empty.positions.shape == (0,)
    assert empty.unit_keys.shape == (0, 5)


def test_ngrams_sharing_a_table_index_share_a_unit_key() -> None:
    # tokens t and t + 65536 after the same context have the same hash mod 2**16, hence the same g-vector
    scheme = SynthIDScheme(synthid_key(KEY_SETS[1], vocab_size=200000))
    sequence = np.array([1, 2, 3, 4, 70, 9, 1, 2, 3, 4, 70 + 65536, 9])
    units = scheme.score(sequence)
    assert units.layer_values is not None
    assert np.array_equal(units.layer_values[0], units.layer_values[6])
    # every n-gram over 70 + 65536 shares its index with the same n-gram over 70
    assert units.unit_keys[6].tolist() == [1, 2, 3, 4, 70]
    assert units.unit_keys[7].tolist() == [2, 3, 4, 70, 9]
    assert units.unit_keys[5].tolist() == sequence[5:10].tolist()
    verdict = detect_tokens(sequence, scheme.key, scan_windows=False)
    assert verdict.tokens_scored == 6
    sha = SynthIDScheme(synthid_key(KEY_SETS[1], vocab_size=200000, version="sha256")).score(sequence)
    assert sha.unit_keys[6].tolist() == sequence[6:11].tolist()


def test_token_outside_the_vocabulary_is_refused() -> None:
    scheme = SynthIDScheme(synthid_key(UPSTREAM_KEYS, vocab_size=100))
    with pytest.raises(KeyMismatchError):
        scheme.score(np.array([1, 2, 3, 4, 100]))


# -- the weighted-mean statistic -------------------------------------------------------------------
def brute_force_tail(weights: NDArray[np.int64], units: int, probability: float) -> dict[int, float]:
    """P(S >= s) for every s, by enumerating all 2**(units * depth) g-value patterns."""
    per_trial = np.tile(weights, units)
    tails: dict[int, float] = {}
    totals = np.zeros(1 << per_trial.size, dtype=np.int64)
    ones = np.zeros(1 << per_trial.size, dtype=np.int64)
    patterns = np.arange(1 << per_trial.size)
    for bit, weight in enumerate(per_trial.tolist()):
        on = (patterns >> bit) & 1
        totals += on * weight
        ones += on
    mass = probability**ones * (1 - probability) ** (per_trial.size - ones)
    for threshold in range(int(totals.max()) + 2):
        tails[threshold] = float(mass[totals >= threshold].sum())
    return tails


@pytest.mark.parametrize(("depth", "units", "probability"), [(4, 3, 0.5), (3, 4, 0.5), (6, 2, 0.7), (2, 6, 0.5)])
def test_exact_weighted_tail_equals_brute_force(depth: int, units: int, probability: float) -> None:
    weights = integer_weights(depth)
    for threshold, expected in brute_force_tail(weights, units, probability).items():
        tail = weighted_binomial_upper_tail(threshold, weights, np.full(depth, units), probability)
        assert tail.method == "weighted-binomial-exact"
        assert tail.p_value == pytest.approx(expected, rel=1e-12, abs=1e-300)
        if tail.p_value > 0:
            assert tail.log10_p_value == pytest.approx(math.log10(tail.p_value))


def test_integer_weights_are_proportional_to_synthid_weights() -> None:
    for depth in (1, 2, 5, 30, 31):
        integers = integer_weights(depth).astype(np.float64)
        ratio = synthid_weights(depth) / integers
        assert np.allclose(ratio, ratio[0], rtol=1e-12)
    assert integer_weights(30).tolist()[:3] == [290, 281, 272]


def test_chernoff_bound_is_never_below_the_exact_tail() -> None:
    weights = integer_weights(30)
    total = int(weights.sum())
    for units in (1, 5, 20):
        trials = np.full(30, units)
        for fraction in (0.45, 0.55, 0.6, 0.7, 0.9, 1.0):
            threshold = math.ceil(fraction * units * total)
            exact = weighted_binomial_upper_tail(threshold, weights, trials, 0.5)
            assert exact.method == "weighted-binomial-exact"
            bound = chernoff_upper_bound(float(threshold), np.repeat(weights, units).astype(np.float64), 0.5)
            assert exact.p_value * (1 - 1e-12) <= bound.p_value <= 1.0
    assert weighted_binomial_upper_tail(10**6 * total + 1, weights, np.full(30, 10**6), 0.5).p_value == 0.0
    tail = weighted_binomial_upper_tail(10**5 * total, weights, np.full(30, 10**5), 0.5)
    assert tail.method == "chernoff-bound"
    assert tail.log10_p_value == pytest.approx(10**5 * 30 * math.log10(0.5), rel=1e-6)  # all ones: p**(n * depth)
    assert tail.p_value == 0.0


def test_weighted_statistic_matches_synthid_formula_and_switches_method() -> None:
    scheme = SynthIDScheme(synthid_key(UPSTREAM_KEYS))
    rng = np.random.default_rng(21)
    small = scheme.score(rng.integers(0, 32000, 24))
    (stat,) = scheme.extra_statistics(small)
    assert small.layer_values is not None
    g = small.layer_values
    # synthid-text detector_mean.weighted_mean_score with a full mask
    expected = float((g * synthid_weights(30)[None, :]).sum() / (30 * g.shape[0]))
    assert stat.name == "weighted_mean"
    assert stat.score == pytest.approx(expected, rel=1e-12)
    assert stat.method == "weighted-binomial-exact"
    big = scheme.score(rng.integers(0, 32000, 3000))
    (big_stat,) = scheme.extra_statistics(big)
    assert big_stat.method == "chernoff-bound"
    assert big_stat.p_value > 1e-3
    # recomputed from unit keys when the detector passes no layer values
    (again,) = scheme.extra_statistics(
        type(small)(positions=small.positions, unit_keys=small.unit_keys, hits=small.hits, layer_values=None)
    )
    assert again == stat


# -- keys and parameters ----------------------------------------------------------------------------
def test_new_keys_have_fresh_layer_keys_in_int31() -> None:
    def source(label: str) -> bytes:
        return hashlib.sha256(b"master secret/" + label.encode()).digest()  # deterministic, like a keyring

    first = SynthIDScheme.new_key(secret_source=source, vocab_size=32000, tokenizer_sha256="b" * 64)
    second = SynthIDScheme.new_key(secret_source=source, vocab_size=32000, tokenizer_sha256="b" * 64)
    assert first.scheme_version == "0.2.1"
    keys = first.secret["keys"]
    assert isinstance(keys, Sequence)
    assert len(keys) == 30
    assert all(isinstance(k, int) and 0 <= k < 1 << 31 for k in keys)
    assert first.secret["keys"] != second.secret["keys"]
    params = first.public_record()["params"]
    assert isinstance(params, dict)
    assert "keys" not in params
    sha = SynthIDScheme.new_key(
        secret_source=source, vocab_size=32000, tokenizer_sha256="b" * 64, params={"depth": 8}, scheme_version="sha256"
    )
    assert sha.scheme_version == "sha256"
    assert len(as_sequence(sha.secret["keys"])) == 8
    assert isinstance(load_scheme(sha), SynthIDScheme)


@pytest.mark.parametrize(
    "params",
    [
        {"sampling_table_size": 1000},
        {"ngram_len": 1},
        {"top_k": 1},
        {"temperature": 0.0},
        {"depth": 0},
        {"colour": "blue"},
        {"context_history_size": 0},
        {"depth": "thirty"},
        {"temperature": None},
        {"top_k": [40]},
    ],
)
def test_bad_parameters_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(KeyMismatchError):
        SynthIDScheme.new_key(secret_source=lambda _: os.urandom(32), vocab_size=100, tokenizer_sha256="c" * 64,
                              params=params)  # fmt: skip


def test_key_count_must_match_depth() -> None:
    key = make_text_key(scheme="synthid", scheme_version="0.2.1", params={"depth": 30}, vocab_size=100,
                        tokenizer_sha256="d" * 64, secret={"keys": [1, 2, 3]})  # fmt: skip
    with pytest.raises(KeyMismatchError):
        SynthIDScheme(key)


def test_transformers_config_round_trip() -> None:
    config = SynthIDTextWatermarkingConfig(ngram_len=4, keys=UPSTREAM_KEYS[:12], sampling_table_seed=3)
    key = SynthIDScheme.key_from_transformers_config(config, vocab_size=500, tokenizer_sha256="e" * 64)
    scheme = SynthIDScheme(key)
    assert (scheme.ngram_len, scheme.depth, scheme.sampling_table_seed) == (4, 12, 3)
    back = scheme.to_transformers_config()
    assert back.keys == UPSTREAM_KEYS[:12]
    assert back.ngram_len == 4
    from_dict = SynthIDScheme.key_from_transformers_config(config.to_dict(), vocab_size=500, tokenizer_sha256="e" * 64)
    assert from_dict.secret["keys"] == key.secret["keys"]
    sha = SynthIDScheme(synthid_key(UPSTREAM_KEYS, version="sha256"))
    with pytest.raises(KeyMismatchError):
        sha.to_transformers_config()


# -- the processor --------------------------------------------------------------------------------------
def test_tournament_is_unbiased_over_all_g_value_patterns() -> None:
    processor = SynthIDLogitsProcessor(SynthIDScheme(synthid_key(UPSTREAM_KEYS[:2])))
    log_probs = np.log(np.array([[0.5, 0.3, 0.2]]))
    total = np.zeros((1, 3))
    patterns = list(itertools.product((0, 1), repeat=6))
    for bits in patterns:
        g = np.array(bits, dtype=np.uint8).reshape(1, 3, 2)
        total += processor.tournament(log_probs, g)
    assert np.allclose(total / len(patterns), np.exp(log_probs), rtol=1e-12)


def test_processor_distribution_equals_transformers() -> None:
    """Same scores and context: ours == transformers' Temperature -> TopK -> SynthID processor, step after step."""
    vocab, batch, temperature = 3000, 4, 0.7
    keys = KEY_SETS[1]
    ours = SynthIDLogitsProcessor(SynthIDScheme(synthid_key(keys, vocab_size=vocab, temperature=temperature)))
    hf = hf_processor(keys)
    warp_temperature, warp_top_k = TemperatureLogitsWarper(temperature), TopKLogitsWarper(40)
    rng = np.random.default_rng(30)
    ids = torch.tensor(rng.integers(0, vocab, (batch, 9)))
    hf._init_state(batch)
    hf.state.context = ids[:, -5:-1].clone()  # transformers appends ids[:, -1] on the call: same context as ours
    repeated_rows = []
    for step in range(12):
        logits = torch.tensor(rng.normal(0.0, 3.0, (batch, vocab)), dtype=torch.float32)
        mine = torch.softmax(ours(ids, logits), dim=-1)
        theirs = torch.softmax(hf(ids, warp_top_k(ids, warp_temperature(ids, logits))), dim=-1)
        assert torch.allclose(mine, theirs, atol=2e-6, rtol=0)
        assert ((mine > 0).sum(dim=-1) <= 40).all()
        repeated_rows.append(ours.repeated_contexts(ids.numpy()).tolist())
        nxt = torch.multinomial(mine, 1)
        if 4 <= step <= 7:
            # rows 0 and 1 copy tokens 9..12 to 13..16: step 8 then sees the context of step 4 again
            nxt[:2] = ids[:2, 5 + step : 6 + step]
        ids = torch.cat([ids, nxt], dim=1)
    assert repeated_rows[8][:2] == [True, True]
    assert not any(any(rows) for rows in repeated_rows[:8])


def test_candidate_g_values_of_the_sha256_variant_match_the_scalar_reference() -> None:
    keys = KEY_SETS[1][:6]
    scheme = SynthIDScheme(synthid_key(keys, vocab_size=3000, version="sha256"))
    rng = np.random.default_rng(31)
    contexts = rng.integers(0, 3000, (3, 4))
    candidates = rng.integers(0, 3000, (3, 40))
    g = scheme.candidate_g_values(contexts, candidates)
    for row in range(3):
        for column in (0, 17, 39):
            ngram = [*contexts[row].tolist(), int(candidates[row, column])]
            assert g[row, column].tolist() == reference_sha256_g_values(ngram, keys)


def test_repeated_context_leaves_the_distribution_unwatermarked() -> None:
    keys = KEY_SETS[1]
    scheme = SynthIDScheme(synthid_key(keys, vocab_size=500, ngram_len=3))
    processor = SynthIDLogitsProcessor(scheme)
    prompt = torch.tensor([[7, 8, 9, 10]])
    logits = torch.tensor(np.random.default_rng(3).normal(0.0, 2.0, (1, 500)), dtype=torch.float32)
    processor(prompt, logits)  # context (9, 10), first step
    ids = torch.cat([prompt, torch.tensor([[11, 9, 10]])], dim=1)
    processor(ids[:, :5], logits)
    processor(ids[:, :6], logits)
    watermarked_again = processor(ids, logits)  # context (9, 10) was used by the first step
    plain = torch.full_like(logits, -torch.inf)
    top = torch.topk(logits, scheme.top_k)
    plain.scatter_(-1, top.indices, top.values)
    assert torch.allclose(watermarked_again, plain)
    processor.reset()
    assert not torch.allclose(processor(ids, logits), plain)  # a new generation: no history


def test_processor_leaves_short_contexts_unwatermarked() -> None:
    scheme = SynthIDScheme(synthid_key(UPSTREAM_KEYS, vocab_size=100))
    logits = torch.randn(2, 100)
    out = logits_processor(scheme)(torch.tensor([[1, 2], [3, 4]]), logits)
    top = torch.topk(logits, 40)
    assert torch.allclose(out.gather(-1, top.indices), top.values)
    assert torch.isinf(out).sum() == 2 * 60


def test_processor_accepts_half_precision_scores() -> None:
    scheme = SynthIDScheme(synthid_key(UPSTREAM_KEYS, vocab_size=300))
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    logits = torch.tensor(np.random.default_rng(8).normal(0.0, 2.0, (1, 300)), dtype=torch.float32)
    for dtype in (torch.float16, torch.bfloat16):
        rounded = logits.to(dtype)
        expected = torch.softmax(SynthIDLogitsProcessor(scheme)(ids, rounded.float()), dim=-1)
        out = SynthIDLogitsProcessor(scheme)(ids, rounded)
        assert out.dtype == dtype
        assert torch.allclose(torch.softmax(out.float(), dim=-1), expected, atol=1e-2)


# -- round trips with a tiny random GPT-2 ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_gpt2() -> Any:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=600, n_positions=128, n_embd=32, n_layer=1, n_head=2, bos_token_id=599, eos_token_id=599
    )
    model = GPT2LMHeadModel(config)
    model.train(False)
    return model


def _prompts(batch: int) -> torch.Tensor:
    return torch.tensor(np.random.default_rng(40).integers(0, 600, (batch, 6)))


def test_transformers_synthid_text_is_detected_by_tracemark(tiny_gpt2: Any) -> None:
    config = SynthIDTextWatermarkingConfig(ngram_len=5, keys=UPSTREAM_KEYS)
    key = SynthIDScheme.key_from_transformers_config(config, vocab_size=600, tokenizer_sha256="f" * 64)
    prompts = _prompts(4)
    torch.manual_seed(1)
    with torch.no_grad():
        marked = tiny_gpt2.generate(prompts, watermarking_config=config, do_sample=True, top_k=40,
                                    max_new_tokens=60, min_new_tokens=60, pad_token_id=0)  # fmt: skip
        plain = tiny_gpt2.generate(prompts, do_sample=True, top_k=40, max_new_tokens=60, min_new_tokens=60,
                                   pad_token_id=0)  # fmt: skip
    for row in range(4):
        verdict = detect_tokens(marked[row].numpy(), key, prompt_length=6, scan_windows=False)
        assert verdict.p_value < 1e-6
        assert verdict.statistics[0].p_value < 1e-6
        control = detect_tokens(plain[row].numpy(), key, prompt_length=6, scan_windows=False)
        assert control.p_value > 1e-4


def _transformers_mean_g_p_value(config: Any, sequences: torch.Tensor, prompt_length: int) -> float:
    """transformers' detector path (g-values, repetition and EOS masks) on the generated part, exact binomial."""
    processor = hf_processor(config.keys, ngram_len=config.ngram_len)
    answer = sequences[:, prompt_length - config.ngram_len + 1 :]
    g = processor.compute_g_values(answer)
    mask = (
        processor.compute_context_repetition_mask(answer)
        * processor.compute_eos_token_mask(answer, 599)[:, config.ngram_len - 1 :]
    )
    hits = int((g * mask[:, :, None]).sum())
    trials = int(mask.sum()) * len(config.keys)
    return binomial_upper_tail(hits, trials, 0.5).p_value


def test_tracemark_synthid_text_is_detected_by_transformers(tiny_gpt2: Any) -> None:
    key = synthid_key(KEY_SETS[1], vocab_size=600)
    scheme = SynthIDScheme(key)
    config = scheme.to_transformers_config()
    prompts = _prompts(3)
    torch.manual_seed(2)
    with torch.no_grad():
        marked = tiny_gpt2.generate(prompts, logits_processor=[logits_processor(scheme)], max_new_tokens=60,
                                    min_new_tokens=60, pad_token_id=0, **scheme.generation_kwargs())  # fmt: skip
        plain = tiny_gpt2.generate(prompts, do_sample=True, top_k=40, max_new_tokens=60, min_new_tokens=60,
                                   pad_token_id=0)  # fmt: skip
    for row in range(3):
        assert _transformers_mean_g_p_value(config, marked[row : row + 1], 6) < 1e-6
        assert _transformers_mean_g_p_value(config, plain[row : row + 1], 6) > 1e-4
        assert detect_tokens(marked[row].numpy(), key, prompt_length=6, scan_windows=False).p_value < 1e-6


def test_sha256_variant_round_trip(tiny_gpt2: Any) -> None:
    key = synthid_key(KEY_SETS[1], vocab_size=600, version="sha256")
    scheme = SynthIDScheme(key)
    torch.manual_seed(3)
    with torch.no_grad():
        marked = tiny_gpt2.generate(_prompts(2), logits_processor=[logits_processor(scheme)], max_new_tokens=50,
                                    min_new_tokens=50, pad_token_id=0, **scheme.generation_kwargs())  # fmt: skip
    table_key = synthid_key([int(as_float(k)) for k in as_sequence(key.secret["keys"])], vocab_size=600)
    for row in range(2):
        assert detect_tokens(marked[row].numpy(), key, prompt_length=6, scan_windows=False).p_value < 1e-6
        assert detect_tokens(marked[row].numpy(), table_key, prompt_length=6, scan_windows=False).p_value > 1e-4
