"""Text scrubbing attacks: versioned plug-ins, each with one strength parameter in [0, 1].

An attack takes a text and returns what an adversary would publish instead.  Every attack here
works on the string alone (no model, no key): it is what anyone can do with a text editor or a
ten-line script.  Attacks that need a language model (local regeneration) live in
``_text_model_attacks.py``; attacks that need other texts (span recall, mixtures) receive them
through :class:`AttackContext`.

Strength is the share of words (or characters, sentences, text) the attack touches, so a curve of
detection rate against strength is comparable across attacks.  Each attack is seeded: the same
text, strength and seed give the same output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

Rng = np.random.Generator

# The attacker's look-alike table: letters of other scripts that render like ASCII ones.  Written from
# Unicode's confusables list without looking at the detector's own table, so some entries may be ones
# the detector does not fold (that is the point of measuring).
_HOMOGLYPHS: dict[str, str] = {
    "a": "\u0430\u0251\u03b1", "c": "\u0441\u03f2\u1d04", "d": "\u0501", "e": "\u0435\u0454", "h": "\u04bb",
    "i": "\u0456\u0269\u03b9", "j": "\u0458", "k": "\u03ba", "l": "\u04cf\u2113", "n": "\u0578",
    "o": "\u043e\u03bf\u0585",
    "p": "\u0440\u03c1", "q": "\u051b", "s": "\u0455", "u": "\u057d\u1959", "v": "\u03bd", "w": "\u0461", "x": "\u0445",
    "y": "\u0443", "A": "\u0410\u0391\ua4ee", "B": "\u0412\u0392", "C": "\u0421\ua4da", "E": "\u0415\u0395",
    "H": "\u041d\u0397", "I": "\u0406\u0399\ua4f2", "J": "\u0408", "K": "\u041a\u039a", "M": "\u041c\u039c",
    "N": "\u039d", "O": "\u041e\u039f\ua4f3", "P": "\u0420\u03a1", "S": "\u0405", "T": "\u0422\u03a4",
    "X": "\u0425\u03a7", "Y": "\u03a5", "Z": "\u0396",
}  # fmt: skip
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
_BIDI = ("\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f")
_SPACES = ("  ", "\t", "\u00a0", "\u2009", "\u3000", "\n")
_EMOJI = ("\U0001f600", "\U0001f680", "\u2728", "\U0001f525", "\U0001f44d", "\u2764\ufe0f", "\U0001f914")
_KEYBOARD_NEIGHBOURS = {
    "a": "qwsz", "b": "vghn", "c": "xdfv", "d": "serfcx", "e": "wsdr", "f": "drtgvc", "g": "ftyhbv", "h": "gyujnb",
    "i": "ujko", "j": "huikmn", "k": "jiolm", "l": "kop", "m": "njk", "n": "bhjm", "o": "iklp", "p": "ol",
    "q": "wa", "r": "edft", "s": "awedxz", "t": "rfgy", "u": "yhji", "v": "cfgb", "w": "qase", "x": "zsdc",
    "y": "tghu", "z": "asx",
}  # fmt: skip
# A small thesaurus of words the reference model's prose uses often; a substitution falls back to
# another word of the same text when a word has no entry (a crude but model-free paraphrase).
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "use": ("employ", "utilise"), "used": ("employed", "applied"), "file": ("document", "record"),
    "files": ("documents", "records"), "function": ("routine", "procedure"), "value": ("quantity", "amount"),
    "values": ("quantities", "amounts"), "system": ("platform", "setup"), "package": ("bundle", "module"),
    "packages": ("bundles", "modules"), "run": ("execute", "launch"), "make": ("create", "build"),
    "can": ("may", "could"), "should": ("ought to", "must"), "also": ("too", "additionally"),
    "new": ("fresh", "novel"), "example": ("instance", "sample"), "need": ("require", "want"),
    "number": ("count", "figure"), "list": ("sequence", "array"), "name": ("label", "title"),
    "change": ("modify", "alter"), "first": ("initial", "earliest"), "more": ("further", "additional"),
    "many": ("numerous", "several"), "error": ("fault", "failure"), "show": ("display", "present"),
    "set": ("collection", "group"), "get": ("obtain", "fetch"), "user": ("person", "operator"),
    "data": ("information", "content"), "line": ("row", "entry"), "time": ("moment", "period"),
    "way": ("manner", "method"), "work": ("operate", "function"), "important": ("crucial", "key"),
    "different": ("distinct", "various"), "same": ("identical", "equal"), "large": ("big", "huge"),
    "small": ("little", "tiny"), "simple": ("easy", "plain"), "only": ("just", "merely"),
    "option": ("choice", "setting"), "options": ("choices", "settings"), "support": ("help", "assist"),
    "allow": ("permit", "let"), "and": ("plus", "as well as"), "but": ("yet", "however"),
    "is": ("remains", "stays"), "are": ("remain", "stay"), "the": ("this", "that"), "a": ("one", "some"),
}  # fmt: skip
_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class AttackContext:
    """Other texts of the same side (marked or unmarked) an attack may borrow from."""

    same_side: Sequence[str] = ()
    human: Sequence[str] = ()


def _pick_words(text: str, strength: float, rng: Rng) -> tuple[list[re.Match[str]], set[int]]:
    words = list(_WORD.finditer(text))
    count = round(strength * len(words))
    chosen = set(rng.choice(len(words), size=count, replace=False).tolist()) if count and words else set()
    return words, chosen


def _map_words(text: str, strength: float, rng: Rng, change: Callable[[str, Rng], str]) -> str:
    """Replace each chosen word by ``change(word)``; the text between words is kept as it is."""
    words, chosen = _pick_words(text, strength, rng)
    out: list[str] = []
    last = 0
    for index, match in enumerate(words):
        out.append(text[last : match.start()])
        out.append(change(match.group(), rng) if index in chosen else match.group())
        last = match.end()
    out.append(text[last:])
    return "".join(out)


def _homoglyph_word(word: str, rng: Rng) -> str:
    return "".join(
        str(rng.choice(list(_HOMOGLYPHS[ch]))) if ch in _HOMOGLYPHS and rng.random() < 0.5 else ch for ch in word
    )


def _insert_inside(word: str, rng: Rng, alphabet: Sequence[str]) -> str:
    position = int(rng.integers(1, len(word))) if len(word) > 1 else 1
    return word[:position] + str(rng.choice(list(alphabet))) + word[position:]


def _typo_word(word: str, rng: Rng) -> str:
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if not letters:
        return word
    i = int(rng.choice(letters))
    kind = int(rng.integers(4))
    if kind == 0 and i + 1 < len(word):  # swap with the next character
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # drop
        return word[:i] + word[i + 1 :]
    if kind == 2:  # double
        return word[: i + 1] + word[i] + word[i + 1 :]
    neighbours = _KEYBOARD_NEIGHBOURS.get(word[i].lower(), word[i])
    return word[:i] + str(rng.choice(list(neighbours))) + word[i + 1 :]


def _casing_word(word: str, rng: Rng) -> str:
    kind = int(rng.integers(3))
    return word.upper() if kind == 0 else word.lower() if kind == 1 else word.swapcase()


def _substitute_word(word: str, rng: Rng, pool: Sequence[str]) -> str:
    stripped = word.strip(".,;:!?()\"'")
    lead = word[: word.index(stripped)] if stripped else ""
    tail = word[len(lead) + len(stripped) :]
    options = _SYNONYMS.get(stripped.lower())
    replacement = str(rng.choice(list(options))) if options else (str(rng.choice(list(pool))) if pool else stripped)
    if stripped[:1].isupper():
        replacement = replacement[:1].upper() + replacement[1:]
    return lead + replacement + tail


@dataclass(frozen=True)
class TextAttack:
    """One scrubbing attack: a name, a version (bumped when its output changes), what strength means."""

    name: str
    version: str
    description: str
    strength_meaning: str
    strengths: tuple[float, ...]
    #: "character" attacks are the ones the ≥ 0.95 TPR target covers; "word", "document" and "model" are reported.
    level: str
    transform: Callable[[str, float, Rng, AttackContext], str] = field(repr=False)

    def apply(self, text: str, strength: float, rng: Rng, context: AttackContext | None = None) -> str:
        """The attacked text."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must lie in [0, 1], not {strength}")
        return self.transform(text, strength, rng, context or AttackContext())


