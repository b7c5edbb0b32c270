"""The Electron checks: a registry of check classes, one module per family.

Each family module registers its checks (``@register``) when imported.  They run family by family
in the order of :data:`FAMILIES` (source settings first, the packaged app's fuses, archive and
version last), and within a family in the order they are defined; that is also the order of the
findings.  Rule metadata live on the check classes: :data:`RULES` and :data:`FUSE_RULES` are read off
them.
"""

from __future__ import annotations

from tracemark.electron._checks import (  # noqa: F401 - imported to register their checks
    app,
    asar,
    bridge,
    calls,
    content,
    coverage,
    csp,
    deeplinks,
    fuses,
    ipc,
    version,
    webview,
    windows,
)
from tracemark.electron._checks._base import (
    AdvisoryLike,
    AdvisorySource,
    Check,
    Context,
    registered,
    run_checks,
)
from tracemark.electron._checks.fuses import FuseCheck
from tracemark.electron._fuses import FuseState
from tracemark.report import Rule

#: The check families (modules of this package) in the order they run.
FAMILIES = (
    "windows",
    "webview",
    "content",
    "calls",
    "ipc",
    "deeplinks",
    "bridge",
    "csp",
    "app",
    "fuses",
    "asar",
    "version",
    "coverage",
)

#: Every check, in the order an audit runs them.
CHECKS: tuple[type[Check], ...] = tuple(sorted(registered(), key=lambda check: FAMILIES.index(check.family)))

#: The rule catalogue: one rule per check, by id.
RULES: dict[str, Rule] = {check.id: check.rule() for check in CHECKS}

#: Each fuse that weakens the app in the given state: ``(fuse, state, rule id, message)``.
FUSE_RULES: tuple[tuple[str, FuseState, str, str], ...] = tuple(
    (check.fuse, check.weak_state, check.id, check.message) for check in CHECKS if issubclass(check, FuseCheck)
)

__all__ = [
    "CHECKS",
    "FAMILIES",
    "FUSE_RULES",
    "RULES",
    "AdvisoryLike",
    "AdvisorySource",
    "Check",
    "Context",
    "run_checks",
]
