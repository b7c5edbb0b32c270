"""HTML pages parsed with tree-sitter: their tags and attributes, inline scripts, and CSP meta tags."""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import tree_sitter
import tree_sitter_html

from tracemark._json import FrozenDict

_LANGUAGE: list[tree_sitter.Language] = []


@dataclass(frozen=True)
class Tag:
    """One start tag: its name (lower case), attributes (names lower case, values unescaped) and position."""

    name: str
    attributes: Mapping[str, str | None]
    line: int
    column: int


@dataclass(frozen=True)
class InlineScript:
    """The body of a ``<script>`` element without ``src``, and the line it starts on."""

    source: bytes
    line: int


class HtmlPage:
    """One parsed page."""

    def __init__(self, path: str, source: bytes) -> None:
        if not _LANGUAGE:
            _LANGUAGE.append(tree_sitter.Language(tree_sitter_html.language()))
        self.path = path
        self.tree = tree_sitter.Parser(_LANGUAGE[0]).parse(source)
        self.tags: list[Tag] = []
        self.scripts: list[InlineScript] = []
        self._index()

    def _index(self) -> None:
        stack = [self.tree.root_node]
        while stack:
            node = stack.pop()
            if node.type in ("start_tag", "self_closing_tag"):
                tag = _tag(node)
                if tag is not None:
                    self.tags.append(tag)
            if node.type == "script_element":
                start = node.named_children[0] if node.named_children else None
                body = next((child for child in node.named_children if child.type == "raw_text"), None)
                tag = _tag(start) if start is not None else None
                if tag is not None and "src" not in tag.attributes and body is not None and body.text:
                    self.scripts.append(InlineScript(body.text, body.start_point[0] + 1))
            stack.extend(reversed(node.children))
        self.tags.sort(key=lambda tag: (tag.line, tag.column))

    def find(self, name: str) -> Iterator[Tag]:
        return (tag for tag in self.tags if tag.name == name)

    def csp_policies(self) -> Iterator[tuple[str, Tag]]:
        """Every ``<meta http-equiv="Content-Security-Policy" content="...">`` policy."""
        for tag in self.find("meta"):
            if (tag.attributes.get("http-equiv") or "").strip().lower() == "content-security-policy":
                yield tag.attributes.get("content") or "", tag


def _tag(node: tree_sitter.Node) -> Tag | None:
    name: str | None = None
    attributes: dict[str, str | None] = {}
    for child in node.named_children:
        if child.type == "tag_name":
            name = (child.text or b"").decode("utf-8", "replace").lower()
        elif child.type == "attribute":
            key: str | None = None
            value: str | None = None
            for part in child.named_children:
                if part.type == "attribute_name":
                    key = (part.text or b"").decode("utf-8", "replace").lower()
                elif part.type == "attribute_value":
                    value = html.unescape((part.text or b"").decode("utf-8", "replace"))
                elif part.type == "quoted_attribute_value":
                    inner = next((p for p in part.named_children if p.type == "attribute_value"), None)
                    value = html.unescape((inner.text or b"").decode("utf-8", "replace")) if inner is not None else ""
            if key is not None:
                attributes.setdefault(key, value)
    if name is None:
        return None
    return Tag(name, FrozenDict(attributes), node.start_point[0] + 1, node.start_point[1] + 1)


@dataclass(frozen=True)
class CspWeakness:
    """One reason a policy does not stop injected script."""

    directive: str
    source: str
    reason: str


_UNSAFE_SOURCES = {
    "'unsafe-inline'": "inline script runs",
    "'unsafe-eval'": "eval and new Function run",
    "'unsafe-hashes'": "inline event handlers matching a hash run",
    "*": "script from any origin runs",
    "http:": "script over plain HTTP runs",
    "https:": "script from any https origin runs",
    "data:": "script from data: URLs runs",
    "blob:": "script from blob: URLs runs",
    "filesystem:": "script from filesystem: URLs runs",
}


def parse_csp(policy: str) -> dict[str, list[str]]:
    """Directives of a policy (CSP 3 §2.2.1: split on ';', first occurrence of a directive wins)."""
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        tokens = part.strip().split()
        if not tokens:
            continue
        name = tokens[0].lower()
        if name not in directives:
            directives[name] = [token.lower() if token.startswith("'") else token for token in tokens[1:]]
    return directives


def csp_weaknesses(policy: str) -> list[CspWeakness]:
    """Why a policy fails to stop script injection (empty for a strict policy).

    The effective script policy is ``script-src``, else ``default-src`` (CSP 3 §6.1.1).  A nonce or
    hash makes browsers ignore ``'unsafe-inline'`` (CSP 3 §6.7.3.3), so that pair is not reported.
    """
    directives = parse_csp(policy)
    name = "script-src" if "script-src" in directives else "default-src" if "default-src" in directives else None
    if name is None:
        return [CspWeakness("script-src", "", "neither script-src nor default-src is set, so any script runs")]
    sources = directives[name]
    has_nonce_or_hash = any(source.startswith(("'nonce-", "'sha256-", "'sha384-", "'sha512-")) for source in sources)
    weaknesses: list[CspWeakness] = []
    for source in sources:
        lowered = source.lower()
        if lowered == "'unsafe-inline'" and has_nonce_or_hash:
            continue
        if lowered in _UNSAFE_SOURCES:
            weaknesses.append(CspWeakness(name, source, _UNSAFE_SOURCES[lowered]))
        elif lowered.startswith("http://"):
            weaknesses.append(CspWeakness(name, source, "script over plain HTTP runs"))
        elif lowered.startswith(("*.", "https://*")) or lowered in ("https://*", "http://*"):
            weaknesses.append(CspWeakness(name, source, "script from a wildcard host runs"))
    return weaknesses
