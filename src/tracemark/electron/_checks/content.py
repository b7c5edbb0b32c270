"""What windows load: pages, scripts, styles and frames over plain HTTP."""

from __future__ import annotations

from collections.abc import Iterable

from tracemark.electron._checks._ast import LOCAL_HOSTS, at_node, calls_named, constant_prefix
from tracemark.electron._checks._base import Check, Context, guide, register
from tracemark.report import Finding, Location, Severity

FAMILY = "content"

#: Tags whose ``src``/``href``/``data`` load content into the page (images cannot run code: not listed).
_LOADING_TAGS = ("script", "iframe", "embed", "object", "link", "frame")


def _plain_http(url: str) -> bool:
    lowered = url.lower()
    return lowered.startswith("http://") and not lowered.startswith(LOCAL_HOSTS)


@register
class HttpResource(Check):
    id = "http-resource"
    title = "Content or code is loaded over plain HTTP"
    severity = Severity.MEDIUM
    family = FAMILY
    description = "Load every page, script and style over https (or a custom protocol)."
    references = guide("1-only-load-secure-content")
    electronegativity = (
        "HTTP_RESOURCES_JS_CHECK",
        "HTTP_RESOURCES_HTML_CHECK",
        "HTTP_RESOURCES_WITH_NODE_INTEGRATION_GLOBAL_CHECK",
    )

    def run(self, ctx: Context) -> Iterable[Finding]:
        for page in ctx.pages:
            for tag in page.tags:
                where = Location(page.path, tag.line, tag.column)
                attributes = tag.attributes
                if tag.name == "webview":
                    source = (attributes.get("src") or "").strip()
                    if _plain_http(source):
                        yield self.finding(f"<webview> loads {source} over plain HTTP", where)
                elif tag.name in _LOADING_TAGS:
                    if tag.name == "link" and "stylesheet" not in (attributes.get("rel") or "").lower():
                        continue
                    for name in ("src", "href", "data"):
                        source = (attributes.get(name) or "").strip()
                        if _plain_http(source):
                            yield self.finding(f"<{tag.name}> loads {source} over plain HTTP", where)
        project = ctx.project
        for module, call, _, args in calls_named(project, ("loadURL",)):
            url = constant_prefix(project, module, args[0]).strip()  # URL parsing trims surrounding spaces
            if _plain_http(url):
                yield self.finding(f"loadURL loads {url} over plain HTTP", at_node(module, call))
