"""Offline dependency audit: every manifest format, fail-closed database, unauditable dependencies."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from tracemark.advisories import OsvDatabase
from tracemark.cli import main
from tracemark.errors import DependencyAuditError, InvalidInputError
from tracemark.supply import audit_dependencies, read_dependencies

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def advisory(ident: str, ecosystem: str, name: str, introduced: str, fixed: str, severity: str) -> dict[str, object]:
    return {
        "id": ident,
        "modified": NOW.isoformat(),
        "summary": f"{name} is vulnerable",
        "aliases": [f"CVE-2026-{ident[-4:]}"],
        "database_specific": {"severity": severity},
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": introduced}, {"fixed": fixed}]}],
            }
        ],
    }


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    root = tmp_path / "osv"
    root.mkdir()
    for item in (
        advisory("GHSA-py01-0001", "PyPI", "requests", "0", "2.32.0", "MODERATE"),
        advisory("GHSA-py02-0002", "PyPI", "Jinja2", "3.0.0", "3.1.5", "HIGH"),
        advisory("GHSA-np01-0003", "npm", "lodash", "0", "4.17.21", "CRITICAL"),
        advisory("GHSA-np02-0004", "npm", "@scope/pkg", "1.0.0", "1.2.0", "LOW"),
    ):
        (root / f"{item['id']}.json").write_text(json.dumps(item))
    return root


@pytest.fixture
def database(db_path: Path) -> OsvDatabase:
    return OsvDatabase.open(db_path)


def ids(source: Path, database: OsvDatabase) -> list[str]:
    return sorted(v.id for v in audit_dependencies(read_dependencies(source), database).vulnerabilities)


def test_requirements_file(tmp_path: Path, database: OsvDatabase) -> None:
    (tmp_path / "base.txt").write_text("jinja2==3.1.2 --hash=sha256:abc\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# comment\n-r base.txt\nRequests == 2.31.0  # pinned\nnumpy>=1.0\n"
        "pywin32==300; sys_platform == 'win32'\nsafe==1.0\n"
    )
    audit = audit_dependencies(read_dependencies(requirements), database)
    assert sorted(v.id for v in audit.vulnerabilities) == ["GHSA-py01-0001", "GHSA-py02-0002"]
    unpinned = [f for f in audit.findings if f.rule_id == "deps.unpinned"]
    assert [f.message.split(":")[0] for f in unpinned] == ["numpy"]
    assert all(d.name != "pywin32" for d in audit.dependencies)
    jinja = next(v for v in audit.vulnerabilities if v.id == "GHSA-py02-0002")
    assert jinja.severity == "high"
    assert jinja.fixed == ("3.1.5",)


def test_lock_files(tmp_path: Path, database: OsvDatabase) -> None:
    (tmp_path / "poetry.lock").write_text('[[package]]\nname = "requests"\nversion = "2.28.0"\n')
    assert ids(tmp_path / "poetry.lock", database) == ["GHSA-py01-0001"]
    (tmp_path / "uv.lock").write_text(
        'version = 1\n[[package]]\nname = "me"\nversion = "0.1.0"\nsource = { editable = "." }\n'
        '[[package]]\nname = "jinja2"\nversion = "3.1.4"\nsource = { registry = "https://pypi.org/simple" }\n'
    )
    assert ids(tmp_path / "uv.lock", database) == ["GHSA-py02-0002"]
    (tmp_path / "pylock.toml").write_text('lock-version = "1.0"\n[[packages]]\nname = "requests"\nversion = "2.32.0"\n')
    assert ids(tmp_path / "pylock.toml", database) == []


def test_package_lock_v3_and_v1(tmp_path: Path, database: OsvDatabase) -> None:
    v3 = {
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "app", "version": "1.0.0"},
            "node_modules/lodash": {"version": "4.17.20"},
            "node_modules/a/node_modules/@scope/pkg": {"version": "1.1.0"},
            "node_modules/linked": {"link": True},
        },
    }
    (tmp_path / "package-lock.json").write_text(json.dumps(v3))
    assert ids(tmp_path / "package-lock.json", database) == ["GHSA-np01-0003", "GHSA-np02-0004"]
    v1 = {
        "lockfileVersion": 1,
        "dependencies": {"a": {"version": "1.0.0", "dependencies": {"lodash": {"version": "4.17.21"}}}},
    }
    sub = tmp_path / "v1"
    sub.mkdir()
    (sub / "package-lock.json").write_text(json.dumps(v1))
    assert ids(sub / "package-lock.json", database) == []


def test_installed_environment(tmp_path: Path, database: OsvDatabase) -> None:
    site = tmp_path / "site-packages"
    for name, version in (("requests", "2.0.0"), ("other", "1.0")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    assert ids(site, database) == ["GHSA-py01-0001"]


def test_unreadable_manifests_are_errors(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("this is not a requirement !!\n")
    with pytest.raises(DependencyAuditError):
        read_dependencies(tmp_path / "requirements.txt")
    (tmp_path / "package-lock.json").write_text("{")
    with pytest.raises(DependencyAuditError):
        read_dependencies(tmp_path / "package-lock.json")
    (tmp_path / "Gemfile.lock").write_text("GEM\n")
    with pytest.raises(DependencyAuditError, match="unknown manifest"):
        read_dependencies(tmp_path / "Gemfile.lock")
    # A path that does not exist is bad input (exit 2), not an unknown manifest.
    with pytest.raises(InvalidInputError, match="no such file"):
        read_dependencies(tmp_path / "absent.txt")


def test_cli_fails_closed_without_a_fresh_database(
    tmp_path: Path, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("safe==1.0\n")
    assert main(["supply", "deps", "--db", str(tmp_path / "missing"), str(requirements)]) == 9
    assert "does not exist" in capsys.readouterr().err
    old = tmp_path / "old"
    old.mkdir()
    stale = advisory("GHSA-old0-0000", "PyPI", "x", "0", "1", "LOW")
    stale["modified"] = "2020-01-01T00:00:00Z"
    (old / "a.json").write_text(json.dumps(stale))
    assert main(["supply", "deps", "--db", str(old), str(requirements)]) == 9
    assert "days old" in capsys.readouterr().err
    assert main(["supply", "deps", "--db", str(db_path), str(requirements)]) == 0
    assert "PASS" in capsys.readouterr().out
    requirements.write_text("requests==2.0\n")
    assert main(["supply", "deps", "--db", str(db_path), "--format", "sarif", str(requirements)]) == 1
    sarif = json.loads(capsys.readouterr().out)
    assert sarif["runs"][0]["results"][0]["ruleId"] == "GHSA-py01-0001"
    assert main(["supply", "deps", "--db", str(db_path), "--fail-on", "high", str(requirements)]) == 0


def test_alias_twins_are_reported_once(tmp_path: Path) -> None:
    root = tmp_path / "osv"
    root.mkdir()
    ghsa = advisory("GHSA-aaaa-0001", "PyPI", "flask", "0", "2.2.5", "HIGH")
    ghsa["aliases"] = ["CVE-2023-30861", "PYSEC-2023-62"]
    pysec = advisory("PYSEC-2023-62", "PyPI", "flask", "0", "2.3.2", "LOW")
    pysec["aliases"] = ["CVE-2023-30861"]
    pysec.pop("database_specific")
    other = advisory("GHSA-bbbb-0002", "PyPI", "flask", "0", "3.0.0", "LOW")
    for item in (ghsa, pysec, other):
        (root / f"{item['id']}.json").write_text(json.dumps(item))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("flask==2.0.0\n")
    audit = audit_dependencies(read_dependencies(requirements), OsvDatabase.open(root))
    merged = {v.id: v for v in audit.vulnerabilities}
    assert sorted(merged) == ["GHSA-aaaa-0001", "GHSA-bbbb-0002"]
    assert merged["GHSA-aaaa-0001"].aliases == ("CVE-2023-30861", "PYSEC-2023-62")
    assert merged["GHSA-aaaa-0001"].severity == "high"
    assert merged["GHSA-aaaa-0001"].fixed == ("2.2.5", "2.3.2")
    assert len(audit.findings) == 2
