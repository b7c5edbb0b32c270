"""C2SP signed notes: Ed25519 note signatures, cosignature/v1, verifier keys (vkeys) and signer keys.

Formats, byte for byte:

* signed note (c2sp.org/signed-note): ``text`` ending in a newline, a blank line, then one or
  more lines ``— <name> base64(key ID[4] || signature)``;
* key ID: ``SHA-256(name || 0x0A || type || public key)[:4]``, a big-endian uint32;
* verifier key: ``<name>+<8 hex key ID>+base64(type || public key)``;
* signer key (golang.org/x/mod/sumdb/note): ``PRIVATE+KEY+<name>+<8 hex>+base64(type || seed)``;
* cosignature/v1 (c2sp.org/tlog-cosignature): type ``0x04``; the signed message is
  ``"cosignature/v1\\ntime <t>\\n" || note text``; the signature is ``u64be(t) || Ed25519 sig``.

Opening a note follows the spec's rules: signatures from unknown (name, key ID) pairs are
ignored, a known key whose signature fails rejects the whole note, and a note with no
verified signature is rejected.  Errors are :class:`~tracemark.errors.TlogFormatError` for
malformed input and :class:`~tracemark.errors.TlogSignatureError` for signature failures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NewType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tracemark.errors import TlogFormatError, TlogSignatureError

#: The 32-bit key ID of a note key (signed-note §Signatures).
NoteKeyId = NewType("NoteKeyId", int)

#: signed-note §Signature types.
SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04

SIGNATURE_TYPE_NAMES = {SIG_ED25519: "Ed25519", SIG_COSIGNATURE_V1: "Ed25519 cosignature/v1"}

#: Largest note accepted (bytes).  The spec asks for at least 16 signatures; post-quantum
#: signatures are up to about 5 kB each.
MAX_NOTE_BYTES = 256 * 1024
#: Largest number of signature lines accepted (golang.org/x/mod/sumdb/note uses 100).
MAX_SIGNATURES = 100

_EM_DASH_PREFIX = "— "  # U+2014 then a space (signed-note §Format)
_SKEY_PREFIX = "PRIVATE+KEY+"
_COSIGNATURE_HEADER = b"cosignature/v1\n"
_MAX_TIMESTAMP = 2**63 - 1


def b64encode(data: bytes) -> str:
    """Standard base64 with padding (RFC 4648 §4), as every C2SP format uses."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str, what: str) -> bytes:
    """Decode standard base64, refusing any other alphabet, missing padding and non-canonical forms."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise TlogFormatError(f"{what} is not valid base64") from None
    if b64encode(data) != text:
        raise TlogFormatError(f"{what} is not canonical base64")
    return data


def note_key_id(name: str, signature_type: int, public_key: bytes) -> NoteKeyId:
    """signed-note §Signatures: ``SHA-256(name || 0x0A || type || public key)[:4]`` as a uint32."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([signature_type]) + public_key).digest()
    return NoteKeyId(int.from_bytes(digest[:4], "big"))


def check_key_name(name: str) -> None:
    """signed-note §Format: key names are non-empty and hold no Unicode space and no ``+``."""
    if not name:
        raise TlogFormatError("key name is empty")
    if "+" in name or any(ch.isspace() for ch in name):
        raise TlogFormatError(f"key name {name!r} holds a space or '+'")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise TlogFormatError(f"key name {name!r} holds a control character")
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, e.g. from an argument decoded with surrogateescape
            raise TlogFormatError(f"key name {name!r} is not valid UTF-8 text") from None


