"""The Electron version: checked against an offline advisory database, or said plainly that it was not."""

from __future__ import annotations

from collections.abc import Iterable

from tracemark.electron._checks._base import Check, Context, guide, register
from tracemark.report import Finding, Location, Severity

FAMILY = "version"
_REFERENCES = guide("16-use-a-current-version-of-electron")


@register
class ElectronAdvisory(Check):
    id = "electron-advisory"
    title = "The Electron version has a known vulnerability"
    severity = Severity.HIGH
    family = FAMILY
    description = "Upgrade Electron to a version that fixes the advisory."
    references = _REFERENCES
    electronegativity = ("AVAILABLE_SECURITY_FIXES_GLOBAL_CHECK",)

    def run(self, ctx: Context) -> Iterable[Finding]:
        app = ctx.app
        version = app.electron_version if app is not None else None
        if app is None or ctx.advisories is None or version is None:
            return
        source = app.electron_version_source
        where = Location("package.json") if source and "package.json" in source else None
        for advisory in ctx.advisories.affected(ecosystem="npm", name="electron", version=version):
            fixed = ", ".join(advisory.fixed) or "no fixed version"
            aliases = f" ({', '.join(advisory.aliases)})" if advisory.aliases else ""
            yield self.finding(
                f"Electron {version} is affected by {advisory.id}{aliases}: {advisory.summary} (fixed in {fixed})",
                where,
                _ADVISORY_SEVERITY.get(advisory.severity, Severity.HIGH),
            )


#: Advisory severities taken as they are; any other label (``unknown``) counts as high.
_ADVISORY_SEVERITY = {s.value: s for s in (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)}


@register
class ElectronVersionUnchecked(Check):
    id = "electron-version-unchecked"
    title = "The Electron version was NOT checked against advisories"
    severity = Severity.INFO
    family = FAMILY
    description = "Pass --advisories with an OSV database (the npm all.zip or a folder of OSV JSON) to check it."
    references = _REFERENCES

    def run(self, ctx: Context) -> Iterable[Finding]:
        version = ctx.app.electron_version if ctx.app is not None else None
        if ctx.advisories is None:
            yield self.finding(
                f"Electron {version or '(version unknown)'} was NOT checked against known "
                "vulnerabilities: no advisory database was given (--advisories)",
                None,
            )
        elif version is None:
            yield self.finding(
                "the Electron version could not be determined, so it was NOT checked against known vulnerabilities",
                None,
                Severity.MEDIUM,
            )
