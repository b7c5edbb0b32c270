"""The development C2PA certificate chain: a local root CA and a document-signing leaf, made at ``keys init``.

C2PA validators accept a signer only through a chain to a trust anchor, and self-signed leaves are
refused, so development needs a tiny PKI of its own::

    keys/c2pa/root.pem     EC P-256 root CA (CA:true, keyCertSign); the trust anchor verifiers pin
    keys/c2pa/chain.pem    leaf certificate then root, as the C2PA signer sends them
    keys/c2pa/signer.key   the leaf's private key (PKCS#8 PEM, mode 0600)

The leaf carries what the C2PA trust model asks of a claim signer: digitalSignature key usage, the
documentSigning (1.3.6.1.5.5.7.3.36) and emailProtection extended key usages, and SKI/AKI.  In
production a certificate from a CA on the C2PA trust list, or a signing callback into a KMS, replaces it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from tracemark.errors import KeyringError
from tracemark.keys._files import check_private, ensure_directory, keyring_lock, read_key_file, write_key_file
from tracemark.keys._keyring import Keyring

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
_DIRECTORY = "c2pa"
_ROOT_DAYS = 3650
_LEAF_DAYS = 730


@dataclass(frozen=True)
class MediaCertificate:
    """A C2PA signing chain (PEM) with its private key and the root to trust; ``repr`` hides the key."""

    chain_pem: bytes
    root_pem: bytes
    private_key_pem: bytes = field(repr=False)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tracemark development"),
        ]
    )


def make_certificate_chain(
    *,
    not_before: datetime.datetime | None = None,
    leaf_days: int = _LEAF_DAYS,
    root_name: str = "tracemark development C2PA root",
) -> MediaCertificate:
    """A fresh root CA and leaf signer (also used by tests to build expired or foreign chains)."""
    start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_subject = _name(root_name)
    root = (
        x509.CertificateBuilder()
        .subject_name(root_subject)
        .issuer_name(root_subject)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=_ROOT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("tracemark development C2PA signer"))
        .issuer_name(root_subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=leaf_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    root_pem = root.public_bytes(serialization.Encoding.PEM)
    return MediaCertificate(
        chain_pem=leaf.public_bytes(serialization.Encoding.PEM) + root_pem,
        root_pem=root_pem,
        private_key_pem=leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def ensure_media_certificate(keyring: Keyring) -> MediaCertificate:
    """The keyring's development chain, created on first use (idempotent).

    Creation runs under the keyring lock: processes racing through ``keys init`` never leave
    a root, chain and key that belong to different chains.
    """
    if not keyring.exists():
        raise keyring.missing_error()
    directory = keyring.directory / _DIRECTORY
    with keyring_lock(keyring.directory):
        if not (directory / "signer.key").is_file():
            made = make_certificate_chain()
            ensure_directory(directory)
            write_key_file(directory / "root.pem", made.root_pem, mode=0o644)
            write_key_file(directory / "chain.pem", made.chain_pem, mode=0o644)
            write_key_file(directory / "signer.key", made.private_key_pem)
    return load_media_certificate(keyring)


def load_media_certificate(keyring: Keyring) -> MediaCertificate:
    """The development chain; raises :class:`~tracemark.errors.KeyringError` when it was never made."""
    directory = keyring.directory / _DIRECTORY
    try:
        chain, _ = read_key_file(directory / "chain.pem", "C2PA certificate chain")
        root, _ = read_key_file(directory / "root.pem", "C2PA root certificate")
        private_key, mode = read_key_file(directory / "signer.key", "C2PA signing key")
    except FileNotFoundError:
        raise KeyringError(f"no C2PA signing certificate in {directory}: run 'tracemark keys init'") from None
    check_private(directory / "signer.key", mode, "C2PA signing key")
    return MediaCertificate(chain_pem=chain, root_pem=root, private_key_pem=private_key)
