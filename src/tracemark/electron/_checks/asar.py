"""ASAR integrity: the archive checked against its recorded header hash and per-file block hashes."""

from __future__ import annotations

from collections.abc import Iterable

from tracemark.electron._asar import IntegrityProblem, check_integrity
from tracemark.electron._checks._base import Check, Context, register
from tracemark.report import Finding, Location, Severity

FAMILY = "asar"


def integrity_problems(ctx: Context) -> list[IntegrityProblem]:
    """Every integrity failure of the app's archive (none without an archive).

    A bare archive has nowhere to record its header hash, so an unpinned one is a notice there, not a finding.
    """
    app = ctx.app
    if app is None or app.asar is None:
        return []
    expected = ctx.expected_asar_header_sha256
    problems = check_integrity(app.asar, expected.lower() if expected else app.recorded_header_sha256)
    if app.kind != "packaged" and any(problem.kind == "unanchored" for problem in problems):
        ctx.notices.append(
            "the archive's header hash was not pinned (--asar-header-sha256): header and "
            "whole-file substitutions cannot be detected; block and file hashes were checked"
        )
    return problems


@register
class AsarIntegrity(Check):
    id = "asar-integrity"
    title = "The ASAR archive fails its integrity check"
    severity = Severity.CRITICAL
    family = FAMILY
    description = "The archive does not match its recorded hashes: it was modified after packaging."

    def run(self, ctx: Context) -> Iterable[Finding]:
        label = ctx.app.asar_label if ctx.app is not None else ""
        for problem in ctx.fact(integrity_problems):
            if problem.kind in ("header", "file", "block"):
                where = Location(f"{label}/{problem.path}" if problem.path else label)
                yield self.finding(f"{problem.kind} tampering: {problem.message}", where)


@register
class AsarIntegrityUnanchored(Check):
    id = "asar-integrity-unanchored"
    title = "The ASAR archive's header hash is not recorded"
    severity = Severity.MEDIUM
    family = FAMILY
    description = "Package with asar integrity (electron-builder/forge do it) so the header hash is pinned in the app."

    def run(self, ctx: Context) -> Iterable[Finding]:
        app = ctx.app
        problems = ctx.fact(integrity_problems)
        if app is None or app.asar is None:
            return
        if app.kind == "packaged" and any(problem.kind == "unanchored" for problem in problems):
            yield self.finding(
                "the app records no header hash for app.asar, so edits cannot be detected", Location(app.asar_label)
            )
        missing = [problem for problem in problems if problem.kind == "missing"]
        if missing:
            yield self.finding(
                f"{len(missing)} of {len(app.asar.entries)} files in the archive have no integrity record",
                Location(app.asar_label),
            )
