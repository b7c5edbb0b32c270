"""The labelled corpus in ``tests/fixtures/electron``: reading its labels and scoring findings against them.

Each app is a folder named ``<what>_<expected count>``.  Labels live next to the code they
describe: a comment ``expect: rule [rule ...]`` on a line (``//`` in JavaScript, ``<!-- -->`` in
HTML) expects those findings on that line; an ``EXPECT`` file lists findings without a line
(``rule`` for app-wide findings, ``rule path`` for whole-file ones).  The benchmark scores
Electronegativity with the same labels and the same matching.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "electron"
_MARKER = re.compile(r"expect:((?:\s+[a-z][a-z0-9]*(?:-[a-z0-9]+)*)+)")
_SOURCE_SUFFIXES = (".js", ".mjs", ".cjs", ".ts", ".tsx", ".html")
#: Rules the corpus does not label: the advisory notice appears in every audit run without a database.
UNLABELLED_RULES = frozenset({"electron-version-unchecked"})


@dataclass(frozen=True, order=True)
class Label:
    """One expected (or reported) finding: rule, path relative to the app, line (0: no line)."""

    rule: str
    path: str
    line: int


def corpus_apps() -> list[Path]:
    """Every app of the corpus, sorted by name."""
    return sorted(path for path in CORPUS.iterdir() if path.is_dir() and not path.name.startswith(("_", ".")))


def audit_target(app: Path) -> Path:
    """What to audit for an app: the folder itself, or the file its ``TARGET`` names."""
    target = app / "TARGET"
    return app / target.read_text("utf-8").strip() if target.is_file() else app


def expected_count(app: Path) -> int:
    return int(app.name.rsplit("_", 1)[1])


def read_labels(app: Path) -> list[Label]:
    """The expected findings of one app."""
    labels: list[Label] = []
    for file in sorted(app.rglob("*")):
        if not file.is_file() or file.suffix not in _SOURCE_SUFFIXES:
            continue
        relative = file.relative_to(app).as_posix()
        for number, line in enumerate(file.read_text("utf-8").splitlines(), start=1):
            match = _MARKER.search(line)
            if match:
                labels.extend(Label(rule, relative, number) for rule in match.group(1).split())
    expect = app / "EXPECT"
    if expect.is_file():
        for line in expect.read_text("utf-8").splitlines():
            parts = line.split()
            if parts:
                labels.append(Label(parts[0], parts[1] if len(parts) > 1 else "", 0))
    return sorted(labels)


@dataclass(frozen=True)
class Score:
    """Matches between reported and expected findings of one app."""

    true_positives: list[Label]
    false_positives: list[Label]
    false_negatives: list[Label]


def score(expected: list[Label], reported: list[Label], line_tolerance: int = 0) -> Score:
    """Match reported findings to labels one to one: same rule; same file and line (within tolerance).

    A label without a path matches a report of its rule anywhere; a label without a line
    matches a report of its rule in that file.
    """
    remaining = list(expected)
    true_positives: list[Label] = []
    false_positives: list[Label] = []
    for report in sorted(reported):
        match = None
        for label in remaining:
            if label.rule != report.rule:
                continue
            if not label.path or (
                label.path == report.path and (label.line == 0 or abs(label.line - report.line) <= line_tolerance)
            ):
                match = label
                break
        if match is None:
            false_positives.append(report)
        else:
            remaining.remove(match)
            true_positives.append(match)
    return Score(true_positives, false_positives, remaining)


def counts(labels: list[Label]) -> Counter[str]:
    return Counter(label.rule for label in labels)
