"""Keys people already have: transformers' watermarking configs in, and out again.

``import_transformers_config`` reads a JSON file holding a transformers ``WatermarkingConfig``
(KGW: ``greenlist_ratio``, ``bias``, ``hashing_key``, ``seeding_scheme``, ``context_width``) or
``SynthIDTextWatermarkingConfig`` (``ngram_len``, ``keys``, ``sampling_table_size``,
``sampling_table_seed``, ``context_history_size``): the object ``config.to_dict()`` gives, or a
``generation_config.json`` whose ``watermarking_config`` holds one.  The model directory gives
what the config leaves out and detection needs: the vocabulary size (``config.vocab_size``, as
``WatermarkDetector`` reads it), the BOS id (which transformers' KGW detector drops from a
sequence's start) and the tokenizer fingerprint.  ``export_transformers_config`` writes the same
objects from a kgw or synthid (version 0.2.1) key, for ``WatermarkingConfig(**json)`` /
``SynthIDTextWatermarkingConfig(**json)``.  Both carry the secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict

from tracemark.errors import InvalidInputError, KeyMismatchError
from tracemark.keys import TextKey
from tracemark.text._schemes import load_scheme
from tracemark.text._schemes.kgw import KGWScheme
from tracemark.text._schemes.synthid import SynthIDScheme
from tracemark.text._tokenizer import TextTokenizer

_KGW_FIELDS = frozenset({"greenlist_ratio", "bias", "hashing_key", "seeding_scheme", "context_width"})
_SYNTHID_FIELDS = frozenset(
    {"ngram_len", "keys", "sampling_table_size", "sampling_table_seed", "context_history_size",
     "skip_first_ngram_calls", "debug_mode"}
)  # fmt: skip
#: Largest config file read (a SynthID config with a few hundred keys is a few kilobytes).
MAX_CONFIG_BYTES = 1 << 20


class SynthIDConfigJSON(TypedDict):
    """``SynthIDTextWatermarkingConfig(**json)`` arguments a synthid key exports."""

    ngram_len: int
    keys: list[int]
    sampling_table_size: int
    sampling_table_seed: int
    context_history_size: int


class KGWConfigJSON(TypedDict):
    """``WatermarkingConfig(**json)`` arguments a kgw key exports."""

    greenlist_ratio: float
    bias: float
    hashing_key: int
    seeding_scheme: str
    context_width: int


def _read_config(path: Path) -> dict[str, object]:
    try:
        data = path.read_bytes()[: MAX_CONFIG_BYTES + 1]
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise InvalidInputError(f"{path} is over {MAX_CONFIG_BYTES} bytes: not a watermarking config")
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidInputError(f"{path} is not JSON") from None
    if isinstance(raw, dict) and isinstance(raw.get("watermarking_config"), dict):
        raw = raw["watermarking_config"]
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{path} holds no JSON object")
    return raw


def _model_facts(model_dir: Path) -> tuple[int | None, bool, int | None]:
    """BOS id, encoder-decoder flag and decoder start id from ``config.json``."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None, False, None
    if not isinstance(config, dict):
        return None, False, None
    bos = config.get("bos_token_id")
    start = config.get("decoder_start_token_id")
    return (
        bos if isinstance(bos, int) and not isinstance(bos, bool) else None,
        bool(config.get("is_encoder_decoder", False)),
        start if isinstance(start, int) and not isinstance(start, bool) else None,
    )


def key_from_transformers_config(
    settings: Mapping[str, object], tokenizer: TextTokenizer, *, label: str = "", where: str = "the config"
) -> TextKey:
    """A kgw or synthid key record from a transformers watermarking config's ``to_dict()``."""
    fields = set(settings)
    if "keys" in fields and fields <= _SYNTHID_FIELDS:
        return SynthIDScheme.key_from_transformers_config(
            dict(settings), vocab_size=tokenizer.vocab_size, tokenizer_sha256=tokenizer.sha256, label=label
        )
    if fields and fields <= _KGW_FIELDS:
        bos, encoder_decoder, decoder_start = _model_facts(tokenizer.model_dir)
        return KGWScheme.from_transformers_config(
            dict(settings),
            tokenizer_sha256=tokenizer.sha256,
            vocab_size=tokenizer.vocab_size,
            bos_token_id=decoder_start if encoder_decoder else bos,
            label=label,
        )
    raise KeyMismatchError(
        f"{where} is neither a WatermarkingConfig ({', '.join(sorted(_KGW_FIELDS))}) nor a "
        f"SynthIDTextWatermarkingConfig (ngram_len, keys, ...); found: {', '.join(sorted(fields)) or 'nothing'}"
    )


def import_transformers_config(path: Path, tokenizer: TextTokenizer, *, label: str = "") -> TextKey:
    """Read ``path`` (a config's JSON or a ``generation_config.json``) as a key for ``tokenizer``'s model."""
    return key_from_transformers_config(_read_config(path), tokenizer, label=label, where=str(path))


def export_transformers_config(key: TextKey) -> KGWConfigJSON | SynthIDConfigJSON:
    """The transformers config object of a kgw or synthid 0.2.1 key (its secret included)."""
    scheme = load_scheme(key)
    if isinstance(scheme, KGWScheme):
        kwargs = scheme.watermarking_config_kwargs()
        return {
            "greenlist_ratio": kwargs["greenlist_ratio"],
            "bias": kwargs["bias"],
            "hashing_key": kwargs["hashing_key"],
            "seeding_scheme": kwargs["seeding_scheme"],
            "context_width": kwargs["context_width"],
        }
    if isinstance(scheme, SynthIDScheme):
        if scheme.version != "0.2.1":
            raise KeyMismatchError(f"transformers implements SynthID version 0.2.1 only; key {key.key_id} is "
                                   f"{scheme.version}")  # fmt: skip
        return {
            "ngram_len": scheme.ngram_len,
            "keys": list(scheme.layer_keys),
            "sampling_table_size": scheme.sampling_table_size,
            "sampling_table_seed": scheme.sampling_table_seed,
            "context_history_size": scheme.context_history_size,
        }
    raise KeyMismatchError(f"key {key.key_id} is a {key.scheme} key: transformers has no such watermark to export to")
