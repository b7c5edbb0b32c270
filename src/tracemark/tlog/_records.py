"""Provenance records: what the log stores for each marked output (never the content itself).

A record is a canonical JSON object (keys sorted, no whitespace, UTF-8; for these
string-only records that is also RFC 8785 JCS) with exactly these members::

    {"c2pa_manifest_id": "urn:c2pa:...",   # media kinds only (image)
     "content_sha256": "<64 lowercase hex>",
     "format": "tracemark.provenance/v1",
     "key_id": "tm-native-0123456789abcdef",
     "kind": "text" | "image" | "model-artifact",
     "model_id": "org/model@revision",
     "time": "2026-08-02T12:00:00Z"}

The leaf the log hashes is these exact bytes (RFC 9162 §2.1.1: ``SHA-256(0x00 || record)``).
Parsing is strict: duplicate or unknown members, a non-canonical encoding, or a value
outside its pattern raise :class:`~tracemark.errors.TlogFormatError`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tracemark._json import JSONObject, JSONValue
from tracemark.errors import TlogError, TlogFormatError
from tracemark.tlog._merkle import Hash, hash_leaf

RECORD_FORMAT = "tracemark.provenance/v1"

#: Largest encoded record accepted (bytes).
MAX_RECORD_BYTES = 4096


class RecordKind(StrEnum):
    """What was marked."""

    TEXT = "text"
    IMAGE = "image"
    MODEL_ARTIFACT = "model-artifact"


#: Kinds that carry a C2PA manifest id.
MEDIA_KINDS = frozenset({RecordKind.IMAGE})

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")
_MANIFEST_ID = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[\x21-\x7e]{1,220}")
_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z")
_MAX_MODEL_ID = 256
#: A character outside the model id charset ``[A-Za-z0-9._:/+=@-]`` (the key id's, without its first-character rule).
_MODEL_ID_BAD = re.compile(r"[^A-Za-z0-9._:/+=@-]")
_FIELDS = frozenset({"c2pa_manifest_id", "content_sha256", "format", "key_id", "kind", "model_id", "time"})


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with seconds precision and a ``Z``, the only form a record accepts."""
    if moment.tzinfo is None:
        raise TlogFormatError("record time must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_KINDS = {kind.value: kind for kind in RecordKind}
_json_string = json.encoder.encode_basestring


def parse_kind(value: object) -> RecordKind:
    """The :class:`RecordKind` named by ``value``; raises with the valid names otherwise."""
    kind = _KINDS.get(value) if isinstance(value, str) else None
    if kind is None:
        raise TlogFormatError(f"kind must be one of {', '.join(_KINDS)}, got {value!r}")
    return kind


@functools.lru_cache(maxsize=1024)
def _check_key_id(value: str) -> None:
    if not _KEY_ID.fullmatch(value):
        raise TlogFormatError(f"key_id {value!r} is not 1-128 characters of [A-Za-z0-9._:/+=@-]")


@functools.lru_cache(maxsize=1024)
def _check_model_id(value: str) -> None:
    # Printable ASCII without spaces only: bidi overrides, zero-width and full-width characters would let
    # one id render as another wherever the log is shown.
    if not 0 < len(value) <= _MAX_MODEL_ID:
        raise TlogFormatError(f"model_id must be 1-{_MAX_MODEL_ID} characters")
    bad = _MODEL_ID_BAD.search(value)
    if bad is not None:
        raise TlogFormatError(
            f"model_id may hold only letters A-Z a-z, digits and . _ : / + = @ - (found U+{ord(bad.group()):04X})"
        )


@functools.lru_cache(maxsize=1024)
def _check_time(value: str) -> None:
    moment = _TIME.fullmatch(value)
    if moment is None:
        raise TlogFormatError(f"time {value!r} is not RFC 3339 UTC like 2026-08-02T12:00:00Z")
    try:
        year, month, day, hour, minute, second = (int(part) for part in moment.groups())
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise TlogFormatError(f"time {value!r} is not a valid date and time") from None


@dataclass(frozen=True)
class ProvenanceRecord:
    """One log entry: the hash of a marked output and how it was marked.  Validated on creation."""

    content_sha256: str
    kind: RecordKind
    key_id: str
    model_id: str
    time: str
    c2pa_manifest_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.content_sha256, str) or not _SHA256_HEX.fullmatch(self.content_sha256):
            raise TlogFormatError("content_sha256 must be 64 lowercase hex digits")
        kind = parse_kind(self.kind)
        object.__setattr__(self, "kind", kind)
        # Key ids, model ids and times repeat across a batch: their checks are cached (only passes are).
        for name in ("key_id", "model_id", "time"):
            if not isinstance(getattr(self, name), str):
                raise TlogFormatError(f"{name} must be a string")
        _check_key_id(self.key_id)
        _check_model_id(self.model_id)
        _check_time(self.time)
        if kind in MEDIA_KINDS:
            manifest = self.c2pa_manifest_id
            if not isinstance(manifest, str) or not _MANIFEST_ID.fullmatch(manifest):
                raise TlogFormatError(f"a {kind.value} record needs its C2PA manifest id (a URN, e.g. urn:c2pa:…)")
        elif self.c2pa_manifest_id is not None:
            raise TlogFormatError(f"a {kind.value} record has no C2PA manifest id")

    @classmethod
    def create(
        cls,
        *,
        kind: RecordKind | str,
        key_id: str,
        model_id: str,
        content: bytes | None = None,
        content_sha256: str | None = None,
        time: datetime | str | None = None,
        c2pa_manifest_id: str | None = None,
    ) -> ProvenanceRecord:
        """Build a record from the content (hashed here, never stored) or its SHA-256; time defaults to now."""
        if (content is None) == (content_sha256 is None):
            raise TlogFormatError("give exactly one of content or content_sha256")
        digest = hashlib.sha256(content).hexdigest() if content is not None else str(content_sha256).lower()
        when = time if isinstance(time, str) else format_time(time or datetime.now(UTC))
        return cls(
            content_sha256=digest,
            kind=parse_kind(kind),
            key_id=key_id,
            model_id=model_id,
            time=when,
            c2pa_manifest_id=c2pa_manifest_id,
        )

    def to_dict(self) -> dict[str, str]:
        """The record as the JSON object it is encoded as."""
        out = {
            "content_sha256": self.content_sha256,
            "format": RECORD_FORMAT,
            "key_id": self.key_id,
            "kind": self.kind.value,
            "model_id": self.model_id,
            "time": self.time,
        }
        if self.c2pa_manifest_id is not None:
            out["c2pa_manifest_id"] = self.c2pa_manifest_id
        return out

    def to_json(self) -> bytes:
        """The canonical encoding: the exact bytes the log stores and hashes (keys in sorted order)."""
        manifest = self.c2pa_manifest_id
        head = f'{{"c2pa_manifest_id":{_json_string(manifest)},' if manifest is not None else "{"
        return (
            f'{head}"content_sha256":"{self.content_sha256}","format":"{RECORD_FORMAT}",'
            f'"key_id":{_json_string(self.key_id)},"kind":"{self.kind.value}",'
            f'"model_id":{_json_string(self.model_id)},"time":"{self.time}"}}'
        ).encode()

    def leaf_hash(self) -> Hash:
        """RFC 9162 §2.1.1 leaf hash of :meth:`to_json`."""
        return hash_leaf(self.to_json())

    def matches_content(self, content: bytes) -> bool:
        """Whether ``content`` hashes to this record's ``content_sha256``."""
        return hashlib.sha256(content).hexdigest() == self.content_sha256

    @classmethod
    def from_json(cls, data: bytes | str) -> ProvenanceRecord:
        """Parse a record; its bytes must be exactly the canonical encoding."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if len(raw) > MAX_RECORD_BYTES:
            raise TlogFormatError(f"record is larger than {MAX_RECORD_BYTES} bytes")
        try:
            value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise TlogFormatError(f"record is not valid JSON: {exc}") from None
        except RecursionError:  # 4 KiB of '[' nests deeper than the JSON decoder recurses
            raise TlogFormatError("record is not valid JSON: nested too deeply") from None
        record = cls.from_dict(value)
        if record.to_json() != raw:
            raise TlogFormatError("record is not in canonical JSON form (sorted keys, no whitespace)")
        return record

    @classmethod
    def from_dict(cls, value: Any) -> ProvenanceRecord:
        """Build a record from a decoded JSON object, refusing unknown or missing members."""
        if not isinstance(value, dict):
            raise TlogFormatError("record must be a JSON object")
        unknown = set(value) - _FIELDS
        if unknown:
            raise TlogFormatError(f"record has unknown members: {', '.join(sorted(unknown))}")
        if value.get("format", RECORD_FORMAT) != RECORD_FORMAT:
            raise TlogFormatError(f"record format must be {RECORD_FORMAT!r}")
        missing = {"content_sha256", "kind", "key_id", "model_id", "time"} - set(value)
        if missing:
            raise TlogFormatError(f"record is missing: {', '.join(sorted(missing))}")
        for name, member in value.items():
            if not isinstance(member, str):
                raise TlogFormatError(f"record member {name} must be a string")
        return cls(
            content_sha256=value["content_sha256"],
            kind=value["kind"],
            key_id=value["key_id"],
            model_id=value["model_id"],
            time=value["time"],
            c2pa_manifest_id=value.get("c2pa_manifest_id"),
        )


def image_recorder(append: Callable[[ProvenanceRecord], int], model_id: str) -> Callable[[bytes, str, str], int]:
    """The ``record`` callback of :func:`tracemark.media.mark_image`: logs a marked image through ``append``.

    The callback takes the marked image's bytes, its C2PA manifest id and the marking key id,
    builds the image's record (kind ``image``, time now) and returns the index ``append`` gives it.
    """

    def record(data: bytes, manifest_id: str, key_id: str) -> int:
        entry = ProvenanceRecord.create(kind=RecordKind.IMAGE, key_id=key_id, model_id=model_id, content=data,
                                        c2pa_manifest_id=manifest_id)  # fmt: skip
        return append(entry)

    return record


def image_log_checker(read: Callable[[int], ProvenanceRecord]) -> Callable[[int, str, str], bool]:
    """The ``check_log`` callback of :func:`tracemark.media.verify_image`: reads entries through ``read``.

    The callback answers whether entry ``index`` records this content hash and C2PA manifest id;
    an entry ``read`` cannot give (a :class:`~tracemark.errors.TlogError`: no such entry, or not a
    record) answers False.
    """

    def check(index: int, content_sha256: str, manifest_id: str) -> bool:
        try:
            entry = read(index)
        except TlogError:
            return False
        return entry.content_sha256 == content_sha256 and entry.c2pa_manifest_id == manifest_id

    return check


def _no_duplicates(pairs: list[tuple[str, JSONValue]]) -> JSONObject:
    result: JSONObject = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
