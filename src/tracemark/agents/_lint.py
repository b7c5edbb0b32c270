"""Static lint of agent skills, plugins and MCP tool descriptions.

Looks for what malicious skills carried in the ClawHavoc campaign and tool-poisoning write-ups:
encoded droppers, ``curl | sh``, reverse shells, reads of credential files, instructions hidden in
descriptions for the model rather than the user, and invisible Unicode.  Nothing is run.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tracemark.report import Finding, Location, Rule, Severity

#: Largest file linted (bytes); larger ones get a finding of their own.
MAX_LINT_BYTES = 2 * 1024 * 1024
_TEXT_SUFFIXES = frozenset(
    {".md", ".txt", ".json", ".yaml", ".yml", ".toml", ".js", ".mjs", ".cjs", ".ts", ".py", ".sh", ".bash", ".ps1", ""}
)


@dataclass(frozen=True)
class _Check:
    rule: Rule
    pattern: re.Pattern[str]


RULES = {
    "TM-AGENT-LINT-001": Rule(
        "TM-AGENT-LINT-001",
        "Encoded dropper",
        Severity.CRITICAL,
        "Remove the encoded payload; a skill never needs to decode and run code.",
    ),
    "TM-AGENT-LINT-002": Rule(
        "TM-AGENT-LINT-002",
        "Remote script piped to a shell",
        Severity.HIGH,
        "Pin the script by hash and vendor it, or install through a package manager.",
    ),
    "TM-AGENT-LINT-003": Rule(
        "TM-AGENT-LINT-003",
        "Credential path",
        Severity.HIGH,
        "A skill should not read SSH keys, cloud credentials, .env files or browser/wallet stores.",
    ),
    "TM-AGENT-LINT-004": Rule(
        "TM-AGENT-LINT-004",
        "Hidden instruction for the model",
        Severity.HIGH,
        "Descriptions describe the tool to the user; instructions aimed at the model are tool poisoning.",
    ),
    "TM-AGENT-LINT-005": Rule(
        "TM-AGENT-LINT-005",
        "Invisible Unicode",
        Severity.HIGH,
        "Remove zero-width, bidirectional-override and tag characters: they hide text from reviewers.",
    ),
    "TM-AGENT-LINT-006": Rule("TM-AGENT-LINT-006", "Reverse shell", Severity.CRITICAL, "Remove the network shell."),
    "TM-AGENT-LINT-007": Rule(
        "TM-AGENT-LINT-007", "File too large to lint", Severity.MEDIUM, "Review the file by hand."
    ),
}

_CHECKS = (
    _Check(
        RULES["TM-AGENT-LINT-001"],
        re.compile(
            r"base64\s+(-d|--decode)[^\n|]*\|\s*(ba|z|da)?sh\b|eval\s*\(\s*atob\s*\(|exec\s*\(\s*(base64\.)?b64decode"
            r"|FromBase64String\s*\(|python[23]?\s+-c\s+[\"']?import\s+base64",
            re.IGNORECASE,
        ),
    ),
    _Check(
        RULES["TM-AGENT-LINT-002"],
        re.compile(
            r"\b(curl|wget|fetch)\b[^\n|;]*\|\s*(sudo\s+)?(ba|z|da)?sh\b|\b(iwr|Invoke-WebRequest|irm)\b[^\n|]*\|\s*iex\b"
            r"|\bwget\b[^\n]*-O\s*-[^\n|]*\|\s*(ba)?sh\b",
            re.IGNORECASE,
        ),
    ),
    _Check(
        RULES["TM-AGENT-LINT-003"],
        re.compile(
            r"~?/?\.ssh/(id_[a-z0-9]+|authorized_keys|config)\b|\bid_(rsa|ed25519|ecdsa)\b|\.aws/credentials"
            r"|\.config/gcloud|\.azure/|\.kube/config|\.docker/config\.json|\.git-credentials|\.npmrc|\.pypirc"
            r"|(^|[\s\"'/])\.env\b|Login Data|Local State|keychain|wallet\.dat|\.gnupg",
            re.IGNORECASE,
        ),
    ),
    _Check(
        RULES["TM-AGENT-LINT-004"],
        re.compile(
            r"ignore (all |any )?(previous|prior|above) instructions|do not (tell|inform|mention)[^.\n]{0,20}user"
            r"|without (telling|informing|asking) the user|<\s*(important|system|secret)\s*>|before (using|calling)"
            r" (this|any) tool[^.\n]{0,80}(read|send|call)|secretly|you must (first )?(read|send|call)\b"
            r"|<!--[^>]{0,400}(instruction|assistant|model|ignore)[^>]{0,400}-->",
            re.IGNORECASE,
        ),
    ),
    _Check(
        RULES["TM-AGENT-LINT-006"],
        re.compile(
            r"/dev/tcp/|\bnc(at)?\s+(-[a-z]*e|-c)\b|bash\s+-i\s*>&|socket\.socket\([^)]*\)[^\n]{0,200}dup2"
            r"|\bmkfifo\b[^\n]*\bnc\b",
            re.IGNORECASE,
        ),
    ),
)
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{60,}={0,2}")
_DECODED_DANGER = re.compile(
    rb"(/bin/(ba)?sh|curl |wget |powershell|eval\(|exec\(|/dev/tcp|chmod \+x|subprocess|child_process)"
)


def _location(path: str, text: str, offset: int) -> Location:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Location(path, line, column)


def _finding(rule: Rule, path: str, text: str, offset: int, message: str, excerpt: str) -> Finding:
    return Finding(
        rule.id,
        rule.severity or Severity.MEDIUM,
        message,
        (_location(path, text, offset),),
        title=rule.title,
        evidence=(excerpt[:120],),
    )


def _encoded_payloads(path: str, text: str) -> Iterator[Finding]:
    for match in _BASE64_RUN.finditer(text):
        blob = match.group()
        try:
            decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=False)
        except (binascii.Error, ValueError):
            continue
        if _DECODED_DANGER.search(decoded):
            rule = RULES["TM-AGENT-LINT-001"]
            excerpt = decoded[:80].decode("utf-8", "replace")
            yield _finding(rule, path, text, match.start(), "a base64 blob decodes to commands", excerpt)


def lint_text(text: str, path: str = "<text>") -> list[Finding]:
    """Lint one text (a skill file, a plugin script, a tool description)."""
    findings: list[Finding] = []
    for check in _CHECKS:
        for match in check.pattern.finditer(text):
            findings.append(
                _finding(check.rule, path, text, match.start(), f"{check.rule.title}: {match.group()!r}", match.group())
            )
            break  # one finding per rule and file is enough to act on
    findings.extend(_encoded_payloads(path, text))
    invisible = _INVISIBLE.search(text)
    if invisible is not None:
        rule = RULES["TM-AGENT-LINT-005"]
        count = len(_INVISIBLE.findall(text))
        message = f"{count} invisible character(s), first U+{ord(invisible.group()):04X}"
        findings.append(_finding(rule, path, text, invisible.start(), message, f"U+{ord(invisible.group()):04X}"))
    return findings


def lint_paths(paths: list[str]) -> list[Finding]:
    """Lint files and every text file under folders (skills, plugins, extension packages)."""
    findings: list[Finding] = []
    for given in paths:
        root = Path(given)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        for file in files:
            if file.suffix.lower() not in _TEXT_SUFFIXES or "node_modules" in file.parts:
                continue
            shown = file.as_posix()
            if file.stat().st_size > MAX_LINT_BYTES:
                rule = RULES["TM-AGENT-LINT-007"]
                findings.append(Finding(rule.id, Severity.MEDIUM, "not linted", (Location(shown),), title=rule.title))
                continue
            findings.extend(lint_text(file.read_text(encoding="utf-8", errors="replace"), shown))
    return findings
