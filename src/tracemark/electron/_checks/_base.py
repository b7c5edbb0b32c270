"""The check interface, the context every check reads, and the registry of checks.

A check finds one kind of flaw: its id is the rule id SARIF consumers key on, and its metadata
(title, default severity, family, description, references) are class attributes.  Checks are
registered with :func:`register` in the order they run; :func:`run_checks` runs them over one
:class:`Context` and drops repeats (same rule, place and message).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, TypeVar, cast

from tracemark.electron._html import HtmlPage
from tracemark.electron._js import Project
from tracemark.electron._loader import AppInput
from tracemark.report import Finding, Location, Rule, Severity

#: Electron's security checklist, which most checks' references point into.
SECURITY_GUIDE = "https://www.electronjs.org/docs/latest/tutorial/security"

_T = TypeVar("_T")


class AdvisoryLike(Protocol):
    """The fields of an advisory the audit reports (``tracemark.advisories.Advisory`` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def aliases(self) -> tuple[str, ...]: ...
    @property
    def summary(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def fixed(self) -> tuple[str, ...]: ...


class AdvisorySource(Protocol):
    """What the audit needs from an advisory database (``tracemark.advisories.OsvDatabase`` fits)."""

    def affected(self, *, ecosystem: str, name: str, version: str) -> Sequence[AdvisoryLike]: ...


@dataclass
class Context:
    """What every check reads: the resolved sources and pages, and for packaged checks the app itself."""

    project: Project
    pages: list[HtmlPage]
    electron_major: int | None
    package_json: dict[str, object] | None = None
    app: AppInput | None = None
    advisories: AdvisorySource | None = None
    expected_asar_header_sha256: str | None = None
    #: Sentences for the report about what could not be checked.
    notices: list[str] = field(default_factory=list)
    #: Checks that could not finish (code nested past Python's recursion limit): reported, never dropped.
    unfinished_checks: list[str] = field(default_factory=list)
    _facts: dict[Callable[[Context], object], object] = field(default_factory=dict)

    def fact(self, compute: Callable[[Context], _T]) -> _T:
        """``compute(self)``, computed once per context: what several checks of a family share."""
        if compute not in self._facts:
            self._facts[compute] = compute(self)
        return cast(_T, self._facts[compute])


class Check(ABC):
    """One kind of flaw and how to find it."""

    #: The rule id findings carry (stable: code scanning keys alerts on it).
    id: ClassVar[str]
    #: One line saying what is wrong.
    title: ClassVar[str]
    #: The default severity of its findings.
    severity: ClassVar[Severity]
    #: The module it lives in (``windows``, ``ipc``, ``fuses``...).
    family: ClassVar[str]
    #: What to do about it.
    description: ClassVar[str]
    #: Where to read more; the first is the rule's help URI.
    references: ClassVar[tuple[str, ...]] = (SECURITY_GUIDE,)
    #: Electronegativity checks that cover the same flaw (empty: it has none).
    electronegativity: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def run(self, ctx: Context) -> Iterable[Finding]:
        """Every finding of this check in the app."""

    @classmethod
    def rule(cls) -> Rule:
        """The catalogue entry for this check's findings."""
        return Rule(cls.id, cls.title, cls.severity, cls.description, cls.references[0], ("electron",))

    def finding(self, message: str, location: Location | None, severity: Severity | None = None) -> Finding:
        """A finding of this check (at ``location``, or about the whole app when it is ``None``)."""
        return Finding(
            self.id,
            severity or self.severity,
            message,
            (location,) if location is not None else (),
            title=self.title,
            help_uri=self.references[0],
        )


_REGISTRY: list[type[Check]] = []
_CheckType = TypeVar("_CheckType", bound=type[Check])


def register(check: _CheckType) -> _CheckType:
    """Add a check to the registry (class decorator); ids must be unique."""
    if any(existing.id == check.id for existing in _REGISTRY):
        raise ValueError(f"two Electron checks have the id {check.id!r}")
    _REGISTRY.append(check)
    return check


def registered() -> tuple[type[Check], ...]:
    """Every registered check, in the order they run."""
    return tuple(_REGISTRY)


def run_checks(ctx: Context, checks: Iterable[type[Check]]) -> list[Finding]:
    """The findings of ``checks`` over ``ctx``, in check order, each rule, place and message once."""
    seen: set[tuple[str, str, int, int, str]] = set()
    findings: list[Finding] = []
    for check in checks:
        try:
            for finding in check().run(ctx):
                location = finding.location
                key = (
                    finding.rule_id,
                    location.path if location else "",
                    location.line if location else 0,
                    location.column if location else 0,
                    finding.message,
                )
                if key not in seen:
                    seen.add(key)
                    findings.append(finding)
        except RecursionError:  # fail closed: the coverage check reports it
            ctx.unfinished_checks.append(check.id)
    return findings


def guide(anchor: str) -> tuple[str, ...]:
    """References pointing at one section of Electron's security checklist."""
    return (f"{SECURITY_GUIDE}#{anchor}",)
