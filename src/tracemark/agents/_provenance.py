"""Where an argument value came from: the user's words, the system prompt, a tool's output, or the model.

A value's sources are the earlier messages that contain it (compared case-folded, with runs of white
space collapsed).  A value found nowhere was written by the model.  Values too short to say anything
(single characters, booleans, null) have no provenance of their own and never taint a call.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from tracemark._json import FrozenJSON
from tracemark.agents._trace import MODEL

#: Shortest string value whose origin is looked up.
MIN_VALUE_CHARS = 3
_SPACE = re.compile(r"\s+")
#: A line continuation inside a quoted scalar (YAML folds long strings as ``\<newline><indent>\``).
_CONTINUATION = re.compile(r"\\\n\s*\\?")


def _unescape(text: str) -> str:
    """Line continuations joined, and the ``\\n``/``\\t`` escapes of quoted strings (JSON, Python reprs)
    inside tool output turned back into the white space they stand for."""
    return _CONTINUATION.sub("", text).replace("\\n", "\n").replace("\\t", "\t")


def normalise(text: str) -> str:
    """Case-folded text with line continuations joined and white space collapsed, as values and messages are
    compared."""
    return _SPACE.sub(" ", _unescape(text).casefold()).strip()


#: Addresses inside free text: URLs and host names, e-mail addresses, IBAN-like account numbers.
ENTITY = re.compile(
    r"(?:https?://|www\.)[^\s'\"<>)]+[^\s'\"<>).,;!?]|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b"
)


def leaf_values(value: FrozenJSON) -> Iterator[str]:
    """The string forms of the scalar leaves of an argument (numbers as written, strings as they are)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        yield value
        # Entities inside prose (a URL in a message body) have an origin of their own.
        for entity in ENTITY.findall(value):
            if entity != value:
                yield entity
    elif isinstance(value, int | float):
        yield repr(value) if isinstance(value, float) and not value.is_integer() else str(int(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from leaf_values(item)
    else:
        for item in value:
            yield from leaf_values(item)


#: Directive language aimed at the agent: a tool-output segment holding it is an instruction segment.
DIRECTIVE = re.compile(
    r"(?<![a-z])(ignore|disregard|forget) (all |any |your |the )*(previous|prior|above|earlier|other)\b"
    r"|(?<![a-z])you (must|should|need to|have to) (first |now |also )?[a-z]+"
    r"|(?<![a-z])before (you|doing|solving|answering|continuing)\b[^.]{0,60}\b(do|solve|answer|task)"
    r"|(?<![a-z])(do|perform|execute|follow) the following\b|(?<![a-z])important (message|instruction)"
    r"|(?<![a-z])instead\b[.!]"
    r"|(?<![a-z])todo:|(?<![a-z])new instructions?\b|(?<![a-z])(assistant|ai|agent|model)[,:] (please )?[a-z]+",
    re.IGNORECASE,
)
#: Words one of which every directive contains (a cheap test before the pattern runs).
_DIRECTIVE_WORDS = (
    "ignore", "disregard", "forget", "you ", "before", "following", "important", "instead", "todo:",
    "instruction", "assistant", "ai,", "ai:", "agent", "model",
)  # fmt: skip
#: The label suffix of values found only inside instruction segments of a tool's output.
INSTRUCTION = "!instruction"


#: Where a record of structured tool output ends: a new top-level ``key: value`` or list item, or a ruler line.
_BOUNDARY = re.compile(r"\n {0,2}(- )?[A-Za-z_][\w.]*: \S|\n {0,2}- |\n-{3,}|\n={3,}")
_SENTENCE_END = re.compile(r"[.!?:][\"')\]]*\s+|\n")
#: How far an instruction reaches past its directive when no record boundary comes first (characters).
INSTRUCTION_REACH = 1000


def split_instructions(text: str) -> tuple[str, str]:
    """(the text without its instruction spans, the instruction spans), both normalised.

    An instruction span starts at the sentence of directive language (``ignore your previous instructions``,
    ``before you can solve the task``, ``TODO:``, ...) and runs to the end of the record it is in
    (the next top-level key or list item of structured output, a ruler line) or
    :data:`INSTRUCTION_REACH` characters, whichever comes first: what an injected instruction
    looks like from the inside of a tool's output."""
    joined = _unescape(text)
    lowered = joined.lower()
    if not any(word in lowered for word in _DIRECTIVE_WORDS):
        return normalise(joined), ""  # the common case, without running the directive pattern
    spans: list[tuple[int, int]] = []
    for match in DIRECTIVE.finditer(joined):
        boundary = _BOUNDARY.search(joined, match.end())
        end = min(boundary.start() if boundary else len(joined), match.end() + INSTRUCTION_REACH)
        # From the start of the directive's sentence (a directive may close its instruction: "Do X instead.").
        window = joined[max(0, match.start() - INSTRUCTION_REACH) : match.start()]
        ends = [m.end() for m in _SENTENCE_END.finditer(window)]
        start = match.start() - len(window) + (ends[-1] if ends else 0)
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    plain, instructions, position = [], [], 0
    for start, end in spans:
        plain.append(joined[position:start])
        instructions.append(joined[start:end])
        position = end
    plain.append(joined[position:])
    return normalise("\n".join(plain)), normalise("\n".join(instructions))


class ProvenanceIndex:
    """The messages seen so far, each under its source label, to look argument values up in.

    Tool output is split: a value found only in an instruction segment of ``tool:<name>#<seq>``
    gets the source ``tool:<name>#<seq>!instruction``."""

    def __init__(self) -> None:
        self._texts: list[tuple[str, str, str, str]] = []

    def add(self, source: str, text: str) -> None:
        """Remember ``text`` as coming from ``source`` (``user``, ``system``, ``tool:<name>#<seq>``)."""
        if not text:
            return
        if source.startswith("tool:"):
            plain, instructions = split_instructions(text)
            whole = normalise(text) if instructions else plain
            self._texts.append((source, plain, instructions, whole))
        else:
            normal = normalise(text)
            self._texts.append((source, normal, "", normal))

    def sources_of_value(self, value: str) -> tuple[str, ...]:
        """The sources whose text contains ``value``; ``()`` when the value is too short to say."""
        needle = normalise(value)
        if len(needle) < MIN_VALUE_CHARS:
            return ()
        # A value that holds the directive itself is the injected text named as data (a channel whose name
        # is the injection, a document quoted whole), not a value the injection asks the agent to use.
        quoted = DIRECTIVE.search(needle) is not None
        found = []
        for source, plain, instructions, whole in self._texts:
            if needle in plain or (quoted and needle in whole):
                found.append(source)
            elif instructions and needle in instructions:
                found.append(source + INSTRUCTION)
        return tuple(dict.fromkeys(found)) or (MODEL,)

    def sources(self, value: FrozenJSON) -> tuple[str, ...]:
        """The union of the sources of every leaf of an argument value, in first-seen order."""
        out: dict[str, None] = {}
        for leaf in leaf_values(value):
            for source in self.sources_of_value(leaf):
                out[source] = None
        return tuple(out)

    def of_arguments(self, arguments: Mapping[str, FrozenJSON]) -> dict[str, tuple[str, ...]]:
        """Provenance of each argument."""
        return {name: self.sources(value) for name, value in arguments.items()}


def is_untrusted(source: str) -> bool:
    """Whether a source is tool output (the channel injected instructions arrive through)."""
    return source.startswith("tool:")


def tool_of(source: str) -> str:
    """The tool name of a ``tool:<name>#<seq>`` source."""
    return source[len("tool:") :].rpartition("#")[0] or source[len("tool:") :]
