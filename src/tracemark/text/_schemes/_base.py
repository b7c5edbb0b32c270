"""The interface every text-watermark scheme implements.

A scheme turns a key record into two things:

* a scorer that needs only token ids and the key (numpy, no torch), returning one
  :class:`ScoredUnits` row per scorable position; the detector de-duplicates rows,
  drops the prompt and computes exact p-values generically from ``hits``;
* the settings ``generate()`` needs (:meth:`WatermarkScheme.generation_kwargs`); the
  ``LogitsProcessor`` itself lives in the generation layer (``tracemark.text._processors``),
  so schemes never import torch.

Under the null hypothesis every distinct unit contributes ``hits`` ~
Binomial(``trials_per_unit``, ``success_probability``), independently of the other
distinct units; schemes must guarantee this (a keyed pseudo-random function of the
whole unit) so that the generic binomial p-value is exact.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypedDict, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from tracemark._json import JSONObject, thaw_object
from tracemark.errors import KeyMismatchError
from tracemark.keys import TextKey, make_text_key

#: Derives scheme secrets from the keyring's master secret: label -> 32 bytes.
SecretSource = Callable[[str], bytes]


class GenerationSettings(TypedDict, total=False):
    """``generate()`` arguments a scheme fixes (:meth:`WatermarkScheme.generation_kwargs`)."""

    do_sample: bool
    temperature: float
    top_k: int
    top_p: float


def float_param(value: object) -> float:
    """A scheme parameter as ``float(value)`` (a number or a numeric string; ``TypeError`` for anything else)."""
    if isinstance(value, int | float | str):
        return float(value)
    raise TypeError(f"expected a number, not {type(value).__name__}")


def int_param(value: object) -> int:
    """A scheme parameter as an integer: an int, a whole float or an integer string (``2.5`` is refused).

    ``TypeError`` for anything else (booleans included), ``ValueError`` for a fraction.
    """
    if isinstance(value, bool):
        raise TypeError("expected an integer, not a boolean")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected an integer, not {value!r}")
    if isinstance(value, int | float | str):
        return int(value)
    raise TypeError(f"expected an integer, not {type(value).__name__}")


@dataclass(frozen=True)
class ScoredUnits:
    """Scores of one token sequence, one row per scored position, before de-duplication.

    ``unit_keys[i]`` holds the token ids that determine row ``i``'s score (its context
    and the scored token); rows with equal keys are the same unit and are scored once.
    """

    positions: NDArray[np.int64]
    unit_keys: NDArray[np.int64]
    hits: NDArray[np.int64]
    layer_values: NDArray[np.float64] | None = None


@dataclass(frozen=True)
class ExtraStatistic:
    """A secondary statistic a scheme reports beside the binomial one (e.g. SynthID's weighted mean)."""

    name: str
    score: float
    p_value: float
    log10_p_value: float
    method: str


class WatermarkScheme(ABC):
    """Base class of the text-watermark schemes (``native``, ``kgw``, ``synthid``)."""

    #: Registry name, e.g. ``"kgw"``.
    name: ClassVar[str]
    #: Versions this implementation reads and writes; the first is used for new keys.
    versions: ClassVar[tuple[str, ...]]
    #: Human description for ``keys list`` and the docs.
    summary: ClassVar[str]

    def __init__(self, key: TextKey) -> None:
        if key.scheme != self.name:
            raise KeyMismatchError(f"key {key.key_id} is for scheme {key.scheme!r}, not {self.name!r}")
        if key.scheme_version not in self.versions:
            raise KeyMismatchError(
                f"key {key.key_id} has {self.name} version {key.scheme_version!r}; "
                f"this tracemark supports {', '.join(self.versions)}"
            )
        self.key = key
        self.vocab_size = key.vocab_size

    # -- detection (numpy only) -----------------------------------------------------
    @property
    @abstractmethod
    def trials_per_unit(self) -> int:
        """Bernoulli trials per unit (1 for green-list schemes, the tournament depth for SynthID)."""

    @property
    @abstractmethod
    def success_probability(self) -> float:
        """Null probability of a hit per trial (gamma, or 1/2)."""

    @property
    @abstractmethod
    def context_width(self) -> int:
        """How many tokens before the scored one its score depends on."""

    @abstractmethod
    def score(self, token_ids: NDArray[np.int64]) -> ScoredUnits:
        """Score every position that has a full context (ids must be < ``vocab_size``)."""

    def extra_statistics(self, units: ScoredUnits) -> list[ExtraStatistic]:
        """Further statistics over the de-duplicated units kept for the verdict."""
        return self.extra_statistics_from_totals(self.extra_totals(units), int(units.hits.shape[0]))

    def extra_totals(self, units: ScoredUnits) -> tuple[int, ...]:
        """Integer sums over kept units that :meth:`extra_statistics_from_totals` needs (added up piece by
        piece when a long text is streamed; empty when the scheme has no further statistics)."""
        return ()

    def extra_statistics_from_totals(self, totals: tuple[int, ...], units: int) -> list[ExtraStatistic]:
        """The further statistics from :meth:`extra_totals` summed over ``units`` kept units."""
        return []

    def dedup_codes(self, units: ScoredUnits) -> NDArray[np.uint64] | None:
        """One 64-bit code per row, equal exactly when the rows are the same unit, when the scheme has a
        shorter exact code than its ``unit_keys`` (SynthID 0.2.1: the table index); None otherwise."""
        return None

    def describe(self) -> JSONObject:
        """Scheme parameters for the verdict's evidence (no secrets)."""
        return {"scheme": self.name, "version": self.key.scheme_version, **thaw_object(self.key.params)}

    # -- generation settings (the processor is in tracemark.text._processors) ---------
    def generation_kwargs(self) -> GenerationSettings:
        """Extra ``generate()`` arguments the scheme needs (e.g. SynthID's top-k)."""
        return {}

    # -- keys -------------------------------------------------------------------------
    @classmethod
    def new_key(
        cls,
        *,
        secret_source: SecretSource,
        vocab_size: int,
        tokenizer_sha256: str,
        params: Mapping[str, object] | None = None,
        label: str = "",
        scheme_version: str | None = None,
    ) -> TextKey:
        """A fresh key record with validated params and secrets derived from ``secret_source``.

        ``scheme_version`` is one of :attr:`versions` (default: the first).  Each key draws a
        fresh nonce, so two keys from one secret source differ.
        """
        checked = cls._new_key_params(params or {}, vocab_size)
        version = scheme_version or cls.versions[0]
        if version not in cls.versions:
            raise KeyMismatchError(f"{cls.name} version {version!r} is not one of {', '.join(cls.versions)}")
        nonce = secrets.token_hex(16)
        return make_text_key(
            scheme=cls.name,
            scheme_version=version,
            params=checked,
            vocab_size=vocab_size,
            tokenizer_sha256=tokenizer_sha256,
            secret=cls._derive_secret(secret_source, version=version, nonce=nonce, params=checked),
            label=label,
        )

    @classmethod
    @abstractmethod
    def _new_key_params(cls, params: Mapping[str, object], vocab_size: int) -> Mapping[str, object]:
        """``params`` over the scheme's defaults, checked for ``vocab_size``: the params a new key records.

        Each scheme returns its own fixed shape (a ``TypedDict`` of JSON scalars).
        """

    @classmethod
    @abstractmethod
    def _derive_secret(
        cls, secret_source: SecretSource, *, version: str, nonce: str, params: Mapping[str, object]
    ) -> JSONObject:
        """The secret of a new key: material from ``secret_source`` under labels naming ``version`` and ``nonce``."""


@runtime_checkable
class BulkScoringScheme(Protocol):
    """Optional fast path a scheme may add: hits straight from unit rows.

    A scheme whose score at position ``t`` depends only on the unit
    ``ids[t - context_width .. t]`` (one trial per unit) implements these, so that
    whole-text tests can colour all units of many sequences in one vectorised call and
    de-duplicate with a sort.  ``unit_hits`` takes units along the last axis (any
    leading shape) and returns hits of the leading shape; ``skip_leading`` drops what a
    sequence's start holds that is never scored (transformers' KGW drops a leading BOS).  ``supports_bulk`` is
    False when the key's configuration scores differently (then ``score()`` is used).
    """

    def supports_bulk(self) -> bool: ...

    def unit_hits(self, units: NDArray[np.int64]) -> NDArray[np.bool_]: ...

    def skip_leading(self, token_ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """The sequence without the tokens the scheme never scores at its start (e.g. KGW's leading BOS)."""
        ...


def check_token_ids(token_ids: NDArray[np.int64], vocab_size: int) -> NDArray[np.int64]:
    """Validate ids: 1-D, integer, inside the vocabulary (else the key does not fit the text)."""
    ids = np.asarray(token_ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError("token ids must be a 1-D integer array")
    ids = ids.astype(np.int64, copy=False)
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise KeyMismatchError(
            f"token id {int(ids.max())} is outside the key's vocabulary of {vocab_size}: "
            "the text was tokenised with another tokenizer"
        )
    return ids


_HASH_MULTIPLIERS = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def hash_rows(rows: NDArray[np.int64]) -> NDArray[np.uint64]:
    """A keyless 64-bit hash of each row of non-negative ids (splitmix64's finaliser over each id folded in).

    Equal rows hash equal; distinct rows collide with probability about ``2**-64`` per pair.
    """
    codes = np.zeros(rows.shape[0], dtype=np.uint64)
    for column in range(rows.shape[1]):
        codes ^= rows[:, column].astype(np.uint64)
        codes ^= codes >> np.uint64(30)
        codes *= _HASH_MULTIPLIERS[0]
        codes ^= codes >> np.uint64(27)
        codes *= _HASH_MULTIPLIERS[1]
        codes ^= codes >> np.uint64(31)
    return codes


def context_windows(token_ids: NDArray[np.int64], width: int) -> NDArray[np.int64]:
    """Rows ``[x[t-width], ..., x[t-1], x[t]]`` for every ``t >= width`` (a strided view copy)."""
    n = token_ids.shape[0]
    if n <= width:
        return np.empty((0, width + 1), dtype=np.int64)
    view = np.lib.stride_tricks.sliding_window_view(token_ids, width + 1)
    return np.ascontiguousarray(view)
