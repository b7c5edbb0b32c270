"""The OSV matcher on hand-written advisories: every range event type, both orderings, fail-closed opening."""

from __future__ import annotations

import datetime
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tracemark.advisories import MANIFEST_NAME, AdvisoryDatabaseError, OsvDatabase
from tracemark.advisories._cvss import cvss3_base_score
from tracemark.errors import InvalidInputError, TracemarkError

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
MODIFIED = "2026-05-20T10:00:00Z"


def record(ident: str, ecosystem: str, name: str, *, ranges: list[dict[str, Any]] | None = None,
           versions: list[str] | None = None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    affected: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name}}
    if ranges is not None:
        affected["ranges"] = ranges
    if versions is not None:
        affected["versions"] = versions
    return {"id": ident, "modified": MODIFIED, "summary": f"{ident} summary", "affected": [affected], **extra}


def ecosystem_range(*events: dict[str, str], kind: str = "ECOSYSTEM") -> dict[str, Any]:
    return {"type": kind, "events": list(events)}


RECORDS = [
    # introduced / fixed, PEP 440
    record("PY-FIXED", "PyPI", "Demo_Package", ranges=[ecosystem_range({"introduced": "1.0"}, {"fixed": "1.4.2"})]),
    # introduced 0, fixed with a pre-release boundary
    record("PY-ZERO", "PyPI", "zero", ranges=[ecosystem_range({"introduced": "0"}, {"fixed": "2.0.0rc1"})]),
    # last_affected is inclusive
    record("PY-LAST", "PyPI", "last", ranges=[ecosystem_range({"introduced": "0.5"}, {"last_affected": "0.9.1"})]),
    # limit caps an open range
    record("PY-LIMIT", "PyPI", "limited", ranges=[ecosystem_range({"introduced": "1.0"}, {"limit": "1.5"})]),
    # two intervals in one range
    record(
        "PY-TWO",
        "PyPI",
        "two",
        ranges=[ecosystem_range({"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "2.0"}, {"fixed": "2.1"})],
    ),
    # versions list only
    record("PY-LIST", "PyPI", "listed", versions=["3.0", "3.1.post1"]),
    # withdrawn: never reported
    record(
        "PY-WITHDRAWN",
        "PyPI",
        "demo-package",
        ranges=[ecosystem_range({"introduced": "0"})],
        withdrawn="2026-05-21T00:00:00Z",
    ),
    # npm SEMVER with pre-releases
    record(
        "NPM-SEMVER",
        "npm",
        "electron",
        ranges=[ecosystem_range({"introduced": "22.0.0-beta.1"}, {"fixed": "22.3.25"}, kind="SEMVER")],
        database_specific={"severity": "MODERATE"},
    ),
    record(
        "NPM-LAST",
        "npm",
        "left-pad",
        ranges=[ecosystem_range({"introduced": "0"}, {"last_affected": "1.3.0"}, kind="SEMVER")],
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    ),
    record(
        "NPM-LIMIT",
        "npm",
        "limited",
        ranges=[ecosystem_range({"introduced": "2.0.0"}, {"limit": "3.0.0-0"}, kind="SEMVER")],
    ),
    # a GIT range is not evaluated against versions
    record("PY-GIT", "PyPI", "gitonly", ranges=[ecosystem_range({"introduced": "abc123"}, kind="GIT")]),
]

CASES = [
    ("PyPI", "demo-package", "0.9", []),
    ("PyPI", "demo-package", "1.0", ["PY-FIXED"]),
    ("PyPI", "DEMO.package", "1.4.1", ["PY-FIXED"]),
    ("PyPI", "demo_package", "1.4.2", []),
    ("PyPI", "demo-package", "1.4.2rc1", ["PY-FIXED"]),
    ("PyPI", "zero", "0.0.1", ["PY-ZERO"]),
    ("PyPI", "zero", "2.0.0b9", ["PY-ZERO"]),
    ("PyPI", "zero", "2.0.0rc1", []),
    ("PyPI", "zero", "2.0", []),
    ("PyPI", "last", "0.4", []),
    ("PyPI", "last", "0.9.1", ["PY-LAST"]),
    ("PyPI", "last", "0.9.1.post1", []),
    ("PyPI", "last", "0.9.2", []),
    ("PyPI", "limited", "1.4.9", ["PY-LIMIT"]),
    ("PyPI", "limited", "1.5", []),
    ("PyPI", "two", "1.1", ["PY-TWO"]),
    ("PyPI", "two", "1.5", []),
    ("PyPI", "two", "2.0.5", ["PY-TWO"]),
    ("PyPI", "two", "2.1", []),
    ("PyPI", "listed", "3.0.0", ["PY-LIST"]),
    ("PyPI", "listed", "3.1.post1", ["PY-LIST"]),
    ("PyPI", "listed", "3.1", []),
    ("PyPI", "gitonly", "1.0", []),
    ("npm", "electron", "21.9.9", []),
    ("npm", "electron", "22.0.0-alpha.9", []),
    ("npm", "electron", "22.0.0-beta.1", ["NPM-SEMVER"]),
    ("npm", "electron", "22.0.0-beta.10", ["NPM-SEMVER"]),
    ("npm", "electron", "22.0.0", ["NPM-SEMVER"]),
    ("npm", "electron", "22.3.24", ["NPM-SEMVER"]),
    ("npm", "electron", "22.3.25", []),
    ("npm", "Electron", "22.0.0", []),
    ("npm", "left-pad", "1.3.0", ["NPM-LAST"]),
    ("npm", "left-pad", "1.3.1", []),
    ("npm", "limited", "2.9.9", ["NPM-LIMIT"]),
    ("npm", "limited", "3.0.0-beta", []),
    ("npm", "limited", "1.9.0", []),
]


def write_db(root: Path, records: list[dict[str, Any]]) -> Path:
    for i, item in enumerate(records):
        folder = root / item["affected"][0]["package"]["ecosystem"] / f"part{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{item['id']}.json").write_text(json.dumps(item))
    return root


@pytest.fixture
def database(tmp_path: Path) -> OsvDatabase:
    return OsvDatabase.open(write_db(tmp_path / "osv", RECORDS), now=NOW)


@pytest.mark.parametrize(("ecosystem", "name", "version", "expected"), CASES)
def test_matcher_table(database: OsvDatabase, ecosystem: str, name: str, version: str, expected: list[str]) -> None:
    found = database.affected(ecosystem=ecosystem, name=name, version=version)
    assert [advisory.id for advisory in found] == expected


def test_advisory_fields(database: OsvDatabase) -> None:
    (electron,) = database.affected(ecosystem="npm", name="electron", version="22.1.0")
    assert electron.severity == "medium"
    assert electron.fixed == ("22.3.25",)
    assert electron.summary == "NPM-SEMVER summary"
    assert electron.modified == datetime.datetime(2026, 5, 20, 10, tzinfo=datetime.UTC)
    (left_pad,) = database.affected(ecosystem="npm", name="left-pad", version="1.0.0")
    assert left_pad.severity == "critical"
    assert left_pad.fixed == ()
    (listed,) = database.affected(ecosystem="pypi", name="listed", version="3.0")
    assert listed.severity == "unknown"


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N", 0.0),
        ("CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", None),
        ("CVSS:3.1/AV:N/AC:L", None),
    ],
)
def test_cvss3_scores(vector: str, score: float | None) -> None:
    assert cvss3_base_score(vector) == score


