"""RFC 3161 timestamps: a Time-Stamping Authority (TSA) vouches that data existed at a time.

The log asks a TSA to timestamp a published checkpoint's body (the signed note's text: origin,
size, root), so that the time a checkpoint existed is vouched for by someone other than the log.
Only what that needs is implemented, with a small DER encoder and reader and pyca/cryptography
for the signature:

* the request (RFC 3161 §2.4.1): ``TimeStampReq`` with a SHA-256 message imprint, a random 64-bit
  nonce and ``certReq``, sent as ``application/timestamp-query`` over HTTP POST;
* the answer (§2.4.2): ``TimeStampResp``; a status other than granted (0, 1) is refused with the
  TSA's status and failure info;
* the token: CMS ``SignedData`` (RFC 5652) holding a ``TSTInfo``.  :func:`verify_timestamp` checks
  that the content type is ``id-ct-TSTInfo``, that the signed attributes hold that content type and
  the SHA-256 ``messageDigest`` of the TSTInfo, the signature over the signed attributes with the
  configured TSA certificate's key (ECDSA, RSA PKCS#1 v1.5 or Ed25519), the message imprint
  against the data, and the nonce when one was sent.

Trust comes from configuration: the TSA's certificate is given, not found in the token, so no
certificate path is built (the same pinning as a log key).
"""

from __future__ import annotations

import hashlib
import secrets
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from tracemark.errors import TlogError

OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_TST_INFO = "1.2.840.113549.1.9.16.1.4"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"

#: Largest TSA answer read (bytes).
MAX_RESPONSE_BYTES = 64 * 1024

SEQUENCE, SET, INTEGER, OCTET_STRING, OID, NULL, BOOLEAN, GENERALIZED_TIME = (
    0x30, 0x31, 0x02, 0x04, 0x06, 0x05, 0x01, 0x18,
)  # fmt: skip
CONTEXT_0, CONTEXT_1 = 0xA0, 0xA1


class TimestampError(TlogError):
    """A TSA refused, answered something malformed, or a token does not verify."""


