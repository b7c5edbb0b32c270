"""Version ordering per ecosystem: PEP 440 for PyPI, Semantic Versioning 2.0 for npm.

OSV range events are compared with the ecosystem's own ordering (OSV schema, "Evaluation"):
``ECOSYSTEM`` ranges use the ecosystem's rules and ``SEMVER`` ranges use SemVer 2.0 precedence.
Both orderings are exposed as sort keys so the matcher only ever compares keys.
"""

from __future__ import annotations

import re
from typing import Any

PYPI = "PyPI"
NPM = "npm"
SUPPORTED_ECOSYSTEMS = (PYPI, NPM)

_PEP503_SEPARATORS = re.compile(r"[-_.]+")

# SemVer 2.0 §2, §9, §10, with a tolerated leading "v" and "=" (npm's loose form) and
# missing minor/patch components (seen in hand-written advisories).
_SEMVER = re.compile(
    r"^[v=]?\s*(?P<major>\d+)(?:\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?)?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


class VersionParseError(ValueError):
    """A version string is not valid in its ecosystem."""


def canonical_ecosystem(ecosystem: str) -> str | None:
    """The canonical spelling of a supported ecosystem (``pypi`` -> ``PyPI``), or ``None``."""
    lowered = ecosystem.strip().lower()
    for known in SUPPORTED_ECOSYSTEMS:
        if lowered == known.lower():
            return known
    return None


def normalise_name(ecosystem: str, name: str) -> str:
    """The package name as the ecosystem compares it: PEP 503 for PyPI, verbatim for npm."""
    if ecosystem == PYPI:
        return _PEP503_SEPARATORS.sub("-", name.strip()).lower()
    return name.strip()


def _semver_key(text: str) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
    """SemVer 2.0 §11 precedence as a tuple; build metadata is ignored."""
    match = _SEMVER.match(text.strip())
    if match is None:
        raise VersionParseError(f"{text!r} is not a semantic version")
    pre_text = match.group("pre")
    try:
        major, minor, patch = int(match.group("major")), int(match.group("minor") or 0), int(match.group("patch") or 0)
        if pre_text is None:
            # §11.3: a release has higher precedence than any of its pre-releases.
            return (major, minor, patch, 1, ())
        # §11.4: numeric identifiers compare numerically and sort before alphanumeric ones.
        identifiers = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre_text.split("."))
    except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
        raise VersionParseError(f"{text[:40]!r} has a number too long to compare") from None
    return (major, minor, patch, 0, identifiers)


def _pep440_key(text: str) -> Any:
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        from tracemark.errors import MissingExtraError

        raise MissingExtraError("PEP 440 version matching", "supply") from exc
    try:
        return Version(text)
    except (InvalidVersion, ValueError):  # ValueError: a number longer than int() converts
        raise VersionParseError(f"{text[:40]!r} is not a PEP 440 version") from None


def version_key(ecosystem: str, range_type: str, text: str) -> Any:
    """A comparable key for ``text``: SemVer precedence for ``SEMVER`` ranges and npm, else PEP 440.

    Raises :class:`VersionParseError` when the version is invalid for that ordering.
    """
    if range_type == "SEMVER" or ecosystem == NPM:
        return _semver_key(text)
    return _pep440_key(text)


def same_version(ecosystem: str, left: str, right: str) -> bool:
    """Whether two version strings name the same release (``1.0`` == ``1.0.0`` under PEP 440)."""
    if left == right:
        return True
    try:
        return bool(version_key(ecosystem, "ECOSYSTEM", left) == version_key(ecosystem, "ECOSYSTEM", right))
    except VersionParseError:
        return False
