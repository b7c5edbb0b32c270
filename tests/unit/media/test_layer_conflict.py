"""Layers that contradict each other are flagged, with both claims side by side (#21 point 5).

The attack: take a marked image, strip its metadata, and sign a new manifest with a self-made
certificate that says a camera took it.  Before, the verdict read ``valid-untrusted`` and never showed
the manifest the watermark leads to; now it keeps that outcome for the embedded manifest but carries a
``conflict`` with the embedded claim, the watermark's own (trusted) manifest and what they disagree on,
and ``media verify`` exits 7 and prints a CONFLICT line.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.unit.media.conftest import encode, textured_image
from tracemark._json import JSONObject, JSONValue
from tracemark.cli._main import main
from tracemark.keys import Keyring, MediaCertificate, ensure_log_key, ensure_media_certificate
from tracemark.media import (
    ALGORITHM,
    ContentSigner,
    MediaKey,
    MediaVerdict,
    Outcome,
    SoftBindingRepository,
    mark_image,
    media_key,
    signer_for,
    verify_image,
)
from tracemark.media._credentials import sign_asset

CAMERA = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def _camera_claim(binding_value: str | None = None) -> JSONObject:
    assertions: list[JSONValue] = [
        {
            "label": "c2pa.actions",
            "data": {
                "actions": [
                    {"action": "c2pa.created", "digitalSourceType": CAMERA, "softwareAgent": {"name": "Canon EOS R5"}}
                ]
            },
        }
    ]
    if binding_value is not None:  # a forger copying the watermark's binding into the new manifest
        assertions.append(
            {
                "label": "c2pa.soft-binding",
                "data": {"alg": ALGORITHM, "blocks": [{"scope": {}, "value": binding_value}]},
            }
        )
    return {"claim_generator_info": [{"name": "camera-firmware", "version": "1.0"}], "title": "IMG_0001.png",
            "assertions": assertions}  # fmt: skip


def _conflict(verdict: MediaVerdict) -> Any:
    """The verdict's conflict as the JSON a user reads (``media verify --json``), after a JSON round trip."""
    assert verdict.conflict is not None
    return json.loads(json.dumps(verdict.to_json()))["conflict"]


def _strip(data: bytes) -> bytes:
    return encode(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), "PNG")


def _resigned(data: bytes, forger: MediaCertificate, binding_value: str | None = None) -> bytes:
    forger_signer = signer_for(forger.chain_pem, forger.private_key_pem)
    return sign_asset(_strip(data), "image/png", _camera_claim(binding_value), forger_signer).data


def test_a_camera_claim_signed_over_a_marked_image_is_a_conflict(
    key: MediaKey,
    signer: ContentSigner,
    certificate: MediaCertificate,
    foreign_chain: MediaCertificate,
    repository: SoftBindingRepository,
) -> None:
    marked = mark_image(encode(textured_image(81, 512, 512)), key=key, signer=signer, model_id="org/imagegen@3",
                        output_format="PNG", repository=repository)  # fmt: skip
    forged = _resigned(marked.data, foreign_chain)
    verdict = verify_image(forged, keys=[key], trust_anchors_pem=certificate.root_pem, repository=repository)
    assert verdict.outcome is Outcome.VALID_UNTRUSTED  # the embedded manifest on its own: intact, nobody vouches
    conflict = _conflict(verdict)
    embedded, recovered = conflict["embedded"], conflict["recovered"]
    assert embedded["digital_source_type"] == CAMERA
    assert embedded["model_id"] == "Canon EOS R5"
    assert embedded["outcome"] == "valid-untrusted"
    assert recovered["manifest_id"] == marked.manifest_id
    assert recovered["outcome"] == "recovered-via-soft-binding"  # the watermark's manifest is signed and trusted
    assert recovered["digital_source_type"] == AI
    assert recovered["model_id"] == "org/imagegen@3"
    assert "tracemark development C2PA signer" in str(recovered["signer"])
    assert "claim_time" in recovered  # None here: without a time-stamp authority the claim states no time
    assert conflict["watermark"]["record_id"] == marked.record_id
    disagreements: list[str] = conflict["disagreements"]
    assert any("does not declare" in line for line in disagreements)
    assert any(line.startswith("source type:") and "trainedAlgorithmicMedia" in line for line in disagreements)
    assert any(line.startswith("model:") for line in disagreements)
    assert set(disagreements) <= set(verdict.contradictions)
    layer = {found.name: found for found in verdict.layers}["recovered-manifest"]
    assert layer.found  # before: "not needed: the file carries its own manifest"
    assert marked.manifest_id in layer.proves


