"""The audit's rules: one id per kind of flaw, with its severity, a one-line summary and help.

Rule ids are stable: they are what SARIF consumers (code scanning) key on.  ``ELECTRONEGATIVITY``
maps each rule to the Electronegativity check ids that cover the same flaw, for the side-by-side
benchmark and for users moving from that tool.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

HELP_BASE = "https://www.electronjs.org/docs/latest/tutorial/security"


class Severity(StrEnum):
    """How bad a finding is; the CLI's exit status compares against a threshold of these."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @property
    def sarif_level(self) -> str:
        return {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}[self.value]

    @property
    def security_severity(self) -> str:
        """GitHub code scanning's numeric ``security-severity`` (CVSS-like bands)."""
        return {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}[self.value]


_RANKS = {Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.MEDIUM: 2, Severity.LOW: 1, Severity.INFO: 0}


@dataclass(frozen=True)
class Rule:
    """One kind of flaw."""

    id: str
    severity: Severity
    summary: str
    help: str
    anchor: str = ""

    @property
    def help_uri(self) -> str:
        return f"{HELP_BASE}#{self.anchor}" if self.anchor else HELP_BASE


_S = Severity
RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule(
            "node-integration",
            _S.HIGH,
            "Node.js is reachable from web content",
            "Set nodeIntegration, nodeIntegrationInWorker and nodeIntegrationInSubFrames to false (or leave them "
            "unset) and keep the renderer sandboxed; expose only narrow functions through a preload script.",
            "2-do-not-enable-nodejs-integration-for-remote-content",
        ),
        Rule(
            "context-isolation",
            _S.HIGH,
            "Context isolation is off",
            "Set contextIsolation to true (the default since Electron 12) so preload scripts and page scripts do "
            "not share globals.",
            "3-enable-context-isolation",
        ),
        Rule(
            "sandbox",
            _S.MEDIUM,
            "The renderer is not sandboxed",
            "Leave sandbox unset on Electron 20+ or set it to true; enabling nodeIntegration also turns it off.",
            "4-enable-process-sandboxing",
        ),
        Rule(
            "web-security",
            _S.HIGH,
            "webSecurity is off (same-origin policy disabled)",
            "Never set webSecurity to false or add disablewebsecurity to a webview.",
            "6-do-not-disable-websecurity",
        ),
        Rule(
            "insecure-content",
            _S.HIGH,
            "HTTPS pages may run HTTP content",
            "Do not set allowRunningInsecureContent to true.",
            "8-do-not-enable-allowrunninginsecurecontent",
        ),
        Rule(
            "experimental-features",
            _S.MEDIUM,
            "Experimental Chromium features are enabled",
            "Do not set experimentalFeatures to true.",
            "9-do-not-enable-experimental-features",
        ),
        Rule(
            "blink-features",
            _S.MEDIUM,
            "Extra Blink features are enabled",
            "Do not use enableBlinkFeatures or the blinkfeatures webview attribute.",
            "10-do-not-use-enableblinkfeatures",
        ),
        Rule(
            "remote-module",
            _S.HIGH,
            "The remote module is enabled",
            "Do not enable the remote module (enableRemoteModule, @electron/remote); use IPC with narrow handlers.",
            "15-disable-the-remote-module",
        ),
        Rule(
            "webview-tag",
            _S.MEDIUM,
            "A webview is enabled or used without a will-attach-webview check",
            "Avoid webviews; if needed, strip preload scripts and force secure webPreferences in a "
            "will-attach-webview handler.",
            "12-verify-webview-options-before-creation",
        ),
        Rule(
            "webview-allowpopups",
            _S.MEDIUM,
            "A webview may open new windows",
            "Do not set allowpopups on webviews.",
            "11-do-not-use-allowpopups-for-webviews",
        ),
        Rule(
            "csp-missing",
            _S.MEDIUM,
            "No Content Security Policy",
            "Define a strict CSP (a meta tag or a Content-Security-Policy response header).",
            "7-define-a-content-security-policy",
        ),
        Rule(
            "csp-weak",
            _S.MEDIUM,
            "The Content Security Policy allows script injection",
            "Remove 'unsafe-inline', 'unsafe-eval', wildcards and http:/data: sources from script-src "
            "(or default-src).",
            "7-define-a-content-security-policy",
        ),
        Rule(
            "open-external",
            _S.MEDIUM,
            "shell.openExternal with a URL that is not a fixed https address",
            "Only pass URLs you have parsed and allow-listed (https scheme, known hosts).",
            "14-do-not-use-shellopenexternal-with-untrusted-content",
        ),
        Rule(
            "permission-handler",
            _S.MEDIUM,
            "Permission requests are not handled, or all are granted",
            "Call session.setPermissionRequestHandler and grant only what the app needs, for its own origin.",
            "5-handle-session-permission-requests-from-remote-content",
        ),
        Rule(
            "navigation-limit",
            _S.MEDIUM,
            "Navigation is not limited",
            "Handle will-navigate on every webContents and prevent navigation to unexpected origins.",
            "13-disable-or-limit-navigation",
        ),
        Rule(
            "new-window-limit",
            _S.MEDIUM,
            "New windows are not limited",
            "Use setWindowOpenHandler and deny (or open externally after checking) new windows.",
            "14-disable-or-limit-creation-of-new-windows",
        ),
        Rule(
            "protocol-handler",
            _S.LOW,
            "A custom protocol or deep-link handler to review",
            "Treat every URL a custom protocol or deep link carries as hostile: parse and validate it.",
            "18-avoid-usage-of-the-file-protocol-and-prefer-usage-of-custom-protocols",
        ),
        Rule(
            "certificate-errors",
            _S.HIGH,
            "TLS certificate errors are ignored",
            "Do not call callback(true) in certificate-error or return 0 from setCertificateVerifyProc without "
            "checks; do not pass ignore-certificate-errors.",
        ),
        Rule(
            "dangerous-switch",
            _S.HIGH,
            "A dangerous Chromium command-line switch is set",
            "Remove switches that weaken security (ignore-certificate-errors, disable-web-security, no-sandbox, "
            "remote-debugging-port, inspect, js-flags, disable-site-isolation-trials).",
        ),
        Rule(
            "dangerous-function",
            _S.MEDIUM,
            "Code or styles built at run time are evaluated",
            "Do not pass strings assembled at run time to eval, Function, string timers, executeJavaScript or "
            "insertCSS; call functions with data instead.",
        ),
        Rule(
            "http-resource",
            _S.MEDIUM,
            "Content or code is loaded over plain HTTP",
            "Load every page, script and style over https (or a custom protocol).",
            "1-only-load-secure-content",
        ),
        Rule(
            "security-warnings-disabled",
            _S.LOW,
            "Electron's security warnings are disabled",
            "Do not set ELECTRON_DISABLE_SECURITY_WARNINGS.",
        ),
        Rule(
            "ipc-sink",
            _S.CRITICAL,
            "IPC input reaches a dangerous sink",
            "Arguments of ipcMain handlers come from the renderer: never pass them to eval, child_process, file "
            "reads or writes, shell.openExternal or loadURL without strict validation.",
            "17-validate-the-sender-of-all-ipc-messages",
        ),
        Rule(
            "deep-link-sink",
            _S.CRITICAL,
            "A deep link or launch argument reaches a dangerous sink",
            "URLs from open-url, argv from second-instance and paths from open-file come from outside the app: "
            "parse and allow-list them before loading, opening or executing anything.",
            "18-avoid-usage-of-the-file-protocol-and-prefer-usage-of-custom-protocols",
        ),
        Rule(
            "ipc-sender",
            _S.MEDIUM,
            "An IPC handler does not validate its sender",
            "Check event.senderFrame (its URL or origin) before acting on a message.",
            "17-validate-the-sender-of-all-ipc-messages",
        ),
        Rule(
            "context-bridge",
            _S.HIGH,
            "The contextBridge exposes raw Electron or Node.js APIs",
            "Expose one narrow function per action; never ipcRenderer itself, a generic send/invoke with a "
            "caller-chosen channel, require, or shell/fs/child_process.",
            "20-do-not-expose-electron-apis-to-untrusted-web-content",
        ),
        Rule(
            "fuse-run-as-node",
            _S.HIGH,
            "The RunAsNode fuse is on (ELECTRON_RUN_AS_NODE turns the app into node)",
            "Flip RunAsNode off with @electron/fuses.",
            "19-check-which-fuses-you-can-change",
        ),
        Rule(
            "fuse-node-options",
            _S.MEDIUM,
            "The NODE_OPTIONS fuse is on",
            "Flip EnableNodeOptionsEnvironmentVariable off.",
            "19-check-which-fuses-you-can-change",
        ),
        Rule(
            "fuse-node-inspect",
            _S.MEDIUM,
            "The --inspect fuse is on",
            "Flip EnableNodeCliInspectArguments off.",
            "19-check-which-fuses-you-can-change",
        ),
        Rule(
            "fuse-cookie-encryption",
            _S.LOW,
            "Cookies are stored unencrypted",
            "Flip EnableCookieEncryption on.",
            "19-check-which-fuses-you-can-change",
        ),
        Rule(
            "fuse-asar-integrity",
            _S.MEDIUM,
            "ASAR integrity validation is off",
            "Flip EnableEmbeddedAsarIntegrityValidation on (macOS from Electron 16, Windows from 30).",
            "19-check-which-fuses-you-can-change",
        ),
        Rule(
            "fuse-only-asar",
            _S.MEDIUM,
            "The app may be loaded from outside its ASAR",
            "Flip OnlyLoadAppFromAsar on.",
            "19-check-which-fuses-you-can-change",
        ),
        Rule(
            "fuse-file-privileges",
            _S.LOW,
            "file:// pages keep extra privileges",
            "Flip GrantFileProtocolExtraPrivileges off and serve the app from a custom protocol.",
            "19-check-which-fuses-you-can-change",
        ),
        Rule(
            "asar-integrity",
            _S.CRITICAL,
            "The ASAR archive fails its integrity check",
            "The archive does not match its recorded hashes: it was modified after packaging.",
        ),
        Rule(
            "asar-integrity-unanchored",
            _S.MEDIUM,
            "The ASAR archive's header hash is not recorded",
            "Package with asar integrity (electron-builder/forge do it) so the header hash is pinned in the app.",
        ),
        Rule(
            "electron-advisory",
            _S.HIGH,
            "The Electron version has a known vulnerability",
            "Upgrade Electron to a version that fixes the advisory.",
            "16-use-a-current-version-of-electron",
        ),
        Rule(
            "electron-version-unchecked",
            _S.INFO,
            "The Electron version was NOT checked against advisories",
            "Pass --advisories with an OSV database (the npm all.zip or a folder of OSV JSON) to check it.",
            "16-use-a-current-version-of-electron",
        ),
    )
}

