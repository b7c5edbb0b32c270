"""Offline dependency audit: installed environments, requirements and lock files against an OSV database.

The audit fails closed.  The database must open (present, non-empty, fresh enough: see
:class:`tracemark.advisories.OsvDatabase`), and a dependency that cannot be checked (an
unpinned requirement, a version the ecosystem cannot parse) is a finding, not a silent pass.

Inputs, recognised by file name:

* ``requirements*.txt`` / ``*.in``: pinned ``name==version`` lines (PEP 508), ``-r`` includes;
* ``pylock*.toml`` (PEP 751), ``poetry.lock``, ``uv.lock``;
* ``package-lock.json`` / ``npm-shrinkwrap.json`` (lockfile versions 1 to 3);
* a ``site-packages`` folder (or the running interpreter's) for an installed environment.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TypedDict

from tracemark._json import JSONObject
from tracemark.advisories import Advisory, OsvDatabase
from tracemark.errors import DependencyAuditError, InvalidInputError, MissingExtraError
from tracemark.report import Finding, Location, Severity

#: Largest manifest or lock file read (bytes).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True)
class Dependency:
    """One package version to audit, and where it was declared."""

    ecosystem: str
    name: str
    version: str | None
    source: str
    #: Needed only to develop or test the project (package-lock ``"dev": true``, poetry's ``dev``
    #: category, a ``requirements-dev.txt``): audited, but not a runtime component of a BOM.
    development: bool = False


@dataclass(frozen=True)
class Vulnerability:
    """An advisory that affects an audited dependency."""

    dependency: Dependency
    id: str
    aliases: tuple[str, ...]
    severity: str
    summary: str
    fixed: tuple[str, ...]


class VulnerabilityJSON(TypedDict):
    """A :class:`Vulnerability` in :meth:`DependencyAudit.to_json`: the dependency's members, then the advisory's."""

    ecosystem: str
    name: str
    version: str | None
    source: str
    id: str
    aliases: list[str]
    severity: str
    summary: str
    fixed: list[str]


class DependencyAuditJSON(TypedDict):
    """:meth:`DependencyAudit.to_json`'s object; ``dependencies`` is how many were audited."""

    database: str
    database_freshness: str
    dependencies: int
    vulnerabilities: list[VulnerabilityJSON]
    findings: list[JSONObject]


