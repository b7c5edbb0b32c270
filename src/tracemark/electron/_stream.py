"""A bounded-cost scan of source files too large to parse: literal insecure window settings.

A file over the parse limit is read in pieces of 1 MiB (with an overlap, so a setting split
across two pieces is still seen) and searched for ``webPreferences`` options written as literals,
minified ones included (``nodeIntegration:!0``).  Memory stays at one piece whatever the file's
size, time is linear.  The scan cannot follow variables, IPC flows or any other check, so the
audit still reports the file as not fully audited; what it finds is reported under the same rules
as a parsed file's settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_TRUE = rb"(?:true|!0|1)(?![\w$])"
_FALSE = rb"(?:false|!1|0)(?![\w$])"
#: ``(rule, option, value pattern, what the value means)``.
_SETTINGS = (
    ("node-integration", "nodeIntegration", _TRUE, "true"),
    ("node-integration", "nodeIntegrationInWorker", _TRUE, "true"),
    ("node-integration", "nodeIntegrationInSubFrames", _TRUE, "true"),
    ("context-isolation", "contextIsolation", _FALSE, "false"),
    ("sandbox", "sandbox", _FALSE, "false"),
    ("web-security", "webSecurity", _FALSE, "false"),
    ("insecure-content", "allowRunningInsecureContent", _TRUE, "true"),
    ("experimental-features", "experimentalFeatures", _TRUE, "true"),
    ("remote-module", "enableRemoteModule", _TRUE, "true"),
)
#: Each option's name, and the pattern that must follow it (the key's closing quote, a colon, the value).
_MATCHERS = tuple(
    (option.encode(), re.compile(rb"[\"']?\s*:\s*" + value), index)
    for index, (_, option, value, _) in enumerate(_SETTINGS)
)
_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")


def _matches(window: bytes) -> Iterator[tuple[int, int, int]]:
    """``(start, end, setting index)`` of every setting in ``window``, found with ``bytes.find`` (fast)."""
    for name, follows, index in _MATCHERS:
        at = window.find(name)
        while at != -1:
            if at == 0 or window[at - 1] not in _NAME_CHARS:
                match = follows.match(window, at + len(name))
                if match is not None:
                    yield at, match.end(), index
            at = window.find(name, at + 1)


#: Bytes kept from the end of one piece to the next: longer than any match.
_OVERLAP = 256


@dataclass(frozen=True)
class LiteralSetting:
    """A literal insecure setting found by the scan: rule, option, value, and where."""

    rule: str
    option: str
    value: str
    path: str
    line: int
    column: int


def scan_literal_settings(path: str, pieces: Iterable[bytes]) -> Iterator[LiteralSetting]:
    """Every literal insecure ``webPreferences`` option in a file given as consecutive pieces."""
    carried = b""
    carried_start = 0  # offset of ``carried`` in the file
    line = 1  # line number at ``carried_start``
    line_start = 0  # file offset where that line starts
    reported_until = 0
    for piece in pieces:
        window = carried + piece
        for match_start, match_end, index in sorted(_matches(window)):
            start = carried_start + match_start
            if start < reported_until:
                continue
            reported_until = carried_start + match_end
            newlines = window.count(b"\n", 0, match_start)
            begin = window.rfind(b"\n", 0, match_start)
            column = match_start - begin if begin >= 0 else start - line_start + 1
            rule, option, _, meaning = _SETTINGS[index]
            yield LiteralSetting(rule, option, meaning, path, line + newlines, column)
        keep = window[-_OVERLAP:] if len(window) > _OVERLAP else window
        dropped = window[: len(window) - len(keep)]
        line += dropped.count(b"\n")
        last = dropped.rfind(b"\n")
        if last >= 0:
            line_start = carried_start + last + 1
        carried_start += len(dropped)
        carried = keep