def _ed25519_public(raw: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise TlogFormatError("not an Ed25519 public key") from None


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature line that verified: who signed, and for a cosignature when."""

    name: str
    key_id: NoteKeyId
    signature_type: int
    timestamp: int | None = None


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted public key for notes: Ed25519 note signatures (0x01) or cosignature/v1 (0x04)."""

    name: str
    signature_type: int
    public_key: bytes = field(repr=False)
    key_id: NoteKeyId = field(init=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if self.signature_type not in SIGNATURE_TYPE_NAMES:
            raise TlogFormatError(f"unsupported note signature type 0x{self.signature_type:02x}")
        if len(self.public_key) != 32:
            raise TlogFormatError(f"an Ed25519 public key is 32 bytes, got {len(self.public_key)}")
        _ed25519_public(self.public_key)
        object.__setattr__(self, "key_id", note_key_id(self.name, self.signature_type, self.public_key))

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``name+hash+base64(type||key)`` (signed-note §Verifier keys), checking the key ID."""
        if not isinstance(vkey, str) or len(vkey) > 4096:
            raise TlogFormatError("verifier key is not a short string")
        vkey = vkey.strip()
        name, sep1, rest = vkey.partition("+")
        key_hash, sep2, key_b64 = rest.partition("+")
        if not sep1 or not sep2:
            raise TlogFormatError("verifier key is not of the form name+hash+key")
        check_key_name(name)
        if len(key_hash) != 8 or any(c not in "0123456789abcdef" for c in key_hash):
            raise TlogFormatError("verifier key hash is not 8 lowercase hex digits")
        key = b64decode_strict(key_b64, "verifier key material")
        if not key:
            raise TlogFormatError("verifier key material is empty")
        signature_type, public_key = key[0], key[1:]
        if signature_type not in SIGNATURE_TYPE_NAMES:
            raise TlogFormatError(f"unsupported verifier key type 0x{signature_type:02x}")
        verifier = cls(name=name, signature_type=signature_type, public_key=public_key)
        if f"{verifier.key_id:08x}" != key_hash:
            raise TlogFormatError(f"verifier key hash {key_hash} does not match the key ({verifier.key_id:08x})")
        return verifier

    @property
    def vkey(self) -> str:
        """The verifier key string ``name+hash+base64(type||key)``."""
        return f"{self.name}+{self.key_id:08x}+{b64encode(bytes([self.signature_type]) + self.public_key)}"

    def verify(self, text: bytes, signature: bytes) -> VerifiedSignature:
        """Check ``signature`` (the bytes after the key ID) over note ``text``; raises on failure."""
        key = _ed25519_public(self.public_key)
        timestamp: int | None = None
        if self.signature_type == SIG_COSIGNATURE_V1:
            # tlog-cosignature §Format: timestamped_signature = u64 timestamp || ed25519_signature[64].
            if len(signature) != 8 + 64:
                raise TlogSignatureError(f"cosignature from {self.name} is {len(signature)} bytes, not 72")
            (timestamp,) = struct.unpack(">Q", signature[:8])
            if timestamp > _MAX_TIMESTAMP:
                raise TlogSignatureError(f"cosignature from {self.name} has a timestamp above 2^63-1")
            message = cosignature_message(text, timestamp)
            raw = signature[8:]
        else:
            if len(signature) != 64:
                raise TlogSignatureError(f"signature from {self.name} is {len(signature)} bytes, not 64")
            message, raw = text, signature
        try:
            key.verify(raw, message)
        except InvalidSignature:
            raise TlogSignatureError(f"invalid signature for key {self.name}+{self.key_id:08x}") from None
        return VerifiedSignature(self.name, self.key_id, self.signature_type, timestamp)


def cosignature_message(note_text: bytes, timestamp: int) -> bytes:
    """tlog-cosignature §Ed25519 signed message: header line, time line, then the checkpoint body."""
    return _COSIGNATURE_HEADER + b"time " + str(timestamp).encode("ascii") + b"\n" + note_text


class NoteSigner:
    """An Ed25519 note signer (type 0x01) or witness cosigner (type 0x04) with its name.

    The private key never appears in ``repr``; :attr:`skey` exposes it for the keyring file.
    """

    def __init__(self, name: str, private_key: Ed25519PrivateKey, signature_type: int = SIG_ED25519) -> None:
        check_key_name(name)
        if signature_type not in SIGNATURE_TYPE_NAMES:
            raise TlogFormatError(f"unsupported signature type 0x{signature_type:02x}")
        self.name = name
        self.signature_type = signature_type
        self._private_key = private_key
        public = private_key.public_key().public_bytes_raw()
        self.verifier = NoteVerifier(name=name, signature_type=signature_type, public_key=public)
        self.key_id = self.verifier.key_id

    def __repr__(self) -> str:
        kind = SIGNATURE_TYPE_NAMES[self.signature_type]
        return f"NoteSigner({self.name}+{self.key_id:08x}, {kind})"

    @classmethod
    def generate(cls, name: str, signature_type: int = SIG_ED25519) -> NoteSigner:
        """A new random key."""
        return cls(name, Ed25519PrivateKey.generate(), signature_type)

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+name+hash+base64(type||seed)`` and check the key ID."""
        if not isinstance(skey, str) or not skey.startswith(_SKEY_PREFIX):
            raise TlogFormatError("signer key does not start with PRIVATE+KEY+")
        name, sep1, rest = skey.strip()[len(_SKEY_PREFIX) :].partition("+")
        key_hash, sep2, key_b64 = rest.partition("+")
        if not sep1 or not sep2:
            raise TlogFormatError("signer key is not of the form PRIVATE+KEY+name+hash+key")
        check_key_name(name)
        key = b64decode_strict(key_b64, "signer key material")
        if len(key) != 33:
            raise TlogFormatError("signer key material is not a type byte and a 32-byte Ed25519 seed")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(key[1:]), key[0])
        if f"{signer.key_id:08x}" != key_hash:
            raise TlogFormatError("signer key hash does not match the key")
        return signer

    @property
    def skey(self) -> str:
        """The secret signer key string; keep it in a 0600 file."""
        seed = self._private_key.private_bytes_raw()
        return f"{_SKEY_PREFIX}{self.name}+{self.key_id:08x}+{b64encode(bytes([self.signature_type]) + seed)}"

    @property
    def vkey(self) -> str:
        """The matching verifier key string."""
        return self.verifier.vkey

    def sign(self, text: bytes, *, timestamp: int | None = None) -> NoteSignature:
        """Sign note ``text``; a cosigner signs the cosignature/v1 message at ``timestamp`` (default: now)."""
        if self.signature_type == SIG_COSIGNATURE_V1:
            when = int(time.time()) if timestamp is None else timestamp
            if not 0 <= when <= _MAX_TIMESTAMP:
                raise TlogFormatError("cosignature timestamp must lie in 0..2^63-1")
            signature = struct.pack(">Q", when) + self._private_key.sign(cosignature_message(text, when))
        else:
            signature = self._private_key.sign(text)
        return NoteSignature(self.name, self.key_id, signature)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key ID, and the signature bytes after the key ID."""

    name: str
    key_id: NoteKeyId
    signature: bytes

    def line(self) -> str:
        """``— <name> base64(key ID || signature)`` with its newline."""
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_EM_DASH_PREFIX}{self.name} {b64encode(blob)}\n"


@dataclass(frozen=True)
class SignedNote:
    """A note's text (ending in a newline) and its signature lines, parsed but not verified."""

    text: str
    signatures: tuple[NoteSignature, ...]

    @classmethod
    def parse(cls, data: bytes | str) -> SignedNote:
        """Split a signed note into text and signature lines (signed-note §Format); raises if malformed."""
        if len(data) > MAX_NOTE_BYTES:
            raise TlogFormatError(f"note is larger than {MAX_NOTE_BYTES} bytes")
        try:
            # signed-note §Format: notes MUST be valid UTF-8.
            data = data.decode("utf-8") if isinstance(data, bytes) else data.encode("utf-8").decode("utf-8")
        except UnicodeError:
            raise TlogFormatError("note is not valid UTF-8") from None
        # signed-note §Format: no ASCII control characters other than newline.
        if any((ord(ch) < 0x20 and ch != "\n") or ord(ch) == 0x7F for ch in data):
            raise TlogFormatError("note holds a control character")
        if not data.endswith("\n"):
            raise TlogFormatError("note does not end in a newline")
        # The text is separated from the signatures by the last empty line.
        split = data.rfind("\n\n")
        if split < 0:
            raise TlogFormatError("note has no blank line before its signatures")
        text, block = data[: split + 1], data[split + 2 :]
        lines = block.split("\n")[:-1]
        if not lines:
            raise TlogFormatError("note has no signature lines")
        if len(lines) > MAX_SIGNATURES:
            raise TlogFormatError(f"note has more than {MAX_SIGNATURES} signatures")
        return cls(text=text, signatures=tuple(_parse_signature_line(line) for line in lines))

    def to_text(self) -> str:
        """The note in its wire form."""
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)

    def with_signatures(self, signatures: Iterable[NoteSignature]) -> SignedNote:
        """A copy with ``signatures`` added; an existing line from the same (name, key ID) is replaced."""
        added = list(signatures)
        replaced = {(s.name, s.key_id) for s in added}
        kept = [s for s in self.signatures if (s.name, s.key_id) not in replaced]
        if len(kept) + len(added) > MAX_SIGNATURES:
            raise TlogFormatError(f"a note may carry at most {MAX_SIGNATURES} signatures")
        return SignedNote(self.text, tuple(kept + added))


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_EM_DASH_PREFIX):
        raise TlogFormatError("signature line does not start with an em dash and a space")
    name, sep, blob_b64 = line[len(_EM_DASH_PREFIX) :].partition(" ")
    if not sep or " " in blob_b64:
        raise TlogFormatError("signature line is not '— <name> <base64>'")
    check_key_name(name)
    blob = b64decode_strict(blob_b64, f"signature of {name}")
    if len(blob) < 5:
        raise TlogFormatError(f"signature of {name} is too short")
    return NoteSignature(name, NoteKeyId(int.from_bytes(blob[:4], "big")), blob[4:])


