"""The native scheme: a SipHash-keyed, self-seeded green list over a multi-token context.

Design (see ``docs/text-watermark.md`` for the reasoning and the anchors):

* A unit is the scored token together with the ``context_width`` tokens before it
  (default 2, so units are token trigrams).  The unit is green when
  ``SipHash-1-3(k, pack(unit)) < gamma * 2**64`` with a 128-bit key ``k`` derived by
  HMAC from the keyring's master secret.  Including the scored token in the hashed
  unit ("self-seeding") and using two context tokens makes the green set depend on
  V**3 independent coin flips: an attacker who estimates green lists from API
  samples (watermark stealing) has to learn per-trigram statistics instead of one
  list per previous token as with KGW ``lefthash``.
* Generation adds ``delta`` to the logits of the green candidates; only candidates
  within ``delta + 40`` nats of the best logit are hashed (the others have
  probability below e**-40 after biasing, so skipping them changes nothing
  measurable), which keeps the cost independent of vocabulary size for peaked
  distributions.
* Detection packs each unit into one 64-bit word (21 bits per token: vocabularies up
  to 2,097,152), hashes all units with a vectorised SipHash and counts green units.
  Distinct units are independent fair Bernoulli(gamma) draws under the null, so after
  de-duplication the p-value is the exact binomial tail.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from tracemark.errors import KeyMismatchError
from tracemark.keys import TextKey, make_text_key
from tracemark.text._schemes._base import (
    ScoredUnits,
    SecretSource,
    WatermarkScheme,
    check_token_ids,
    context_windows,
)
from tracemark.text._siphash import siphash13_words

if TYPE_CHECKING:
    from transformers import LogitsProcessor

TOKEN_BITS = 21
MAX_VOCAB = 1 << TOKEN_BITS
_CHUNK = 16384  # keeps the SipHash working set in L2 cache
DEFAULT_PARAMS: dict[str, Any] = {"gamma": 0.25, "delta": 2.0, "context_width": 2}


def _validate_params(params: Mapping[str, Any], vocab_size: int) -> dict[str, Any]:
    merged = {**DEFAULT_PARAMS, **dict(params)}
    unknown = set(merged) - set(DEFAULT_PARAMS)
    if unknown:
        raise KeyMismatchError(f"unknown native-scheme parameters: {', '.join(sorted(unknown))}")
    gamma = float(merged["gamma"])
    delta = float(merged["delta"])
    width = int(merged["context_width"])
    if not 0.0 < gamma < 1.0:
        raise KeyMismatchError("gamma must lie strictly between 0 and 1")
    if not 0.0 < delta <= 20.0:
        raise KeyMismatchError("delta must lie in (0, 20]")
    if width not in (1, 2):
        raise KeyMismatchError("native scheme v1 supports context_width 1 or 2")
    if not 0 < vocab_size <= MAX_VOCAB:
        raise KeyMismatchError(f"native scheme v1 supports vocabularies up to {MAX_VOCAB} tokens")
    return {"gamma": gamma, "delta": delta, "context_width": width}


class NativeScheme(WatermarkScheme):
    """tracemark's recommended scheme (see module docstring)."""

    name: ClassVar[str] = "native"
    versions: ClassVar[tuple[str, ...]] = ("1",)
    summary: ClassVar[str] = "SipHash-1-3 keyed (128-bit) self-seeded green list, trigram units, exact binomial test"

    def __init__(self, key: TextKey) -> None:
        super().__init__(key)
        params = _validate_params(key.params, key.vocab_size)
        self.gamma: float = params["gamma"]
        self.delta: float = params["delta"]
        self._width: int = params["context_width"]
        try:
            self._prf_key = bytes.fromhex(str(key.secret["siphash_key"]))
        except (KeyError, ValueError):
            raise KeyMismatchError(f"key {key.key_id} has no valid SipHash key") from None
        if len(self._prf_key) != 16:
            raise KeyMismatchError(f"key {key.key_id}: the SipHash key must be 128 bits")
        # green iff hash < threshold; the null probability is exactly threshold / 2**64
        self._threshold = np.uint64(min(int(self.gamma * 2.0**64), 2**64 - 1))

    @property
    def trials_per_unit(self) -> int:
        return 1

    @property
    def success_probability(self) -> float:
        return int(self._threshold) / 2.0**64

    @property
    def context_width(self) -> int:
        return self._width

    def pack(self, units: NDArray[np.int64]) -> NDArray[np.uint64]:
        """One 64-bit word per unit row ``[context..., token]`` (21 bits per token)."""
        words = np.zeros(units.shape[0], dtype=np.uint64)
        for column in range(units.shape[1]):
            words <<= np.uint64(TOKEN_BITS)
            words |= units[:, column].astype(np.uint64)
        return words

    def green(self, words: NDArray[np.uint64]) -> NDArray[np.bool_]:
        """Whether each packed unit is green under this key."""
        out = np.empty(words.shape[0], dtype=np.bool_)
        for start in range(0, words.shape[0], _CHUNK):
            block = words[start : start + _CHUNK]
            out[start : start + _CHUNK] = siphash13_words(self._prf_key, block) < self._threshold
        return out

    def pack_sequence(self, token_ids: NDArray[np.int64]) -> NDArray[np.uint64]:
        ids = check_token_ids(token_ids, self.vocab_size).astype(np.uint64)
        n = ids.shape[0]
        if n <= self._width:
            return np.empty(0, dtype=np.uint64)
        words = ids[: n - self._width].copy()
        for column in range(1, self._width + 1):
            words <<= np.uint64(TOKEN_BITS)
            words |= ids[column : n - self._width + column]
        return words

    def hits_of_packed(self, words: NDArray[np.uint64]) -> NDArray[np.int64]:
        return self.green(words).astype(np.int64)

    def score(self, token_ids: NDArray[np.int64]) -> ScoredUnits:
        ids = check_token_ids(token_ids, self.vocab_size)
        units = context_windows(ids, self._width)
        hits = self.green(self.pack(units)).astype(np.int64)
        positions = np.arange(self._width, self._width + units.shape[0], dtype=np.int64)
        return ScoredUnits(positions=positions, unit_keys=units, hits=hits)

    def logits_processor(self) -> LogitsProcessor:
        from tracemark.text._hf import NativeLogitsProcessor

        return NativeLogitsProcessor(self)

    @classmethod
    def new_key(
        cls,
        *,
        secret_source: SecretSource,
        vocab_size: int,
        tokenizer_sha256: str,
        params: Mapping[str, Any] | None = None,
        label: str = "",
    ) -> TextKey:
        checked = _validate_params(params or {}, vocab_size)
        version = cls.versions[0]
        nonce = secrets.token_hex(16)
        secret = secret_source(f"tracemark/text/native/v{version}/siphash-key/{nonce}")[:16]
        return make_text_key(
            scheme=cls.name,
            scheme_version=version,
            params=checked,
            vocab_size=vocab_size,
            tokenizer_sha256=tokenizer_sha256,
            secret={"siphash_key": secret.hex()},
            label=label,
        )