@dataclass(frozen=True)
class DependencyAudit:
    """The audit result: what was checked, what is vulnerable, what could not be checked."""

    dependencies: tuple[Dependency, ...]
    vulnerabilities: tuple[Vulnerability, ...]
    findings: tuple[Finding, ...]
    database: str
    database_freshness: str

    def to_json(self) -> DependencyAuditJSON:
        return {
            "database": self.database,
            "database_freshness": self.database_freshness,
            "dependencies": len(self.dependencies),
            "vulnerabilities": [
                {
                    "ecosystem": v.dependency.ecosystem,
                    "name": v.dependency.name,
                    "version": v.dependency.version,
                    "source": v.dependency.source,
                    "id": v.id,
                    "aliases": list(v.aliases),
                    "severity": v.severity,
                    "summary": v.summary,
                    "fixed": list(v.fixed),
                }
                for v in self.vulnerabilities
            ],
            "findings": [f.to_json() for f in self.findings],
        }


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise DependencyAuditError(f"{path} is larger than {MAX_MANIFEST_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DependencyAuditError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DependencyAuditError(f"{path}: unreadable ({exc})") from None


def read_dependencies(path: str | Path) -> list[Dependency]:
    """Dependencies declared by a requirements, lock file, or installed in a ``site-packages`` folder."""
    source = Path(path)
    if not source.exists():
        raise InvalidInputError(f"{source}: no such file or directory")
    name = source.name.lower()
    if source.is_dir():
        return installed_dependencies(source)
    if name in ("package-lock.json", "npm-shrinkwrap.json"):
        return _package_lock(source)
    if name == "poetry.lock" or name == "uv.lock":
        return _toml_packages(source, "package")
    if name.startswith("pylock") and name.endswith(".toml"):
        return _toml_packages(source, "packages")
    if name.endswith((".txt", ".in")):
        found = _requirements(source, 0)
        if _DEVELOPMENT_FILE.search(name):
            found = [dataclasses.replace(dep, development=True) for dep in found]
        return found
    raise DependencyAuditError(
        f"{source}: unknown manifest (requirements*.txt, pylock.toml, poetry.lock, uv.lock, package-lock.json)"
    )


def installed_dependencies(site_packages: str | Path | None = None) -> list[Dependency]:
    """Distributions installed in ``site_packages`` (default: the running interpreter's path)."""
    paths = [str(site_packages)] if site_packages is not None else None
    where = str(site_packages) if site_packages is not None else "installed environment"
    found = {}
    for dist in metadata.distributions(path=paths) if paths else metadata.distributions():
        dist_name = dist.metadata["Name"]
        if dist_name:
            found[(dist_name.lower(), dist.version)] = Dependency("PyPI", dist_name, dist.version, where)
    if not found:
        raise DependencyAuditError(f"{where}: no installed distributions found")
    return sorted(found.values(), key=lambda d: (d.name.lower(), d.version or ""))


#: requirements-dev.txt, dev-requirements.in, requirements_test.txt, test-requirements.txt ...
_DEVELOPMENT_FILE = re.compile(r"(^|[-_.])(dev|develop|development|test|tests|testing|lint|docs)([-_.]|$)")
_OPTION = re.compile(r"^\s*(-r|--requirement|-c|--constraint)\s*=?\s*(\S+)")


def _requirements(path: Path, depth: int) -> list[Dependency]:
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise MissingExtraError("requirements parsing", "supply") from exc
    if depth > _MAX_INCLUDE_DEPTH:
        raise DependencyAuditError(f"{path}: requirement includes nested too deeply")
    dependencies: list[Dependency] = []
    joined = re.sub(r"\\\r?\n", " ", _read_text(path))
    for number, raw in enumerate(joined.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        include = _OPTION.match(line)
        if include:
            if include.group(1) in ("-r", "--requirement"):
                dependencies += _requirements(path.parent / include.group(2), depth + 1)
            continue
        if line.startswith("-"):
            if line.startswith(("-e", "--editable")):
                dependencies.append(Dependency("PyPI", line.split()[-1], None, f"{path}:{number}"))
            continue
        spec = re.split(r"\s+--", line)[0].strip()
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as exc:
            raise DependencyAuditError(f"{path}:{number}: not a PEP 508 requirement ({exc})") from None
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        pins = [s.version for s in requirement.specifier if s.operator in ("==", "===") and "*" not in s.version]
        version = pins[0] if len(pins) == 1 and len(requirement.specifier) == 1 else None
        dependencies.append(Dependency("PyPI", requirement.name, version, f"{path}:{number}"))
    return dependencies


def _toml_packages(path: Path, key: str) -> list[Dependency]:
    try:
        document = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise DependencyAuditError(f"{path}: not valid TOML ({exc})") from None
    packages = document.get(key)
    if not isinstance(packages, list):
        raise DependencyAuditError(f"{path}: no [[{key}]] tables")
    dependencies = []
    for package in packages:
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            raise DependencyAuditError(f"{path}: a [[{key}]] entry has no name")
        source = package.get("source")
        local = isinstance(source, dict) and ({"editable", "virtual", "directory", "path"} & source.keys())
        if local or "directory" in package:
            continue  # the project itself or a local path: not a registry release
        version = package.get("version")
        development = package.get("category") == "dev" or package.get("groups") in (["dev"], ["test"])
        dependencies.append(
            Dependency("PyPI", package["name"], version if isinstance(version, str) else None, str(path), development)
        )
    return dependencies


def _package_lock(path: Path) -> list[Dependency]:
    try:
        document = json.loads(_read_text(path))
    except ValueError as exc:
        raise DependencyAuditError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise DependencyAuditError(f"{path}: not a package-lock document")
    found: dict[tuple[str, str | None], Dependency] = {}
    packages = document.get("packages")
    if isinstance(packages, dict):  # lockfileVersion 2 and 3
        for location, entry in packages.items():
            if not location or not isinstance(entry, dict) or entry.get("link"):
                continue
            name = entry.get("name") or location.rpartition("node_modules/")[2]
            version = entry.get("version")
            found[(name, version)] = Dependency(
                "npm", name, version if isinstance(version, str) else None, str(path), entry.get("dev") is True
            )
    else:  # lockfileVersion 1: nested "dependencies"
        stack = [document.get("dependencies") or {}]
        while stack:
            level = stack.pop()
            if not isinstance(level, dict):
                raise DependencyAuditError(f"{path}: malformed 'dependencies'")
            for name, entry in level.items():
                if not isinstance(entry, dict):
                    continue
                version = entry.get("version")
                if isinstance(version, str) and version.startswith("npm:"):
                    name, _, version = version[4:].rpartition("@")
                found[(name, version)] = Dependency(
                    "npm", name, version if isinstance(version, str) else None, str(path), entry.get("dev") is True
                )
                stack.append(entry.get("dependencies") or {})
    if not found and not isinstance(packages, dict) and "dependencies" not in document:
        raise DependencyAuditError(f"{path}: neither 'packages' nor 'dependencies' found")
    return sorted(found.values(), key=lambda d: (d.name, d.version or ""))


def _preference(advisory: Advisory) -> tuple[int, int, str]:
    """Which record names a merged group: a labelled severity first, then a GHSA id, then the id."""
    return (advisory.severity == "unknown", not advisory.id.startswith("GHSA-"), advisory.id)


def merge_aliases(advisories: list[Advisory]) -> list[Advisory]:
    """One advisory per vulnerability: records that name each other as aliases (a GHSA and its
    PYSEC twin in the PyPI export) are merged, keeping the worst known severity and every fixed version."""
    groups: list[list[Advisory]] = []
    for advisory in advisories:
        names = {advisory.id, *advisory.aliases}
        matching = [g for g in groups if any(names & {a.id, *a.aliases} for a in g)]
        merged = [advisory] + [a for g in matching for a in g]
        groups = [g for g in groups if g not in matching] + [merged]
    result = []
    for group in groups:
        lead = min(group, key=_preference)
        aliases = sorted({name for a in group for name in (a.id, *a.aliases)} - {lead.id})
        # A record without a severity says nothing about it: the known labels decide, "unknown" only alone.
        known = [a.severity for a in group if a.severity != "unknown"]
        severity = max(known, key=lambda label: Severity(label).rank) if known else "unknown"
        fixed = tuple(sorted({v for a in group for v in a.fixed}))
        result.append(dataclasses.replace(lead, aliases=tuple(aliases), severity=severity, fixed=fixed))
    return sorted(result, key=lambda a: a.id)


def audit_dependencies(dependencies: list[Dependency], database: OsvDatabase) -> DependencyAudit:
    """Match each dependency against the database; unauditable dependencies become findings."""
    vulnerabilities: list[Vulnerability] = []
    findings: list[Finding] = []
    for dep in dependencies:
        if dep.version is None:
            findings.append(
                Finding(
                    "deps.unpinned",
                    Severity.HIGH,
                    f"{dep.name}: no exact version, so it cannot be audited offline (pin it or audit the lock file)",
                    (Location(dep.source),),
                )
            )
            continue
        try:
            advisories = database.affected(ecosystem=dep.ecosystem, name=dep.name, version=dep.version)
        except InvalidInputError as exc:
            findings.append(Finding("deps.unauditable", Severity.HIGH, exc.diagnostics(), (Location(dep.source),)))
            continue
        for advisory in merge_aliases(advisories):
            vulnerabilities.append(
                Vulnerability(dep, advisory.id, advisory.aliases, advisory.severity, advisory.summary, advisory.fixed)
            )
            fixed = f" (fixed in {', '.join(advisory.fixed)})" if advisory.fixed else " (no fixed version)"
            findings.append(
                Finding(
                    advisory.id,
                    Severity(advisory.severity),
                    f"{dep.name} {dep.version}: {advisory.summary or advisory.id}{fixed}",
                    (Location(dep.source),),
                )
            )
    return DependencyAudit(
        dependencies=tuple(dependencies),
        vulnerabilities=tuple(vulnerabilities),
        findings=tuple(findings),
        database=str(database.source),
        database_freshness=database.freshness.isoformat(),
    )