def _whitespace(text: str, strength: float, rng: Rng, _: AttackContext) -> str:
    parts = re.split(r"( )", text)
    return "".join(str(rng.choice(list(_SPACES))) if p == " " and rng.random() < strength else p for p in parts)


def _word_deletion(text: str, strength: float, rng: Rng, _: AttackContext) -> str:
    words, chosen = _pick_words(text, strength, rng)
    return " ".join(m.group() for i, m in enumerate(words) if i not in chosen)


def _substitution(text: str, strength: float, rng: Rng, _: AttackContext) -> str:
    pool = [w.strip(".,;:!?()\"'") for w in text.split() if w.strip(".,;:!?()\"'").isalpha()]
    return _map_words(text, strength, rng, lambda word, r: _substitute_word(word, r, pool))


def _sentence_shuffle(text: str, strength: float, rng: Rng, _: AttackContext) -> str:
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    count = round(strength * len(sentences))
    if count < 2:
        return text
    chosen = sorted(rng.choice(len(sentences), size=count, replace=False).tolist())
    moved = [sentences[i] for i in rng.permutation(chosen).tolist()]
    for slot, sentence in zip(chosen, moved, strict=True):
        sentences[slot] = sentence
    return " ".join(sentences)


def _emoji_edit(text: str, strength: float, rng: Rng, _: AttackContext) -> str:
    """Emoji inserted after chosen words, as an editor pasting reactions into the text (removal is separate)."""
    return _map_words(text, strength, rng, lambda word, r: word + str(r.choice(list(_EMOJI))))


