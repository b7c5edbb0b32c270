"""Long inputs: tokenised in bounded pieces with the same ids, and a verdict of a bounded size (#23)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REFERENCE_MODEL
from tests.support.corpora import python_prose
from tracemark.keys import Keyring
from tracemark.text import TextTokenizer, detect_watermark, new_text_key
from tracemark.text._tokenizer import Encoded


@pytest.mark.parametrize("model", ["reference", "word"])
def test_pieces_give_the_ids_and_offsets_of_the_whole_text(word_model: Path, model: str) -> None:
    tokenizer = TextTokenizer(REFERENCE_MODEL if model == "reference" else word_model)
    text = "\n".join(python_prose(limit_chars=60_000))
    if model == "word":
        text = " ".join(f"w{len(word) % 1999}" for word in text.split())
    whole = tokenizer.encode(text, chunk_chars=len(text) + 1)
    pieces = tokenizer.encode(text, chunk_chars=2_000)
    assert np.array_equal(whole.ids, pieces.ids)
    assert np.array_equal(whole.offsets, pieces.offsets)


def test_a_long_text_is_never_encoded_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    # before #23 a 4 MB input peaked at 1.17 GB, most of it the tokenizers encoding of the whole text
    tokenizer = TextTokenizer(REFERENCE_MODEL)
    seen: list[int] = []
    original = TextTokenizer._encode_piece

    def spy(self: TextTokenizer, text: str, base: int) -> Encoded:
        seen.append(len(text))
        return original(self, text, base)

    monkeypatch.setattr(TextTokenizer, "_encode_piece", spy)
    text = "\n".join(python_prose(limit_chars=300_000))
    tokenizer.encode(text, chunk_chars=1 << 16)
    assert len(seen) > 3
    assert max(seen) <= 1 << 16


def test_the_verdict_does_not_carry_the_input() -> None:
    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "native", REFERENCE_MODEL)
    text = "\n".join(python_prose(limit_chars=200_000))
    verdict = detect_watermark(text, key, TextTokenizer(REFERENCE_MODEL))
    assert len(json.dumps(verdict.to_json())) < 5_000
