"""The Article 50 layer lines: what each found layer proves depends on what was found, "not found" says what
it means, the manifest's signer, model, claim time and the trust anchors are named, and layers that
contradict each other are flagged."""

from __future__ import annotations

import json
from collections.abc import Mapping

from tests.unit.media.conftest import encode, textured_image
from tracemark.keys import MediaCertificate
from tracemark.media import (
    ContentSigner,
    MediaKey,
    SoftBindingRepository,
    decode_image,
    encode_image,
    mark_image,
    signer_for,
    verify_image,
)
from tracemark.media._credentials import manifest_definition, sign_asset
from tracemark.media._watermark import ALGORITHM


def _layers(verdict: object) -> dict[str, object]:
    return {layer.name: layer for layer in verdict.layers}  # type: ignore[attr-defined]


def test_a_trusted_image_names_signer_model_anchors_and_what_the_mark_proves(
    keyring_key: MediaKey, signer: ContentSigner, certificate: MediaCertificate, repository: SoftBindingRepository
) -> None:
    marked = mark_image(
        encode(textured_image(3)), key=keyring_key, signer=signer, model_id="acme/painter-2", repository=repository
    )
    verdict = verify_image(marked.data, keys=[keyring_key], trust_anchors_pem=certificate.root_pem, search=False)
    layers = {layer.name: layer for layer in verdict.layers}
    metadata, mark = layers["signed-metadata"], layers["watermark"]
    assert metadata.found
    assert "chaining to a configured trust anchor" in metadata.proves
    assert "trainedAlgorithmicMedia" in metadata.proves
    assert metadata.details["model_id"] == "acme/painter-2"
    assert "tracemark development C2PA signer" in str(metadata.details["signer"])
    assert metadata.details["claim_time"] is None  # no timestamp authority: the claim time is not stated
    anchors = metadata.details["trust_anchors"]
    assert isinstance(anchors, tuple)
    assert len(anchors) == 1
    assert isinstance(anchors[0], Mapping)
    assert len(str(anchors[0]["sha256"])) == 64
    assert mark.found
    assert marked.record_id in mark.proves
    assert "at most" in mark.proves
    assert verdict.contradictions == ()
    assert layers["recovered-manifest"].absent_means.startswith("not needed")
    assert layers["log-entry"].absent_means.startswith("not checked")  # verify_image was given no log


def test_an_untrusted_signer_is_said_so(
    keyring_key: MediaKey, foreign_chain: MediaCertificate, certificate: MediaCertificate
) -> None:
    foreign = signer_for(foreign_chain.chain_pem, foreign_chain.private_key_pem)
    marked = mark_image(encode(textured_image(4)), key=keyring_key, signer=foreign, model_id="acme/painter-2")
    verdict = verify_image(marked.data, keys=[keyring_key], trust_anchors_pem=certificate.root_pem, search=False)
    metadata = next(layer for layer in verdict.layers if layer.name == "signed-metadata")
    assert metadata.found
    assert "does NOT chain" in metadata.proves


def test_a_manifest_claiming_a_camera_on_watermarked_pixels_is_a_contradiction(
    keyring_key: MediaKey, signer: ContentSigner, certificate: MediaCertificate
) -> None:
    marked = mark_image(encode(textured_image(5)), key=keyring_key, signer=signer, model_id="acme/painter-2")
    pixels = decode_image(marked.data)
    plain = encode_image(pixels, "PNG")  # the watermark stays, the manifest is gone
    definition = manifest_definition(
        title="photo", algorithm=ALGORITHM, binding_value=marked.binding_value, model_id="camera"
    )
    text = json.dumps(definition).replace("/trainedAlgorithmicMedia", "/digitalCapture")
    definition = json.loads(text)
    relabelled = sign_asset(plain, "image/png", definition, signer).data
    verdict = verify_image(relabelled, keys=[keyring_key], trust_anchors_pem=certificate.root_pem, search=False)
    metadata = next(layer for layer in verdict.layers if layer.name == "signed-metadata")
    assert metadata.found
    assert "does NOT state an AI source type" in metadata.proves
    assert verdict.machine_readable_ai_marking  # the watermark still marks it
    assert any("does not state an AI source" in sentence for sentence in verdict.contradictions)
    assert verdict.to_json()["article_50"]["contradictions"]  # type: ignore[index,call-overload]


def test_an_unmarked_image_says_what_not_found_means(keyring_key: MediaKey, certificate: MediaCertificate) -> None:
    verdict = verify_image(
        encode(textured_image(6)), keys=[keyring_key], trust_anchors_pem=certificate.root_pem, search=False
    )
    assert not verdict.machine_readable_ai_marking
    for layer in verdict.layers:
        assert not layer.found
        assert layer.absent_means
        assert layer.proves == f"nothing: {layer.absent_means}"  # never a fixed claim for a layer not found
    metadata = _layers(verdict)["signed-metadata"]
    assert "does not show the image was made by a person" in metadata.absent_means  # type: ignore[attr-defined]
