"""The findings model: where something was found, the rule it breaks, and the finding itself."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tracemark._json import JSONObject
from tracemark.report._severity import Severity

#: Separates the layers of a path inside archives: ``model.tar.gz!gunzip!model/data.pkl``.
MEMBER_SEPARATOR = "!"


@dataclass(frozen=True)
class Location:
    """A place in the examined target: a path relative to it, and a line and column or a byte offset.

    Paths inside archives name each layer after ``!``; the part before the first ``!`` is the file on
    disk (:attr:`artifact`) and the rest the member inside it (:attr:`member`).  ``line`` and
    ``column`` count from 1; 0 means unknown.  ``offset`` is a byte offset in the innermost member.
    """

    path: str
    line: int = 0
    column: int = 0
    offset: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}" if self.line else self.path

    @property
    def artifact(self) -> str:
        """The file on disk: the path up to the first archive separator."""
        return self.path.partition(MEMBER_SEPARATOR)[0]

    @property
    def member(self) -> str:
        """The path inside the artifact (empty for a plain file)."""
        return self.path.partition(MEMBER_SEPARATOR)[2]


@dataclass(frozen=True)
class Rule:
    """One kind of finding, as a catalogue lists it.

    ``id`` is stable: it is what code-scanning services key alerts on.  ``severity`` is the default
    for the rule's findings (``None`` when it depends on the finding, as for pickle globals).
    """

    id: str
    title: str
    severity: Severity | None = None
    #: What to do about it.
    help: str = ""
    help_uri: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One problem found: which rule, how severe, what exactly, where, and the evidence for it."""

    rule_id: str
    severity: Severity
    message: str
    #: The primary location first; empty when the finding concerns the whole target.
    locations: tuple[Location, ...] = ()
    #: The rule's one-line title, for formats that show findings without their rule catalogue.
    title: str = ""
    help_uri: str = ""
    #: What a reader can check the finding against (excerpts, values, advisory ids).
    evidence: tuple[str, ...] = ()

    @property
    def location(self) -> Location | None:
        """The primary location, or ``None`` for a finding about the whole target."""
        return self.locations[0] if self.locations else None

    @property
    def fingerprint(self) -> str:
        """A stable id of this finding across runs: its rule, locations and message (SHA-256, 32 hex digits)."""
        parts = [self.rule_id, self.message]
        for location in self.locations:
            parts += [location.path, str(location.line), str(location.column), str(location.offset)]
        return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def to_json(self) -> JSONObject:
        """The finding as JSON; the flat ``location``, ``path``, ``line``... members describe the primary location."""
        location = self.location
        return {
            "rule": self.rule_id,
            "severity": self.severity.value,
            "title": self.title or None,
            "message": self.message,
            "location": str(location) if location else None,
            "path": location.path if location else None,
            "line": location.line if location and location.line else None,
            "column": location.column if location and location.column else None,
            "offset": location.offset if location else None,
            "locations": [str(each) for each in self.locations],
            "help_uri": self.help_uri or None,
            "evidence": list(self.evidence),
            "fingerprint": self.fingerprint,
        }
