"""The ``kgw`` scheme: bit-exact with transformers' ``WatermarkingConfig`` / ``WatermarkDetector``.

Text generated with ``model.generate(watermarking_config=WatermarkingConfig(...))`` is
detected here without torch, and text generated with :meth:`KGWScheme.logits_processor`
is detected by transformers' ``WatermarkDetector`` with the same settings.  The rules,
checked against ``transformers/generation/logits_process.py`` (``WatermarkLogitsProcessor``)
and ``watermarking.py`` (``WatermarkDetector``), version ``hf-1``:

* vocabulary ``V`` = the model's ``config.vocab_size``; green list of a seed = the first
  ``int(V * greenlist_ratio)`` entries of ``torch.randperm(V)`` on a CPU generator after
  ``manual_seed(seed)``; only the seed's low 32 bits matter (:mod:`.._mt19937`);
* ``lefthash``: ``seed = hashing_key * x[t-1]`` (Python integers), whatever the
  ``context_width``; ``context_width`` only moves the first scored position;
* ``selfhash``: ``T = randperm(1_000_003)`` seeded with ``hashing_key``; over the window
  ``w`` = the last ``context_width`` tokens *including the scored token* ``x[t]``,
  ``seed = min_i(hashing_key * (T[w_i mod 1_000_003] + 1) * (T[x[t] mod 1_000_003] + 1))``
  computed in int64, which wraps (torch semantics), and the minimum is signed;
* the generator receives ``seed mod (2**64 - 1)`` (Python semantics: a negative minimum
  becomes ``seed + 2**64 - 1``);
* detection drops a leading BOS, then scores every position ``t >= context_width``
  (lefthash) or ``t >= context_width - 1`` (selfhash): ``hit = x[t] in green(seed_t)``.

Units for de-duplication are the tokens that fix the hit: ``(x[t-1], x[t])`` for lefthash
and ``(x[argmin], x[t])`` for selfhash (the window token that won the minimum).  Under
the null, distinct units draw their green lists from distinct seeds (up to 32-bit seed
collisions); units that share a seed (lefthash, same previous token) test distinct tokens
of one random subset: a draw without replacement, less spread than the binomial
(Hoeffding, 1963), so the binomial tail does not overstate significance.  The null hit
probability is exactly ``int(V * ratio) / V``.  The seeds of related previous tokens (``a`` and
``a + 1``, ``a`` and ``2a``) still give green lists that overlap as independent ones do, and on
source code the de-duplicated p-values hold over keys (``bench/bench_text_fpr_code.py``).  What
they do not promise is one key's rate over a corpus: texts that share units share their colours,
so with one key the share of code files at ``p <= alpha`` can stray from ``alpha`` by several
times either way (``docs/text-watermark.md``).

The key is transformers' ``hashing_key``: the green lists depend on it only through
32-bit generator seeds, so a KGW key carries at most 32 bits of secrecy against an
attacker who knows the scheme (the ``native`` scheme has 128-bit keys).

Speed: green lists are never materialised per token.  Seeds are computed for all
positions at once, and :class:`~tracemark.text._mt19937.GreenListCache` answers "is
``x[t]`` green for seed ``s_t``?" from cached bitsets, or follows the one token through
the vectorised shuffle; :meth:`KGWScheme.warm_cache` precomputes the bitsets of every
previous token for bulk lefthash detection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, TypedDict

import numpy as np
from numpy.typing import NDArray

from tracemark._json import JSONObject
from tracemark.errors import InvalidInputError, KeyMismatchError
from tracemark.keys import TextKey, make_text_key
from tracemark.text._mt19937 import TORCH_SMALL_N_LIMIT, GreenListCache, randperm
from tracemark.text._schemes._base import (
    ScoredUnits,
    SecretSource,
    WatermarkScheme,
    check_token_ids,
    float_param,
)

#: transformers' default ``hashing_key`` (the millionth prime): public, for interop only.
TRANSFORMERS_DEFAULT_HASHING_KEY = 15485863
#: Size of the selfhash lookup table ``T`` (transformers' ``WatermarkLogitsProcessor.table_size``).
SELFHASH_TABLE_SIZE = 1_000_003
SEEDING_SCHEMES = ("lefthash", "selfhash")
MAX_CONTEXT_WIDTH = 16


class KGWParams(TypedDict):
    """A kgw key's parameters (its record's ``params``): transformers' ``WatermarkingConfig`` and the BOS id."""

    greenlist_ratio: float
    bias: float
    seeding_scheme: str
    context_width: int
    bos_token_id: int | None


