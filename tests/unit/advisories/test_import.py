"""Building the offline database: ``tracemark advisories import``/``fetch``, credible freshness, alias severity.

Issue 20, point 7.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http import QuietHandler, loopback_server
from tracemark.advisories import MANIFEST_NAME, Advisory, AdvisoryDatabaseError, OsvDatabase
from tracemark.cli import main
from tracemark.supply._deps import merge_aliases

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)


def osv(ident: str, name: str, modified: datetime.datetime, ecosystem: str = "PyPI") -> dict[str, object]:
    events = [{"introduced": "0"}, {"fixed": "2.0"}]
    return {
        "id": ident,
        "modified": modified.isoformat().replace("+00:00", "Z"),
        "affected": [
            {"package": {"ecosystem": ecosystem, "name": name}, "ranges": [{"type": "ECOSYSTEM", "events": events}]}
        ],
        "database_specific": {"severity": "HIGH"},
    }


def export(path: Path, records: list[dict[str, object]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for item in records:
            archive.writestr(f"{item['id']}.json", json.dumps(item))
    return path


def test_one_future_dated_record_does_not_make_old_data_fresh(tmp_path: Path) -> None:
    old = NOW - datetime.timedelta(days=90)
    folder = tmp_path / "db"
    folder.mkdir()
    for item in (osv("OLD-1", "a", old), osv("FUTURE-1", "b", NOW + datetime.timedelta(days=3650))):
        (folder / f"{item['id']}.json").write_text(json.dumps(item))
    with pytest.raises(AdvisoryDatabaseError, match="days old"):
        OsvDatabase.open(folder, now=NOW)
    assert OsvDatabase.open(folder, now=NOW, max_age=None).freshness == old


def test_a_record_within_a_day_of_now_is_clock_skew_not_a_lie(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    skewed = NOW + datetime.timedelta(hours=6)
    (folder / "A.json").write_text(json.dumps(osv("A", "a", skewed)))
    assert OsvDatabase.open(folder, now=NOW).freshness == skewed


def test_only_future_dated_records_or_a_future_manifest_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    (folder / "F.json").write_text(json.dumps(osv("F", "f", NOW + datetime.timedelta(days=5))))
    with pytest.raises(AdvisoryDatabaseError, match="future"):
        OsvDatabase.open(folder, now=NOW)
    (folder / "A.json").write_text(json.dumps(osv("A", "a", NOW - datetime.timedelta(days=1))))
    (folder / MANIFEST_NAME).write_text(json.dumps({"exported": "2031-01-01T00:00:00Z"}))
    with pytest.raises(AdvisoryDatabaseError, match="manifest cannot be trusted"):
        OsvDatabase.open(folder, now=NOW)


def test_the_exports_metadata_is_preferred_to_its_records(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    (folder / "A.json").write_text(json.dumps(osv("A", "a", NOW - datetime.timedelta(days=1))))
    (folder / MANIFEST_NAME).write_text(json.dumps({"exported": "2026-09-01T00:00:00Z"}))
    with pytest.raises(AdvisoryDatabaseError, match="days old"):
        OsvDatabase.open(folder, now=NOW)


def test_import_builds_a_database_the_audit_opens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recent = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    pypi = export(tmp_path / "pypi.zip", [osv("GHSA-1", "demo", recent), osv("GHSA-2", "other", recent)])
    npm = export(tmp_path / "npm.zip", [osv("GHSA-3", "left-pad", recent, "npm")])
    database = tmp_path / "osv"
    assert main(["advisories", "import", str(pypi), "--ecosystem", "PyPI", "--db", str(database), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 2
    assert main(["advisories", "import", str(npm), "--ecosystem", "npm", "--db", str(database)]) == 0
    assert "imported 1 npm advisories" in capsys.readouterr().out
    manifest = json.loads((database / MANIFEST_NAME).read_text())
    assert sorted(manifest["sources"]) == ["PyPI", "npm"]
    assert manifest["exported"] == min(entry["exported"] for entry in manifest["sources"].values())
    opened = OsvDatabase.open(database)
    assert [a.id for a in opened.affected(ecosystem="PyPI", name="demo", version="1.0")] == ["GHSA-1"]
    assert [a.id for a in opened.affected(ecosystem="npm", name="left-pad", version="1.0")] == ["GHSA-3"]
    # Importing PyPI again replaces PyPI's records, not npm's.
    export(pypi, [osv("GHSA-4", "demo", recent)])
    assert main(["advisories", "import", str(pypi), "--ecosystem", "PyPI", "--db", str(database)]) == 0
    again = OsvDatabase.open(database)
    assert [a.id for a in again.affected(ecosystem="PyPI", name="demo", version="1.0")] == ["GHSA-4"]
    assert again.affected(ecosystem="npm", name="left-pad", version="1.0")


def test_a_broken_export_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recent = datetime.datetime.now(datetime.UTC)
    database = tmp_path / "osv"
    good = export(tmp_path / "good.zip", [osv("GHSA-1", "demo", recent)])
    assert main(["advisories", "import", str(good), "--ecosystem", "PyPI", "--db", str(database)]) == 0
    before = sorted(p.name for p in database.rglob("*"))
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("bad.json", "{not json")
    assert main(["advisories", "import", str(broken), "--ecosystem", "PyPI", "--db", str(database)]) != 0
    assert "not valid JSON" in capsys.readouterr().err
    assert sorted(p.name for p in database.rglob("*")) == before
    assert (
        main(["advisories", "import", str(tmp_path / "missing.zip"), "--ecosystem", "PyPI", "--db", str(database)]) != 0
    )


@pytest.fixture
def served_export(tmp_path: Path) -> Iterator[tuple[str, datetime.datetime]]:
    published = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(days=2)
    payload = export(
        tmp_path / "served.zip", [osv("GHSA-9", "demo", published - datetime.timedelta(days=3))]
    ).read_bytes()

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server names it)
            self.reply(200, payload, {"Last-Modified": email.utils.format_datetime(published, usegmt=True)})

    with loopback_server(Handler) as url:
        yield f"{url}/PyPI/all.zip", published


def test_fetch_downloads_imports_and_dates_by_last_modified(
    tmp_path: Path, served_export: tuple[str, datetime.datetime], capsys: pytest.CaptureFixture[str]
) -> None:
    url, published = served_export
    database = tmp_path / "osv"
    assert main(["advisories", "fetch", "--ecosystem", "PyPI", "--db", str(database), "--url", url, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert datetime.datetime.fromisoformat(result["exported"]) == published
    assert OsvDatabase.open(database).freshness == published
    assert main(["advisories", "fetch", "--ecosystem", "PyPI", "--db", str(database), "--url", "ftp://x/all.zip"]) != 0


def _advisory(ident: str, severity: str, *aliases: str) -> Advisory:
    return Advisory(ident, aliases, "", severity, ("2.0",), NOW)


def test_alias_merges_keep_the_known_severity() -> None:
    (merged,) = merge_aliases([_advisory("GHSA-aaaa", "medium", "PYSEC-1"), _advisory("PYSEC-1", "unknown")])
    assert merged.severity == "medium"
    (worst,) = merge_aliases([_advisory("GHSA-bbbb", "low", "PYSEC-2"), _advisory("PYSEC-2", "critical")])
    assert worst.severity == "critical"
    (alone,) = merge_aliases([_advisory("PYSEC-3", "unknown")])
    assert alone.severity == "unknown"
