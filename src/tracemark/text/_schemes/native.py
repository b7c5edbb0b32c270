"""The native scheme: an AES-keyed, self-seeded green list over a multi-token context.

Design (see ``docs/text-watermark.md`` for the reasoning and the anchors):

* A unit is the scored token together with the ``context_width`` tokens before it
  (1 or 2; new keys default to 1, so units are token bigrams: see "Context width"
  below).  The unit is green when the first eight bytes of ``AES-128_k(block(unit))``,
  read as a little-endian integer, are below ``gamma * 2**64``.  ``block(unit)`` is
  four little-endian uint32 words: the unit's tokens in order, zero-padded, with
  ``context_width`` in the last word.  The 128-bit key ``k`` is derived by HMAC from
  the keyring's master secret.  AES is a pseudo-random permutation; on at most 2**32
  distinct blocks per key its distance from a random function is negligible, so the
  colours are independent Bernoulli(gamma) coins.
* Including the scored token in the hashed unit ("self-seeding") makes the green set depend
  on V**(w+1) independent coin flips for context width w.
* Context width.  Width 2 (trigram units, the default before issue #22) is harder to learn,
  for a stealing attacker and for a model distilled from marked output alike: students
  distilled from width-2 output inherit nothing measurable, so radioactivity cannot catch
  them.  Width 1 (bigram units) is what such students learn, and the stealing attack forges
  it from fewer samples; the known-output check, not the width, is the defence against
  forgery.  New keys are width 1 since #22; a stored key keeps the width in its record
  (``docs/text-watermark.md``, "Key choice").
* AES runs in hardware (AES-NI) through OpenSSL: one ECB call colours a whole batch of
  units at several GB/s, which is what lets detection reach tens of millions of tokens
  per second on one core in numpy.
* Generation adds ``delta`` to the logits of the green candidates; only candidates
  within ``delta + 40`` nats of the best logit are coloured (the others have
  probability below e**-40 after biasing), which keeps the cost independent of
  vocabulary size for peaked distributions.
* Distinct units are independent Bernoulli(gamma) draws under the null, so after
  de-duplication the p-value is the exact binomial tail.

Version history: version 1 used SipHash-1-3 as the keyed function; version 2 (AES) is
five times cheaper in numpy and is the only version this release reads and writes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import ClassVar, TypedDict

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from tracemark._json import JSONObject
from tracemark.errors import KeyMismatchError
from tracemark.keys import TextKey
from tracemark.text._schemes._base import (
    ScoredUnits,
    SecretSource,
    WatermarkScheme,
    check_token_ids,
    context_windows,
    float_param,
    int_param,
)

MAX_VOCAB = 1 << 21


def aes_encrypt_rows(key: bytes, blocks: NDArray[np.uint32], out: NDArray[np.uint32]) -> NDArray[np.uint32]:
    """AES-128-ECB of every 16-byte row of ``blocks`` into ``out``; returns the ``len(blocks)`` rows written.

    ``blocks`` is a C-contiguous ``(rows, 4)`` little-endian uint32 array.  ``out`` is a
    separate C-contiguous ``(rows + 1, 4)`` one: OpenSSL's ``update_into`` wants one spare
    block of room and, since pyca/cryptography 51, refuses output that overlaps the input.
    Callers keep ``out`` and reuse it: faulting in fresh output pages costs more than the
    AES itself (measured: 0.06 against 0.5 G rows/s on this project's machines).
    """
    rows = blocks.shape[0] if blocks.ndim == 2 else -1
    for array in (blocks, out):
        if array.dtype != np.dtype("<u4") or not array.flags.c_contiguous:
            raise ValueError("blocks and out must be C-contiguous little-endian uint32 arrays")
    if blocks.shape != (rows, 4) or out.shape != (rows + 1, 4):
        raise ValueError("blocks must have shape (rows, 4) and out (rows + 1, 4)")
    if np.shares_memory(blocks, out):
        raise ValueError("out must not overlap blocks")
    if rows == 0:
        return out[:0]
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    encryptor.update_into(blocks.data.cast("B"), out.data.cast("B"))
    return out[:rows]


class NativeParams(TypedDict):
    """A native key's parameters (its record's ``params``)."""

    gamma: float
    delta: float
    context_width: int


#: The parameters of a new key where the caller names none: ``keys new``; ``keys init``, which
#: ``make run`` calls and whose default key the service marks with; ``comply``'s development key.
#: Width 1 since #22: a model distilled from output marked with the default key is then caught by
#: radioactivity (students do not learn width 2's trigram colours).
DEFAULT_PARAMS: NativeParams = {"gamma": 0.25, "delta": 2.0, "context_width": 1}
#: What a stored record that names a parameter not at all means: every record written by this package
#: holds all three, but one written by hand before #22 meant the width of its day, 2.  Reading a key
#: never takes today's default for a new one.
RECORD_DEFAULTS: NativeParams = {"gamma": 0.25, "delta": 2.0, "context_width": 2}


def _validate_params(
    params: Mapping[str, object], vocab_size: int, defaults: NativeParams = RECORD_DEFAULTS
) -> NativeParams:
    merged = {**defaults, **params}
    unknown = set(merged) - set(DEFAULT_PARAMS)
    if unknown:
        raise KeyMismatchError(f"unknown native-scheme parameters: {', '.join(sorted(unknown))}")
    try:
        gamma = float_param(merged["gamma"])
        delta = float_param(merged["delta"])
        width = int_param(merged["context_width"])
    except (TypeError, ValueError):
        raise KeyMismatchError("native-scheme parameters must be numbers, context_width a whole number") from None
    if not 0.0 < gamma < 1.0:
        raise KeyMismatchError("gamma must lie strictly between 0 and 1")
    if not 0.0 < delta <= 20.0:
        raise KeyMismatchError("delta must lie in (0, 20]")
    if width not in (1, 2):
        raise KeyMismatchError("the native scheme supports context_width 1 or 2")
    if not 0 < vocab_size <= MAX_VOCAB:
        raise KeyMismatchError(f"the native scheme supports vocabularies up to {MAX_VOCAB} tokens")
    return {"gamma": gamma, "delta": delta, "context_width": width}


class NativeScheme(WatermarkScheme):
    """tracemark's recommended scheme (see module docstring)."""

    name: ClassVar[str] = "native"
    versions: ClassVar[tuple[str, ...]] = ("2",)
    summary: ClassVar[str] = "AES-128 keyed self-seeded green list, bigram or trigram units, exact binomial test"

    def __init__(self, key: TextKey) -> None:
        super().__init__(key)
        params = _validate_params(key.params, key.vocab_size)
        self.gamma: float = params["gamma"]
        self.delta: float = params["delta"]
        self._width: int = params["context_width"]
        try:
            self._prf_key = bytes.fromhex(str(key.secret["aes_key"]))
        except (KeyError, ValueError):
            raise KeyMismatchError(f"key {key.key_id} has no valid AES key") from None
        if len(self._prf_key) != 16:
            raise KeyMismatchError(f"key {key.key_id}: the AES key must be 128 bits")
        # green iff hash < threshold; the null probability is exactly threshold / 2**64
        self._threshold = np.uint64(min(int(self.gamma * 2.0**64), 2**64 - 1))
        self._scratch = threading.local()

    @property
    def trials_per_unit(self) -> int:
        return 1

    @property
    def success_probability(self) -> float:
        return int(self._threshold) / 2.0**64

    @property
    def context_width(self) -> int:
        return self._width

    def green(self, units: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Whether each unit ``[context..., token]`` (the last axis) is green under this key."""
        units = np.asarray(units)
        if units.ndim < 1 or units.shape[-1] != self._width + 1:
            raise ValueError(f"units must end in an axis of {self._width + 1} token ids")
        lead = units.shape[:-1]
        rows = int(np.prod(lead))
        blocks = np.empty((rows, 4), dtype="<u4")
        shaped = blocks.reshape(*lead, 4)
        for column in range(self._width + 1):  # column by column: long inner loops
            shaped[..., column] = units[..., column]
        shaped[..., self._width + 1 : 3] = 0
        shaped[..., 3] = self._width
        ciphertext = aes_encrypt_rows(self._prf_key, blocks, self._output_rows(rows + 1))
        return (ciphertext.view("<u8")[:, 0] < self._threshold).reshape(lead)

    def _output_rows(self, rows: int) -> NDArray[np.uint32]:
        """A reusable AES output buffer of ``rows`` rows, one per thread (it never leaves ``green``)."""
        held: NDArray[np.uint32] | None = getattr(self._scratch, "out", None)
        if held is None or held.shape[0] < rows:
            held = np.empty((rows, 4), dtype="<u4")
            self._scratch.out = held
        return held[:rows]

    def supports_bulk(self) -> bool:
        return True

    def skip_leading(self, token_ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Every token with a full context is scored: nothing is skipped."""
        return token_ids

    def unit_hits(self, units: NDArray[np.int64]) -> NDArray[np.bool_]:
        return self.green(units)

    def score(self, token_ids: NDArray[np.int64]) -> ScoredUnits:
        ids = check_token_ids(token_ids, self.vocab_size)
        units = context_windows(ids, self._width)
        hits = self.unit_hits(units).astype(np.int64)
        positions = np.arange(self._width, self._width + units.shape[0], dtype=np.int64)
        return ScoredUnits(positions=positions, unit_keys=units, hits=hits)

    @classmethod
    def _new_key_params(cls, params: Mapping[str, object], vocab_size: int) -> NativeParams:
        return _validate_params(params, vocab_size, DEFAULT_PARAMS)

    @classmethod
    def _derive_secret(
        cls, secret_source: SecretSource, *, version: str, nonce: str, params: Mapping[str, object]
    ) -> JSONObject:
        return {"aes_key": secret_source(f"tracemark/text/native/v{version}/aes-key/{nonce}")[:16].hex()}
