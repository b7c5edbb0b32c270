"""The labelled corpus: every app's findings are exactly its labels, and its name states their number."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.electron._corpus import (
    UNLABELLED_RULES,
    Label,
    audit_target,
    corpus_apps,
    expected_count,
    read_labels,
    score,
)
from tests.unit.electron._packaged import CORPUS, build_corpus_apps
from tracemark.electron import audit

APPS = corpus_apps()


def test_corpus_is_large_enough_and_covers_every_source_rule() -> None:
    assert len(APPS) >= 40
    labelled = {label.rule for app in APPS for label in read_labels(app)}
    from tracemark.electron import RULES

    unlabelled = set(RULES) - labelled - UNLABELLED_RULES - {"electron-advisory"}
    assert unlabelled == set(), f"rules without a corpus app: {sorted(unlabelled)}"


@pytest.mark.parametrize("app", APPS, ids=[app.name for app in APPS])
def test_app_findings_match_labels(app: Path) -> None:
    labels = read_labels(app)
    assert len(labels) == expected_count(app), "the app's name must state how many findings it expects"
    report = audit(audit_target(app))
    reported = [
        Label(f.rule_id, f.location.path if f.location else "", f.location.line if f.location else 0)
        for f in report.findings
        if f.rule_id not in UNLABELLED_RULES
    ]
    result = score(labels, reported)
    assert result.false_positives == []
    assert result.false_negatives == []
    assert any(f.rule_id == "electron-version-unchecked" for f in report.findings), "the missing check must be said"


def test_packaged_apps_are_reproducible() -> None:
    for name, files in build_corpus_apps(CORPUS).items():
        committed = {
            p.relative_to(CORPUS / name).as_posix(): p.read_bytes()
            for p in sorted((CORPUS / name).rglob("*"))
            if p.is_file() and p.name not in ("EXPECT", "TARGET")
        }
        assert committed == files, f"{name} differs from what tests/unit/electron/_packaged.py builds"
