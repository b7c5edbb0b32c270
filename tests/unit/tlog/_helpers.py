"""Helpers shared by the log tests."""

from __future__ import annotations

import hashlib

from tracemark.tlog import ProvenanceRecord


def make_record(i: int, kind: str = "text") -> ProvenanceRecord:
    """A valid record whose content hash depends on ``i``."""
    return ProvenanceRecord.create(
        content_sha256=hashlib.sha256(f"content {i}".encode()).hexdigest(),
        kind=kind,
        key_id="tm-native-0123456789abcdef",
        model_id="example/model@1",
        time="2026-08-02T12:00:00Z",
        c2pa_manifest_id=f"urn:c2pa:{i:08d}-0000-4000-8000-000000000000" if kind == "image" else None,
    )
