"""Property-based fuzzing of every parser of hostile input (hypothesis; bounded for ``make test``).

Each test feeds its target (``_targets.py``) mutated valid inputs and raw bytes: the input must
parse or raise the parser's documented ``TracemarkError`` subclass, within a time bound, and
the target's property must hold (no forged receipt verifies, strict parsers print back their
input, no crash is hidden behind a finding).  ``make fuzz`` runs the same targets under atheris.
"""

from __future__ import annotations

import pytest

from tests.fuzz._harness import property_test, run_bounded
from tests.fuzz._seeds import SEEDS
from tests.fuzz._targets import TARGETS

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
