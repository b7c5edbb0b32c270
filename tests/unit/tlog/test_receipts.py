"""Checkpoints and tlog-proof@v1 receipts under hostile input: all rejected with a clear reason."""

from __future__ import annotations

import base64

import pytest

from tests.unit.tlog._helpers import make_record
from tracemark.errors import InclusionProofError, TlogFormatError, TlogSignatureError
from tracemark.tlog import (
    SIG_COSIGNATURE_V1,
    Checkpoint,
    MemoryStore,
    NoteSigner,
    Receipt,
    TransparencyLog,
    VerifiedReceiptJSON,
    sign_checkpoint,
    verify_checkpoint,
    verify_receipt,
)
from tracemark.tlog.merkle import hash_leaf

ROOT = base64.b64encode(b"\x11" * 32).decode()


@pytest.fixture
def issued(signer: NoteSigner) -> tuple[TransparencyLog, str]:
    log = TransparencyLog(MemoryStore(), signer=signer)
    log.append_many([make_record(i) for i in range(13)])
    log.checkpoint()
    return log, log.receipt(6).to_text()


class TestCheckpointFormat:
    def test_body_round_trip_with_extensions(self, signer: NoteSigner) -> None:
        checkpoint = Checkpoint("example.com/log", 20852163, base64.b64decode(ROOT), ("ext one",))  # type: ignore[arg-type]
        assert checkpoint.body() == f"example.com/log\n20852163\n{ROOT}\next one\n"
        assert Checkpoint.parse(checkpoint.body()) == checkpoint
        signed = sign_checkpoint(Checkpoint("example.com/tracemark-test-log", 1, b"\x11" * 32), signer)  # type: ignore[arg-type]
        assert verify_checkpoint(signed, signer.verifier).checkpoint.size == 1

    @pytest.mark.parametrize(
        "body",
        [
            f"example.com/log\n01\n{ROOT}\n",
            f"example.com/log\n-1\n{ROOT}\n",
            f"example.com/log\n+1\n{ROOT}\n",
            f"example.com/log\n1 \n{ROOT}\n",
            f"example.com/log\n١\n{ROOT}\n",  # a non-ASCII digit
            f"example.com/log\n99999999999999999999\n{ROOT}\n",
            f"\n1\n{ROOT}\n",
            "example.com/log\n1\n",
            f"example.com/log\n1\n{ROOT}",
            "example.com/log\n1\nAAAA\n",
            f"example.com/log\n1\n{ROOT[:-1]}\n",
        ],
    )
    def test_malformed_bodies(self, body: str) -> None:
        with pytest.raises(TlogFormatError):
            Checkpoint.parse(body)

    def test_checkpoint_values_are_checked(self) -> None:
        with pytest.raises(TlogFormatError):
            Checkpoint("example.com/log", -1, b"\x00" * 32)  # type: ignore[arg-type]
        with pytest.raises(TlogFormatError):
            Checkpoint("example.com/log", 1, b"\x00" * 31)  # type: ignore[arg-type]
        with pytest.raises(TlogFormatError):
            Checkpoint("a\nb", 1, b"\x00" * 32)  # type: ignore[arg-type]
        with pytest.raises(TlogFormatError):
            Checkpoint("a", 1, b"\x00" * 32, ("",))  # type: ignore[arg-type]

    def test_witness_policy(self, signer: NoteSigner) -> None:
        witnesses = [NoteSigner.generate(f"w{i}.example", SIG_COSIGNATURE_V1) for i in range(3)]
        checkpoint = Checkpoint(signer.name, 5, b"\x22" * 32)  # type: ignore[arg-type]
        note = sign_checkpoint(checkpoint, signer)
        lines = "".join(w.sign(checkpoint.body().encode()).line() for w in witnesses[:2])
        cosigned = note + lines
        keys = [w.verifier for w in witnesses]
        assert len(verify_checkpoint(cosigned, signer.verifier, witnesses=keys, quorum=2).cosignatures) == 2
        with pytest.raises(TlogSignatureError, match="2 of 3 required"):
            verify_checkpoint(cosigned, signer.verifier, witnesses=keys, quorum=3)
        with pytest.raises(TlogFormatError, match="quorum"):
            verify_checkpoint(cosigned, signer.verifier, witnesses=keys[:1], quorum=2)
        with pytest.raises(TlogFormatError, match="cosignature/v1"):
            verify_checkpoint(cosigned, signer.verifier, witnesses=[signer.verifier])
        # A cosignature over another checkpoint, under a trusted witness key, rejects the note.
        other = Checkpoint(signer.name, 6, b"\x22" * 32)  # type: ignore[arg-type]
        forged = note + witnesses[0].sign(other.body().encode()).line()
        with pytest.raises(TlogSignatureError, match="invalid signature"):
            verify_checkpoint(forged, signer.verifier, witnesses=keys[:1], quorum=1)

    def test_a_witness_key_alone_does_not_make_a_checkpoint_valid(self, signer: NoteSigner) -> None:
        witness = NoteSigner.generate("w.example", SIG_COSIGNATURE_V1)
        checkpoint = Checkpoint(signer.name, 5, b"\x22" * 32)  # type: ignore[arg-type]
        body = checkpoint.body()
        only_witness = body + "\n" + witness.sign(body.encode()).line()
        with pytest.raises(TlogSignatureError, match="not signed by the log key"):
            verify_checkpoint(only_witness, signer.verifier, witnesses=[witness.verifier])