def test_zip_export_matches_like_a_directory(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for item in RECORDS:
            zf.writestr(f"{item['id']}.json", json.dumps(item))
    database = OsvDatabase.open(archive, now=NOW)
    assert database.records == len(RECORDS)
    for ecosystem, name, version, expected in CASES:
        assert [a.id for a in database.affected(ecosystem=ecosystem, name=name, version=version)] == expected


def test_missing_database_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(AdvisoryDatabaseError, match="does not exist"):
        OsvDatabase.open(tmp_path / "nowhere", now=NOW)


def test_empty_database_fails_closed(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdvisoryDatabaseError, match="no OSV records"):
        OsvDatabase.open(tmp_path / "empty", now=NOW)


def test_stale_database_fails_closed(tmp_path: Path) -> None:
    root = write_db(tmp_path / "osv", RECORDS)
    with pytest.raises(AdvisoryDatabaseError, match="days old"):
        OsvDatabase.open(root, now=NOW + datetime.timedelta(days=40))
    assert OsvDatabase.open(root, now=NOW + datetime.timedelta(days=40), max_age=None).records == len(RECORDS)


def test_manifest_sets_the_age(tmp_path: Path) -> None:
    root = write_db(tmp_path / "osv", RECORDS)
    (root / MANIFEST_NAME).write_text(json.dumps({"exported": "2026-07-01T00:00:00Z"}))
    later = datetime.datetime(2026, 7, 10, tzinfo=datetime.UTC)
    assert OsvDatabase.open(root, now=later).freshness == datetime.datetime(2026, 7, 1, tzinfo=datetime.UTC)
    (root / MANIFEST_NAME).write_text(json.dumps({"exported": "2026-01-01T00:00:00Z"}))
    with pytest.raises(AdvisoryDatabaseError, match="days old"):
        OsvDatabase.open(root, now=later)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"modified": "2026-05-20T10:00:00Z"}', b'{"id": "X", "modified": "yesterday"}', b"[1, 2]"],
)
def test_malformed_record_fails_closed(tmp_path: Path, content: bytes) -> None:
    root = write_db(tmp_path / "osv", RECORDS)
    (root / "bad.json").write_bytes(content)
    with pytest.raises(AdvisoryDatabaseError):
        OsvDatabase.open(root, now=NOW)