def _truncation(text: str, strength: float, _rng: Rng, __: AttackContext) -> str:
    keep = max(1, round(len(text) * (1.0 - strength)))
    return text[:keep]


def _span_in_human_text(text: str, strength: float, rng: Rng, context: AttackContext) -> str:
    """The text pasted into human writing so that it makes ``strength`` of the result (by characters)."""
    if strength <= 0.0 or not context.human:
        return text
    wanted = round(len(text) * (1.0 - strength) / strength)
    filler: list[str] = []
    while sum(len(f) + 1 for f in filler) < wanted:
        filler.append(str(context.human[int(rng.integers(len(context.human)))]))
    human = " ".join(filler)[:wanted]
    cut = int(rng.integers(0, len(human) + 1))
    cut = human.rfind(" ", 0, cut) + 1 if " " in human[:cut] else 0
    return human[:cut] + text + " " + human[cut:]


def _mixture(text: str, strength: float, rng: Rng, context: AttackContext) -> str:
    """Pieces of four texts of the same side spliced with human text: ``strength`` is the share of human text."""
    sources = [text, *(str(context.same_side[int(i)]) for i in rng.integers(0, len(context.same_side), 3))]
    if not context.same_side:
        sources = [text]
    pieces: list[str] = []
    for source in sources:
        words = source.split()
        take = max(8, len(words) // len(sources))
        start = int(rng.integers(0, max(1, len(words) - take + 1)))
        pieces.append(" ".join(words[start : start + take]))
    body = " ".join(pieces)
    if strength > 0.0 and context.human:
        return _span_in_human_text(body, 1.0 - strength, rng, context) if strength < 1.0 else body
    return body


def _words(change: Callable[[str, Rng], str]) -> Callable[[str, float, Rng, AttackContext], str]:
    return lambda text, strength, rng, _: _map_words(text, strength, rng, change)


_FRACTIONS = (0.1, 0.3, 0.5, 1.0)

#: Every scrubbing attack by name, in the order reports list them.
TEXT_ATTACKS: dict[str, TextAttack] = {
    attack.name: attack
    for attack in (
        TextAttack("homoglyph", "1", "letters of chosen words replaced by look-alikes of other scripts (half of them)",
                   "share of words", _FRACTIONS, "character", _words(_homoglyph_word)),
        TextAttack("zero-width", "1", "a zero-width character inside each chosen word", "share of words",
                   _FRACTIONS, "character", _words(lambda w, r: _insert_inside(w, r, _ZERO_WIDTH))),
        TextAttack("bidi", "1", "a bidi control or mark inside each chosen word", "share of words", _FRACTIONS,
                   "character", _words(lambda w, r: _insert_inside(w, r, _BIDI))),
        TextAttack("whitespace", "1", "spaces replaced by doubled, tab, no-break, thin, ideographic or newline",
                   "share of spaces", _FRACTIONS, "character", _whitespace),
        TextAttack("typo", "1", "one swap, drop, doubling or keyboard-neighbour letter per chosen word",
                   "share of words", (0.1, 0.3, 0.5), "character", _words(_typo_word)),
        TextAttack("casing", "1", "chosen words upper-cased, lower-cased or case-swapped", "share of words",
                   (0.1, 0.3, 0.5), "character", _words(_casing_word)),
        TextAttack("emoji", "1", "an emoji pasted after each chosen word (and left in)", "share of words",
                   (0.1, 0.3, 0.5), "word", _emoji_edit),
        TextAttack("word-deletion", "1", "chosen words deleted", "share of words", (0.1, 0.3, 0.5), "word",
                   _word_deletion),
        TextAttack("substitution", "1", "chosen words replaced by a synonym, else by another word of the text",
                   "share of words", (0.1, 0.3, 0.5), "word", _substitution),
        TextAttack("sentence-shuffle", "1", "chosen sentences permuted among themselves", "share of sentences",
                   (0.5, 1.0), "document", _sentence_shuffle),
        TextAttack("truncation", "1", "the end of the text cut off", "share of characters removed",
                   (0.5, 0.75, 0.9), "document", _truncation),
        TextAttack("span-in-human-text", "1", "the text pasted into human text (window scan on)",
                   "share of the result that is the text", (0.5, 0.25, 0.1), "document", _span_in_human_text),
        TextAttack("copy-paste-mixture", "1", "pieces of four texts of the same side spliced into human text",
                   "share of human text in the result", (0.0, 0.5, 0.75), "document", _mixture),
    )
}  # fmt: skip

#: Attacks whose detection runs the window scan (the mark sits inside longer text).
WINDOWED_ATTACKS = frozenset({"span-in-human-text", "copy-paste-mixture"})
