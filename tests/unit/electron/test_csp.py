"""Content Security Policy parsing and the weaknesses that let injected script run."""

from __future__ import annotations

import pytest

from tracemark.electron import csp_weaknesses, parse_csp


def test_parse_first_directive_wins_and_keywords_are_case_insensitive() -> None:
    directives = parse_csp("Script-Src 'SELF' https://a.example; script-src *;; default-src 'none'")
    assert directives == {"script-src": ["'self'", "https://a.example"], "default-src": ["'none'"]}


@pytest.mark.parametrize(
    ("policy", "sources"),
    [
        ("default-src 'self'", []),
        ("default-src 'none'; script-src 'self' https://cdn.example.com", []),
        ("script-src 'self' 'unsafe-inline'", ["'unsafe-inline'"]),
        ("script-src 'self' 'nonce-abc' 'unsafe-inline'", []),
        ("script-src 'sha256-abc=' 'unsafe-inline' 'unsafe-eval'", ["'unsafe-eval'"]),
        ("default-src *", ["*"]),
        ("default-src 'self' http: data:", ["http:", "data:"]),
        ("script-src https:", ["https:"]),
        ("script-src http://cdn.example.com *.example.com", ["http://cdn.example.com", "*.example.com"]),
        ("default-src 'self'; script-src 'unsafe-eval'", ["'unsafe-eval'"]),
        ("script-src 'self'; default-src *", []),
        ("img-src 'self'", [""]),
        ("", [""]),
    ],
)
def test_weaknesses(policy: str, sources: list[str]) -> None:
    assert [weakness.source for weakness in csp_weaknesses(policy)] == sources
