"""Tokenizers for detection, loaded without torch or transformers.

A model directory gives two facts a watermark depends on: the tokenizer (which turns
text into the ids the watermark was keyed on) and the model's vocabulary size (the
embedding rows, ``config.vocab_size``, which may exceed the tokenizer's length and
changes every green list when it differs).  Both are fingerprinted so that a key
record can refuse a model it was not made for.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

from tracemark._json import JSONValue
from tracemark.errors import ModelLoadError

# Fields of tokenizer.json that do not change how text maps to ids.
_VOLATILE_FIELDS = ("truncation", "padding")


def tokenizer_fingerprint(tokenizer_json: bytes) -> str:
    """SHA-256 over the canonical JSON of ``tokenizer.json`` without padding/truncation."""
    try:
        document: JSONValue = json.loads(tokenizer_json)
    except ValueError as exc:
        raise ModelLoadError(f"tokenizer.json is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ModelLoadError("tokenizer.json is not a JSON object")
    for field_name in _VOLATILE_FIELDS:
        document.pop(field_name, None)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_model_vocab_size(model_dir: Path) -> int:
    """``vocab_size`` from ``config.json`` (or its ``text_config``), as transformers uses it."""
    config_path = model_dir / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{model_dir} has no config.json: not a model directory") from None
    except ValueError as exc:
        raise ModelLoadError(f"{config_path} is not valid JSON: {exc}") from None
    for section in (config, config.get("text_config") or {}):
        value = section.get("vocab_size") if isinstance(section, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    raise ModelLoadError(f"{config_path} has no vocab_size")


@dataclass(frozen=True)
class Encoded:
    """Token ids of a text and each token's character span in that text."""

    ids: NDArray[np.int64]
    offsets: NDArray[np.int64]


class TextTokenizer:
    """The tokenizer of a model directory, plus the facts a key record binds to."""

    def __init__(self, model_dir: Path | str) -> None:
        self.model_dir = Path(model_dir)
        tokenizer_path = self.model_dir / "tokenizer.json"
        try:
            raw = tokenizer_path.read_bytes()
        except FileNotFoundError:
            raise ModelLoadError(f"{self.model_dir} has no tokenizer.json (a fast tokenizer is required)") from None
        self.sha256 = tokenizer_fingerprint(raw)
        try:
            self._tokenizer = Tokenizer.from_str(raw.decode())
        except Exception as exc:  # tokenizers raises a bare Exception on bad files
            raise ModelLoadError(f"cannot load {tokenizer_path}: {exc}") from None
        self.vocab_size = read_model_vocab_size(self.model_dir)

    def encode(self, text: str) -> Encoded:
        """Ids and character offsets of ``text`` without special tokens."""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        ids = np.asarray(encoding.ids, dtype=np.int64)
        offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
        return Encoded(ids=ids, offsets=offsets)

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``, special tokens dropped."""
        return str(self._tokenizer.decode(ids, skip_special_tokens=True))
