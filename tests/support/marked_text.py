"""Marked and unmarked English-like texts made from single-token words, for variant and repair tests."""

from __future__ import annotations

import numpy as np

from tracemark.keys import TextKey
from tracemark.text import TextTokenizer
from tracemark.text._schemes.native import NativeScheme


def english_text(key: TextKey, tokenizer: TextTokenizer, words: list[int], seed: int, *, marked: bool) -> str:
    """160 single-token ``words`` after "The", each (when ``marked``) green if one of 8 random candidates is."""
    scheme = NativeScheme(key)
    rng = np.random.default_rng(seed)
    ids = [int(tokenizer.encode("The").ids[0]), words[int(rng.integers(len(words)))]]
    for _ in range(160):
        candidates = rng.choice(words, 8)
        green = scheme.green(np.array([[*ids[len(ids) - scheme.context_width :], c] for c in candidates]))
        ids.append(int(candidates[int(np.argmax(green))] if marked and green.any() else candidates[0]))
    return tokenizer.decode(ids) + "."
