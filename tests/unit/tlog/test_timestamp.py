"""RFC 3161 timestamps against a local Time-Stamping Authority built here with ``cryptography``:
the request, the answer, and every check on the token (signature, signed attributes, imprint, nonce)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.http import QuietHandler, loopback_server
from tracemark.tlog import NoteSigner, SignedNote, sign_note
from tracemark.tlog._timestamp import (
    CONTEXT_0,
    GENERALIZED_TIME,
    OCTET_STRING,
    OID_CONTENT_TYPE,
    OID_MESSAGE_DIGEST,
    OID_SHA256,
    OID_SIGNED_DATA,
    OID_TST_INFO,
    SET,
    TimestampError,
    _signed_content,
    der,
    der_int,
    der_oid,
    der_seq,
    parse_single,
    parse_timestamp_response,
    request_timestamp,
    timestamp_request,
    verify_timestamp,
)

GEN_TIME = datetime(2026, 12, 7, 6, 59, 0, tzinfo=UTC)
ECDSA_SHA256 = "1.2.840.10045.4.3.2"


def _certificate(key: ec.EllipticCurvePrivateKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(GEN_TIME - timedelta(days=1))
        .not_valid_after(GEN_TIME + timedelta(days=365))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(key, hashes.SHA256())
    )


@dataclass
class LocalTSA:
    """A tiny RFC 3161 TSA: answers ``TimeStampReq`` with a token signed by an ECDSA P-256 key."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    certificate: x509.Certificate = field(init=False)
    #: Changes to the answer, to test that the client refuses it.
    status: int = 0
    nonce_delta: int = 0
    imprint_of: bytes | None = None
    signing_key: ec.EllipticCurvePrivateKey | None = None
    requests: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.certificate = _certificate(self.key, "tracemark test TSA")

    def answer(self, request: bytes) -> bytes:
        self.requests.append(request)
        version, imprint, nonce, _cert_req = parse_single(request).children()
        assert version.integer() == 1
        if self.status not in (0, 1):
            return der_seq(der_seq(der_int(self.status), der_seq(der(0x0C, b"refused by the test"))))
        if self.imprint_of is not None:
            digest = der(OCTET_STRING, hashlib.sha256(self.imprint_of).digest())
            imprint_der = der_seq(der_seq(der_oid(OID_SHA256)), digest)
        else:
            imprint_der = imprint.encoded
        tst_info = der_seq(
            der_int(1), der_oid("1.3.6.1.4.1.99999.1"), imprint_der, der_int(4242),
            der(GENERALIZED_TIME, GEN_TIME.strftime("%Y%m%d%H%M%S.5Z").encode()),
            der_int(nonce.integer() + self.nonce_delta),
        )  # fmt: skip
        attributes = der_seq(der_oid(OID_CONTENT_TYPE), der(SET, der_oid(OID_TST_INFO))) + der_seq(
            der_oid(OID_MESSAGE_DIGEST), der(SET, der(OCTET_STRING, hashlib.sha256(tst_info).digest()))
        )
        signature = (self.signing_key or self.key).sign(der(SET, attributes), ec.ECDSA(hashes.SHA256()))
        issuer_and_serial = der_seq(self.certificate.issuer.public_bytes(), der_int(self.certificate.serial_number))
        signer_info = der_seq(
            der_int(1), issuer_and_serial, der_seq(der_oid(OID_SHA256)), der(CONTEXT_0, attributes),
            der_seq(der_oid(ECDSA_SHA256)), der(OCTET_STRING, signature),
        )  # fmt: skip
        signed_data = der_seq(
            der_int(3), der(SET, der_seq(der_oid(OID_SHA256))),
            der_seq(der_oid(OID_TST_INFO), der(CONTEXT_0, der(OCTET_STRING, tst_info))),
            der(CONTEXT_0, self.certificate.public_bytes(serialization.Encoding.DER)), der(SET, signer_info),
        )  # fmt: skip
        token = der_seq(der_oid(OID_SIGNED_DATA), der(CONTEXT_0, signed_data))
        return der_seq(der_seq(der_int(self.status)), token)


@contextlib.contextmanager
def serving(authority: LocalTSA) -> Iterator[str]:
    """``authority`` behind an HTTP server on a free loopback port; yields its URL."""

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server names it)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            assert self.headers["Content-Type"] == "application/timestamp-query"
            self.reply(200, authority.answer(body), {"Content-Type": "application/timestamp-reply"})

    with loopback_server(Handler) as url:
        yield f"{url}/tsa"


@pytest.fixture
def tsa() -> Iterator[tuple[LocalTSA, str]]:
    """The local TSA and its URL."""
    authority = LocalTSA()
    with serving(authority) as url:
        yield authority, url


