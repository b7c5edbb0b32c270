"""The verification policy under tampering: each case ends in its expected outcome and status code.

The signed files are real C2PA assets made by c2pa-rs; each case changes one thing (pixels, manifest
bytes, signature, certificate, trust anchor, metadata) and checks the outcome and the failing code.
"""

from __future__ import annotations

import datetime
import io
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from tests.unit.media.conftest import encode, textured_image
from tracemark._json import FrozenDict, as_mapping, as_sequence
from tracemark.errors import ImageInputError
from tracemark.keys import MediaCertificate
from tracemark.keys._media_cert import DOCUMENT_SIGNING, make_certificate_chain
from tracemark.media import (
    ALGORITHM,
    ContentSigner,
    MarkedImage,
    MediaKey,
    MediaVerdict,
    Outcome,
    SoftBindingRepository,
    decode_image,
    mark_image,
    signer_for,
    verify_image,
)
from tracemark.media._credentials import settings

SOURCE = encode(textured_image(21, 640, 640))


@dataclass(frozen=True)
class Signed:
    key: MediaKey
    chain: MediaCertificate
    jpeg: MarkedImage
    png: MarkedImage
    webp: MarkedImage
    repository: SoftBindingRepository


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    key = MediaKey.from_secret(bytes(range(32)))
    chain = make_certificate_chain()
    repository = SoftBindingRepository(tmp_path_factory.mktemp("repo") / "bindings.sqlite3")
    signer = signer_for(chain.chain_pem, chain.private_key_pem)

    def mark(image_format: str) -> MarkedImage:
        return mark_image(SOURCE, key=key, signer=signer, model_id="org/image-model", output_format=image_format,
                          repository=repository)  # fmt: skip

    return Signed(key, chain, mark("JPEG"), mark("PNG"), mark("WEBP"), repository)


def _verify(
    signed: Signed, data: bytes, *, anchors: bytes | None = b"default", repository: bool = True
) -> MediaVerdict:
    return verify_image(
        data,
        keys=[signed.key],
        trust_anchors_pem=signed.chain.root_pem if anchors == b"default" else anchors,
        repository=signed.repository if repository else None,
        search=False,
    )


def _flip(data: bytes, needle: bytes, offset: int = 3) -> bytes:
    position = data.find(needle)
    assert position > 0, needle
    changed = bytearray(data)
    changed[position + offset] ^= 0x01
    return bytes(changed)


def _strip(data: bytes, transform: Callable[[Image.Image], Image.Image] = lambda p: p, quality: int = 92) -> bytes:
    out = io.BytesIO()
    transform(Image.open(io.BytesIO(data)).convert("RGB")).save(out, "JPEG", quality=quality)
    return out.getvalue()


def _leaf_der(chain_pem: bytes) -> bytes:
    return x509.load_pem_x509_certificates(chain_pem)[0].public_bytes(serialization.Encoding.DER)


def _replace_leaf(data: bytes, chain_pem: bytes, new_leaf: bytes) -> bytes:
    old_leaf = _leaf_der(chain_pem)
    assert len(old_leaf) == len(new_leaf), "test certificates must encode to the same length"
    assert data.count(old_leaf) == 1
    return data.replace(old_leaf, new_leaf)


def _issue_leaf(
    issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey, leaf_key: ec.EllipticCurvePrivateKey,
    not_before: datetime.datetime, days: int,
) -> x509.Certificate:  # fmt: skip
    return (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "test signer"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test"),
                ]
            )
        )
        .issuer_name(issuer.subject)
        .public_key(leaf_key.public_key())
        .serial_number(0x1234567890ABCDEF)
        .not_valid_before(not_before)
        .not_valid_after(not_before + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def _same_length_leaves(
    issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
    first: tuple[ec.EllipticCurvePrivateKey, datetime.datetime],
    second: tuple[ec.EllipticCurvePrivateKey, datetime.datetime],
) -> tuple[x509.Certificate, bytes]:  # fmt: skip
    """Two 365-day leaves whose DER encodings have the same length, so one can replace the other in place.

    ECDSA signatures vary by a byte or more (r and s each lose a byte with probability 1/2 or 1/256), so
    both are re-signed until they agree; re-signing only the second could never match a rare short first.
    """
    for _ in range(256):
        cert = _issue_leaf(issuer, issuer_key, first[0], first[1], 365)
        other = _issue_leaf(issuer, issuer_key, second[0], second[1], 365).public_bytes(serialization.Encoding.DER)
        if len(cert.public_bytes(serialization.Encoding.DER)) == len(other):
            return cert, other
    raise AssertionError("no two certificates of the same length")


def _root() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "test root"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")]
    )
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=36500))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return root, key


