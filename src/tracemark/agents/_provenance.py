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


def normalise(text: str) -> str:
    """Case-folded text with white space collapsed, as values and messages are compared."""
    return _SPACE.sub(" ", text.casefold()).strip()


def leaf_values(value: FrozenJSON) -> Iterator[str]:
    """The string forms of the scalar leaves of an argument (numbers as written, strings as they are)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float):
        yield repr(value) if isinstance(value, float) and not value.is_integer() else str(int(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from leaf_values(item)
    else:
        for item in value:
            yield from leaf_values(item)


class ProvenanceIndex:
    """The messages seen so far, each under its source label, to look argument values up in."""

    def __init__(self) -> None:
        self._texts: list[tuple[str, str]] = []

    def add(self, source: str, text: str) -> None:
        """Remember ``text`` as coming from ``source`` (``user``, ``system``, ``tool:<name>#<seq>``)."""
        if text:
            self._texts.append((source, normalise(text)))

    def sources_of_value(self, value: str) -> tuple[str, ...]:
        """The sources whose text contains ``value``; ``()`` when the value is too short to say."""
        needle = normalise(value)
        if len(needle) < MIN_VALUE_CHARS:
            return ()
        found = [source for source, text in self._texts if needle in text]
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
