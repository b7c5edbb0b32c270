"""The media-to-log glue ``tracemark media`` and the service share: ``image_recorder`` and ``image_log_checker``.

``mark_image`` logs a marked image through the recorder and ``verify_image`` confirms a log entry
through the checker; both commands only say how to append to and read from their log.
"""

from __future__ import annotations

import hashlib

from tracemark.tlog import (
    MemoryStore,
    NoteSigner,
    ProvenanceRecord,
    RecordKind,
    TransparencyLog,
    image_log_checker,
    image_recorder,
)

MANIFEST = "urn:c2pa:00000000-0000-4000-8000-000000000001"


def _log() -> TransparencyLog:
    return TransparencyLog(MemoryStore(), signer=NoteSigner.generate("example.com/glue-log"))


def test_the_recorder_appends_the_images_record_and_returns_its_index() -> None:
    log = _log()
    log.append_entries([b"an earlier entry"])
    record = image_recorder(lambda entry: log.append(entry).index, "org/image-model@1")
    assert record(b"marked image bytes", MANIFEST, "tm-media-0123456789abcdef") == 1
    stored = log.record(1)
    assert stored.kind is RecordKind.IMAGE
    assert stored.content_sha256 == hashlib.sha256(b"marked image bytes").hexdigest()
    assert (stored.c2pa_manifest_id, stored.key_id, stored.model_id) == (
        MANIFEST,
        "tm-media-0123456789abcdef",
        "org/image-model@1",
    )


def test_the_checker_confirms_only_the_entry_recording_this_image_and_manifest() -> None:
    log = _log()
    image_recorder(lambda entry: log.append(entry).index, "m")(b"image", MANIFEST, "tm-media-0123456789abcdef")
    log.append_entries([b"not a provenance record"])
    check = image_log_checker(log.record)
    digest = hashlib.sha256(b"image").hexdigest()
    assert check(0, digest, MANIFEST)
    assert not check(0, hashlib.sha256(b"another image").hexdigest(), MANIFEST)
    assert not check(0, digest, MANIFEST.replace("1", "2"))
    assert not check(1, digest, MANIFEST)  # an entry that is no record
    assert not check(7, digest, MANIFEST)  # no such entry


def test_a_text_record_does_not_confirm_an_image() -> None:
    log = _log()
    text = ProvenanceRecord.create(content=b"image", kind="text", key_id="tm-native-0123456789abcdef", model_id="m")
    log.append(text)
    assert not image_log_checker(log.record)(0, hashlib.sha256(b"image").hexdigest(), MANIFEST)