def _pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


# -- valid files -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("image_format", ["jpeg", "png", "webp"])
def test_signed_files_are_trusted(signed: Signed, image_format: str) -> None:
    marked: MarkedImage = getattr(signed, image_format)
    verdict = _verify(signed, marked.data)
    assert verdict.outcome is Outcome.TRUSTED
    assert verdict.codes == ()
    assert verdict.manifest_id == marked.manifest_id
    assert verdict.watermark is not None
    assert verdict.watermark.record_id == marked.record_id
    layers = {layer.name: layer.found for layer in verdict.layers}
    assert layers["signed-metadata"]
    assert layers["watermark"]
    assert verdict.machine_readable_ai_marking


def test_manifest_names_the_ai_source_and_soft_binding(signed: Signed) -> None:
    manifest = _verify(signed, signed.jpeg.data).manifest
    assert manifest is not None
    text = str(manifest)
    assert "trainedAlgorithmicMedia" in text
    assert "c2pa.soft-binding" in text
    assert signed.jpeg.binding_value in text
    assert isinstance(manifest, FrozenDict)  # the verdict holds a read-only copy of the file's manifest
    assert as_mapping(as_sequence(manifest["claim_generator_info"])[0])["name"] == "tracemark"


def test_callback_signer_for_a_kms(signed: Signed) -> None:
    private = serialization.load_pem_private_key(signed.chain.private_key_pem, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    calls: list[int] = []

    def sign(data: bytes) -> bytes:
        calls.append(len(data))
        r, s = utils.decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    marked = mark_image(SOURCE, key=signed.key, signer=ContentSigner(chain_pem=signed.chain.chain_pem, callback=sign),
                        model_id="org/image-model")  # fmt: skip
    assert calls
    assert _verify(signed, marked.data).outcome is Outcome.TRUSTED


# -- the tamper suite ------------------------------------------------------------------------------------------
def test_no_trust_anchor_is_valid_but_untrusted(signed: Signed) -> None:
    verdict = _verify(signed, signed.jpeg.data, anchors=None)
    assert verdict.outcome is Outcome.VALID_UNTRUSTED
    assert verdict.codes == ("signingCredential.untrusted",)


def test_wrong_trust_anchor_is_valid_but_untrusted(signed: Signed) -> None:
    other = make_certificate_chain(root_name="another root")
    verdict = _verify(signed, signed.jpeg.data, anchors=other.root_pem)
    assert verdict.outcome is Outcome.VALID_UNTRUSTED
    assert verdict.codes == ("signingCredential.untrusted",)


def test_changed_pixel_bytes_break_the_hard_binding(signed: Signed) -> None:
    changed = bytearray(signed.jpeg.data)
    changed[-5000] ^= 0x10  # inside the entropy-coded scan
    verdict = _verify(signed, bytes(changed))
    assert verdict.outcome is Outcome.INVALID
    assert "assertion.dataHash.mismatch" in verdict.codes


def test_a_truncated_file_is_bad_input_not_broken_provenance(signed: Signed) -> None:
    # A cut-off download is not evidence of tampering: it is refused as input (exit 2), manifest or not (#21).
    with pytest.raises(ImageInputError, match="truncated"):
        _verify(signed, signed.jpeg.data[:-3000])


def test_a_complete_but_undecodable_scan_is_judged_by_its_manifest(signed: Signed) -> None:
    data = bytearray(signed.jpeg.data)
    eoi = data.rindex(b"\xff\xd9")
    data[eoi - 4000 : eoi - 2000] = b"\xff\xc8" * 1000  # markers JPEG reserves, inside the scan: undecodable
    with pytest.raises(ImageInputError):
        decode_image(bytes(data))
    verdict = _verify(signed, bytes(data))  # the hard binding still speaks
    assert verdict.outcome is Outcome.INVALID
    assert "assertion.dataHash.mismatch" in verdict.codes
    assert "image.undecodable" in verdict.codes
    assert verdict.watermark is None


def test_repainted_png_keeping_the_manifest_chunk(signed: Signed) -> None:
    original = signed.png.data
    repainted = np.asarray(Image.open(io.BytesIO(original)).convert("RGB")).copy()
    repainted[100:140, 100:140] = 255
    fresh = encode(repainted)

    def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
        found, position = [], 8
        while position < len(data):
            (length,) = struct.unpack(">I", data[position : position + 4])
            found.append((data[position + 4 : position + 8], data[position : position + 12 + length]))
            position += 12 + length
        return found

    new_idat = b"".join(raw for kind, raw in chunks(fresh) if kind == b"IDAT")
    rebuilt, placed = [original[:8]], False
    for kind, raw in chunks(original):
        if kind == b"IDAT":
            if not placed:
                rebuilt.append(new_idat)
                placed = True
            continue
        rebuilt.append(raw)
    verdict = _verify(signed, b"".join(rebuilt))
    assert verdict.outcome is Outcome.INVALID
    assert "assertion.dataHash.mismatch" in verdict.codes


def test_changed_assertion_bytes(signed: Signed) -> None:
    verdict = _verify(signed, _flip(signed.jpeg.data, b"trainedAlgorithmicMedia"))
    assert verdict.outcome is Outcome.INVALID
    assert "assertion.hashedURI.mismatch" in verdict.codes


def test_changed_signature_bytes(signed: Signed) -> None:
    verdict = _verify(signed, _flip(signed.jpeg.data, b"c2pa.signature", offset=200))
    assert verdict.outcome is Outcome.INVALID
    assert "claimSignature.mismatch" in verdict.codes


def test_swapped_certificate(signed: Signed) -> None:
    """The signer's certificate replaced by another key's: the claim signature no longer verifies."""
    root, root_key = _root()
    key_a, key_b = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    leaf_a, leaf_b = _same_length_leaves(root, root_key, (key_a, start), (key_b, start))
    key_pem = key_a.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())  # fmt: skip
    marked = mark_image(SOURCE, key=signed.key, signer=signer_for(_pem(leaf_a, root), key_pem), model_id="m",
                        output_format="JPEG")  # fmt: skip
    anchors = _pem(root)
    assert _verify(signed, marked.data, anchors=anchors).outcome is Outcome.TRUSTED
    swapped = _replace_leaf(marked.data, _pem(leaf_a), leaf_b)
    verdict = _verify(signed, swapped, anchors=anchors)
    assert verdict.outcome is Outcome.INVALID
    assert "claimSignature.mismatch" in verdict.codes


