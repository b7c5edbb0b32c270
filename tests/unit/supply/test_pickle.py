"""The static pickle analyser: exact stack and memo tracking, default deny, structural errors."""

from __future__ import annotations

import collections
import pickle
import pickletools
import struct
from pathlib import Path

import pytest

from tracemark.supply import analyse_pickle, scan_bytes, scan_path

BENIGN_VALUES = {
    "ints": [0, 1, -1, 255, 65535, 2**31 - 1, -(2**31), 2**64, -(2**100)],
    "floats": [0.5, -1e300, float("inf")],
    "text": ["", "ascii", "ünïcödé", "x" * 300],
    "bytes": [b"", b"raw\x00bytes", bytearray(b"ba")],
    "containers": ({1, 2}, frozenset({3}), (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)),
    "ordered": collections.OrderedDict(a=1, b=[None, True, False]),
    "complex": 3 + 4j,
    "slice_range": [slice(1, 2), range(3)],
}


def os_system_reduce(protocol: int) -> bytes:
    stack_global = protocol >= 4
    callee = b"\x8c\x02os\x8c\x06system\x93" if stack_global else b"cos\nsystem\n"
    header = b"\x80" + bytes([protocol]) if protocol >= 2 else b""
    return header + callee + b"(X\x02\x00\x00\x00idtR."


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_benign_values_pass_in_every_protocol(protocol: int) -> None:
    data = pickle.dumps(BENIGN_VALUES, protocol=protocol)
    analysis = analyse_pickle(data)
    assert analysis.safe, analysis.issues
    assert analysis.end == len(data)


@pytest.mark.parametrize("protocol", range(6))
def test_os_system_is_refused_in_every_protocol(protocol: int) -> None:
    analysis = analyse_pickle(os_system_reduce(protocol))
    assert ("os", "system") in analysis.globals
    assert [(i.rule, i.severity) for i in analysis.issues] == [("pickle.global-denied", "critical")]


def test_unknown_class_is_refused_but_ranked_below_code_execution() -> None:
    data = b"\x80\x04\x8c\x08mymodule\x8c\x05Model\x93)\x81."
    (issue,) = analyse_pickle(data).issues
    assert issue.rule == "pickle.global-denied"
    assert issue.severity == "high"


def test_stack_global_operands_are_resolved_through_the_memo() -> None:
    # "os" and "system" are memoised as dict keys, the dict is popped, then fetched with BINGET.
    data = b"\x80\x04}q\x00\x8c\x02osq\x01K\x01s\x8c\x06systemq\x02K\x02s0h\x01h\x02\x93(\x8c\x02idtR."
    analysis = analyse_pickle(data)
    assert analysis.globals == [("os", "system")]
    assert analysis.issues[0].severity == "critical"


def test_memo_slots_are_overwritten_like_the_unpickler_does() -> None:
    data = (
        b"\x80\x04\x8c\x0bcollectionsq\x00\x8c\x0bOrderedDictq\x0100"
        b"\x8c\x02osq\x000\x8c\x06systemq\x010h\x00h\x01\x93)R."
    )
    assert analyse_pickle(data).globals == [("os", "system")]


def test_memoize_uses_the_memo_length() -> None:
    data = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93)R."
    assert analyse_pickle(data).globals == [("os", "system")]


def test_python2_names_are_mapped_before_the_allowlist() -> None:
    analysis = analyse_pickle(b"c__builtin__\neval\n(S'1'\ntR.")
    assert analysis.globals == [("builtins", "eval")]
    assert analysis.issues[0].severity == "critical"
    assert analyse_pickle(b"c__builtin__\nset\n((lI1\natR.").safe


def test_computed_callables_are_refused() -> None:
    # An allowlisted call whose result is called again: REDUCE on a computed object.
    data = b"\x80\x02ccollections\nOrderedDict\n)R)R."
    rules = [i.rule for i in analyse_pickle(data).issues]
    assert rules == ["pickle.computed-call"]


def test_build_on_a_global_is_refused() -> None:
    data = b"\x80\x02ccollections\nOrderedDict\n}X\x01\x00\x00\x00aK\x01sb."
    assert [i.rule for i in analyse_pickle(data).issues] == ["pickle.global-mutation"]