class WatermarkingConfigKwargs(TypedDict):
    """Arguments of ``transformers.WatermarkingConfig`` (:meth:`KGWScheme.watermarking_config_kwargs`)."""

    greenlist_ratio: float
    bias: float
    hashing_key: int
    seeding_scheme: str
    context_width: int


DEFAULT_PARAMS: KGWParams = {
    "greenlist_ratio": 0.25,
    "bias": 2.0,
    "seeding_scheme": "lefthash",
    "context_width": 1,
    "bos_token_id": None,
}
#: Memory for cached green sets per vocabulary shape (a set costs V / 8 bytes).
CACHE_BYTES = 256 << 20
_SEED_MODULUS = 2**64 - 1
_LOW_32 = 0xFFFFFFFF


def _validate_params(params: Mapping[str, object], vocab_size: int) -> KGWParams:
    merged = {**DEFAULT_PARAMS, **params}
    unknown = set(merged) - set(DEFAULT_PARAMS)
    if unknown:
        raise KeyMismatchError(f"unknown kgw parameters: {', '.join(sorted(unknown))}")
    try:
        ratio = float_param(merged["greenlist_ratio"])
        bias = float_param(merged["bias"])
        width = merged["context_width"]
        bos = merged["bos_token_id"]
    except (TypeError, ValueError):
        raise KeyMismatchError("kgw parameters must be numbers") from None
    if not 1 < vocab_size < TORCH_SMALL_N_LIMIT:
        raise KeyMismatchError(f"kgw needs a vocabulary of 2 to {TORCH_SMALL_N_LIMIT - 1} tokens")
    if not 0.0 < ratio < 1.0:
        raise KeyMismatchError("greenlist_ratio must lie strictly between 0 and 1")
    if int(vocab_size * ratio) < 1:
        raise KeyMismatchError(f"greenlist_ratio {ratio} leaves no green token in a vocabulary of {vocab_size}")
    if not math.isfinite(bias):
        raise KeyMismatchError("bias must be a finite number")
    seeding = merged["seeding_scheme"]
    if not isinstance(seeding, str) or seeding not in SEEDING_SCHEMES:
        raise KeyMismatchError(f"seeding_scheme must be one of {', '.join(SEEDING_SCHEMES)}")
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= MAX_CONTEXT_WIDTH:
        raise KeyMismatchError(f"context_width must be an integer from 1 to {MAX_CONTEXT_WIDTH}")
    if bos is not None and (isinstance(bos, bool) or not isinstance(bos, int) or not 0 <= bos < vocab_size):
        raise KeyMismatchError("bos_token_id must be null or a token id inside the vocabulary")
    return {
        "greenlist_ratio": ratio,
        "bias": bias,
        "seeding_scheme": seeding,
        "context_width": width,
        "bos_token_id": bos,
    }


def _validate_hashing_key(value: object) -> int:
    # torch accepts generator seeds and int64 multipliers from -2**63 to 2**64 - 1
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**64:
        raise KeyMismatchError("the kgw hashing_key must be an integer in [-2**63, 2**64)")
    return value


@lru_cache(maxsize=4)
def selfhash_table(hashing_key: int) -> NDArray[np.int64]:
    """``T + 1`` for selfhash: ``torch.randperm(1_000_003)`` seeded with the hashing key, plus one."""
    table = randperm(SELFHASH_TABLE_SIZE, hashing_key)
    table += 1
    table.setflags(write=False)
    return table


@lru_cache(maxsize=8)
def shared_green_cache(vocab_size: int, greenlist_size: int) -> GreenListCache:
    """The process-wide green-set cache for one vocabulary and green-list size.

    Green sets depend on the seed only, not on the key, so every scheme instance (the
    detector builds one per call) and every key of the same shape share one cache.
    """
    return GreenListCache(vocab_size, greenlist_size, max_bytes=CACHE_BYTES)


