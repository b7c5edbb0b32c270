"""A report: findings with the tool that made them, their rules and what a reader needs around them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tracemark import __version__
from tracemark._json import FrozenDict, FrozenJSONObject, freeze
from tracemark.report._finding import Finding, Rule
from tracemark.report._severity import Severity, count_at_least


@dataclass(frozen=True)
class Tool:
    """The tool that made a report; ``name`` is SARIF's driver name, which code scanning keys alerts on."""

    name: str
    full_name: str = ""
    information_uri: str = ""
    version: str = __version__


@dataclass(frozen=True)
class Report:
    """What every format renders: findings, their rule catalogue and the facts of the run.

    ``facts`` are members of the JSON form and SARIF run properties (what was examined, versions);
    ``heading``, ``summary`` and ``notices`` are lines of the human forms (above the findings, below
    their counts, and ``note:`` lines last).  ``document`` replaces the generic JSON form for a
    capability whose JSON has its own documented schema.  Both are kept as deep read-only copies.
    """

    tool: Tool
    findings: tuple[Finding, ...]
    rules: tuple[Rule, ...] = ()
    #: What was examined, as a reader names it (a folder, an app, a list of files).
    subject: str = ""
    #: The JSON form's ``format`` member, naming its schema (``tracemark.electron.audit/v1``).
    schema: str = ""
    facts: FrozenJSONObject = field(default_factory=FrozenDict)
    heading: tuple[str, ...] = ()
    summary: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()
    #: A JSON object; typed ``object`` so that a capability's TypedDict (its documented schema) fits.
    document: Mapping[str, object] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "facts", freeze(self.facts))
        if self.document is not None:
            object.__setattr__(self, "document", freeze(self.document))

    def rule(self, rule_id: str) -> Rule:
        """The catalogue entry for ``rule_id``, or one made from its first finding when the catalogue lacks it."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        first = next((f for f in self.findings if f.rule_id == rule_id), None)
        if first is None:
            return Rule(rule_id, rule_id)
        return Rule(rule_id, first.title or rule_id, help_uri=first.help_uri)

    def counts(self) -> dict[Severity, int]:
        """Findings per severity, worst first; ``unknown`` only appears when a finding has it."""
        counts: dict[Severity, int] = {severity: 0 for severity in Severity if severity is not Severity.UNKNOWN}
        for finding in self.findings:
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
        return {severity: counts[severity] for severity in Severity if severity in counts}

    def count_at_least(self, threshold: Severity | None) -> int:
        """How many findings reach ``threshold`` (``None``: never)."""
        return count_at_least((finding.severity for finding in self.findings), threshold)

    def fails(self, threshold: Severity | None) -> bool:
        """The ``--fail-on`` gate: whether any finding reaches ``threshold`` (``None``: never)."""
        return self.count_at_least(threshold) > 0
