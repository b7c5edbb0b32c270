"""The contract of every registered Electron check (garak's plugin style), each check run alone.

Every check has a unique id, filled-in metadata, and lives in the module of its family. Run alone
over every app of the labelled corpus, it reports exactly that app's labels for its rule, so it
fires on some apps (positive fixtures) and stays silent on others (negative ones); the version
checks, which need an advisory database, get theirs from a stand-in database. Its findings are the
shared :class:`tracemark.report.Finding`, carrying the check's title and help link.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.electron import ELECTRONEGATIVITY, load_context
from tests.unit.electron._corpus import CORPUS, Label, audit_target, corpus_apps, read_labels, score
from tracemark.electron._checks import CHECKS, FAMILIES, RULES, Check, Context, run_checks
from tracemark.report import Finding, Severity

APPS = corpus_apps()
HARDENED = CORPUS / "hardened_app_0"  # package.json: electron ^33.2.0
#: Checks that need an advisory database to be judged; the corpus is audited without one.
VERSION_CHECKS = ("electron-advisory", "electron-version-unchecked")


@dataclass(frozen=True)
class _Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str
    fixed: tuple[str, ...]


@dataclass(frozen=True)
class _Advisories:
    """A stand-in advisory database: one advisory for every Electron below ``fixed_in``."""

    fixed_in: int

    def affected(self, *, ecosystem: str, name: str, version: str) -> Sequence[_Advisory]:
        if (ecosystem, name) != ("npm", "electron") or int(version.split(".")[0]) >= self.fixed_in:
            return []
        return [_Advisory("GHSA-test", ("CVE-0000-0001",), "a flaw", "medium", (f"{self.fixed_in}.0.0",))]


@functools.cache
def _context(app: Path) -> Context:
    return load_context(audit_target(app))


def _version_cases(check_id: str) -> tuple[Context, Context]:
    """A context the check fires on and one it does not."""
    affected = load_context(HARDENED, advisories=_Advisories(fixed_in=40))
    unaffected = load_context(HARDENED, advisories=_Advisories(fixed_in=30))
    if check_id == "electron-advisory":
        return affected, unaffected
    return load_context(HARDENED), unaffected


def test_ids_are_unique_and_every_family_has_checks() -> None:
    ids = [check.id for check in CHECKS]
    assert len(ids) == len(set(ids))
    assert [family for family in FAMILIES if any(check.family == family for check in CHECKS)] == list(FAMILIES)
    assert list(RULES) == ids
    assert set(ELECTRONEGATIVITY) <= set(ids)


@pytest.mark.parametrize("check", CHECKS, ids=[check.id for check in CHECKS])
def test_metadata_is_filled_in(check: type[Check]) -> None:
    assert re.fullmatch(r"[a-z]+(-[a-z]+)*", check.id)
    assert check.title
    assert check.description.endswith(".")
    assert isinstance(check.severity, Severity)
    assert check.family == check.__module__.rsplit(".", 1)[1]
    assert check.references
    assert all(reference.startswith("https://") for reference in check.references)
    assert all(re.fullmatch(r"[A-Z_]+_CHECK", other) for other in check.electronegativity)
    rule = RULES[check.id]
    assert (rule.title, rule.severity, rule.help, rule.help_uri) == (
        check.title,
        check.severity,
        check.description,
        check.references[0],
    )


def _assert_shared_findings(check: type[Check], findings: list[Finding]) -> None:
    for finding in findings:
        assert type(finding) is Finding
        assert finding.rule_id == check.id
        assert (finding.title, finding.help_uri) == (check.title, check.references[0])
        assert finding.message


@pytest.mark.parametrize("check", CHECKS, ids=[check.id for check in CHECKS])
def test_fires_on_positive_fixtures_and_not_on_negative_ones(check: type[Check]) -> None:
    if check.id in VERSION_CHECKS:
        positive, negative = _version_cases(check.id)
        fired = run_checks(positive, [check])
        _assert_shared_findings(check, fired)
        assert fired
        assert run_checks(negative, [check]) == []
        return
    positives: list[str] = []
    negatives: list[str] = []
    for app in APPS:
        findings = run_checks(_context(app), [check])
        _assert_shared_findings(check, findings)
        labels = [label for label in read_labels(app) if label.rule == check.id]
        reported = [
            Label(f.rule_id, f.location.path if f.location else "", f.location.line if f.location else 0)
            for f in findings
        ]
        result = score(labels, reported)
        assert (result.false_positives, result.false_negatives) == ([], []), app.name
        (positives if findings else negatives).append(app.name)
    assert positives, "no corpus app this check fires on"
    assert negatives, "no corpus app this check stays silent on"
