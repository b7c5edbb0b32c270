"""Property-based fuzzing of every parser of hostile input (hypothesis; bounded for ``make test``).

Each test feeds its target (``_targets.py``) mutated valid inputs and raw bytes: the input must
parse or raise the parser's documented ``TracemarkError`` subclass, within a time bound, and
the target's property must hold (no forged receipt verifies, strict parsers print back their
input, no crash is hidden behind a finding).  ``make fuzz`` runs the same targets under atheris.
"""

from __future__ import annotations

import pytest

from tests.fuzz._harness import property_test, run_bounded
from tests.fuzz._seeds import SEEDS, log_world
from tests.fuzz._targets import TARGETS
from tracemark.errors import TlogError
from tracemark.tlog import NoteVerifier, verify_receipt

test_pickle = property_test("pickle")
test_scan = property_test("scan")
test_safetensors = property_test("safetensors")
test_gguf = property_test("gguf")
test_onnx = property_test("onnx")
test_npy = property_test("npy")
test_asar = property_test("asar")
test_fuses = property_test("fuses")
test_html = property_test("html")
test_csp = property_test("csp")
test_js = property_test("js")
test_receipt = property_test("receipt")
test_note = property_test("note")
test_record = property_test("record")
test_note_keys = property_test("note-keys")
test_osv = property_test("osv")
test_image = property_test("image")
test_key_record = property_test("key-record")


def test_every_target_has_a_property_test_and_seeds() -> None:
    tests = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert {name.replace("-", "_") for name in TARGETS} <= tests
    assert set(SEEDS) == set(TARGETS)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_hold_the_property(name: str) -> None:
    """The seeds are valid inputs: each runs through its target cleanly."""
    seeds = SEEDS[name]()
    assert seeds
    for seed in seeds:
        run_bounded(TARGETS[name], seed[: TARGETS[name].max_len])


def test_no_single_bit_flip_of_a_valid_receipt_verifies() -> None:
    """Exhaustively: every one-bit change of a receipt (with and without its entry inline) is refused."""
    world = log_world()
    log_key = NoteVerifier.from_vkey(world.log_vkey)
    witness_key = NoteVerifier.from_vkey(world.witness_vkey)
    with_entry, cosigned_without_entry = world.receipts[2], world.receipts[-2]
    cases = [(with_entry, None, ()), (cosigned_without_entry, world.entries[6], (witness_key,))]
    tried = accepted = 0
    for receipt, entry, witnesses in cases:
        verify_receipt(receipt, log_key, entry=entry, witnesses=witnesses, quorum=len(witnesses))
        for position in range(len(receipt)):
            for bit in range(8):
                mutated = bytearray(receipt)
                mutated[position] ^= 1 << bit
                tried += 1
                try:
                    verify_receipt(bytes(mutated), log_key, entry=entry, witnesses=witnesses, quorum=len(witnesses))
                except TlogError:
                    continue
                accepted += 1
    assert tried > 8_000
    assert accepted == 0
