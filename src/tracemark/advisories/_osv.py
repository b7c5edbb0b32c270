"""An offline OSV advisory database and its version matcher (PyPI and npm).

The database is a directory of OSV JSON records (any depth) or an OSV export zip such as
``gs://osv-vulnerabilities/PyPI/all.zip``.  Opening it fails closed: a missing, empty,
unreadable or stale database raises :class:`AdvisoryDatabaseError` rather than producing
an audit that silently finds nothing.

Matching follows the OSV schema's evaluation rules: a version is affected when it is listed
in ``versions`` or falls inside a ``SEMVER``/``ECOSYSTEM`` range, where the range's events
(``introduced``, ``fixed``, ``last_affected``, ``limit``) are applied in version order.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import lzma
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tracemark._json import JSONObject, JSONValue
from tracemark.advisories._cvss import cvss3_base_score, label_for_score
from tracemark.advisories._versions import (
    VersionParseError,
    canonical_ecosystem,
    normalise_name,
    same_version,
    version_key,
)
from tracemark.errors import AdvisoryDatabaseError, InvalidInputError

#: A file (in the directory or the zip) that states when the export was taken: ``{"exported": RFC 3339}``.
MANIFEST_NAME = "osv-manifest.json"
#: How far past the current time a record's ``modified`` or a manifest's ``exported`` may lie (clock skew).
FUTURE_TOLERANCE = datetime.timedelta(days=1)
#: Largest single OSV record read (bytes); real records are a few KiB.
MAX_RECORD_BYTES = 16 * 1024 * 1024
#: Largest total of uncompressed bytes read from a zip export (guards against zip bombs).
MAX_ZIP_TOTAL_BYTES = 8 * 1024 * 1024 * 1024

SEVERITY_LABELS = ("critical", "high", "medium", "low", "unknown")
_VENDOR_LABELS = {"critical": "critical", "high": "high", "moderate": "medium", "medium": "medium", "low": "low"}
_FRACTION = re.compile(r"\.(\d{6})\d+")


@dataclass(frozen=True)
class Advisory:
    """One advisory that affects a queried package version."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    #: One of ``critical``, ``high``, ``medium``, ``low``, ``unknown``.
    severity: str
    #: Versions that fix the advisory, from the matching ranges' ``fixed`` events.
    fixed: tuple[str, ...]
    modified: datetime.datetime


@dataclass(frozen=True)
class _Range:
    type: str
    events: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Affected:
    advisory: Advisory
    versions: tuple[str, ...]
    ranges: tuple[_Range, ...]


