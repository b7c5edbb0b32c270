"""C2SP signed notes: golang.org/x/mod/sumdb/note's published vectors, cosignature/v1, hostile notes."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tracemark.errors import TlogFormatError, TlogSignatureError
from tracemark.tlog import SIG_COSIGNATURE_V1, NoteSigner, NoteVerifier, SignedNote, open_note, sign_note
from tracemark.tlog._note import cosignature_message, note_key_id

# golang.org/x/mod/sumdb/note note_test.go (TestNewVerifier, TestSign, TestOpen).
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
SIGNED = TEXT + "\n" + PETER_SIG


class TestGoVectors:
    def test_verifier_key_and_key_id(self) -> None:
        verifier = NoteVerifier.from_vkey(PETER_VKEY)
        assert verifier.name == "PeterNeumann"
        assert verifier.key_id == 0xC74F20A3
        assert verifier.vkey == PETER_VKEY
        assert note_key_id("PeterNeumann", 1, verifier.public_key) == 0xC74F20A3

    def test_signing_reproduces_the_published_note_byte_for_byte(self) -> None:
        signer = NoteSigner.from_skey(PETER_SKEY)
        assert signer.vkey == PETER_VKEY
        assert signer.skey == PETER_SKEY
        assert sign_note(TEXT, [signer]) == SIGNED

    def test_open_verifies_and_ignores_unknown_keys(self) -> None:
        peter = NoteVerifier.from_vkey(PETER_VKEY)
        enoch = NoteVerifier.from_vkey(ENOCH_VKEY)
        opened = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [peter])
        assert opened.text == TEXT
        assert [s.name for s in opened.verified] == ["PeterNeumann"]
        assert [s.name for s in opened.unverified] == ["EnochRoot"]
        both = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [peter, enoch])
        assert [s.name for s in both.verified] == ["PeterNeumann", "EnochRoot"]

    def test_no_trusted_signature_is_rejected(self) -> None:
        with pytest.raises(TlogSignatureError, match="no signature from a trusted key"):
            open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])

    def test_duplicated_signatures_are_counted_once(self) -> None:
        peter = NoteVerifier.from_vkey(PETER_VKEY)
        corrupt_enoch = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
        opened = open_note(TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + corrupt_enoch, [peter])
        assert len(opened.verified) == 1
        assert len(opened.unverified) == 2

    def test_a_known_key_with_a_bad_signature_rejects_the_note(self) -> None:
        peter = NoteVerifier.from_vkey(PETER_VKEY)
        with pytest.raises(TlogSignatureError):
            open_note(TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], [peter])
        with pytest.raises(TlogSignatureError, match="invalid signature for key PeterNeumann"):
            open_note(SIGNED.replace("cryptography", "cryptographY"), [peter])

    def test_too_many_signatures(self) -> None:
        peter = NoteVerifier.from_vkey(PETER_VKEY)
        with pytest.raises(TlogFormatError, match="more than 100"):
            open_note(TEXT + "\n" + PETER_SIG * 101, [peter])

    @pytest.mark.parametrize(
        "message",
        [
            TEXT.encode(),
            (TEXT + "\n").encode(),
            (TEXT + "\n" + PETER_SIG[:-1]).encode(),
            ("\x01" + TEXT + "\n" + PETER_SIG).encode(),
            b"\xff" + (TEXT + "\n" + PETER_SIG).encode(),
            (TEXT + "\n" + "— Bad Name " + PETER_SIG.split(" ")[2].rstrip("\n")).encode(),
            (TEXT + "\n" + PETER_SIG + "Unexpected line.\n").encode(),
        ],
    )
    def test_malformed_notes(self, message: bytes) -> None:
        with pytest.raises(TlogFormatError):
            open_note(message, [NoteVerifier.from_vkey(PETER_VKEY)])

    def test_every_mangled_verifier_key_is_rejected(self) -> None:
        raw = PETER_VKEY.encode()
        mangled = {raw[i:j] for i in range(len(raw) + 1) for j in range(i + 1, len(raw) + 1) if (i, j) != (0, len(raw))}
        for i in range(len(raw)):
            mangled.add(raw[:i] + bytes([raw[i] + 1]) + raw[i + 1 :])
        mangled.add(b"PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
        mangled.add(b"PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        for key in mangled:
            with pytest.raises(TlogFormatError):
                NoteVerifier.from_vkey(key.decode("latin-1"))

    def test_every_mangled_signer_key_is_rejected(self) -> None:
        raw = PETER_SKEY
        for i in range(len(raw)):
            mangled = raw[:i] + chr(ord(raw[i]) + 1) + raw[i + 1 :]
            with pytest.raises(TlogFormatError):
                NoteSigner.from_skey(mangled)
        for cut in range(1, len(raw)):
            with pytest.raises(TlogFormatError):
                NoteSigner.from_skey(raw[:cut])


class TestCosignature:
    def test_spec_example_line_decodes(self) -> None:
        # c2sp.org/tlog-cosignature example: key ID, then the timestamp of "time 1679315147".
        line = (
            "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZ"
            "qhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
        )
        note = SignedNote.parse(
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n" + line
        )
        (signature,) = note.signatures
        assert signature.name == "witness.example.com/w1"
        assert len(signature.signature) == 72
        assert struct.unpack(">Q", signature.signature[:8]) == (1679315147,)

    def test_cosignature_bytes_and_message(self) -> None:
        witness = NoteSigner.generate("witness.example/w1", SIG_COSIGNATURE_V1)
        public = witness.verifier.public_key
        expected_id = int.from_bytes(hashlib.sha256(b"witness.example/w1\n\x04" + public).digest()[:4], "big")
        assert witness.key_id == expected_id
        assert witness.vkey.split("+")[2].startswith("B")  # base64 of 0x04...
        body = "example.com/log\n3\n" + base64.b64encode(b"\x07" * 32).decode() + "\n"
        signature = witness.sign(body.encode(), timestamp=1679315147)
        assert signature.key_id == expected_id
        assert signature.signature[:8] == struct.pack(">Q", 1679315147)
        message = b"cosignature/v1\ntime 1679315147\n" + body.encode()
        assert cosignature_message(body.encode(), 1679315147) == message
        Ed25519PublicKey.from_public_bytes(public).verify(signature.signature[8:], message)
        verified = witness.verifier.verify(body.encode(), signature.signature)
        assert verified.timestamp == 1679315147

    def test_same_key_under_another_type_has_another_id(self) -> None:
        log = NoteSigner.generate("example.com/x")
        assert log.key_id != note_key_id("example.com/x", SIG_COSIGNATURE_V1, log.verifier.public_key)

    def test_a_cosignature_over_another_timestamp_fails(self) -> None:
        witness = NoteSigner.generate("w", SIG_COSIGNATURE_V1)
        body = b"example.com/log\n1\n" + base64.b64encode(b"\x01" * 32) + b"\n"
        signature = witness.sign(body, timestamp=100).signature
        forged = struct.pack(">Q", 101) + signature[8:]
        with pytest.raises(TlogSignatureError):
            witness.verifier.verify(body, forged)
        with pytest.raises(TlogSignatureError, match="not 72"):
            witness.verifier.verify(body, signature[:-1])


class TestHostileNotes:
    def test_size_limit(self) -> None:
        with pytest.raises(TlogFormatError, match="larger than"):
            SignedNote.parse("a\n" * 200_000 + "\n" + PETER_SIG)

    def test_non_canonical_base64_is_refused(self) -> None:
        sig = PETER_SIG.replace("AM=\n", "AN=\n")  # same bytes under lenient decoders, other trailing bits
        with pytest.raises(TlogFormatError, match="canonical"):
            SignedNote.parse(TEXT + "\n" + sig)

    def test_signature_too_short(self) -> None:
        with pytest.raises(TlogFormatError, match="too short"):
            SignedNote.parse(TEXT + "\n— PeterNeumann AAAA\n")

    def test_control_characters_and_surrogates(self) -> None:
        with pytest.raises(TlogFormatError):
            SignedNote.parse(TEXT.replace("\n", "\r\n") + "\n" + PETER_SIG)
        with pytest.raises(TlogFormatError):
            SignedNote.parse("a\ud800\n\n" + PETER_SIG)

    def test_signing_refuses_text_a_reader_could_misparse(self) -> None:
        signer = NoteSigner.generate("example.com/log")
        for text in ["no newline", "a\n\nb\n", "\n", "tab\there\n"]:
            with pytest.raises(TlogFormatError):
                sign_note(text, [signer])

    def test_key_names(self) -> None:
        for name in ["", "a b", "a+b", "a\u2003b", "a\x00b"]:
            with pytest.raises(TlogFormatError):
                NoteSigner.generate(name)

    def test_repr_hides_the_private_key(self) -> None:
        signer = NoteSigner.from_skey(PETER_SKEY)
        assert "AYEKF" not in repr(signer)
        assert "PeterNeumann+c74f20a3" in repr(signer)