#: Electronegativity check ids covering the same flaw as each rule (empty: Electronegativity has no such check).
ELECTRONEGATIVITY: dict[str, tuple[str, ...]] = {
    "node-integration": ("NODE_INTEGRATION_JS_CHECK", "NODE_INTEGRATION_HTML_CHECK"),
    "context-isolation": ("CONTEXT_ISOLATION_JS_CHECK",),
    "sandbox": ("SANDBOX_JS_CHECK",),
    "web-security": ("WEB_SECURITY_JS_CHECK", "WEB_SECURITY_HTML_CHECK"),
    "insecure-content": ("INSECURE_CONTENT_JS_CHECK", "INSECURE_CONTENT_HTML_CHECK"),
    "experimental-features": ("EXPERIMENTAL_FEATURES_JS_CHECK", "EXPERIMENTAL_FEATURES_HTML_CHECK"),
    "blink-features": ("BLINK_FEATURES_JS_CHECK", "BLINK_FEATURES_HTML_CHECK"),
    "remote-module": ("REMOTE_MODULE_JS_CHECK",),
    "webview-tag": ("NODE_INTEGRATION_ATTACH_EVENT_JS_CHECK",),
    "webview-allowpopups": ("ALLOWPOPUPS_HTML_CHECK",),
    "csp-missing": ("CSP_GLOBAL_CHECK", "CSP_HTML_CHECK", "CSP_JS_CHECK"),
    "csp-weak": ("CSP_GLOBAL_CHECK", "CSP_HTML_CHECK", "CSP_JS_CHECK"),
    "open-external": ("OPEN_EXTERNAL_JS_CHECK",),
    "permission-handler": ("PERMISSION_REQUEST_HANDLER_GLOBAL_CHECK", "PERMISSION_REQUEST_HANDLER_JS_CHECK"),
    "navigation-limit": ("LIMIT_NAVIGATION_GLOBAL_CHECK", "LIMIT_NAVIGATION_JS_CHECK"),
    "new-window-limit": ("LIMIT_NAVIGATION_GLOBAL_CHECK", "LIMIT_NAVIGATION_JS_CHECK"),
    "protocol-handler": ("PROTOCOL_HANDLER_JS_CHECK",),
    "certificate-errors": ("CERTIFICATE_ERROR_EVENT_JS_CHECK", "CERTIFICATE_VERIFY_PROC_JS_CHECK"),
    "dangerous-switch": ("CUSTOM_ARGUMENTS_JS_CHECK", "CUSTOM_ARGUMENTS_JSON_CHECK"),
    "dangerous-function": ("DANGEROUS_FUNCTIONS_JS_CHECK",),
    "http-resource": (
        "HTTP_RESOURCES_JS_CHECK",
        "HTTP_RESOURCES_HTML_CHECK",
        "HTTP_RESOURCES_WITH_NODE_INTEGRATION_GLOBAL_CHECK",
    ),
    "security-warnings-disabled": ("SECURITY_WARNINGS_DISABLED_JS_CHECK", "SECURITY_WARNINGS_DISABLED_JSON_CHECK"),
    "electron-advisory": ("AVAILABLE_SECURITY_FIXES_GLOBAL_CHECK",),
}
