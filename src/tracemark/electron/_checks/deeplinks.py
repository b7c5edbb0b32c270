"""Deep links and launch arguments: URLs and paths from outside the app reaching a sink."""

from __future__ import annotations

from collections.abc import Iterable

from tracemark.electron._checks._ast import at_node, calls_named, functions
from tracemark.electron._checks._base import Check, Context, guide, register
from tracemark.electron._checks._flows import flows, tainted_params
from tracemark.electron._js import string_value
from tracemark.report import Finding, Severity

FAMILY = "deeplinks"

#: App events whose arguments come from outside the app, and the index of the first such argument.
_DEEP_LINK_EVENTS = {"open-url": 1, "second-instance": 1, "open-file": 1}


@register
class DeepLinkSink(Check):
    id = "deep-link-sink"
    title = "A deep link or launch argument reaches a dangerous sink"
    severity = Severity.CRITICAL
    family = FAMILY
    description = (
        "URLs from open-url, argv from second-instance and paths from open-file come from outside the app: "
        "parse and allow-list them before loading, opening or executing anything."
    )
    references = guide("18-avoid-usage-of-the-file-protocol-and-prefer-usage-of-custom-protocols")

    def run(self, ctx: Context) -> Iterable[Finding]:
        """``app.on('open-url' | 'second-instance' | 'open-file')`` arguments reaching a sink."""
        project = ctx.project
        for module, _, _, args in calls_named(project, ("on", "once", "addListener"), 2):
            event = string_value(project.evaluate(module, args[0]))
            if event not in _DEEP_LINK_EVENTS:
                continue
            for func in functions(project, module, args[1]):
                for sink, sink_call, sink_module in flows(
                    project, func, tainted_params(func, _DEEP_LINK_EVENTS[event])
                ):
                    yield self.finding(
                        f"the {event!r} event's argument (from outside the app) reaches {sink.name} ({sink.kind})",
                        at_node(sink_module, sink_call),
                    )