@lru_cache(maxsize=8)
def lefthash_seed_table(hashing_key: int, vocab_size: int) -> NDArray[np.uint32]:
    """The lefthash generator seed after every token of the vocabulary."""
    tokens = np.arange(vocab_size, dtype=np.int64).astype(object)
    seeds = ((tokens * hashing_key) % _SEED_MODULUS) & _LOW_32
    table = seeds.astype(np.uint32)
    table.setflags(write=False)
    return table


def lefthash_seed(hashing_key: int, previous_token: int) -> int:
    """The 32-bit generator seed of lefthash after ``previous_token``."""
    return ((hashing_key * previous_token) % _SEED_MODULUS) & _LOW_32


def selfhash_seeds(hashing_key: int, windows: NDArray[np.int64]) -> tuple[NDArray[np.uint32], NDArray[np.intp]]:
    """32-bit seeds for selfhash windows (rows ``[..., x[t]]``) and the column that won the minimum."""
    plus_one = selfhash_table(hashing_key)
    factors = plus_one[windows % SELFHASH_TABLE_SIZE]
    key = np.array(hashing_key & (2**64 - 1), dtype=np.uint64).view(np.int64)
    # int64 products wrap as in torch: key * a_i * b, with b the scored token's factor
    products = factors * key
    products *= factors[:, -1:]
    winner = np.argmin(products, axis=1)
    smallest = products[np.arange(products.shape[0]), winner]
    # seed % (2**64 - 1) in Python semantics, then the low 32 bits
    wrapped = smallest.view(np.uint64) - (smallest < 0).astype(np.uint64)
    return (wrapped & np.uint64(_LOW_32)).astype(np.uint32), winner


@dataclass(frozen=True)
class TransformersDetection:
    """What transformers' ``WatermarkDetector(..., return_dict=True)`` reports for one sequence."""

    num_tokens_scored: int
    num_green_tokens: int
    green_fraction: float
    z_score: float
    p_value: float
    prediction: bool