def _check_text(text: str) -> bytes:
    if not text.endswith("\n"):
        raise TlogFormatError("note text must end in a newline")
    if "\n\n" in text or text.startswith("\n"):
        # Allowed by the spec, but no tracemark note needs it and it makes splitting ambiguous to readers.
        raise TlogFormatError("note text must not hold empty lines")
    if any((ord(ch) < 0x20 and ch != "\n") or ord(ch) == 0x7F for ch in text):
        raise TlogFormatError("note text holds a control character")
    return text.encode("utf-8")


def sign_note(text: str, signers: Sequence[NoteSigner], *, timestamp: int | None = None) -> str:
    """A signed note over ``text`` with one line per signer (cosigners use ``timestamp``)."""
    if not signers:
        raise TlogFormatError("a signed note needs at least one signer")
    raw = _check_text(text)
    note = SignedNote(text, ()).with_signatures(s.sign(raw, timestamp=timestamp) for s in signers)
    return note.to_text()


@dataclass(frozen=True)
class OpenedNote:
    """A note whose signatures were checked: the verified ones and those from unknown keys."""

    text: str
    verified: tuple[VerifiedSignature, ...]
    unverified: tuple[NoteSignature, ...]
    note: SignedNote

    def signed_by(self, verifier: NoteVerifier) -> VerifiedSignature | None:
        """The verified signature of ``verifier``, if the note carries one."""
        for sig in self.verified:
            if sig.name == verifier.name and sig.key_id == verifier.key_id:
                return sig
        return None


