"""What the audit could not read: it says so as findings, never as silence.

A source file over the size cap, a file the archive could not give back, a module whose
resolution ran out of its step budget, or a check that could not finish on deeply nested code
(hostile or extreme code) leaves the app not fully audited.  Each is a finding that gates like a
high-severity flaw, so an audit that missed part of the app cannot pass ``--fail-on high`` with
zero findings.
"""

from __future__ import annotations

from collections.abc import Iterable

from tracemark.electron._checks._base import Check, Context, register
from tracemark.report import Finding, Location, Severity

FAMILY = "coverage"


@register
class AuditIncomplete(Check):
    id = "audit-incomplete"
    title = "Part of the app was not audited"
    severity = Severity.HIGH
    family = FAMILY
    description = (
        "The audit could not read or fully resolve these files, so flaws in them may be missing. Split or "
        "un-minify very large bundles, audit the sources they are built from, or review these files by hand."
    )
    references = ("https://www.electronjs.org/docs/latest/tutorial/security",)

    def run(self, ctx: Context) -> Iterable[Finding]:
        if ctx.app is not None:
            for skipped in ctx.app.unaudited:
                yield self.finding(f"{skipped.path} was NOT audited: {skipped.reason}", Location(skipped.path))
        for check_id in ctx.unfinished_checks:
            yield self.finding(
                f"the {check_id} check could not finish: the code nests deeper than it can follow; "
                "its findings may be missing",
                None,
            )
        for module in ctx.project.modules:
            if module.exhausted:
                yield self.finding(
                    f"{module.path} was only partly audited: resolving its values took more than "
                    f"{module.step_limit} steps, the limit for a file of {len(module.source)} bytes; "
                    "settings and flows that depend on them may be missing",
                    Location(module.path.split("#", 1)[0]),
                )
