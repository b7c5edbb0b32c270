"""Typo repair: a variant of a text with misspelt words put back, chosen from the tokenizer alone.

A typo changes a word's tokens (``" the"`` is one token, ``" hte"`` two) and the context of
the next few, so a text with typos in half its words loses most of its scored units.  The
``typos`` variant (:func:`repair_typos`) replaces each word that looks misspelt by the
spelling at one edit (a deleted, inserted, substituted or doubled letter, two neighbours
swapped) that the tokenizer itself finds most plausible:

* a word looks misspelt when a run of its letters is not one token of the vocabulary (or
  when punctuation sits between two of its letters, ``on.e``) and it does not occur twice
  in the text (a typo rarely repeats itself exactly);
* every spelling at one letter edit is scored by a unigram cost of its tokens: a constant
  per token plus the log of the token's rank in the vocabulary (BPE vocabularies list their
  merges in the order they were learnt, the commonest first, so the rank stands for
  frequency); a word that occurs elsewhere in the text costs :data:`IN_TEXT_BONUS` less;
* the cheapest spelling (ties: the smaller string) replaces the word when it is cheaper by
  more than :data:`REPAIR_MARGIN` (a noisy-channel decision: one typo is less likely than
  none).

Nothing here sees a key: the repair depends on the text and the tokenizer only, so under the
null hypothesis the variant's p-value is as valid as the text's own, and the Bonferroni
correction over the variants tested (:func:`tracemark.text.text_variants`) stays exact.  The
repair is tried only when a text looks misspelt (:func:`looks_typoed`): at least
:data:`TYPO_SHARE` of its words are not words of the vocabulary, and it reads as prose (under
:data:`MAX_SYMBOL_SHARE` of its characters are code symbols: source code is full of identifiers
that no vocabulary holds, and a typo'd program no longer runs anyway).  Clean text therefore pays
one pass of a regular expression and set look-ups; the reference model's clean output has at most
about 17 % of its words out of the vocabulary, the same output with typos in 30 % of its words
at least 27 %.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tracemark.text._tokenizer import TextTokenizer

#: Cost of each token of a spelling, on top of the log of its rank (see the module docstring).
TOKEN_COST = 4.0
#: How much cheaper (in nats of the unigram cost) a spelling must be than the word as written.
REPAIR_MARGIN = 7.0
#: Discount of a spelling that occurs as a word elsewhere in the same text.
IN_TEXT_BONUS = 4.0
#: Share of words (two letters or more, after a space) not in the vocabulary from which a text looks misspelt.
TYPO_SHARE = 0.25
#: Share of characters that are code symbols (brackets, ``=``, ``_``, ...) from which a text counts as code.
MAX_SYMBOL_SHARE = 0.04
#: Least number of such words.
TYPO_WORDS = 4
#: Longest word (characters) the repair considers.
MAX_WORD = 24
#: Rank given to single-letter tokens (a letter alone is a failed merge: rare inside words).
_LETTER_RANK_SHARE = 1.0
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = _LOWER.upper()
_CHUNK = re.compile(r"\S+")
_LETTER_RUN = re.compile(r"[A-Za-z]+")
_SPACED_WORD = re.compile(r"(?:(?<=\s)|^)[A-Za-z]{2,}")
_PUNCT_INSIDE = re.compile(r"[A-Za-z][^\sA-Za-z0-9_'\-][A-Za-z]")
_SENTENCE_END = ".!?:"
_SYMBOL = re.compile(r"[()\[\]{}=_<>#/*\\|@$%^&~`+;]")


@dataclass(frozen=True, eq=False)
class Lexicon:
    """What the repair knows of a tokenizer: its one-token words and the cost of each token."""

    tokenizer: TextTokenizer
    #: Words (letters only) that are one token after a space.
    words: frozenset[str]
    #: Cost of each token id.
    costs: NDArray[np.float64]

    @classmethod
    def of(cls, tokenizer: TextTokenizer) -> Lexicon:
        """The lexicon of ``tokenizer`` (cached per tokenizer fingerprint)."""
        cached = _LEXICONS.get(tokenizer.sha256)
        if cached is not None:  # the same fingerprint tokenises alike
            return cached
        size = tokenizer.vocab_size
        pieces = [tokenizer.decode([i]) for i in range(size)]
        words = frozenset(p[1:] for p in pieces if len(p) > 2 and p[0] == " " and p[1:].isascii() and p[1:].isalpha())
        single = np.fromiter((len(p.strip()) <= 1 for p in pieces), dtype=np.bool_, count=size)
        letter = np.fromiter((len(p.strip()) == 1 and p.strip().isalpha() for p in pieces), dtype=np.bool_,
                             count=size)  # fmt: skip
        rank = np.arange(1, size + 1, dtype=np.float64) - np.cumsum(single)
        rank[single] = 16.0  # punctuation and digits alone are common tokens
        rank[letter] = _LETTER_RANK_SHARE * size
        lexicon = cls(tokenizer, words, TOKEN_COST + np.log(np.maximum(rank, 1.0)))
        _LEXICONS[tokenizer.sha256] = lexicon
        return lexicon

    def spelling_costs(self, spellings: list[str]) -> NDArray[np.float64]:
        """Unigram cost of each spelling as a word after a space (one tokenizer call for all of them)."""
        if not spellings:
            return np.empty(0, dtype=np.float64)
        joined = "\n".join(" " + s for s in spellings)
        starts = np.cumsum([0] + [len(s) + 2 for s in spellings[:-1]])
        encoded = self.tokenizer.encode(joined)
        owner = np.searchsorted(starts, encoded.offsets[:, 0], side="right") - 1
        inside = encoded.offsets[:, 0] < starts[owner] + 1 + np.array([len(s) for s in spellings])[owner]
        costs = np.bincount(owner[inside], weights=self.costs[encoded.ids[inside]], minlength=len(spellings))
        return np.asarray(costs, dtype=np.float64)


_LEXICONS: dict[str, Lexicon] = {}


def _out_of_vocabulary(words: list[str], lexicon: Lexicon) -> int:
    return sum(1 for word in words if word not in lexicon.words and word.lower() not in lexicon.words)


def looks_typoed(text: str, lexicon: Lexicon) -> bool:
    """Whether at least :data:`TYPO_SHARE` (and :data:`TYPO_WORDS`) of the words after a space are not one token,
    in a text that is not code (under :data:`MAX_SYMBOL_SHARE` code symbols)."""
    words = _SPACED_WORD.findall(text)
    missing = _out_of_vocabulary(words, lexicon)
    if missing < TYPO_WORDS or missing < TYPO_SHARE * len(words):
        return False
    return len(_SYMBOL.findall(text)) < MAX_SYMBOL_SHARE * len(text)


def _suspect(word: str, lexicon: Lexicon) -> bool:
    if len(word) > MAX_WORD:
        return False
    if _PUNCT_INSIDE.search(word):
        return True
    return any(run.group() not in lexicon.words for run in _LETTER_RUN.finditer(word) if run.end() - run.start() > 1)


def spellings(word: str, *, capital: bool = False) -> list[str]:
    """Every spelling one letter edit away from ``word`` (sorted): a letter deleted, replaced or inserted beside a
    letter (doubling is an insertion), two neighbouring letters swapped, or a letter swapped with punctuation that
    sits between two letters (``on.e``).  Capitals replace or precede capitals only; with ``capital`` (a sentence
    start) the first letter may also become, or be preceded by, a capital."""
    out: set[str] = set()
    n = len(word)
    is_letter = [ch.isascii() and ch.isalpha() for ch in word]
    for i, ch in enumerate(word):
        if not is_letter[i]:
            continue
        out.add(word[:i] + word[i + 1 :])
        first = i == 0 and capital
        for letter in _UPPER if ch.isupper() else (_LOWER + _UPPER if first else _LOWER):
            out.add(word[:i] + letter + word[i + 1 :])
        for letter in _LOWER + _UPPER if first else (_UPPER if ch.isupper() else _LOWER):
            out.add(word[:i] + letter + word[i:])
        if i + 1 == n or not is_letter[i + 1]:  # after the last letter of a run
            for letter in _UPPER if ch.isupper() else _LOWER:
                out.add(word[: i + 1] + letter + word[i + 1 :])
        if i + 1 < n and (is_letter[i + 1] or (i + 2 < n and is_letter[i + 2])):
            out.add(word[:i] + word[i + 1] + ch + word[i + 2 :])
        if i >= 2 and not is_letter[i - 1] and is_letter[i - 2]:  # punctuation between letters moved left
            out.add(word[: i - 1] + ch + word[i - 1] + word[i + 1 :])
    out.discard(word)
    out.discard("")
    return sorted(out)


class TypoRepairer:
    """Repairs the words of texts under one tokenizer; remembers each word's repair (texts share words)."""

    def __init__(self, tokenizer: TextTokenizer) -> None:
        self.lexicon = Lexicon.of(tokenizer)
        self._memo: dict[tuple[str, bool, frozenset[str]], str] = {}

    def repair_word(self, word: str, *, capital: bool, in_text: set[str]) -> str:
        """The repaired spelling of ``word`` (``word`` itself when no spelling is cheaper by the margin)."""
        candidates = spellings(word, capital=capital)
        near = frozenset(c for c in candidates if c in in_text)
        key = (word, capital, near)
        known = self._memo.get(key)
        if known is not None:
            return known
        costs = self.lexicon.spelling_costs([word, *candidates])
        own = float(costs[0])
        scored = costs[1:] - np.array([IN_TEXT_BONUS if c in near else 0.0 for c in candidates])
        best = word
        if scored.shape[0]:
            low = float(scored.min())
            if low + REPAIR_MARGIN < own:
                best = min(c for c, v in zip(candidates, scored.tolist(), strict=True) if v == low)
        if len(self._memo) > 1 << 16:
            self._memo.clear()
        self._memo[key] = best
        return best

    def repair(self, text: str) -> tuple[str, NDArray[np.int64], int]:
        """The text with suspect words repaired, each character's position in ``text``, and the words changed."""
        chunks = list(_CHUNK.finditer(text))
        counts: dict[str, int] = {}
        for match in chunks:
            counts[match.group()] = counts.get(match.group(), 0) + 1
        in_text = set(counts)
        pieces: list[str] = []
        origin: list[NDArray[np.int64]] = []
        done = changed = 0
        previous = ""
        for match in chunks:
            word = match.group()
            capital = not previous or previous[-1] in _SENTENCE_END
            previous = word
            if counts[word] > 1 or not _suspect(word, self.lexicon):
                continue
            fixed = self.repair_word(word, capital=capital, in_text=in_text)
            if fixed == word:
                continue
            changed += 1
            pieces += [text[done : match.start()], fixed]
            spread = np.minimum(np.arange(len(fixed), dtype=np.int64), len(word) - 1) + match.start()
            origin += [np.arange(done, match.start(), dtype=np.int64), spread]
            done = match.end()
        pieces.append(text[done:])
        origin.append(np.arange(done, len(text), dtype=np.int64))
        return "".join(pieces), np.concatenate(origin), changed


def repair_typos(text: str, tokenizer: TextTokenizer) -> tuple[str, NDArray[np.int64], int]:
    """:meth:`TypoRepairer.repair` with the tokenizer's shared repairer."""
    repairer = _REPAIRERS.get(tokenizer.sha256)
    if repairer is None:
        repairer = _REPAIRERS[tokenizer.sha256] = TypoRepairer(tokenizer)
    return repairer.repair(text)


_REPAIRERS: dict[str, TypoRepairer] = {}
