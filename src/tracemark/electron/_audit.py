"""The audit: load the app, build the context the checks read, run every registered check, report."""

from __future__ import annotations

import re
from pathlib import Path

from tracemark.electron._checks import CHECKS, AdvisorySource, Context, run_checks
from tracemark.electron._checks.fuses import fuse_wire
from tracemark.electron._html import HtmlPage
from tracemark.electron._js import Module, Project
from tracemark.electron._loader import (
    MAX_SCRIPT_NESTING,
    MAX_SOURCE_BYTES,
    AppInput,
    Unaudited,
    bracket_depth,
    load_app,
)
from tracemark.electron._report import AuditReport

_MAJOR = re.compile(r"(\d+)")


def audit(
    path: str | Path,
    *,
    advisories: AdvisorySource | None = None,
    expected_asar_header_sha256: str | None = None,
    max_file_bytes: int = MAX_SOURCE_BYTES,
) -> AuditReport:
    """Audit an Electron app: a source folder, an ``app.asar``, or a packaged app (folder or executable).

    ``advisories`` is an offline advisory database (``tracemark.advisories.OsvDatabase``); without
    one the report says, as a finding, that the Electron version was not checked.
    ``expected_asar_header_sha256`` pins the archive's header hash when the app does not record it
    where the audit can read it (a bare ``.asar`` input).  Source files over ``max_file_bytes``
    are only scanned for literal insecure settings and reported as ``audit-incomplete``.
    """
    app = load_app(Path(path), max_file_bytes)
    ctx = context_for(app, advisories=advisories, expected_asar_header_sha256=expected_asar_header_sha256)
    findings = run_checks(ctx, CHECKS)
    fuses = ctx.fact(fuse_wire)
    return AuditReport(
        target=str(app.target),
        input_kind=app.kind,
        findings=tuple(findings),
        files_scanned=sum(1 for source in app.sources if source.kind != "json"),
        electron_version=app.electron_version,
        electron_version_source=app.electron_version_source,
        fuses=fuses.as_dict() if fuses is not None else None,
        asar_header_sha256=app.asar.header_sha256 if app.asar is not None else None,
        advisories_checked=advisories is not None and app.electron_version is not None,
        notices=tuple(ctx.notices),
    )


def context_for(
    app: AppInput, *, advisories: AdvisorySource | None, expected_asar_header_sha256: str | None
) -> Context:
    """Resolve the app's sources: what every check reads.  HTML pages' inline scripts are modules too."""
    modules: list[Module] = []
    json_files: dict[str, bytes] = {}
    pages: list[HtmlPage] = []
    for source in app.sources:
        if source.kind == "html":
            page = HtmlPage(source.path, source.data)
            pages.append(page)
            for index, script in enumerate(page.scripts):
                padded = b"\n" * (script.line - 1) + script.source  # keep the page's line numbers
                name = source.path if index == 0 else f"{source.path}#script{index + 1}"
                depth = bracket_depth(script.source)
                if depth > MAX_SCRIPT_NESTING:
                    reason = f"an inline script nests about {depth} deep, past the {MAX_SCRIPT_NESTING} levels parsed"
                    app.unaudited.append(Unaudited(source.path, reason))
                    continue
                modules.append(Module(name, padded, "js"))
        elif source.kind == "json":  # parsed when required: require('./settings.json')
            json_files[source.path] = source.data
        else:
            modules.append(Module(source.path, source.data, source.kind))
    match = _MAJOR.match(app.electron_version or "")
    return Context(
        project=Project(modules, json_files),
        pages=pages,
        electron_major=int(match.group(1)) if match else None,
        package_json=app.package_json,
        app=app,
        advisories=advisories,
        expected_asar_header_sha256=expected_asar_header_sha256,
        notices=list(app.notices),
    )
