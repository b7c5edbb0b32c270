"""The property-based harness: hypothesis inputs (seed mutations and raw bytes), a time bound, and counters.

Mutations start from each target's valid seeds, so most examples get past magic numbers and
length prefixes; raw bytes keep the shallow error paths covered.  Every run is bounded in time
(a hang is a failure, never a stuck test run) and counted, so ``tests/fuzz/run_all.py`` can
report how many examples each target saw.
"""

from __future__ import annotations

import collections
import os
import signal
import struct
from collections.abc import Callable
from types import FrameType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz._seeds import SEEDS
from tests.fuzz._targets import TARGETS, Target

#: Seconds one input may take before it counts as a hang (generous: the test machines are shared).
HANG_SECONDS = 20.0

#: Examples each target ran in this process (written out by ``conftest.py`` for the reports).
EXECUTIONS: collections.Counter[str] = collections.Counter()

#: Byte strings that parsers give meaning to: separators, quotes, nesting, huge and special numbers.
_TOKENS = (
    b"\x00", b"\xff", b"\n", b"\n\n", b" ", b'"', b"'", b"\\", b"{", b"}", b"[", b"]", b",", b":", b";", b"+", b"/",
    b"..", b"-1", b"0", b"1e999", b"NaN", b"9" * 20, b"9" * 5000, b"[" * 1500, b"\\ud800", b"\\u0000",
    b"\xed\xa0\x80", b"\xe2\x80\x94 ", b"\x80\x05", b"PK\x03\x04", b"\x1f\x8b", b"GGUF", b"\x93NUMPY",
    b"c2sp.org/tlog-proof@v1", b"index ", b"extra ", b"old ", b"\x00" * 8, b"\xff" * 8,
)  # fmt: skip
_WIDTHS = ("<B", "<H", "<I", "<Q", ">I", ">Q")
_BOUNDARIES = (0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1)


@st.composite
def _mutated(draw: st.DrawFn, seeds: list[bytes], max_len: int) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, len(data)))
        operation = draw(st.integers(0, 7))
        if operation == 0 and data:
            index = min(where, len(data) - 1)
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif operation == 1 and data:
            data[min(where, len(data) - 1)] = draw(st.sampled_from((0, 1, 0x7F, 0x80, 0xFF)) | st.integers(0, 255))
        elif operation == 2:
            data[where:where] = draw(st.sampled_from(_TOKENS) | st.binary(min_size=1, max_size=8))
        elif operation == 3:
            end = draw(st.integers(where, min(len(data), where + 64)))
            del data[where:end]
        elif operation == 4:
            del data[where:]
        elif operation == 5:
            width = draw(st.sampled_from(_WIDTHS))
            value = draw(st.sampled_from(_BOUNDARIES)) % (1 << (8 * struct.calcsize(width)))
            data[where : where + struct.calcsize(width)] = struct.pack(width, value)
        elif operation == 6:
            other = draw(st.sampled_from(seeds))
            data[where:] = other[draw(st.integers(0, len(other))) :]
        else:
            end = draw(st.integers(where, min(len(data), where + 64)))
            data[where:where] = data[where:end]
    return bytes(data[:max_len])


def fuzz_input(target: Target) -> st.SearchStrategy[bytes]:
    """Mutated seeds (mostly) and raw bytes, at most ``target.max_len`` long; seeds are built on first use."""

    def build() -> st.SearchStrategy[bytes]:
        seeds = [seed[: target.max_len] for seed in SEEDS[target.name]()]
        return st.one_of(_mutated(seeds, target.max_len), st.sampled_from(seeds), st.binary(max_size=256))

    return st.deferred(build)


class _Hang(BaseException):
    """Raised by the alarm inside the parser; a BaseException so no ``except Exception`` there hides it."""


def run_bounded(target: Target, data: bytes, seconds: float = HANG_SECONDS) -> None:
    """Run ``target`` on ``data``; an input that takes longer than ``seconds`` fails as a hang."""

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise _Hang

    EXECUTIONS[target.name] += 1
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        target.run(data)
    except _Hang:
        raise AssertionError(f"{target.name}: one input ran longer than {seconds:g} s ({len(data)} bytes)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _settings(target: Target) -> settings:
    scale = float(os.environ.get("TRACEMARK_FUZZ_SCALE", "1"))
    return settings(
        max_examples=max(1, round(target.examples * scale)),
        deadline=None,
        # CI runs the same examples every time: a red build is then a regression, not bad luck.
        derandomize=bool(os.environ.get("CI")),
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


def property_test(name: str) -> Callable[[], None]:
    """The hypothesis harness of target ``name``, as a test function."""
    target = TARGETS[name]

    @_settings(target)
    @given(data=fuzz_input(target))
    def test(data: bytes) -> None:
        run_bounded(target, data)

    test.__doc__ = target.run.__doc__
    return test
