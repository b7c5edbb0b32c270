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


#: Characters per piece when a long text is encoded in pieces (:meth:`TextTokenizer.encode`).
ENCODE_CHUNK_CHARS = 1 << 16
# Pre-tokenizers that always split before " word" (so a cut there changes no token) and normalizers that
# work character by character.
_SPACE_SPLITTING = frozenset({"ByteLevel", "Whitespace", "WhitespaceSplit"})
_LOCAL_NORMALIZERS = frozenset({"NFC", "NFD", "NFKC", "NFKD", "Lowercase"})


def _splits_at_spaces(document: JSONValue) -> bool:
    """Whether cutting a text before a single space between two words leaves its tokens unchanged."""
    if not isinstance(document, dict):
        return False
    pre = document.get("pre_tokenizer")
    normalizer = document.get("normalizer")
    if not isinstance(pre, dict) or pre.get("type") not in _SPACE_SPLITTING:
        return False
    if pre.get("type") == "ByteLevel" and pre.get("use_regex") is False:
        return False
    return normalizer is None or (isinstance(normalizer, dict) and normalizer.get("type") in _LOCAL_NORMALIZERS)


def _space_cuts(text: str, chunk_chars: int) -> list[tuple[int, int]]:
    """Pieces of about ``chunk_chars`` characters, each cut just before a space between two non-spaces."""
    pieces = []
    start = 0
    while len(text) - start > chunk_chars:
        cut = text.rfind(" ", start + 1, start + chunk_chars)
        while cut > start and (text[cut - 1].isspace() or cut + 1 >= len(text) or text[cut + 1].isspace()):
            cut = text.rfind(" ", start + 1, cut)
        if cut <= start:
            break  # no safe cut in this stretch: the rest is one piece
        pieces.append((start, cut))
        start = cut
    pieces.append((start, len(text)))
    return pieces


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
        self._chunkable = _splits_at_spaces(json.loads(raw))

    def encode(self, text: str, *, chunk_chars: int = ENCODE_CHUNK_CHARS) -> Encoded:
        """Ids and character offsets of ``text`` without special tokens.

        A long text is encoded in pieces of about ``chunk_chars`` characters, cut before a
        single space between two words, when the tokenizer splits words there anyway (see
        :func:`_splits_at_spaces`): the ids are the same, and memory stays bounded (the
        ``tokenizers`` encoding of a whole 1.7 MB text alone peaked at 390 MB).
        """
        if len(text) <= chunk_chars or not self._chunkable:
            return self._encode_piece(text, 0)
        ids: list[NDArray[np.int64]] = []
        offsets: list[NDArray[np.int64]] = []
        for start, end in _space_cuts(text, chunk_chars):
            piece = self._encode_piece(text[start:end], start)
            ids.append(piece.ids)
            offsets.append(piece.offsets)
        return Encoded(ids=np.concatenate(ids), offsets=np.concatenate(offsets))

    def _encode_piece(self, text: str, base: int) -> Encoded:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        ids = np.asarray(encoding.ids, dtype=np.int64)
        offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
        if base:
            offsets += base
        return Encoded(ids=ids, offsets=offsets)

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``, special tokens dropped."""
        return str(self._tokenizer.decode(ids, skip_special_tokens=True))