def test_a_copied_binding_does_not_make_the_forgery_agree(
    key: MediaKey,
    signer: ContentSigner,
    certificate: MediaCertificate,
    foreign_chain: MediaCertificate,
    repository: SoftBindingRepository,
) -> None:
    marked = mark_image(encode(textured_image(82, 512, 512)), key=key, signer=signer, model_id="org/imagegen@3",
                        output_format="PNG", repository=repository)  # fmt: skip
    forged = _resigned(marked.data, foreign_chain, binding_value=marked.binding_value)
    verdict = verify_image(forged, keys=[key], trust_anchors_pem=certificate.root_pem, repository=repository)
    conflict = _conflict(verdict)
    assert any("copied" in line for line in conflict["disagreements"])
    assert conflict["recovered"]["manifest_id"] == marked.manifest_id


def test_without_a_repository_the_conflict_still_shows_the_watermark(
    key: MediaKey, signer: ContentSigner, certificate: MediaCertificate, foreign_chain: MediaCertificate
) -> None:
    marked = mark_image(encode(textured_image(83, 512, 512)), key=key, signer=signer, model_id="m", output_format="PNG")
    verdict = verify_image(_resigned(marked.data, foreign_chain), keys=[key], trust_anchors_pem=certificate.root_pem)
    conflict = _conflict(verdict)
    assert conflict["recovered"] is None
    assert conflict["watermark"]["record_id"] == marked.record_id


def test_the_marked_original_has_no_conflict(
    key: MediaKey, signer: ContentSigner, certificate: MediaCertificate, repository: SoftBindingRepository
) -> None:
    marked = mark_image(encode(textured_image(84, 512, 512)), key=key, signer=signer, model_id="m",
                        output_format="PNG", repository=repository)  # fmt: skip
    verdict = verify_image(marked.data, keys=[key], trust_anchors_pem=certificate.root_pem, repository=repository)
    assert verdict.outcome is Outcome.TRUSTED
    assert verdict.conflict is None
    assert verdict.to_json()["conflict"] is None


def test_cli_prints_the_conflict_and_exits_7(
    isolated_home: Path, tmp_path: Path, foreign_chain: MediaCertificate, capsys: pytest.CaptureFixture[str]
) -> None:
    keyring = Keyring()
    keyring.create()
    ensure_log_key(keyring)
    ensure_media_certificate(keyring)
    source = tmp_path / "in.png"
    source.write_bytes(encode(textured_image(85, 512, 512)))
    marked = tmp_path / "marked.png"
    assert main(["media", "mark", str(source), str(marked), "--model-id", "org/imagegen@3"]) == 0
    forged = tmp_path / "IMG_0001.png"
    forged.write_bytes(_resigned(marked.read_bytes(), foreign_chain))
    capsys.readouterr()
    assert main(["media", "verify", str(forged), "--no-search"]) == 7
    out = capsys.readouterr().out
    assert "outcome: valid-untrusted" in out
    assert "CONFLICT: the embedded manifest and the watermark's own manifest make different claims" in out
    for shown in ("embedded: manifest", "Canon EOS R5", "digitalCapture"):
        assert shown in out
    for shown in ("recovered: manifest", "org/imagegen@3", "trainedAlgorithmicMedia"):
        assert shown in out
    assert "trust anchors" in out
    assert media_key(keyring).key_id in out