def test_expired_certificate(signed: Signed) -> None:
    """The same key, but a certificate whose validity ended years ago."""
    root, root_key = _root()
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    old = datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC)
    valid, expired = _same_length_leaves(root, root_key, (leaf_key, now - datetime.timedelta(days=1)), (leaf_key, old))
    key_pem = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())  # fmt: skip
    marked = mark_image(SOURCE, key=signed.key, signer=signer_for(_pem(valid, root), key_pem), model_id="m",
                        output_format="JPEG")  # fmt: skip
    aged = _replace_leaf(marked.data, _pem(valid), expired)
    verdict = _verify(signed, aged, anchors=_pem(root))
    assert verdict.outcome is Outcome.INVALID
    assert "signingCredential.expired" in verdict.codes


def test_stripped_manifest_is_recovered_through_the_watermark(signed: Signed) -> None:
    verdict = _verify(signed, _strip(signed.png.data))
    assert verdict.outcome is Outcome.RECOVERED
    assert verdict.manifest_id == signed.png.manifest_id
    layers = {layer.name: layer.found for layer in verdict.layers}
    assert layers == {"signed-metadata": False, "watermark": True, "recovered-manifest": True, "log-entry": False}


def test_stripped_recompressed_and_shrunk_is_recovered(signed: Signed) -> None:
    laundered = _strip(
        signed.jpeg.data, lambda p: p.resize((p.width // 2, p.height // 2), Image.Resampling.BICUBIC), 50
    )
    verdict = _verify(signed, laundered)
    assert verdict.outcome is Outcome.RECOVERED
    assert verdict.manifest_id == signed.jpeg.manifest_id


def test_stripped_without_repository_is_watermark_only(signed: Signed) -> None:
    verdict = _verify(signed, _strip(signed.jpeg.data), repository=False)
    assert verdict.outcome is Outcome.WATERMARK_ONLY
    assert verdict.codes == ("softBinding.manifestNotFound",)


def test_recovered_manifest_from_an_untrusted_signer(signed: Signed) -> None:
    other = make_certificate_chain(root_name="another root")
    verdict = _verify(signed, _strip(signed.jpeg.data), anchors=other.root_pem)
    assert verdict.outcome is Outcome.INVALID
    assert verdict.codes == ("signingCredential.untrusted",)


def test_tampered_manifest_in_the_repository(tmp_path: Path, signed: Signed) -> None:
    store = signed.repository.manifest(signed.webp.manifest_id)
    assert store is not None
    tampered = _flip(store, b"trainedAlgorithmicMedia")
    with SoftBindingRepository(tmp_path / "forged.sqlite3") as forged:
        forged.add(alg=ALGORITHM, value=signed.webp.binding_value, manifest_id=signed.webp.manifest_id,
                   manifest=tampered, content_sha256="0" * 64, log_index=None)  # fmt: skip
        verdict = verify_image(_strip(signed.webp.data), keys=[signed.key], trust_anchors_pem=signed.chain.root_pem,
                               repository=forged, search=False)  # fmt: skip
    assert verdict.outcome is Outcome.INVALID
    assert "assertion.hashedURI.mismatch" in verdict.codes


def test_manifest_filed_under_another_binding(tmp_path: Path, signed: Signed) -> None:
    """A repository answering with some other image's manifest: its soft binding does not match."""
    store = signed.repository.manifest(signed.png.manifest_id)
    assert store is not None
    with SoftBindingRepository(tmp_path / "forged.sqlite3") as forged:
        forged.add(alg=ALGORITHM, value=signed.jpeg.binding_value, manifest_id=signed.png.manifest_id,
                   manifest=store, content_sha256="0" * 64, log_index=None)  # fmt: skip
        verdict = verify_image(_strip(signed.jpeg.data), keys=[signed.key], trust_anchors_pem=signed.chain.root_pem,
                               repository=forged, search=False)  # fmt: skip
    assert verdict.outcome is Outcome.INVALID
    assert verdict.codes == ("softBinding.mismatch",)


def test_unmarked_image(signed: Signed) -> None:
    verdict = _verify(signed, encode(textured_image(99, 400, 400), "JPEG"))
    assert verdict.outcome is Outcome.UNMARKED
    assert not verdict.machine_readable_ai_marking


# -- offline ---------------------------------------------------------------------------------------------------
def test_verification_never_touches_the_network(signed: Signed, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert _verify(signed, signed.jpeg.data).outcome is Outcome.TRUSTED
    assert _verify(signed, _strip(signed.jpeg.data)).outcome is Outcome.RECOVERED
    config = settings(b"anchor")
    assert config["verify"]["remote_manifest_fetch"] is False
    assert config["verify"]["ocsp_fetch"] is False
