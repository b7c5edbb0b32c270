"""``<webview>`` tags: enabled without a ``will-attach-webview`` check, or allowed to open windows."""

from __future__ import annotations

from collections.abc import Iterable

from tracemark.electron._checks._ast import at, listens, pref, truthy
from tracemark.electron._checks._base import Check, Context, guide, register
from tracemark.electron._checks.windows import webviews, window_settings
from tracemark.report import Finding, Severity

FAMILY = "webview"


@register
class WebviewTag(Check):
    id = "webview-tag"
    title = "A webview is enabled or used without a will-attach-webview check"
    severity = Severity.MEDIUM
    family = FAMILY
    description = (
        "Avoid webviews; if needed, strip preload scripts and force secure webPreferences in a "
        "will-attach-webview handler."
    )
    references = guide("12-verify-webview-options-before-creation")
    electronegativity = ("NODE_INTEGRATION_ATTACH_EVENT_JS_CHECK",)

    def run(self, ctx: Context) -> Iterable[Finding]:
        if listens(ctx.project, "will-attach-webview"):
            return
        for window in ctx.fact(window_settings):
            webview, key_site = pref(window.prefs, "webviewTag")
            if webview is not None and truthy(webview) is not None:
                yield self.finding(
                    f"{window.kind} enables webviewTag without a will-attach-webview handler", at(key_site)
                )


@register
class WebviewAllowpopups(Check):
    id = "webview-allowpopups"
    title = "A webview may open new windows"
    severity = Severity.MEDIUM
    family = FAMILY
    description = "Do not set allowpopups on webviews."
    references = guide("11-do-not-use-allowpopups-for-webviews")
    electronegativity = ("ALLOWPOPUPS_HTML_CHECK",)

    def run(self, ctx: Context) -> Iterable[Finding]:
        for webview in ctx.fact(webviews):
            if "allowpopups" in webview.tag.attributes:
                yield self.finding("<webview> has the allowpopups attribute", webview.where)
