"""Fuses: the switches compiled into a packaged app's executable, read from its fuse wire."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from tracemark.electron._checks._base import Check, Context, guide, register
from tracemark.electron._fuses import FuseState, FuseWire, read_fuses
from tracemark.report import Finding, Location, Severity

FAMILY = "fuses"
_REFERENCES = guide("19-check-which-fuses-you-can-change")


def fuse_wire(ctx: Context) -> FuseWire | None:
    """The executable's fuse wire; ``None``, with a notice saying so, when there is none to read."""
    app = ctx.app
    if app is None:
        return None
    if app.executable is None:
        if app.kind != "packaged":
            ctx.notices.append("fuses are read from a packaged app's executable: not checked for this input")
        return None
    wire = read_fuses(app.executable)
    if wire is None:
        ctx.notices.append(f"{app.executable.name} holds no fuse wire: fuses were NOT checked")
    return wire


class FuseCheck(Check):
    """A fuse that weakens the app in one state."""

    family = FAMILY
    references = _REFERENCES
    #: The fuse's name in ``@electron/fuses``.
    fuse: ClassVar[str]
    #: The state that weakens the app.
    weak_state: ClassVar[FuseState]
    #: What that state allows.
    message: ClassVar[str]

    def run(self, ctx: Context) -> Iterable[Finding]:
        wire = ctx.fact(fuse_wire)
        executable = ctx.app.executable if ctx.app is not None else None
        if wire is not None and executable is not None and wire.state(self.fuse) == self.weak_state:
            yield self.finding(self.message, Location(executable.name))


@register
class RunAsNode(FuseCheck):
    id = "fuse-run-as-node"
    title = "The RunAsNode fuse is on (ELECTRON_RUN_AS_NODE turns the app into node)"
    severity = Severity.HIGH
    description = "Flip RunAsNode off with @electron/fuses."
    fuse = "RunAsNode"
    weak_state = FuseState.ENABLED
    message = "RunAsNode is on: ELECTRON_RUN_AS_NODE=1 runs any script"


@register
class NodeOptions(FuseCheck):
    id = "fuse-node-options"
    title = "The NODE_OPTIONS fuse is on"
    severity = Severity.MEDIUM
    description = "Flip EnableNodeOptionsEnvironmentVariable off."
    fuse = "EnableNodeOptionsEnvironmentVariable"
    weak_state = FuseState.ENABLED
    message = "EnableNodeOptionsEnvironmentVariable is on: NODE_OPTIONS can inject code"


@register
class NodeInspect(FuseCheck):
    id = "fuse-node-inspect"
    title = "The --inspect fuse is on"
    severity = Severity.MEDIUM
    description = "Flip EnableNodeCliInspectArguments off."
    fuse = "EnableNodeCliInspectArguments"
    weak_state = FuseState.ENABLED
    message = "EnableNodeCliInspectArguments is on: --inspect attaches a debugger"


@register
class CookieEncryption(FuseCheck):
    id = "fuse-cookie-encryption"
    title = "Cookies are stored unencrypted"
    severity = Severity.LOW
    description = "Flip EnableCookieEncryption on."
    fuse = "EnableCookieEncryption"
    weak_state = FuseState.DISABLED
    message = "EnableCookieEncryption is off: cookies are stored in clear"


@register
class AsarIntegrityFuse(FuseCheck):
    id = "fuse-asar-integrity"
    title = "ASAR integrity validation is off"
    severity = Severity.MEDIUM
    description = "Flip EnableEmbeddedAsarIntegrityValidation on (macOS from Electron 16, Windows from 30)."
    fuse = "EnableEmbeddedAsarIntegrityValidation"
    weak_state = FuseState.DISABLED
    message = "EnableEmbeddedAsarIntegrityValidation is off: a modified app.asar still loads"


@register
class OnlyAsar(FuseCheck):
    id = "fuse-only-asar"
    title = "The app may be loaded from outside its ASAR"
    severity = Severity.MEDIUM
    description = "Flip OnlyLoadAppFromAsar on."
    fuse = "OnlyLoadAppFromAsar"
    weak_state = FuseState.DISABLED
    message = "OnlyLoadAppFromAsar is off: Electron also loads an app folder placed beside the archive"


@register
class FilePrivileges(FuseCheck):
    id = "fuse-file-privileges"
    title = "file:// pages keep extra privileges"
    severity = Severity.LOW
    description = "Flip GrantFileProtocolExtraPrivileges off and serve the app from a custom protocol."
    fuse = "GrantFileProtocolExtraPrivileges"
    weak_state = FuseState.ENABLED
    message = "GrantFileProtocolExtraPrivileges is on: file:// pages keep extra privileges"