def open_note(data: bytes | str | SignedNote, verifiers: Sequence[NoteVerifier]) -> OpenedNote:
    """Parse and verify a signed note (signed-note §Signatures); raises unless a known key verifies.

    Signatures from unknown (name, key ID) pairs are ignored; a known key's failing signature
    rejects the whole note; two verifiers sharing a (name, key ID) pair are refused as ambiguous.
    """
    note = data if isinstance(data, SignedNote) else SignedNote.parse(data)
    by_pair: dict[tuple[str, int], list[NoteVerifier]] = {}
    for verifier in verifiers:
        by_pair.setdefault((verifier.name, verifier.key_id), []).append(verifier)
    raw = note.text.encode("utf-8")
    verified: list[VerifiedSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for signature in note.signatures:
        pair = (signature.name, signature.key_id)
        matches = by_pair.get(pair, [])
        if not matches:
            if signature not in unverified:
                unverified.append(signature)
            continue
        if len({m.vkey for m in matches}) > 1:
            raise TlogSignatureError(f"ambiguous key {signature.name}+{signature.key_id:08x}")
        result = matches[0].verify(raw, signature.signature)
        if pair not in seen:
            seen.add(pair)
            verified.append(result)
    if not verified:
        known = ", ".join(sorted(f"{v.name}+{v.key_id:08x}" for v in verifiers)) or "none"
        present = ", ".join(f"{s.name}+{s.key_id:08x}" for s in note.signatures)
        raise TlogSignatureError(f"note has no signature from a trusted key (trusted: {known}; signed by: {present})")
    return OpenedNote(note.text, tuple(verified), tuple(unverified), note)
