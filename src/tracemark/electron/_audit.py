"""The audit: load the app, run the source checks, read fuses and ASAR integrity, check the version."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from tracemark.electron._asar import check_integrity
from tracemark.electron._checks import Context, run_source_checks
from tracemark.electron._findings import AuditReport, Finding, Location
from tracemark.electron._fuses import FuseState, FuseWire, read_fuses
from tracemark.electron._html import HtmlPage
from tracemark.electron._js import Module, Project
from tracemark.electron._loader import AppInput, load_app
from tracemark.electron._rules import Severity


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


#: Each fuse that weakens the app when it has the given state, and the rule that reports it.
FUSE_RULES: tuple[tuple[str, FuseState, str, str], ...] = (
    ("RunAsNode", FuseState.ENABLED, "fuse-run-as-node", "RunAsNode is on: ELECTRON_RUN_AS_NODE=1 runs any script"),
    (
        "EnableNodeOptionsEnvironmentVariable",
        FuseState.ENABLED,
        "fuse-node-options",
        "EnableNodeOptionsEnvironmentVariable is on: NODE_OPTIONS can inject code",
    ),
    (
        "EnableNodeCliInspectArguments",
        FuseState.ENABLED,
        "fuse-node-inspect",
        "EnableNodeCliInspectArguments is on: --inspect attaches a debugger",
    ),
    (
        "EnableCookieEncryption",
        FuseState.DISABLED,
        "fuse-cookie-encryption",
        "EnableCookieEncryption is off: cookies are stored in clear",
    ),
    (
        "EnableEmbeddedAsarIntegrityValidation",
        FuseState.DISABLED,
        "fuse-asar-integrity",
        "EnableEmbeddedAsarIntegrityValidation is off: a modified app.asar still loads",
    ),
    (
        "OnlyLoadAppFromAsar",
        FuseState.DISABLED,
        "fuse-only-asar",
        "OnlyLoadAppFromAsar is off: Electron also loads an app folder placed beside the archive",
    ),
    (
        "GrantFileProtocolExtraPrivileges",
        FuseState.ENABLED,
        "fuse-file-privileges",
        "GrantFileProtocolExtraPrivileges is on: file:// pages keep extra privileges",
    ),
)

_ADVISORY_SEVERITY = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
}
_MAJOR = re.compile(r"(\d+)")


def audit(
    path: str | Path, *, advisories: AdvisorySource | None = None, expected_asar_header_sha256: str | None = None
) -> AuditReport:
    """Audit an Electron app: a source folder, an ``app.asar``, or a packaged app (folder or executable).

    ``advisories`` is an offline advisory database (``tracemark.advisories.OsvDatabase``); without
    one the report says, as a finding, that the Electron version was not checked.
    ``expected_asar_header_sha256`` pins the archive's header hash when the app does not record it
    where the audit can read it (a bare ``.asar`` input).
    """
    app = load_app(Path(path))
    findings: list[Finding] = []
    notices = list(app.notices)
    modules: list[Module] = []
    pages: list[HtmlPage] = []
    for source in app.sources:
        if source.kind == "html":
            page = HtmlPage(source.path, source.data)
            pages.append(page)
            for index, script in enumerate(page.scripts):
                padded = b"\n" * (script.line - 1) + script.source
                modules.append(
                    Module(f"{source.path}", padded, "js")
                    if index == 0
                    else Module(f"{source.path}#script{index + 1}", padded, "js")
                )
        else:
            modules.append(Module(source.path, source.data, source.kind))
    major = _major(app.electron_version)
    context = Context(project=Project(modules), pages=pages, electron_major=major, package_json=app.package_json)
    run_source_checks(context)
    findings.extend(context.findings)
    fuses = _check_fuses(app, findings, notices)
    _check_asar(app, findings, notices, expected_asar_header_sha256)
    checked = _check_version(app, advisories, findings)
    return AuditReport(
        target=str(app.target),
        input_kind=app.kind,
        findings=tuple(findings),
        files_scanned=len(app.sources),
        electron_version=app.electron_version,
        electron_version_source=app.electron_version_source,
        fuses=fuses.as_dict() if fuses is not None else None,
        asar_header_sha256=app.asar.header_sha256 if app.asar is not None else None,
        advisories_checked=checked,
        notices=tuple(notices),
    )


def _major(version: str | None) -> int | None:
    match = _MAJOR.match(version or "")
    return int(match.group(1)) if match else None


def _check_fuses(app: AppInput, findings: list[Finding], notices: list[str]) -> FuseWire | None:
    if app.executable is None:
        if app.kind != "packaged":
            notices.append("fuses are read from a packaged app's executable: not checked for this input")
        return None
    wire = read_fuses(app.executable)
    if wire is None:
        notices.append(f"{app.executable.name} holds no fuse wire: fuses were NOT checked")
        return None
    where = Location(app.executable.name)
    for name, bad_state, rule, message in FUSE_RULES:
        if wire.state(name) == bad_state:
            findings.append(Finding(rule, message, where))
    return wire


def _check_asar(app: AppInput, findings: list[Finding], notices: list[str], expected: str | None) -> None:
    archive = app.asar
    if archive is None:
        return
    recorded = expected.lower() if expected else app.recorded_header_sha256
    label = app.asar_label
    problems = check_integrity(archive, recorded)
    missing = [problem for problem in problems if problem.kind == "missing"]
    for problem in problems:
        if problem.kind == "unanchored":
            if app.kind == "packaged":
                findings.append(
                    Finding(
                        "asar-integrity-unanchored",
                        "the app records no header hash for app.asar, so edits cannot be detected",
                        Location(label),
                    )
                )
            else:
                notices.append(
                    "the archive's header hash was not pinned (--asar-header-sha256): header and "
                    "whole-file substitutions cannot be detected; block and file hashes were checked"
                )
        elif problem.kind in ("header", "file", "block"):
            where = Location(f"{label}/{problem.path}" if problem.path else label)
            findings.append(Finding("asar-integrity", f"{problem.kind} tampering: {problem.message}", where))
    if missing:
        findings.append(
            Finding(
                "asar-integrity-unanchored",
                f"{len(missing)} of {len(archive.entries)} files in the archive have no integrity record",
                Location(label),
            )
        )


def _check_version(app: AppInput, advisories: AdvisorySource | None, findings: list[Finding]) -> bool:
    version = app.electron_version
    if advisories is None:
        findings.append(
            Finding(
                "electron-version-unchecked",
                f"Electron {version or '(version unknown)'} was NOT checked against known "
                "vulnerabilities: no advisory database was given (--advisories)",
            )
        )
        return False
    if version is None:
        findings.append(
            Finding(
                "electron-version-unchecked",
                "the Electron version could not be determined, so it was NOT checked against known vulnerabilities",
                None,
                Severity.MEDIUM,
            )
        )
        return False
    for advisory in advisories.affected(ecosystem="npm", name="electron", version=version):
        fixed = ", ".join(advisory.fixed) or "no fixed version"
        aliases = f" ({', '.join(advisory.aliases)})" if advisory.aliases else ""
        findings.append(
            Finding(
                "electron-advisory",
                f"Electron {version} is affected by {advisory.id}{aliases}: {advisory.summary} (fixed in {fixed})",
                Location("package.json")
                if app.electron_version_source and "package.json" in app.electron_version_source
                else None,
                _ADVISORY_SEVERITY.get(advisory.severity, Severity.HIGH),
            )
        )
    return True
