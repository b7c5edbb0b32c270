"""The analyser is never more lenient than CPython's C unpickler (issue 20, point 1).

Each case below is a stream the C unpickler follows further than the old analyser did; the
differential run feeds thousands of generated and mutated streams, with a fixed seed, to both.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from collections.abc import Iterator

import pytest

from tests.fuzz._pickle_differential import Loader, disagreement, streams
from tracemark.supply import analyse_pickle, scan_bytes

RCE = b"cos\nsystem\n(S'id'\ntR."
RCE_RULES = {"pickle.global-denied"}


@pytest.fixture(scope="module")
def loader() -> Iterator[Loader]:
    with Loader() as running:
        yield running


# Streams whose first opcodes _pickle.c accepts: each hides os.system behind them.
LOADER_ACCEPTS = {
    "int-octal": b"I010\n0" + RCE,
    "int-hex-space": b"I 0x1f\n0" + RCE,
    "int-nul-tail": b"I5\x00junk\n0" + RCE,
    "int-plus-bool": b"I+1\n0" + RCE,
    "long-underscore": b"L1_000L\n0" + RCE,
    "float-nul-tail": b"F1.5\x00zz\n0" + RCE,
    "memo-leading-zero": b"Np010\n0g10\n0" + RCE,
    "memo-nul-tail": b"Np7\x00x\n0g7\n0" + RCE,
    "long-line": b"S'" + b"a" * 70_000 + b"'\n0" + RCE,
    "append-bytearray": b"\x80\x05\x96\x00\x00\x00\x00\x00\x00\x00\x00K\x05a0" + RCE,
    "setitems-empty-mark-on-str": b"S'a'\n(u0" + RCE,
    "build-none-on-list": b"]Nb0" + RCE,
    "setitem-on-list": b"]K\x01aK\x00K\x05s0" + RCE,
}


@pytest.mark.parametrize("name", sorted(LOADER_ACCEPTS))
def test_a_prefix_the_loader_accepts_never_hides_the_global(name: str, loader: Loader) -> None:
    stream = LOADER_ACCEPTS[name]
    result = loader.load(stream)
    assert ("posix", "system") in result.globals or ("os", "system") in result.globals, result
    analysis = analyse_pickle(stream)
    assert ("os", "system") in analysis.globals
    assert {issue.rule for issue in analysis.issues} >= RCE_RULES
    assert disagreement(stream, result) is None
    assert any(f.severity.value == "critical" for f in scan_bytes(stream, "x.bin").findings)


def test_an_argument_split_by_its_frame_is_refused_not_guessed(loader: Loader) -> None:
    # FRAME of 9 bytes ends inside "harmless_mod": pickle.load(file) reads "armless_mod", loads() fails.
    stream = b"\x80\x05\x95\x09\x00\x00\x00\x00\x00\x00\x00\x8f\x94(K\x01K\x02iharmless_mod\ngetattr\n\x90."
    assert loader.load(stream).globals == (("armless_mod", "getattr"),)
    analysis = analyse_pickle(stream)
    assert [issue.rule for issue in analysis.issues] == ["pickle.unanalysable"]
    assert analysis.evidence
    assert [f.rule_id for f in scan_bytes(stream, "x.pkl").findings] == ["pickle.unanalysable"]


def test_loader_failures_before_any_import_stay_data() -> None:
    # What the C unpickler refuses on the first opcodes is not a pickle: text files stay data.
    for text in (b"Hello, world\n", b"I12abc\n.", b"[PAD]\n[UNK]\n", b"click\nnumpy>=1\n"):
        report = scan_bytes(text, "notes.txt")
        assert report.files[0].format == "data", text
        assert report.findings == (), text


def test_joblib_array_bytes_cannot_hide_opcodes_from_a_plain_loader(loader: Loader) -> None:
    wrapper = (
        b"\x80\x04\x8c\x13joblib.numpy_pickle\x8c\x11NumpyArrayWrapper\x93)\x81}(\x8c\x05shape"
        b"K\x0f\x85\x8c\x05dtype\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02u1\x89\x88\x87R\x8c\x05order\x8c\x01Cub"
    )
    # For joblib.load the next 15 bytes are array data; for pickle.load they are opcodes.
    hidden = b"0cos\nsystem\n0N."
    assert len(hidden) == 15
    stream = wrapper + hidden + b"."
    assert ("posix", "system") in loader.load(stream).globals or ("os", "system") in loader.load(stream).globals
    analysis = analyse_pickle(stream)
    assert ("os", "system") in analysis.globals
    assert any("plain pickle" in issue.message for issue in analysis.issues)


def test_a_tar_whose_header_is_a_pickle_is_read_as_one_too() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("cos\nsystem\n(S'id'\ntR.")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"ok"))
    report = scan_bytes(buffer.getvalue(), "model.tar")
    assert report.files[0].format == "tar"
    assert any(f.rule_id == "pickle.global-denied" and "read as a pickle" in f.message for f in report.findings)


def test_benign_pickles_still_pass_with_the_c_decoded_constants() -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        data = pickle.dumps([0, 1, True, 10**30, -2.5, "s", b"b", (1,), {"k": [None]}], protocol=protocol)
        assert analyse_pickle(data).safe


def test_differential_fuzz_fixed_seed(loader: Loader) -> None:
    """8,000 generated and mutated streams: none the loader follows further than the analyser."""
    failures = []
    for stream in streams(seed=20, count=8000):
        why = disagreement(stream, loader.load(stream))
        if why is not None:
            failures.append((stream[:120], why))
    assert failures == []
