"""Provenance records: canonical JSON, strict validation, no content ever stored."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.unit.tlog._helpers import make_record
from tracemark.errors import TlogFormatError
from tracemark.tlog import RECORD_FORMAT, ProvenanceRecord, RecordKind
from tracemark.tlog.merkle import hash_leaf


def test_canonical_encoding_and_leaf_hash() -> None:
    record = make_record(1)
    data = record.to_json()
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    assert json.loads(data)["format"] == RECORD_FORMAT
    assert record.leaf_hash() == hash_leaf(data)
    assert ProvenanceRecord.from_json(data) == record


def test_fast_encoder_matches_json_dumps() -> None:
    for model_id in ["org/model@sha256:0123456789abcdef", "plain"]:  # the escaping is the manifest id's
        for kind in ("text", "image"):
            record = ProvenanceRecord.create(
                content=b"x",
                kind=kind,
                key_id="k/1+=",
                model_id=model_id,
                c2pa_manifest_id="urn:c2pa:a\\b" if kind == "image" else None,
            )
            expected = json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            assert record.to_json() == expected.encode()
            assert ProvenanceRecord.from_json(record.to_json()) == record


def test_create_hashes_the_content_and_never_keeps_it() -> None:
    secret = b"the generated text itself"
    record = ProvenanceRecord.create(content=secret, kind="text", key_id="k", model_id="m")
    assert record.content_sha256 == hashlib.sha256(secret).hexdigest()
    assert secret not in record.to_json()
    assert record.matches_content(secret)
    assert not record.matches_content(secret + b".")


def test_time_is_normalised_to_utc_seconds() -> None:
    moment = datetime(2026, 8, 2, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    record = ProvenanceRecord.create(content=b"x", kind="text", key_id="k", model_id="m", time=moment)
    assert record.time == "2026-08-02T12:00:00Z"
    with pytest.raises(TlogFormatError, match="timezone"):
        ProvenanceRecord.create(content=b"x", kind="text", key_id="k", model_id="m", time=datetime(2026, 1, 1))
    assert ProvenanceRecord.create(content=b"x", kind="text", key_id="k", model_id="m").time.endswith("Z")
    assert abs(datetime.now(UTC).year - int(make_record(0).time[:4])) < 100


def test_media_needs_a_c2pa_manifest_id_and_others_refuse_one() -> None:
    image = make_record(3, kind="image")
    assert image.kind is RecordKind.IMAGE
    assert image.c2pa_manifest_id is not None
    with pytest.raises(TlogFormatError, match="C2PA manifest id"):
        ProvenanceRecord.create(content=b"x", kind="image", key_id="k", model_id="m")
    with pytest.raises(TlogFormatError, match="has no C2PA"):
        ProvenanceRecord.create(content=b"x", kind="text", key_id="k", model_id="m", c2pa_manifest_id="urn:c2pa:1")
    with pytest.raises(TlogFormatError):
        ProvenanceRecord.create(content=b"x", kind="image", key_id="k", model_id="m", c2pa_manifest_id="not a urn")
    artifact = ProvenanceRecord.create(content=b"w", kind="model-artifact", key_id="sig-1", model_id="org/m")
    assert artifact.kind is RecordKind.MODEL_ARTIFACT


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("content_sha256", "ABC"),
        ("content_sha256", "A" * 64),
        ("content_sha256", "g" * 64),
        ("kind", "video"),
        ("key_id", ""),
        ("key_id", "has space"),
        ("key_id", "x" * 200),
        ("model_id", ""),
        ("model_id", " padded"),
        ("model_id", "m" * 257),
        ("model_id", "bell\x07"),
        ("model_id", "abc\u202edcba"),  # a right-to-left override renders as "abcabcd"
        ("model_id", "a\u200bb"),  # a zero-width space renders as "ab"
        ("model_id", "\uff4dodel"),  # full-width m
        ("model_id", "org/model 2"),
        ("model_id", "<b>model</b>"),
        ("model_id", "modèle"),
        ("time", "2026-08-02 12:00:00"),
        ("time", "2026-02-30T12:00:00Z"),
        ("time", "2026-08-02T12:00:00+00:00"),
    ],
)
def test_invalid_fields(field: str, value: str) -> None:
    fields = make_record(1).to_dict()
    fields[field] = value
    with pytest.raises(TlogFormatError):
        ProvenanceRecord.from_dict(fields)


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b"not json",
        b"\xff\xfe",
        b'{"content_sha256":"' + b"0" * 64 + b'"}',
        b"{}",
    ],
)
def test_malformed_json(data: bytes) -> None:
    with pytest.raises(TlogFormatError):
        ProvenanceRecord.from_json(data)


def test_strict_parsing() -> None:
    data = make_record(2).to_json()
    text = data.decode()
    with pytest.raises(TlogFormatError, match="canonical"):
        ProvenanceRecord.from_json(json.dumps(json.loads(text), indent=1))
    with pytest.raises(TlogFormatError, match="duplicate"):
        ProvenanceRecord.from_json(text[:-1] + ',"kind":"image"}')
    with pytest.raises(TlogFormatError, match="unknown members"):
        ProvenanceRecord.from_json(text[:-1] + ',"zz":"1"}')
    with pytest.raises(TlogFormatError, match="format"):
        ProvenanceRecord.from_json(text.replace(RECORD_FORMAT, "tracemark.provenance/v9"))
    fields: dict[str, object] = dict(make_record(2).to_dict())
    fields["model_id"] = 7
    with pytest.raises(TlogFormatError, match="string"):
        ProvenanceRecord.from_dict(fields)
    with pytest.raises(TlogFormatError, match="larger"):
        ProvenanceRecord.from_json(b" " * 5000)
    with pytest.raises(TlogFormatError, match="not valid JSON"):
        ProvenanceRecord.from_json(text.replace('"m', "NaN", 1))