# -- DER -------------------------------------------------------------------------------------------
def der(tag: int, content: bytes) -> bytes:
    """One DER TLV (single-byte tags, definite lengths)."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def der_int(value: int) -> bytes:
    """A DER INTEGER (two's complement, minimal)."""
    return der(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def der_oid(dotted: str) -> bytes:
    """A DER OBJECT IDENTIFIER from its dotted form."""
    arcs = [int(part) for part in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return der(OID, bytes(body))


def der_seq(*items: bytes) -> bytes:
    """A DER SEQUENCE of already-encoded items."""
    return der(SEQUENCE, b"".join(items))


@dataclass(frozen=True)
class Node:
    """One DER element: its tag, content octets and full encoding."""

    tag: int
    content: bytes
    encoded: bytes

    def children(self) -> list[Node]:
        """The elements inside a constructed element."""
        if not self.tag & 0x20:
            raise TimestampError(f"DER element with tag 0x{self.tag:02x} is not constructed")
        return parse_all(self.content)

    def integer(self) -> int:
        """The value of an INTEGER."""
        self.expect(INTEGER)
        if not self.content:
            raise TimestampError("empty DER INTEGER")
        return int.from_bytes(self.content, "big", signed=True)

    def oid(self) -> str:
        """The dotted form of an OBJECT IDENTIFIER."""
        self.expect(OID)
        if not self.content or self.content[-1] & 0x80:
            raise TimestampError("malformed DER OBJECT IDENTIFIER")
        arcs: list[int] = []
        value = 0
        for byte in self.content:
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                arcs.append(value)
                value = 0
        first = min(arcs[0] // 40, 2)
        return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])

    def expect(self, tag: int) -> Node:
        """This element, if its tag is ``tag``."""
        if self.tag != tag:
            raise TimestampError(f"expected DER tag 0x{tag:02x}, found 0x{self.tag:02x}")
        return self


def parse_one(data: bytes, position: int = 0) -> tuple[Node, int]:
    """The DER element at ``position`` and the position after it."""
    if position + 2 > len(data):
        raise TimestampError("truncated DER")
    tag, first = data[position], data[position + 1]
    if tag & 0x1F == 0x1F:
        raise TimestampError("multi-byte DER tags are not used by RFC 3161")
    start = position + 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise TimestampError("DER length is indefinite or too long")
        size = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + size
    if end > len(data):
        raise TimestampError("truncated DER")
    return Node(tag, data[start:end], data[position:end]), end


def parse_all(data: bytes) -> list[Node]:
    """Every DER element in ``data``, which they must fill exactly."""
    nodes, position = [], 0
    while position < len(data):
        node, position = parse_one(data, position)
        nodes.append(node)
    return nodes


def parse_single(data: bytes) -> Node:
    """``data`` as exactly one DER element."""
    node, end = parse_one(data)
    if end != len(data):
        raise TimestampError("trailing bytes after DER")
    return node


# -- request and token -----------------------------------------------------------------------------
def timestamp_request(data: bytes, nonce: int) -> bytes:
    """RFC 3161 ``TimeStampReq`` for SHA-256(``data``) with ``nonce`` and ``certReq`` TRUE."""
    imprint = der_seq(der_seq(der_oid(OID_SHA256), der(NULL, b"")), der(OCTET_STRING, hashlib.sha256(data).digest()))
    return der_seq(der_int(1), imprint, der_int(nonce), der(BOOLEAN, b"\xff"))


@dataclass(frozen=True)
class TimestampToken:
    """A verified RFC 3161 token: the DER ``ContentInfo`` and what its TSTInfo says."""

    token: bytes
    #: When the TSA says the data existed (Unix seconds).
    gen_time: float
    serial_number: int
    policy: str
    nonce: int | None


def _gen_time(node: Node) -> float:
    text = node.expect(GENERALIZED_TIME).content.decode("ascii", "replace")
    if not text.endswith("Z"):
        raise TimestampError(f"genTime {text!r} is not UTC")
    whole, _, fraction = text[:-1].partition(".")
    try:
        moment = datetime.strptime(whole, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise TimestampError(f"genTime {text!r} is not a GeneralizedTime") from None
    return moment.timestamp() + (float("0." + fraction) if fraction.isdigit() else 0.0)


def _signed_content(token: bytes) -> tuple[bytes, Node]:
    """The TSTInfo DER and the (only) SignerInfo of a token."""
    content_info = parse_single(token).expect(SEQUENCE).children()
    if len(content_info) != 2 or content_info[0].oid() != OID_SIGNED_DATA:
        raise TimestampError("the token is not CMS SignedData")
    signed = parse_single(content_info[1].expect(CONTEXT_0).content).expect(SEQUENCE).children()
    if len(signed) < 4:
        raise TimestampError("SignedData is incomplete")
    encapsulated = signed[2].expect(SEQUENCE).children()
    if len(encapsulated) != 2 or encapsulated[0].oid() != OID_TST_INFO:
        raise TimestampError("the token's content is not a TSTInfo")
    tst_info = parse_single(encapsulated[1].expect(CONTEXT_0).content).expect(OCTET_STRING).content
    signer_infos = signed[-1].expect(SET).children()
    if len(signer_infos) != 1:
        raise TimestampError(f"the token has {len(signer_infos)} signers; one is expected")
    return tst_info, signer_infos[0]


def _check_signed_attributes(signer: list[Node], tst_info: bytes) -> bytes:
    """The bytes the TSA signed: its signed attributes, as a DER SET (RFC 5652 §5.4)."""
    if signer[2].expect(SEQUENCE).children()[0].oid() != OID_SHA256:
        raise TimestampError("the token's digest algorithm is not SHA-256")
    attributes = signer[3].expect(CONTEXT_0)
    found: dict[str, bytes] = {}
    for attribute in attributes.children():
        kind, values = attribute.expect(SEQUENCE).children()
        (value,) = values.expect(SET).children()
        found[kind.oid()] = value.encoded
    if found.get(OID_CONTENT_TYPE) != der_oid(OID_TST_INFO):
        raise TimestampError("the signed content-type attribute is not id-ct-TSTInfo")
    if found.get(OID_MESSAGE_DIGEST) != der(OCTET_STRING, hashlib.sha256(tst_info).digest()):
        raise TimestampError("the signed message digest does not match the TSTInfo")
    return der(SET, attributes.content)


#: Signature algorithms accepted per key type (RFC 5754, RFC 8419).
_SIGNATURE_ALGORITHMS = {
    "ec": {"1.2.840.10045.4.3.2"},  # ecdsa-with-SHA256
    "rsa": {"1.2.840.113549.1.1.11", "1.2.840.113549.1.1.1"},  # sha256WithRSAEncryption, rsaEncryption
    "ed25519": {"1.3.101.112"},
}


def _check_signer(certificate: x509.Certificate, sid: Node, algorithm: Node) -> None:
    """The SignerInfo names the configured certificate and a signature algorithm of its key's type."""
    if sid.tag == SEQUENCE:  # issuerAndSerialNumber
        issuer, serial = sid.children()
        if issuer.encoded != certificate.issuer.public_bytes() or serial.integer() != certificate.serial_number:
            raise TimestampError("the timestamp's signer is not the configured TSA certificate")
    elif sid.tag == 0x80:  # [0] subjectKeyIdentifier
        try:
            identifier = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            identifier = None
        if sid.content != identifier:
            raise TimestampError("the timestamp's signer is not the configured TSA certificate")
    else:
        raise TimestampError("the SignerInfo names its signer in an unknown way")
    key = certificate.public_key()
    kind = (
        "ec" if isinstance(key, ec.EllipticCurvePublicKey)
        else "rsa" if isinstance(key, rsa.RSAPublicKey)
        else "ed25519" if isinstance(key, ed25519.Ed25519PublicKey)
        else "unsupported"
    )  # fmt: skip
    if algorithm.expect(SEQUENCE).children()[0].oid() not in _SIGNATURE_ALGORITHMS.get(kind, set()):
        raise TimestampError(f"the timestamp's signature algorithm does not fit the TSA's {kind} key")


def _verify_signature(certificate: x509.Certificate, signature: bytes, signed: bytes) -> None:
    key = certificate.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signed)
        else:
            raise TimestampError(f"unsupported TSA key type {type(key).__name__}")
    except InvalidSignature:
        raise TimestampError("the timestamp's signature does not verify with the TSA's certificate") from None


def verify_timestamp(
    token: bytes, data: bytes, certificate: x509.Certificate, *, nonce: int | None = None
) -> TimestampToken:
    """Verify an RFC 3161 token over ``data`` signed by the TSA of ``certificate``; raises :class:`TimestampError`."""
    try:
        tst_info, signer_info = _signed_content(token)
        signer = signer_info.expect(SEQUENCE).children()
        if len(signer) < 6:
            raise TimestampError("the SignerInfo has no signed attributes")
        if signer[0].integer() not in (1, 3):
            raise TimestampError("the SignerInfo version is not 1 or 3")
        _check_signer(certificate, signer[1], signer[4])
        signed = _check_signed_attributes(signer, tst_info)
        _verify_signature(certificate, signer[5].expect(OCTET_STRING).content, signed)
        fields = parse_single(tst_info).expect(SEQUENCE).children()
        if len(fields) < 5 or fields[0].integer() != 1:
            raise TimestampError("the TSTInfo is not version 1")
        algorithm, digest = fields[2].expect(SEQUENCE).children()
        if algorithm.expect(SEQUENCE).children()[0].oid() != OID_SHA256:
            raise TimestampError("the message imprint is not SHA-256")
        if digest.expect(OCTET_STRING).content != hashlib.sha256(data).digest():
            raise TimestampError("the timestamp's message imprint is not the hash of this data")
        found = next((node.integer() for node in fields[5:] if node.tag == INTEGER), None)
        if nonce is not None and found != nonce:
            raise TimestampError("the timestamp's nonce is not the one sent")
        return TimestampToken(token, _gen_time(fields[4]), fields[3].integer(), fields[1].oid(), found)
    except ValueError as exc:  # a DER structure of the wrong shape (unpacking)
        raise TimestampError(f"malformed timestamp token: {exc}") from None


def parse_timestamp_response(answer: bytes) -> bytes:
    """The token of a ``TimeStampResp`` whose status is granted; raises with the TSA's status otherwise."""
    parts = parse_single(answer).expect(SEQUENCE).children()
    status = parts[0].expect(SEQUENCE).children()
    code = status[0].integer()
    if code not in (0, 1):
        detail = "; ".join(node.content.hex() for node in status[1:])
        raise TimestampError(f"the TSA refused the request (status {code}{': ' + detail if detail else ''})")
    if len(parts) != 2:
        raise TimestampError("the TSA granted the request but sent no token")
    return parts[1].encoded


def request_timestamp(url: str, data: bytes, certificate: x509.Certificate, *, timeout: float = 10.0) -> TimestampToken:
    """Ask the TSA at ``url`` to timestamp ``data``; the verified token (RFC 3161 over HTTP, §3.4)."""
    nonce = secrets.randbits(63)
    request = urllib.request.Request(url, data=timestamp_request(data, nonce), method="POST",
                                     headers={"Content-Type": "application/timestamp-query"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = response.read(MAX_RESPONSE_BYTES + 1)
    except OSError as exc:
        raise TimestampError(f"the TSA at {url} is unreachable: {exc}") from None
    if len(answer) > MAX_RESPONSE_BYTES:
        raise TimestampError(f"the TSA's answer is larger than {MAX_RESPONSE_BYTES} bytes")
    return verify_timestamp(parse_timestamp_response(answer), data, certificate, nonce=nonce)