def test_dotted_names_never_match_the_allowlist() -> None:
    data = b"\x80\x04\x8c\x0bcollections\x8c\x20OrderedDict.__init__.__globals__\x93."
    assert [i.rule for i in analyse_pickle(data).issues] == ["pickle.global-denied"]


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"\x80\x02\xff.", "pickle.invalid-opcode"),
        (b"\x80\x06N.", "pickle.unsupported-protocol"),
        (b"\x80\x02X\xff\x00\x00\x00ab.", "pickle.truncated"),
        (b"\x80\x02h\x05.", "pickle.malformed"),
        (b"\x80\x02t.", "pickle.malformed"),
        (b"\x80\x02N", "pickle.truncated"),
        (b"\x80\x02R.", "pickle.malformed"),
        (b"\x80\x04\x95\xff\xff\x00\x00\x00\x00\x00\x00N.", "pickle.truncated"),
        (b"\x80\x02(]]l]}\x85.", "pickle.malformed"),
        (b"\x80\x02K\x01\x82\x01.", "pickle.extension"),
        (b"\x80\x05\x97.", "pickle.out-of-band"),
        (b"\x80\x02}]K\x01s.", "pickle.malformed"),
    ],
)
def test_structural_errors_are_findings(data: bytes, rule: str) -> None:
    analysis = analyse_pickle(data)
    assert rule in [i.rule for i in analysis.issues]
    assert not analysis.safe


def test_every_pickletools_opcode_has_a_handler() -> None:
    from tracemark.supply._pickle import _HANDLERS

    assert set(_HANDLERS) == {opcode.name for opcode in pickletools.opcodes}


@pytest.mark.parametrize("data", [b"I0x10\n.", b"L0x10L\n.", b"I01\n.", b"S'a\\x41'\n.", b"Vab\\u00e9\n.", b"F1.5\n."])
def test_text_arguments_are_decoded_as_the_unpickler_decodes_them(data: bytes) -> None:
    # pickletools' readers differ here (they read INT in base 10); the analyser follows the loader.
    analysis = analyse_pickle(data)
    assert analysis.safe, analysis.issues
    assert analysis.result == pickle.loads(data)


def test_global_names_are_not_escape_decoded() -> None:
    # pickletools.genops escape-decodes this module name to "os."; the unpickler imports the raw UTF-8 name.
    assert analyse_pickle(b"cos\\x2e\nsystem\n.").globals == [("os\\x2e", "system")]


def test_overlong_line_arguments_are_refused() -> None:
    (issue,) = analyse_pickle(b"I" + b"9" * 70_000 + b"\n.").issues
    assert (issue.rule, issue.offset) == ("pickle.malformed", 0)
    (issue,) = analyse_pickle(b"(I1\nI" + b"9" * 1_000).issues
    assert (issue.rule, issue.offset) == ("pickle.truncated", 4)


def test_trailing_bytes_after_stop_are_refused() -> None:
    data = pickle.dumps({"a": 1}) + b"tail"
    report = scan_bytes(data, "model.bin")
    assert [f.rule_id for f in report.findings] == ["pickle.trailing-data"]
    location = report.findings[0].location
    assert location is not None
    assert location.offset == len(data) - 4


def test_huge_integers_and_lengths_do_not_crash() -> None:
    assert not analyse_pickle(b"I" + b"9" * 5000 + b"\n.").safe
    assert not analyse_pickle(b"\x80\x04\x8e" + struct.pack("<Q", 2**63) + b".").safe


def test_nothing_is_ever_unpickled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the scanner unpickled something")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    (tmp_path / "evil.pkl").write_bytes(os_system_reduce(2))
    assert scan_path(tmp_path).fails("critical")


def test_callers_can_extend_the_allowlist_explicitly(tmp_path: Path) -> None:
    from tracemark.errors import InvalidInputError
    from tracemark.supply import parse_allowed

    data = b"\x80\x02cargparse\nNamespace\n)R."
    assert not analyse_pickle(data).safe
    allow = parse_allowed(["argparse:Namespace"])
    assert analyse_pickle(data, allow=allow).safe
    (tmp_path / "ckpt.bin").write_bytes(data)
    assert scan_path(tmp_path, allow=allow).findings == ()
    assert analyse_pickle(os_system_reduce(2), allow=allow).issues
    with pytest.raises(InvalidInputError):
        parse_allowed(["argparse.Namespace"])


def test_numpy_generators_and_random_state_pass() -> None:
    import numpy as np

    for value in (np.random.default_rng(0), np.random.RandomState(0), np.random.get_state()):
        for protocol in (2, 4, 5):
            analysis = analyse_pickle(pickle.dumps(value, protocol=protocol))
            assert analysis.safe, analysis.issues
