"""Content Security Policy: in page meta tags and in response headers set from the main process."""

from __future__ import annotations

from collections.abc import Iterable

from tracemark.electron._checks._ast import at_node, creates_windows
from tracemark.electron._checks._base import Check, Context, guide, register
from tracemark.electron._html import csp_weaknesses
from tracemark.electron._js import Module, Node, Project, string_value, text
from tracemark.report import Finding, Location, Severity

FAMILY = "csp"
_ELECTRONEGATIVITY = ("CSP_GLOBAL_CHECK", "CSP_HTML_CHECK", "CSP_JS_CHECK")


def csp_policies(ctx: Context) -> list[tuple[str, Location]]:
    """Every policy the app sets, with where: ``<meta http-equiv>`` tags, then ``Content-Security-Policy`` keys."""
    policies: list[tuple[str, Location]] = []
    for page in ctx.pages:
        for policy, tag in page.csp_policies():
            policies.append((policy, Location(page.path, tag.line, tag.column)))
    for module in ctx.project.modules:
        for node in module.find("pair"):
            key = node.child_by_field_name("key")
            value_node = node.child_by_field_name("value")
            if key is not None and value_node is not None:
                name = string_value(ctx.project.evaluate(module, key)) if key.type == "string" else text(key)
                if (name or "").lower() == "content-security-policy":
                    for policy in _strings(ctx.project, module, value_node):
                        policies.append((policy, at_node(module, node)))
    return policies


def _strings(project: Project, module: Module, node: Node) -> list[str]:
    if node.type == "array":
        found: list[str] = []
        for child in node.named_children:
            found.extend(_strings(project, module, child))
        return found
    value = string_value(project.evaluate(module, node))
    return [value] if value is not None else []


@register
class CspMissing(Check):
    id = "csp-missing"
    title = "No Content Security Policy"
    severity = Severity.MEDIUM
    family = FAMILY
    description = "Define a strict CSP (a meta tag or a Content-Security-Policy response header)."
    references = guide("7-define-a-content-security-policy")
    electronegativity = _ELECTRONEGATIVITY

    def run(self, ctx: Context) -> Iterable[Finding]:
        if ctx.fact(csp_policies) or not (creates_windows(ctx.project) or ctx.pages):
            return
        yield self.finding(
            "no Content-Security-Policy is set in any page or response header",
            Location(ctx.pages[0].path) if ctx.pages else None,
        )


@register
class CspWeak(Check):
    id = "csp-weak"
    title = "The Content Security Policy allows script injection"
    severity = Severity.MEDIUM
    family = FAMILY
    description = (
        "Remove 'unsafe-inline', 'unsafe-eval', wildcards and http:/data: sources from script-src (or default-src)."
    )
    references = guide("7-define-a-content-security-policy")
    electronegativity = _ELECTRONEGATIVITY

    def run(self, ctx: Context) -> Iterable[Finding]:
        for policy, where in ctx.fact(csp_policies):
            for weakness in csp_weaknesses(policy):
                shown = f" {weakness.source}" if weakness.source else ""
                yield self.finding(f"CSP {weakness.directive}{shown}: {weakness.reason}", where)