class TestHostileReceipts:
    def test_the_genuine_receipt_verifies(self, issued: tuple[TransparencyLog, str], signer: NoteSigner) -> None:
        _, receipt = issued
        assert verify_receipt(receipt, signer.verifier).index == 6

    def test_receipt_for_another_log(self, issued: tuple[TransparencyLog, str]) -> None:
        _, receipt = issued
        with pytest.raises(TlogSignatureError, match="from log"):
            verify_receipt(receipt, NoteSigner.generate("example.com/another-log").verifier)

    def test_impostor_log_with_the_same_origin(self, issued: tuple[TransparencyLog, str], signer: NoteSigner) -> None:
        impostor = TransparencyLog(MemoryStore(), signer=NoteSigner.generate(signer.name))
        impostor.append_many([make_record(i) for i in range(13)])
        impostor.checkpoint()
        with pytest.raises(TlogSignatureError, match="no signature from a trusted key"):
            verify_receipt(impostor.receipt(6), signer.verifier)

    def test_tampered_checkpoint(self, issued: tuple[TransparencyLog, str], signer: NoteSigner) -> None:
        _, receipt = issued
        lines = receipt.split("\n")
        at = lines.index("13")
        lines[at + 1] = ROOT
        with pytest.raises(TlogSignatureError, match="invalid signature"):
            verify_receipt("\n".join(lines), signer.verifier)

    def test_wrong_index_truncated_or_padded_proof(
        self, issued: tuple[TransparencyLog, str], signer: NoteSigner
    ) -> None:
        _, text = issued
        receipt = Receipt.parse(text)
        for index in (5, 7, 12):
            with pytest.raises(InclusionProofError):
                verify_receipt(Receipt(index, receipt.proof, receipt.checkpoint_note, receipt.extra), signer.verifier)
        with pytest.raises(InclusionProofError, match="not below tree size"):
            verify_receipt(Receipt(13, receipt.proof, receipt.checkpoint_note, receipt.extra), signer.verifier)
        for proof in (receipt.proof[:-1], (*receipt.proof, receipt.proof[0]), receipt.proof[::-1]):
            with pytest.raises(InclusionProofError):
                verify_receipt(Receipt(6, proof, receipt.checkpoint_note, receipt.extra), signer.verifier)
        with pytest.raises(InclusionProofError):
            verify_receipt(
                Receipt(6, receipt.proof, receipt.checkpoint_note, make_record(7).to_json()), signer.verifier
            )

    @pytest.mark.parametrize(
        ("mangle", "reason"),
        [
            (lambda t: t.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"), "does not start"),
            (lambda t: t.replace("index 6", "index 06"), "leading zeroes"),
            (lambda t: t.replace("index 6", "index -6"), "decimal"),
            (lambda t: t.replace("index 6", "idx 6"), "index"),
            (lambda t: t.replace("index 6\n", "index 6\n!!!!\n"), "base64"),
            (
                lambda t: t.replace("index 6\n", "index 6\n" + base64.b64encode(b"\x00" * 31).decode() + "\n"),
                "32 bytes",
            ),
            (lambda t: t.replace("index 6\n", "index 6\n" + (ROOT + "\n") * 65), "at most 64"),
            (lambda t: t.replace("extra ", "extra !"), "base64"),
            (lambda t: t.replace("\n\n", "\n", 1), "empty line|base64"),
            (lambda t: t + "garbage", "em dash"),  # the final newline is restored; garbage is no signature
            (lambda t: t.replace("— ", "- "), "em dash"),
            (lambda t: "x" * 300_000, "larger than"),
        ],
    )
    def test_malformed_receipts(self, issued: tuple[TransparencyLog, str], signer: NoteSigner, mangle, reason) -> None:  # type: ignore[no-untyped-def]
        _, receipt = issued
        with pytest.raises(TlogFormatError, match=reason):
            verify_receipt(mangle(receipt), signer.verifier)

    def test_binary_receipt(self, signer: NoteSigner) -> None:
        with pytest.raises(TlogFormatError, match="UTF-8"):
            verify_receipt(b"\xff\xfe\x00", signer.verifier)

    def test_huge_index_and_size(self, issued: tuple[TransparencyLog, str], signer: NoteSigner) -> None:
        _, receipt = issued
        with pytest.raises(TlogFormatError, match="larger than"):
            Receipt.parse(receipt.replace("index 6", "index 99999999999999999999999"))


class TestVerifiedReceiptJSON:
    """``VerifiedReceipt.to_json``: the one JSON form of a verified receipt (``tlog verify --json``, the service)."""

    def test_members_and_values(self, signer: NoteSigner, witness_signer: NoteSigner) -> None:
        log = TransparencyLog(MemoryStore(), signer=signer)
        log.append_many([make_record(i, "image") for i in range(5)])
        signed = log.checkpoint()
        log.add_cosignatures(5, [witness_signer.sign(signed.checkpoint.body().encode())])
        verified = verify_receipt(log.receipt(3), signer.verifier, witnesses=[witness_signer.verifier], quorum=1)
        assert verified.to_json() == {
            "valid": True,
            "origin": signer.name,
            "index": 3,
            "tree_size": 5,
            "root_hash": base64.b64encode(signed.checkpoint.root_hash).decode(),
            "leaf_hash": make_record(3, "image").leaf_hash().hex(),
            "record": make_record(3, "image").to_dict(),
            "witnesses": [witness_signer.name],
        }
        assert list(verified.to_json()) == [k for k in VerifiedReceiptJSON.__annotations__ if k != "content_matches"]

    def test_an_entry_that_is_not_a_record_has_a_null_record(self, signer: NoteSigner) -> None:
        log = TransparencyLog(MemoryStore(), signer=signer)
        log.append_entries([b"not a provenance record"])
        log.checkpoint()
        payload = verify_receipt(log.receipt(0), signer.verifier).to_json()
        assert payload["record"] is None
        assert payload["leaf_hash"] == hash_leaf(b"not a provenance record").hex()
        assert payload["witnesses"] == []