def _parse_time(value: JSONValue, where: str) -> datetime.datetime:
    if not isinstance(value, str):
        raise AdvisoryDatabaseError(f"{where}: timestamp is missing or not a string")
    text = _FRACTION.sub(lambda m: "." + m.group(1), value.strip())
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise AdvisoryDatabaseError(f"{where}: {value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed


def _severity(record: JSONObject) -> str:
    """The vendor label (GHSA's ``database_specific.severity``), else the worst CVSS v3 score."""
    vendor = record.get("database_specific")
    vendor_label = vendor.get("severity") if isinstance(vendor, dict) else None
    if isinstance(vendor_label, str):
        label = _VENDOR_LABELS.get(vendor_label.strip().lower())
        if label is not None:
            return label
    scores: list[float] = []
    entries = _list_or_empty(record.get("severity"))
    for affected in _list_or_empty(record.get("affected")):
        if isinstance(affected, dict):
            entries.extend(_list_or_empty(affected.get("severity")))
    for entry in entries:
        vector = entry.get("score") if isinstance(entry, dict) else None
        if isinstance(vector, str):
            score = cvss3_base_score(vector)
            if score is not None:
                scores.append(score)
    return label_for_score(max(scores)) if scores else "unknown"


def _list_or_empty(value: JSONValue) -> list[JSONValue]:
    """A copy of a JSON array (the caller may extend it), or an empty list for anything else."""
    return list(value) if isinstance(value, list) else []


def _strings(value: JSONValue, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    strings = tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()
    if not isinstance(value, list) or len(strings) != len(value):
        raise AdvisoryDatabaseError(f"{where}: expected a list of strings")
    return strings


def _parse_ranges(value: JSONValue, where: str) -> tuple[_Range, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise AdvisoryDatabaseError(f"{where}: 'ranges' is not a list")
    ranges = []
    for item in value:
        kind_of_range = item.get("type") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(kind_of_range, str):
            raise AdvisoryDatabaseError(f"{where}: a range has no type")
        events = []
        listed = item.get("events") or []
        if not isinstance(listed, list):
            raise AdvisoryDatabaseError(f"{where}: a range's 'events' is not a list")
        for event in listed:
            if not isinstance(event, dict) or len(event) != 1:
                raise AdvisoryDatabaseError(f"{where}: a range event must have exactly one key")
            ((kind, version),) = event.items()
            if kind not in ("introduced", "fixed", "last_affected", "limit") or not isinstance(version, str):
                raise AdvisoryDatabaseError(f"{where}: unknown range event {kind!r}")
            events.append((kind, version))
        ranges.append(_Range(kind_of_range, tuple(events)))
    return tuple(ranges)


class OsvDatabase:
    """Advisories for PyPI and npm, indexed by package, loaded from an offline OSV export."""

    def __init__(
        self, source: Path, index: dict[tuple[str, str], list[_Affected]], records: int, freshness: datetime.datetime
    ) -> None:
        self.source = source
        self._index = index
        #: Number of advisory records read (withdrawn ones included).
        self.records = records
        #: When the data was current: the manifest's export time, else the newest ``modified``.
        self.freshness = freshness

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        max_age: datetime.timedelta | None = datetime.timedelta(days=30),
        now: datetime.datetime | None = None,
        packages: Iterable[tuple[str, str]] | None = None,
    ) -> OsvDatabase:
        """Load a directory of OSV records or an OSV ``all.zip``; fail closed on any problem.

        ``max_age`` bounds how old the data may be (``None`` disables the check, which a
        caller must ask for explicitly); ``now`` defaults to the current UTC time.

        ``packages`` (``(ecosystem, name)`` pairs) is an optional speed-up for callers that
        query a few packages in a large export: records that cannot mention any of them
        (their bytes do not contain the name) are only checked for their ``modified`` time,
        not parsed.  Queries for other packages then find nothing, so pass every package
        you will ask about.
        """
        source = Path(path)
        if not source.exists():
            raise AdvisoryDatabaseError(f"advisory database {source} does not exist")
        index: dict[tuple[str, str], list[_Affected]] = {}
        records = 0
        newest: datetime.datetime | None = None
        manifest: datetime.datetime | None = None
        prefilter = _name_filter(packages) if packages is not None else None
        current = now or datetime.datetime.now(datetime.UTC)
        if current.tzinfo is None:
            current = current.replace(tzinfo=datetime.UTC)
        #: Timestamps past this are not believed: one future-dated record must not make old data look new.
        latest_credible = current + FUTURE_TOLERANCE
        for where, data in _read_documents(source):
            if where.endswith(MANIFEST_NAME) and Path(where).name == MANIFEST_NAME:
                manifest = _parse_manifest(_load_json(data, where), where)
                if manifest > latest_credible:
                    raise AdvisoryDatabaseError(
                        f"{where}: exported {manifest.isoformat()}, in the future: the manifest cannot be trusted"
                    )
                continue
            records += 1
            if prefilter is not None and prefilter.search(data) is None:
                advisory_time = _modified_only(data, where)
            else:
                advisory_time = _add_record(index, _load_json(data, where), where)
            if advisory_time <= latest_credible and (newest is None or advisory_time > newest):
                newest = advisory_time
        if records == 0:
            raise AdvisoryDatabaseError(f"advisory database {source} holds no OSV records")
        # The export's own metadata first; else the newest record that is not dated in the future.
        freshness = manifest or newest
        if freshness is None:
            raise AdvisoryDatabaseError(
                f"advisory database {source}: every record is dated in the future; its age cannot be known"
            )
        if max_age is not None and current - freshness > max_age:
            age_days = (current - freshness).total_seconds() / 86400
            raise AdvisoryDatabaseError(
                f"advisory database {source} is {age_days:.1f} days old (data from {freshness.isoformat()}); "
                f"the limit is {max_age.total_seconds() / 86400:g} days: update it"
            )
        return cls(source, index, records, freshness)

    def affected(self, *, ecosystem: str, name: str, version: str) -> list[Advisory]:
        """Advisories (not withdrawn) that affect ``name`` at ``version``, sorted by id."""
        canonical = canonical_ecosystem(ecosystem)
        if canonical is None:
            raise InvalidInputError(f"ecosystem {ecosystem!r} is not supported (PyPI or npm)")
        try:
            version_key(canonical, "ECOSYSTEM", version)
        except VersionParseError as exc:
            raise InvalidInputError(f"{name} {version}: {exc}") from None
        found: dict[str, Advisory] = {}
        for entry in self._index.get((canonical, normalise_name(canonical, name)), ()):
            fixed = _match(canonical, entry, version)
            if fixed is None:
                continue
            previous = found.get(entry.advisory.id)
            merged = tuple(sorted(set(fixed) | set(previous.fixed if previous else ())))
            found[entry.advisory.id] = dataclasses.replace(entry.advisory, fixed=merged)
        return [found[key] for key in sorted(found)]

    def packages(self, ecosystem: str) -> set[str]:
        """Normalised names of the packages in ``ecosystem`` that have at least one advisory."""
        canonical = canonical_ecosystem(ecosystem)
        return {name for eco, name in self._index if eco == canonical}


def _parse_manifest(payload: JSONValue, where: str) -> datetime.datetime:
    if not isinstance(payload, dict) or "exported" not in payload:
        raise AdvisoryDatabaseError(f"{where}: the manifest needs an 'exported' timestamp")
    return _parse_time(payload["exported"], where)


def _add_record(index: dict[tuple[str, str], list[_Affected]], record: JSONValue, where: str) -> datetime.datetime:
    """Validate one OSV record and index its PyPI/npm entries; returns its ``modified`` time."""
    record_id = record.get("id") if isinstance(record, dict) else None
    if not isinstance(record, dict) or not isinstance(record_id, str):
        raise AdvisoryDatabaseError(f"{where}: not an OSV record (no 'id')")
    modified = _parse_time(record.get("modified"), where)
    if record.get("withdrawn"):
        return modified
    summary = record.get("summary") or record.get("details") or ""
    advisory = Advisory(
        id=record_id,
        aliases=_strings(record.get("aliases"), where),
        summary=" ".join(str(summary).split())[:300],
        severity=_severity(record),
        fixed=(),
        modified=modified,
    )
    affected_list = record.get("affected") or []
    if not isinstance(affected_list, list):
        raise AdvisoryDatabaseError(f"{where}: 'affected' is not a list")
    for affected in affected_list:
        if not isinstance(affected, dict):
            raise AdvisoryDatabaseError(f"{where}: an 'affected' entry is not an object")
        package = affected.get("package")
        if not isinstance(package, dict):
            continue
        ecosystem = canonical_ecosystem(str(package.get("ecosystem", "")))
        name = package.get("name")
        if ecosystem is None or not isinstance(name, str):
            continue
        entry = _Affected(
            advisory=advisory,
            versions=_strings(affected.get("versions"), where),
            ranges=_parse_ranges(affected.get("ranges"), where),
        )
        index.setdefault((ecosystem, normalise_name(ecosystem, name)), []).append(entry)
    return modified


def _match(ecosystem: str, entry: _Affected, version: str) -> tuple[str, ...] | None:
    """The fixed versions of ``entry`` if ``version`` is affected by it, else ``None``."""
    hit = any(same_version(ecosystem, version, listed) for listed in entry.versions)
    for item in entry.ranges:
        if item.type in ("SEMVER", "ECOSYSTEM") and _in_range(ecosystem, item, version):
            hit = True
    if not hit:
        return None
    return tuple(v for item in entry.ranges for kind, v in item.events if kind == "fixed")


def _in_range(ecosystem: str, item: _Range, version: str) -> bool:
    """OSV schema "Evaluation": apply the sorted events; ``limit`` caps the range from above.

    An event version that cannot be parsed makes the range match: an advisory the matcher
    cannot evaluate is reported, never silently dropped.
    """
    try:
        target = version_key(ecosystem, item.type, version)
        keyed = []
        for kind, event_version in item.events:
            if kind == "introduced" and event_version == "0":
                keyed.append((None, kind))
            else:
                keyed.append((version_key(ecosystem, item.type, event_version), kind))
    except VersionParseError:
        return True
    limits = [key for key, kind in keyed if kind == "limit"]
    if limits and not any(target < key for key in limits):
        return False
    # "introduced: 0" sorts first; at equal versions, introduced precedes the closing events.
    ordered = sorted(
        (entry for entry in keyed if entry[1] != "limit"),
        key=lambda entry: (entry[0] is not None, entry[0] if entry[0] is not None else 0, entry[1] != "introduced"),
    )
    affected = False
    for key, kind in ordered:
        if kind == "introduced":
            if key is None or target >= key:
                affected = True
        elif kind == "fixed":
            if target >= key:
                affected = False
        elif kind == "last_affected" and target > key:
            affected = False
    return affected


_MODIFIED = re.compile(rb'"modified"\s*:\s*"([^"\\]{1,64})"')


def _name_filter(packages: Iterable[tuple[str, str]]) -> re.Pattern[bytes]:
    """A byte pattern that every record naming one of ``packages`` must match (case-insensitive).

    PyPI names match across ``-``, ``_`` and ``.`` separators (PEP 503); npm names exactly.
    """
    alternatives = []
    for ecosystem, name in packages:
        canonical = canonical_ecosystem(ecosystem)
        if canonical is None:
            raise InvalidInputError(f"ecosystem {ecosystem!r} is not supported (PyPI or npm)")
        parts = re.split(r"[-_.]+", normalise_name(canonical, name)) if canonical == "PyPI" else [name]
        alternatives.append(rb"[-_.]+".join(re.escape(part.encode()) for part in parts))
    if not alternatives:
        return re.compile(rb"(?!)")
    return re.compile(rb'"(?:' + b"|".join(alternatives) + rb')"', re.IGNORECASE)


def _modified_only(data: bytes, where: str) -> datetime.datetime:
    match = _MODIFIED.search(data)
    if match is None:
        raise AdvisoryDatabaseError(f"{where}: not an OSV record (no 'modified')")
    return _parse_time(match.group(1).decode("ascii", "replace"), where)


#: What reading a damaged or unusual zip can raise (unsupported compression, encryption, bad streams).
_ZIP_ERRORS = (
    zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, ValueError, zlib.error, lzma.LZMAError,
)  # fmt: skip


def _read_documents(source: Path) -> Iterator[tuple[str, bytes]]:
    """Every JSON document of the database as ``(where, bytes)``; errors fail closed."""
    if source.is_dir():
        files = sorted(p for p in source.rglob("*.json") if p.is_file())
        for file in files:
            try:
                if file.stat().st_size > MAX_RECORD_BYTES:
                    raise AdvisoryDatabaseError(f"{file}: larger than {MAX_RECORD_BYTES} bytes")
                data = file.read_bytes()
            except OSError as exc:
                raise AdvisoryDatabaseError(f"{file}: unreadable ({exc.strerror})") from None
            yield str(file), data
        return
    try:
        archive = zipfile.ZipFile(source)
    except _ZIP_ERRORS as exc:
        raise AdvisoryDatabaseError(f"advisory database {source} is neither a directory nor a zip ({exc})") from None
    with archive:
        total = 0
        for info in archive.infolist():
            if not info.filename.endswith(".json"):  # also skips folders (ZipInfo.is_dir fails on "")
                continue
            total += info.file_size
            if info.file_size > MAX_RECORD_BYTES or total > MAX_ZIP_TOTAL_BYTES:
                raise AdvisoryDatabaseError(f"{source}!{info.filename}: the export is larger than allowed")
            where = f"{source}!{info.filename}"
            try:
                with archive.open(info) as handle:
                    data = handle.read(MAX_RECORD_BYTES + 1)
            except _ZIP_ERRORS as exc:
                raise AdvisoryDatabaseError(f"{where}: unreadable ({exc})") from None
            if len(data) > MAX_RECORD_BYTES:
                raise AdvisoryDatabaseError(f"{where}: larger than {MAX_RECORD_BYTES} bytes")
            yield where, data


def _load_json(data: bytes, where: str) -> JSONValue:
    try:
        document: JSONValue = json.loads(data)
        return document
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdvisoryDatabaseError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise AdvisoryDatabaseError(f"{where}: not valid JSON (nested too deeply)") from None
