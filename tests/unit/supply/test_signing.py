"""Model signing: interoperable bundles, every mutation refused, coverage and signer pinning enforced."""

from __future__ import annotations

import base64
import datetime
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tracemark.errors import InvalidInputError, ModelSignatureError
from tracemark.supply import sign_model, verify_model


def write_key(folder: Path, name: str) -> tuple[Path, Path, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = folder / f"{name}.pem"
    public = folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public, key


def certificate(
    subject_key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    subject: str,
    issuer: str,
    *,
    ca: bool,
    email: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    if email:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\x01" * 4096)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "tokenizer.json").write_text("{}")
    return folder


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public, _ = write_key(tmp_path, "signer")
    return private, public


@pytest.fixture
def signed(model: Path, keys: tuple[Path, Path], tmp_path: Path) -> Path:
    signature = tmp_path / "model.sig"
    sign_model(model, signature, private_key=keys[0])
    return signature


def test_sign_and_verify_key_mode(model: Path, keys: tuple[Path, Path], signed: Path) -> None:
    verified = verify_model(model, signed, public_key=keys[1])
    assert sorted(f.name for f in verified.files) == ["config.json", "model.safetensors", "sub/tokenizer.json"]
    assert verified.signer.startswith("key:")


def test_signature_inside_the_model_folder(model: Path, keys: tuple[Path, Path]) -> None:
    signature = model / "model.sig"
    sign_model(model, signature, private_key=keys[0])
    assert len(verify_model(model, signature, public_key=keys[1]).files) == 3


MUTATIONS = {
    "added": lambda m: (m / "evil.pkl").write_bytes(b"\x80\x02."),
    "added_in_git": lambda m: (m / ".git").mkdir() or (m / ".git" / "hook.pkl").write_bytes(b"x"),
    "changed": lambda m: (m / "model.safetensors").write_bytes(b"\x01" * 4095 + b"\x02"),
    "deleted": lambda m: (m / "config.json").unlink(),
    "renamed": lambda m: (m / "config.json").rename(m / "config2.json"),
    "symlink": lambda m: (m / "link").symlink_to("config.json"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_every_folder_mutation_is_refused(model: Path, keys: tuple[Path, Path], signed: Path, mutation: str) -> None:
    MUTATIONS[mutation](model)
    with pytest.raises(ModelSignatureError):
        verify_model(model, signed, public_key=keys[1])


def test_wrong_key_is_refused(model: Path, signed: Path, tmp_path: Path) -> None:
    _, other_public, _ = write_key(tmp_path, "other")
    with pytest.raises(ModelSignatureError, match="does not verify"):
        verify_model(model, signed, public_key=other_public)


@pytest.mark.parametrize("part", ["payload", "signature"])
def test_edited_envelope_is_refused(model: Path, keys: tuple[Path, Path], signed: Path, part: str) -> None:
    bundle = json.loads(signed.read_text())
    envelope = bundle["dsseEnvelope"]
    if part == "payload":
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["predicate"]["resources"][0]["digest"] = "00" * 32
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    else:
        raw = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
        raw[-1] ^= 1
        envelope["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    signed.write_text(json.dumps(bundle))
    with pytest.raises(ModelSignatureError, match="does not verify"):
        verify_model(model, signed, public_key=keys[1])


def test_signer_chosen_exclusions_are_refused(model: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    import model_signing

    (model / "evil.pkl").write_bytes(b"\x80\x02.")
    signature = tmp_path / "lenient.sig"
    hashing = model_signing.hashing.Config().set_ignored_paths(paths=["evil.pkl"], ignore_git_paths=True)  # type: ignore[no-untyped-call]
    signer = model_signing.signing.Config()  # type: ignore[no-untyped-call]
    signer.set_hashing_config(hashing).use_elliptic_key_signer(private_key=keys[0]).sign(model, signature)
    with pytest.raises(ModelSignatureError, match="excluded by the signer's ignore_paths"):
        verify_model(model, signature, public_key=keys[1])


def test_garbage_signature_files(model: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    for content in (b"", b"not json", b"[]", b'{"dsseEnvelope": {"payload": "!!"}}'):
        bad = tmp_path / "bad.sig"
        bad.write_bytes(content)
        with pytest.raises(ModelSignatureError):
            verify_model(model, bad, public_key=keys[1])
    # A missing input path is bad input (exit 2), not a signature verdict.
    with pytest.raises(InvalidInputError, match="no such signature file"):
        verify_model(model, tmp_path / "absent.sig", public_key=keys[1])


@pytest.mark.parametrize(
    "material",
    [
        {"certificate": {"rawBytes": "\u00e9t\u00e9"}},  # not ASCII: base64 decoding raised ValueError
        {"certificate": {"rawBytes": 7}},
        {"certificate": "rawBytes"},
        {"x509CertificateChain": {"certificates": []}},
        {"x509CertificateChain": {"certificates": "MIIB"}},
        {"x509CertificateChain": [{"rawBytes": "MIIB"}]},
        ["certificate"],
        "certificate",
    ],
)
def test_a_bundle_without_a_usable_certificate_is_refused_in_one_line(
    model: Path, signed: Path, tmp_path: Path, material: object
) -> None:
    bundle = json.loads(signed.read_text())
    bundle["verificationMaterial"] = material
    signed.write_text(json.dumps(bundle))
    with pytest.raises(ModelSignatureError, match="no signing certificate"):
        verify_model(model, signed, certificate_chain=[tmp_path / "ca.crt"], signer_identity="release@example.com")


@pytest.mark.parametrize("envelope", [{"payload": 7}, {"payload": "\u00e9"}, ["payload"], "payload", None])
def test_a_bundle_without_a_readable_payload_is_refused_in_one_line(
    model: Path, keys: tuple[Path, Path], signed: Path, envelope: object
) -> None:
    bundle = json.loads(signed.read_text())
    bundle["dsseEnvelope"] = envelope
    signed.write_text(json.dumps(bundle))
    with pytest.raises(ModelSignatureError, match="no readable DSSE payload"):
        verify_model(model, signed, public_key=keys[1])


def test_certificate_mode_with_pinned_signer(model: Path, tmp_path: Path) -> None:
    _, _, ca_key = write_key(tmp_path, "ca")
    leaf_private, _, leaf_key = write_key(tmp_path, "leaf")
    ca_cert = certificate(ca_key, ca_key, "Test Root", "Test Root", ca=True)
    leaf_cert = certificate(leaf_key, ca_key, "model-release", "Test Root", ca=False, email="release@example.com")
    (tmp_path / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.crt").write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    signature = tmp_path / "cert.sig"
    sign_model(
        model,
        signature,
        private_key=leaf_private,
        certificate=tmp_path / "leaf.crt",
        certificate_chain=[tmp_path / "ca.crt"],
    )
    chain = [tmp_path / "ca.crt"]
    verified = verify_model(model, signature, certificate_chain=chain, signer_identity="release@example.com")
    assert "model-release" in verified.identities
    fingerprint = leaf_cert.fingerprint(hashes.SHA256()).hex()
    verify_model(model, signature, certificate_chain=chain, signer_fingerprint=fingerprint)
    with pytest.raises(ModelSignatureError, match="pinned signer"):
        verify_model(model, signature, certificate_chain=chain, signer_identity="someone@example.com")
    with pytest.raises(ModelSignatureError, match="fingerprint"):
        verify_model(model, signature, certificate_chain=chain, signer_fingerprint="00" * 32)
    with pytest.raises(ModelSignatureError, match="pinned signer"):
        verify_model(model, signature, certificate_chain=chain)
    _, _, other_ca_key = write_key(tmp_path, "other-ca")
    other_ca = certificate(other_ca_key, other_ca_key, "Other Root", "Other Root", ca=True)
    (tmp_path / "other.crt").write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ModelSignatureError, match="does not verify"):
        verify_model(model, signature, certificate_chain=[tmp_path / "other.crt"], signer_identity="model-release")


def test_model_signing_cli_verifies_our_signature(model: Path, keys: tuple[Path, Path], signed: Path) -> None:
    cli = Path(sys.executable).parent / "model_signing"
    assert cli.exists(), "the supply extra installs model-signing, and with it the model_signing CLI"
    result = subprocess.run(
        [str(cli), "verify", "key", "--signature", str(signed), "--public_key", str(keys[1]), str(model)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    shutil.rmtree(model / "sub")
    result = subprocess.run(
        [str(cli), "verify", "key", "--signature", str(signed), "--public_key", str(keys[1]), str(model)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0


def test_we_verify_what_model_signing_signs(model: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    """A bundle made by the library with its own defaults verifies here when it covers every file."""
    import model_signing

    signature = tmp_path / "library.sig"
    signer = model_signing.signing.Config()  # type: ignore[no-untyped-call]
    signer.use_elliptic_key_signer(private_key=keys[0]).sign(model, signature)
    assert len(verify_model(model, signature, public_key=keys[1]).files) == 3


def test_a_changed_file_is_named_with_readable_digests(model: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    signature = tmp_path / "model.sig"
    sign_model(model, signature, private_key=keys[0])
    victim = next(p for p in sorted(model.rglob("*")) if p.is_file())
    victim.write_bytes(b"!" + victim.read_bytes()[1:])
    with pytest.raises(ModelSignatureError) as caught:
        verify_model(model, signature, public_key=keys[1])
    message = str(caught.value)
    assert f"1 file(s) changed since signing: {victim.relative_to(model).as_posix()} (signed sha256 " in message
    assert "\\x" not in message
    assert "digest_value" not in message


def test_missing_inputs_exit_2(model: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    from tracemark.cli import main

    absent = str(tmp_path / "absent")
    assert main(["supply", "sign", absent, "--signature", str(tmp_path / "s"), "--private-key", str(keys[0])]) == 2
    assert main(["supply", "sign", str(model), "--signature", str(tmp_path / "s"), "--private-key", absent]) == 2
    assert main(["supply", "verify", absent, "--signature", str(tmp_path / "s"), "--public-key", str(keys[1])]) == 2
    assert main(["supply", "verify", str(model), "--signature", absent, "--public-key", str(keys[1])]) == 2
    assert main(["supply", "deps", absent, "--db", absent]) == 2
    assert main(["supply", "bom", absent]) == 2
    assert main(["supply", "scan", absent]) == 2
