"""Audit an agent gateway's configuration: OpenClaw-style ``openclaw.json``, NanoClaw-style containers.

Covers what ``openclaw security audit`` checks (gateway auth mode, weak tokens, tokens in URLs, the
sandbox, host networking, unpinned plugins, mDNS, shared DM sessions, open DM policies) and beyond:
a gateway bound beyond loopback without auth, elevated exec, the Docker socket or credentials mounted
into containers, privileged containers, published ports on every interface, broad mount allowlists,
and a Control UI that trusts a ``gatewayUrl`` query parameter (CVE-2026-25253).  Each finding names
the JSON path it is about and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tracemark.errors import AgentError, MissingExtraError
from tracemark.report import Finding, Location, Rule, Severity

_R = Rule
RULES = {
    rule.id: rule
    for rule in (
        _R("TM-GW-001", "Gateway without authentication", Severity.CRITICAL, 'Set gateway.auth.mode to "token".'),
        _R(
            "TM-GW-002", "Weak gateway or webhook token", Severity.HIGH, "Use a random token of at least 32 characters."
        ),
        _R("TM-GW-003", "Token in a URL", Severity.HIGH, "Send tokens in a header; URLs end up in logs and history."),
        _R("TM-GW-004", "Sandbox off", Severity.HIGH, 'Set agents.defaults.sandbox.mode to "all" (or "non-main").'),
        _R("TM-GW-005", "Host networking", Severity.HIGH, 'Use network "none" or a bridge network with egress rules.'),
        _R("TM-GW-006", "Unpinned plugin", Severity.MEDIUM, "Pin plugins to an exact version (and integrity hash)."),
        _R("TM-GW-007", "Gateway exposed beyond loopback", Severity.HIGH, "Bind to loopback; reach it over a tunnel."),
        _R("TM-GW-008", "mDNS broadcasts full details", Severity.LOW, 'Set discovery.mdns.mode to "minimal" or "off".'),
        _R(
            "TM-GW-009",
            "Shared DM session",
            Severity.MEDIUM,
            'Set session.dmScope to "per-peer" (or per-channel-peer).',
        ),
        _R("TM-GW-010", "Open DM policy", Severity.HIGH, 'Use dmPolicy "pairing" or an allowlist without "*".'),
        _R("TM-GW-011", "Elevated host exec", Severity.HIGH, "Disable tools.elevated or restrict it to named senders."),
        _R("TM-GW-012", "Control UI trusts gatewayUrl (CVE-2026-25253)", Severity.CRITICAL, "Upgrade to 2026.1.29+."),
        _R("TM-CT-001", "Privileged container", Severity.CRITICAL, "Remove privileged: true; add only needed caps."),
        _R("TM-CT-002", "Docker socket mounted", Severity.CRITICAL, "Never mount /var/run/docker.sock into an agent."),
        _R("TM-CT-003", "Credentials mounted", Severity.HIGH, "Keep ~/.ssh, ~/.aws, .env out; use a credential proxy."),
        _R("TM-CT-004", "Port published on every interface", Severity.MEDIUM, 'Publish as "127.0.0.1:PORT:PORT".'),
        _R("TM-CT-005", "Broad mount allowlist", Severity.HIGH, "Allow project folders, never / or the home folder."),
        _R("TM-CT-006", "Writable root filesystem", Severity.LOW, "Set read_only: true and mount a tmpfs for scratch."),
        _R("TM-CT-007", "Unpinned container image", Severity.MEDIUM, "Pin images by digest (image@sha256:...)."),
    )
}
_MIN_TOKEN = 32
_TOKEN_IN_URL = re.compile(r"[?&](token|access_token|auth|apikey|api_key|key|password)=[^&\s\"']+", re.IGNORECASE)
_CREDENTIAL_MOUNT = re.compile(
    r"(\.ssh|\.aws|\.gnupg|\.config/gcloud|\.kube|\.docker|\.env\b|\.netrc|\.git-credentials)"
)
_PINNED_NPM = re.compile(r"@\d+\.\d+\.\d+([-+][\w.]+)?$")
_LOOPBACK = {"loopback", "localhost", "127.0.0.1", "::1", "[::1]"}
_OLD_CVE_VERSION = (2026, 1, 29)


def _finding(rule_id: str, message: str, path: str, where: str, fix: str = "") -> Finding:
    rule = RULES[rule_id]
    return Finding(
        rule_id,
        rule.severity or Severity.MEDIUM,
        message + (f" Fix: {fix or rule.help}"),
        (Location(f"{path}#{where}" if where else path),),
        title=rule.title,
        evidence=(where,),
    )


def _get(data: object, dotted: str) -> object:
    for part in dotted.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


def _strip_json5(text: str) -> str:
    text = re.sub(r"(?m)^\s*//.*$", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return re.sub(r",(\s*[}\]])", r"\1", text)


def load_config(path: str | Path) -> object:
    """Parse a JSON, JSON5-ish (comments, trailing commas) or YAML configuration."""
    location = Path(path)
    try:
        text = location.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as exc:
        raise AgentError(f"{path}: cannot read the configuration ({type(exc).__name__})") from None
    if location.suffix.lower() in {".yaml", ".yml"}:
        try:
            import yaml  # type: ignore[import-untyped, unused-ignore]
        except ModuleNotFoundError:
            raise MissingExtraError("auditing YAML configurations", "agents") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            raise AgentError(f"{path} is not valid YAML") from None
    try:
        return json.loads(_strip_json5(text))
    except json.JSONDecodeError as exc:
        raise AgentError(f"{path} is not valid JSON/JSON5 (line {exc.lineno})") from None


def _walk_strings(data: object, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(data, str):
        yield where, data
    elif isinstance(data, Mapping):
        for key, value in data.items():
            yield from _walk_strings(value, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _walk_strings(value, f"{where}[{i}]")


def _version_tuple(text: str) -> tuple[int, ...] | None:
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(g) for g in match.groups()) if match else None


def _gateway_checks(config: Mapping[str, object], path: str) -> Iterator[Finding]:
    mode = _get(config, "gateway.auth.mode")
    bind = str(_get(config, "gateway.bind") or "loopback").lower()
    if mode == "none":
        severity_note = "" if bind in _LOOPBACK else " and it listens beyond loopback"
        yield _finding("TM-GW-001", f"gateway.auth.mode is none{severity_note}.", path, "gateway.auth.mode")
    for key in ("gateway.auth.token", "gateway.auth.password", "hooks.token"):
        token = _get(config, key)
        if isinstance(token, str) and len(token) < _MIN_TOKEN and not token.startswith("${"):
            yield _finding("TM-GW-002", f"{key} is {len(token)} characters.", path, key)
    if bind not in _LOOPBACK:
        yield _finding("TM-GW-007", f"gateway.bind is {bind!r}.", path, "gateway.bind")
    if _get(config, "discovery.mdns.mode") == "full":
        yield _finding("TM-GW-008", "mDNS advertises paths and ports.", path, "discovery.mdns.mode")
    if _get(config, "session.dmScope") in {"main", "shared"}:
        yield _finding("TM-GW-009", "every DM shares one session and its context.", path, "session.dmScope")
    version = _get(config, "meta.lastTouchedVersion") or _get(config, "version")
    parsed = _version_tuple(str(version)) if version else None
    if parsed is not None and parsed < _OLD_CVE_VERSION:
        yield _finding("TM-GW-012", f"version {version} predates the fix.", path, "meta.lastTouchedVersion")


def _sandbox_checks(config: Mapping[str, object], path: str) -> Iterator[Finding]:
    sandbox = _get(config, "agents.defaults.sandbox.mode")
    if sandbox in {None, "off"}:
        yield _finding("TM-GW-004", "tools run on the host (sandbox off).", path, "agents.defaults.sandbox.mode")
    network = _get(config, "agents.defaults.sandbox.docker.network")
    if network == "host":
        yield _finding(
            "TM-GW-005", "the sandbox shares the host network.", path, "agents.defaults.sandbox.docker.network"
        )
    elevated = _get(config, "tools.elevated.enabled")
    allow_from = _get(config, "tools.elevated.allowFrom")
    if elevated is True and (not allow_from or "*" in json.dumps(allow_from)):
        yield _finding("TM-GW-011", "elevated exec is on for any sender.", path, "tools.elevated")


def _channel_checks(config: Mapping[str, object], path: str) -> Iterator[Finding]:
    channels = _get(config, "channels")
    if not isinstance(channels, Mapping):
        return
    for name, channel in channels.items():
        if not isinstance(channel, Mapping):
            continue
        allow = channel.get("allowFrom")
        if channel.get("dmPolicy") == "open" or (isinstance(allow, list) and "*" in allow):
            yield _finding("TM-GW-010", f"channel {name} accepts DMs from anyone.", path, f"channels.{name}.dmPolicy")


def _plugin_checks(config: Mapping[str, object], path: str) -> Iterator[Finding]:
    for where, value in _walk_strings(_get(config, "plugins"), "plugins"):
        spec = value.removeprefix("npm:")
        looks_npm = value.startswith("npm:") or where.endswith((".spec", ".source", ".package"))
        if looks_npm and not _PINNED_NPM.search(spec) and "sha512-" not in spec:
            yield _finding("TM-GW-006", f"plugin {value!r} has no exact version.", path, where)


def _url_checks(config: object, path: str) -> Iterator[Finding]:
    for where, value in _walk_strings(config):
        if "://" in value and _TOKEN_IN_URL.search(value):
            yield _finding("TM-GW-003", "a URL carries a credential.", path, where)


def _items(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


def _ports(service: Mapping[str, object]) -> Iterator[str]:
    for port in _items(service.get("ports")):
        yield (
            str(port.get("published", "")) + ":" + str(port.get("host_ip", ""))
            if isinstance(port, Mapping)
            else str(port)
        )


def _container_checks(name: str, service: Mapping[str, object], path: str) -> Iterator[Finding]:
    base = f"services.{name}"
    if service.get("privileged") is True:
        yield _finding("TM-CT-001", f"{name} runs privileged.", path, f"{base}.privileged")
    if service.get("network_mode") == "host" or service.get("network") == "host":
        yield _finding("TM-GW-005", f"{name} uses the host network.", path, f"{base}.network_mode")
    for volume in _items(service.get("volumes")):
        text = json.dumps(volume) if isinstance(volume, Mapping) else str(volume)
        if "docker.sock" in text:
            yield _finding("TM-CT-002", f"{name} mounts the Docker socket.", path, f"{base}.volumes")
        elif _CREDENTIAL_MOUNT.search(text):
            yield _finding("TM-CT-003", f"{name} mounts {text}.", path, f"{base}.volumes")
    for port in _ports(service):
        parts = port.split(":")
        every_interface = len(parts) <= 2 or parts[0] in {"0.0.0.0", "", "::"}
        if every_interface and not port.startswith(("127.0.0.1", "localhost", "[::1]")):
            yield _finding("TM-CT-004", f"{name} publishes {port} on every interface.", path, f"{base}.ports")
    if service.get("read_only") is not True:
        yield _finding("TM-CT-006", f"{name} has a writable root filesystem.", path, f"{base}.read_only")
    image = service.get("image")
    if isinstance(image, str) and "@sha256:" not in image:
        yield _finding("TM-CT-007", f"{name} uses {image} without a digest.", path, f"{base}.image")


def _mount_allowlist_checks(config: Mapping[str, object], path: str) -> Iterator[Finding]:
    roots = config.get("allowedRoots") or config.get("allowlist") or ()
    for i, entry in enumerate(roots if isinstance(roots, list) else ()):
        root = entry.get("path") if isinstance(entry, Mapping) else entry
        if not isinstance(root, str):
            continue
        normal = root.rstrip("/") or "/"
        if normal in {"/", "~", "$HOME", "/home", "/Users"} or re.fullmatch(r"/(home|Users)/[^/]+", normal):
            yield _finding("TM-CT-005", f"{root!r} allows mounting everything under it.", path, f"allowedRoots[{i}]")
        elif _CREDENTIAL_MOUNT.search(normal):
            yield _finding("TM-CT-003", f"{root!r} is a credential store.", path, f"allowedRoots[{i}]")


def audit_config(config: object, path: str = "<config>") -> list[Finding]:
    """Every finding for one parsed configuration (gateway, compose file or mount allowlist)."""
    if not isinstance(config, Mapping):
        raise AgentError(f"{path}: a configuration is a JSON/YAML object")
    findings: list[Finding] = []
    kinds = 0
    if "gateway" in config or "agents" in config or "channels" in config:
        kinds += 1
        for check in (_gateway_checks, _sandbox_checks, _channel_checks, _plugin_checks):
            findings.extend(check(config, path))
    services = config.get("services")
    if isinstance(services, Mapping):
        kinds += 1
        for name, service in services.items():
            if isinstance(service, Mapping):
                findings.extend(_container_checks(str(name), service, path))
    if "allowedRoots" in config or "allowlist" in config:
        kinds += 1
        findings.extend(_mount_allowlist_checks(config, path))
    if kinds == 0:
        raise AgentError(f"{path}: neither a gateway configuration, a compose file nor a mount allowlist")
    findings.extend(_url_checks(config, path))
    return findings


def audit_paths(paths: Sequence[str]) -> list[Finding]:
    """Audit configuration files (a folder: its ``*.json``, ``*.json5``, ``*.yaml``, ``*.yml``)."""
    findings: list[Finding] = []
    for given in paths:
        root = Path(given)
        if root.is_dir():
            files = sorted(p for p in root.iterdir() if p.suffix.lower() in {".json", ".json5", ".yaml", ".yml"})
            if not files:
                raise AgentError(f"{given}: no configuration files in the folder")
        else:
            files = [root]
        for file in files:
            findings.extend(audit_config(load_config(file), file.as_posix()))
    return findings