class KGWScheme(WatermarkScheme):
    """transformers-compatible KGW watermark (see module docstring)."""

    name: ClassVar[str] = "kgw"
    versions: ClassVar[tuple[str, ...]] = ("hf-1",)
    summary: ClassVar[str] = (
        "KGW green lists bit-exact with transformers' WatermarkingConfig (lefthash/selfhash); 32-bit seeds"
    )

    def __init__(self, key: TextKey) -> None:
        super().__init__(key)
        params = _validate_params(key.params, key.vocab_size)
        self.greenlist_ratio: float = params["greenlist_ratio"]
        self.bias: float = params["bias"]
        self.seeding_scheme: str = params["seeding_scheme"]
        self.hf_context_width: int = params["context_width"]
        self.bos_token_id: int | None = params["bos_token_id"]
        try:
            self.hashing_key = _validate_hashing_key(key.secret["hashing_key"])
        except KeyError:
            raise KeyMismatchError(f"key {key.key_id} has no kgw hashing_key") from None
        self.greenlist_size = int(self.vocab_size * self.greenlist_ratio)
        #: Green sets by 32-bit seed, shared process-wide (see :func:`shared_green_cache`).
        self.green_cache = shared_green_cache(self.vocab_size, self.greenlist_size)

    # -- detection --------------------------------------------------------------------
    @property
    def trials_per_unit(self) -> int:
        return 1

    @property
    def success_probability(self) -> float:
        return self.greenlist_size / self.vocab_size

    @property
    def context_width(self) -> int:
        return 1 if self.seeding_scheme == "lefthash" else self.hf_context_width - 1

    @property
    def selfhash(self) -> bool:
        """Whether the green list is seeded from the scored token itself."""
        return self.seeding_scheme == "selfhash"

    def lefthash_seed_table(self) -> NDArray[np.uint32]:
        """The lefthash generator seed after every token of the vocabulary."""
        return lefthash_seed_table(self.hashing_key, self.vocab_size)

    def _questions(
        self, token_ids: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.uint32], NDArray[np.int64], NDArray[np.int64]]:
        """Positions, seeds, scored tokens and unit keys of one sequence (before asking the cache)."""
        ids = check_token_ids(token_ids, self.vocab_size)
        skip = 1 if self.bos_token_id is not None and ids.shape[0] and ids[0] == self.bos_token_id else 0
        body = ids[skip:]
        first = self.hf_context_width - (1 if self.selfhash else 0)
        count = max(0, body.shape[0] - first)
        positions = np.arange(skip + first, skip + first + count, dtype=np.int64)
        scored = body[first:]
        if count == 0:
            return positions, np.empty(0, np.uint32), scored, np.empty((0, 2), np.int64)
        if self.selfhash:
            windows = np.lib.stride_tricks.sliding_window_view(body, self.hf_context_width)
            seeds, winner = selfhash_seeds(self.hashing_key, windows)
            partner = windows[np.arange(count), winner]
        else:
            partner = body[first - 1 : body.shape[0] - 1]
            seeds = self.lefthash_seed_table()[partner]
        return positions, seeds, scored, np.column_stack([partner, scored])

    def score(self, token_ids: NDArray[np.int64]) -> ScoredUnits:
        positions, seeds, scored, units = self._questions(token_ids)
        hits = self.green_cache.contains(seeds, scored).astype(np.int64)
        return ScoredUnits(positions=positions, unit_keys=units, hits=hits)

    def supports_bulk(self) -> bool:
        # bulk scoring colours every bigram from position 1 of the sequence after skip_leading():
        # exactly lefthash with context_width 1 (a leading BOS is skipped first, as transformers does)
        return not self.selfhash and self.hf_context_width == 1

    def skip_leading(self, token_ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """``token_ids`` without a leading BOS (transformers' ``WatermarkDetector`` never scores it)."""
        if self.bos_token_id is not None and token_ids.shape[0] and int(token_ids[0]) == self.bos_token_id:
            return token_ids[1:]
        return token_ids

    def unit_hits(self, units: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Hits of ``(x[t-1], x[t])`` units (the last axis) under lefthash."""
        seeds = self.lefthash_seed_table()[units[..., 0].ravel()]
        hits = self.green_cache.contains(seeds, np.ascontiguousarray(units[..., 1]).ravel())
        return np.asarray(hits, dtype=np.bool_).reshape(units.shape[:-1])

    def score_batch(self, sequences: Sequence[NDArray[np.int64]]) -> list[ScoredUnits]:
        """:meth:`score` for many sequences at once (one vectorised pass over all their seeds)."""
        questions = [self._questions(ids) for ids in sequences]
        if not questions:
            return []
        hits = self.green_cache.contains(
            np.concatenate([q[1] for q in questions]), np.concatenate([q[2] for q in questions])
        ).astype(np.int64)
        out: list[ScoredUnits] = []
        start = 0
        for positions, _seeds, _scored, units in questions:
            stop = start + positions.shape[0]
            out.append(ScoredUnits(positions=positions, unit_keys=units, hits=hits[start:stop]))
            start = stop
        return out

    def warm_cache(self, previous_tokens: NDArray[np.int64] | None = None) -> int:
        """Precompute lefthash green sets after ``previous_tokens`` (default: the whole vocabulary).

        Bulk detection then only looks bits up.  Stops when the cache is full; returns the
        number of green sets cached.  Selfhash seeds depend on the scored token, so there is
        nothing to precompute.
        """
        if self.selfhash:
            return 0
        if previous_tokens is None:
            tokens = np.arange(self.vocab_size, dtype=np.int64)
        else:
            tokens = check_token_ids(previous_tokens, self.vocab_size)
        seeds = np.unique(self.lefthash_seed_table()[tokens])[: self.green_cache.max_rows]
        self.green_cache.warm(seeds)
        return len(self.green_cache)

    def transformers_detection(
        self, token_ids: NDArray[np.int64], *, ignore_repeated_ngrams: bool = False, z_threshold: float = 3.0
    ) -> TransformersDetection:
        """The numbers transformers' ``WatermarkDetector`` reports for ``token_ids`` (one sequence).

        Same counting rules as transformers: every n-gram counts (or each distinct n-gram
        once with ``ignore_repeated_ngrams``), prompt included, normal-approximation p-value.
        Use the tracemark detector for an exact, de-duplicated p-value.
        """
        ids = check_token_ids(token_ids, self.vocab_size)
        skip = 1 if self.bos_token_id is not None and ids.shape[0] and ids[0] == self.bos_token_id else 0
        if ids.shape[0] - skip - self.hf_context_width < 1:
            raise InvalidInputError(
                f"need at least one token after the first {self.hf_context_width} (context_width) tokens"
            )
        units = self.score(ids)
        hits = units.hits
        if ignore_repeated_ngrams:
            length = self.hf_context_width + (0 if self.selfhash else 1)
            ngrams = np.lib.stride_tricks.sliding_window_view(ids[skip:], length)
            _, first = np.unique(ngrams, axis=0, return_index=True)
            hits = hits[first]
        scored = int(hits.shape[0])
        green = int(hits.sum())
        ratio = self.greenlist_ratio
        z = (green - ratio * scored) / math.sqrt(scored * ratio * (1.0 - ratio))
        return TransformersDetection(
            num_tokens_scored=scored,
            num_green_tokens=green,
            green_fraction=green / scored,
            z_score=z,
            p_value=0.5 * math.erfc(z / math.sqrt(2.0)),
            prediction=z > z_threshold,
        )

    # -- generation -------------------------------------------------------------------
    def watermarking_config_kwargs(self) -> WatermarkingConfigKwargs:
        """Arguments for ``transformers.WatermarkingConfig(**kwargs)`` producing the same watermark."""
        return {
            "greenlist_ratio": self.greenlist_ratio,
            "bias": self.bias,
            "hashing_key": self.hashing_key,
            "seeding_scheme": self.seeding_scheme,
            "context_width": self.hf_context_width,
        }

    # -- keys -------------------------------------------------------------------------
    @classmethod
    def _new_key_params(cls, params: Mapping[str, object], vocab_size: int) -> KGWParams:
        return _validate_params(params, vocab_size)

    @classmethod
    def _derive_secret(
        cls, secret_source: SecretSource, *, version: str, nonce: str, params: Mapping[str, object]
    ) -> JSONObject:
        material = secret_source(f"tracemark/text/kgw/{version}/hashing-key/{nonce}")
        return {"hashing_key": int.from_bytes(material[:8], "big") >> 1}  # 63 bits: a valid torch int64 multiplier

    @classmethod
    def from_transformers_config(
        cls,
        watermarking_config: Any,
        *,
        tokenizer_sha256: str,
        model_config: Any = None,
        vocab_size: int | None = None,
        bos_token_id: int | None = None,
        label: str = "",
    ) -> TextKey:
        """A key record for text watermarked by transformers with ``watermarking_config``.

        ``watermarking_config`` is a ``WatermarkingConfig`` or its ``to_dict()``.  Pass the
        model's ``model_config`` (its ``vocab_size`` and BOS id are read as
        ``WatermarkDetector`` reads them) or ``vocab_size`` / ``bos_token_id`` directly.
        """
        settings = dict(
            watermarking_config if isinstance(watermarking_config, Mapping) else watermarking_config.to_dict()
        )
        unknown = set(settings) - {"greenlist_ratio", "bias", "hashing_key", "seeding_scheme", "context_width"}
        if unknown:
            raise KeyMismatchError(f"unknown WatermarkingConfig settings: {', '.join(sorted(unknown))}")
        if model_config is not None:
            text_config = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
            vocab_size = int(text_config.vocab_size)
            if getattr(model_config, "is_encoder_decoder", False):
                bos_token_id = getattr(model_config, "decoder_start_token_id", None)
            else:
                bos_token_id = getattr(model_config, "bos_token_id", None)
        if vocab_size is None:
            raise KeyMismatchError("pass model_config or vocab_size: green lists depend on the vocabulary size")
        params = {
            "greenlist_ratio": settings.get("greenlist_ratio", DEFAULT_PARAMS["greenlist_ratio"]),
            "bias": settings.get("bias", DEFAULT_PARAMS["bias"]),
            "seeding_scheme": settings.get("seeding_scheme", DEFAULT_PARAMS["seeding_scheme"]),
            "context_width": settings.get("context_width", DEFAULT_PARAMS["context_width"]),
            "bos_token_id": bos_token_id,
        }
        checked = _validate_params(params, vocab_size)
        hashing_key = _validate_hashing_key(settings.get("hashing_key", TRANSFORMERS_DEFAULT_HASHING_KEY))
        return make_text_key(
            scheme=cls.name,
            scheme_version=cls.versions[0],
            params=checked,
            vocab_size=vocab_size,
            tokenizer_sha256=tokenizer_sha256,
            secret={"hashing_key": hashing_key},
            label=label,
        )