def _checkpoint_body() -> bytes:
    signer = NoteSigner.generate("example.com/timestamped-log")
    note = sign_note("example.com/timestamped-log\n5\n" + "A" * 43 + "=\n", [signer])
    return SignedNote.parse(note).text.encode()


def test_a_checkpoint_is_timestamped_and_the_token_verifies(tsa: tuple[LocalTSA, str]) -> None:
    authority, url = tsa
    body = _checkpoint_body()
    token = request_timestamp(url, body, authority.certificate)
    assert token.gen_time == GEN_TIME.timestamp() + 0.5
    assert token.serial_number == 4242
    assert token.policy == "1.3.6.1.4.1.99999.1"
    (sent,) = authority.requests
    assert token.nonce == parse_single(sent).children()[2].integer()
    # Offline, later: the stored token still verifies over the same checkpoint, and only over it.
    assert verify_timestamp(token.token, body, authority.certificate).gen_time == token.gen_time
    with pytest.raises(TimestampError, match="message imprint"):
        verify_timestamp(token.token, body.replace(b"\n5\n", b"\n6\n"), authority.certificate)


def test_the_request_is_the_rfc_3161_structure() -> None:
    request = timestamp_request(b"data", 7)
    version, imprint, nonce, cert_req = parse_single(request).children()
    assert version.integer() == 1
    algorithm, digest = imprint.children()
    assert algorithm.children()[0].oid() == OID_SHA256
    assert digest.content == hashlib.sha256(b"data").digest()
    assert nonce.integer() == 7
    assert cert_req.content == b"\xff"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda tsa: setattr(tsa, "signing_key", ec.generate_private_key(ec.SECP256R1())), "signature"),
        (lambda tsa: setattr(tsa, "nonce_delta", 1), "nonce"),
        (lambda tsa: setattr(tsa, "imprint_of", b"other data"), "message imprint"),
        (lambda tsa: setattr(tsa, "status", 2), "refused"),
    ],
)
def test_bad_answers_are_refused(tsa: tuple[LocalTSA, str], change: Callable[[LocalTSA], None], reason: str) -> None:
    authority, url = tsa
    change(authority)
    with pytest.raises(TimestampError, match=reason):
        request_timestamp(url, _checkpoint_body(), authority.certificate)


def test_a_token_from_another_tsa_is_refused(tsa: tuple[LocalTSA, str]) -> None:
    authority, url = tsa
    body = _checkpoint_body()
    token = request_timestamp(url, body, authority.certificate)
    other = _certificate(ec.generate_private_key(ec.SECP256R1()), "another TSA")
    with pytest.raises(TimestampError, match="not the configured TSA certificate"):
        verify_timestamp(token.token, body, other)
    # Another key behind a certificate that copies the TSA's issuer and serial number: the signature decides.
    impostor_key = ec.generate_private_key(ec.SECP256R1())
    impostor = (
        x509.CertificateBuilder()
        .subject_name(authority.certificate.subject)
        .issuer_name(authority.certificate.issuer)
        .public_key(impostor_key.public_key())
        .serial_number(authority.certificate.serial_number)
        .not_valid_before(GEN_TIME - timedelta(days=1))
        .not_valid_after(GEN_TIME + timedelta(days=1))
        .sign(impostor_key, hashes.SHA256())
    )
    with pytest.raises(TimestampError, match="signature does not verify"):
        verify_timestamp(token.token, body, impostor)


def test_every_flipped_byte_of_what_the_tsa_signed_is_refused(tsa: tuple[LocalTSA, str]) -> None:
    authority, url = tsa
    body = _checkpoint_body()
    token = request_timestamp(url, body, authority.certificate).token
    tst_info, signer = _signed_content(token)
    start, signer_start = token.index(tst_info), token.index(signer.encoded)
    # The TSTInfo, then the SignerInfo: the signer's name, digest algorithm, signed attributes, signature.
    signed = [*range(start, start + len(tst_info)), *range(signer_start, len(token))]
    for position in signed:
        damaged = bytearray(token)
        damaged[position] ^= 0x01
        with pytest.raises(TimestampError):
            verify_timestamp(bytes(damaged), body, authority.certificate)


def test_malformed_answers_and_an_unreachable_tsa() -> None:
    with pytest.raises(TimestampError):
        parse_timestamp_response(b"\x30\x05\x30\x03\x02\x01")
    with pytest.raises(TimestampError, match="sent no token"):
        parse_timestamp_response(der_seq(der_seq(der_int(0))))
    certificate = _certificate(ec.generate_private_key(ec.SECP256R1()), "nobody")
    with pytest.raises(TimestampError, match="unreachable"):
        request_timestamp("http://127.0.0.1:9/tsa", b"x", certificate, timeout=2)