def test_not_a_zip_fails_closed(tmp_path: Path) -> None:
    bogus = tmp_path / "all.zip"
    bogus.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(AdvisoryDatabaseError):
        OsvDatabase.open(bogus, now=NOW)


def test_errors_are_tracemark_errors() -> None:
    assert issubclass(AdvisoryDatabaseError, TracemarkError)


def test_unsupported_ecosystem_and_bad_versions(database: OsvDatabase) -> None:
    with pytest.raises(InvalidInputError, match="not supported"):
        database.affected(ecosystem="Go", name="x", version="1.0.0")
    with pytest.raises(InvalidInputError, match="PEP 440"):
        database.affected(ecosystem="PyPI", name="demo-package", version="not a version")
    with pytest.raises(InvalidInputError, match="semantic"):
        database.affected(ecosystem="npm", name="electron", version="twenty-two")


def test_unparsable_event_version_is_reported_not_dropped(tmp_path: Path) -> None:
    weird = record("PY-WEIRD", "PyPI", "weird", ranges=[ecosystem_range({"introduced": "0"}, {"fixed": "r-17"})])
    database = OsvDatabase.open(write_db(tmp_path / "osv", [weird]), now=NOW)
    assert [a.id for a in database.affected(ecosystem="PyPI", name="weird", version="99")] == ["PY-WEIRD"]


def test_package_prefilter_gives_the_same_answers(tmp_path: Path) -> None:
    root = write_db(tmp_path / "osv", RECORDS)
    wanted = {(ecosystem, name) for ecosystem, name, _, _ in CASES}
    filtered = OsvDatabase.open(root, now=NOW, packages=wanted)
    assert filtered.records == len(RECORDS)
    for ecosystem, name, version, expected in CASES:
        assert [a.id for a in filtered.affected(ecosystem=ecosystem, name=name, version=version)] == expected
    only_electron = OsvDatabase.open(root, now=NOW, packages=[("npm", "electron")])
    assert [a.id for a in only_electron.affected(ecosystem="npm", name="electron", version="22.0.0")] == ["NPM-SEMVER"]
    assert only_electron.packages("PyPI") == set()
    # PEP 503: the filter matches the record's "Demo_Package" spelling.
    assert OsvDatabase.open(root, now=NOW, packages=[("PyPI", "demo.package")]).packages("PyPI") == {"demo-package"}


def test_prefilter_still_fails_closed(tmp_path: Path) -> None:
    root = write_db(tmp_path / "osv", RECORDS)
    with pytest.raises(AdvisoryDatabaseError, match="days old"):
        OsvDatabase.open(root, now=NOW + datetime.timedelta(days=40), packages=[("npm", "electron")])
    (root / "broken.json").write_text('{"id": "X"}')
    with pytest.raises(AdvisoryDatabaseError, match="modified"):
        OsvDatabase.open(root, now=NOW, packages=[("npm", "electron")])
