"""Differential fuzzing of the pickle analyser against CPython's C unpickler.

Every stream is read twice: by :func:`tracemark.supply.analyse_pickle` (and the scanner around it)
and by ``pickle.Unpickler`` (``_pickle.c``) in a sandboxed subprocess whose ``find_class`` records
the global and hands back a harmless class instead of importing anything.  The analyser must never
be more lenient than the loader:

* a stream the loader loads, or that makes the loader look up a global, is never ``data``;
* every global the loader looks up is among the analyser's globals (Python 2 names may be mapped),
  unless the analyser refused the stream as ``pickle.unanalysable`` (loaders disagree on it);
* a stream the loader loads with only allowlisted globals is one the analyser followed to ``STOP``.

The loader runs in one long-lived child process (``python -I``, memory and CPU limits, no global
ever imported), fed one stream at a time over a pipe, so a fuzzer pays a round trip per input and
not a process start.
"""

from __future__ import annotations

import _compat_pickle
import itertools
import json
import pickle
import random
import re
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tracemark.supply import analyse_pickle, scan_bytes
from tracemark.supply._pickle import UNANALYSABLE, module_exists

#: The child: read a length-prefixed stream, unpickle it with harmless globals, answer one JSON line.
LOADER_SOURCE = r"""
import io, json, pickle, resource, struct, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
resource.setrlimit(resource.RLIMIT_CPU, (120, 120))
sys.set_int_max_str_digits(4300)

class Harmless:
    def __init__(self, *args, **kwargs): pass
    def __call__(self, *args, **kwargs): return Harmless()
    def __setstate__(self, *state): pass
    def append(self, *item): pass
    def extend(self, *items): pass
    def add(self, *item): pass
    def __setitem__(self, *item): pass

class Recorder(pickle.Unpickler):
    def find_class(self, module, name):
        self.seen.append([module, name])
        return Harmless
    def persistent_load(self, pid):
        return Harmless()

stdin, stdout = sys.stdin.buffer, sys.stdout
while True:
    header = stdin.read(4)
    if len(header) < 4:
        break
    data = stdin.read(struct.unpack("<I", header)[0])
    loader = Recorder(io.BytesIO(data))
    loader.seen = []
    try:
        loader.load()
        loaded, error = True, ""
    except BaseException as exc:
        loaded, error = False, type(exc).__name__
    stdout.write(json.dumps({"loaded": loaded, "globals": loader.seen, "error": error}) + "\n")
    stdout.flush()
"""


_IMPORTABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _resolvable(pair: tuple[str, str]) -> bool:
    module, name = pair
    if _IMPORTABLE.match(module) is None:
        return False
    return module_exists(module) or _IMPORTABLE.match(name) is not None


@dataclass(frozen=True)
class LoaderResult:
    """What the C unpickler did with a stream: whether it loaded, which globals it looked up."""

    loaded: bool
    globals: tuple[tuple[str, str], ...]
    error: str


class Loader:
    """The sandboxed C unpickler in a child process; a context manager."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(  # the child runs only LOADER_SOURCE, never the stream's globals
            [sys.executable, "-I", "-c", LOADER_SOURCE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # CPython prints "deallocated bytearray object has exported buffers" for READONLY_BUFFER tricks.
            stderr=subprocess.DEVNULL,
        )

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        process = self._process
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()

    def load(self, stream: bytes) -> LoaderResult:
        process = self._process
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(struct.pack("<I", len(stream)) + stream)
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the loader process died")
        answer = json.loads(line)
        names = tuple((str(module), str(name)) for module, name in answer["globals"])
        return LoaderResult(bool(answer["loaded"]), names, str(answer["error"]))


def _mapped(module: str, name: str) -> set[tuple[str, str]]:
    """A global as the loader may resolve it: as written, or mapped from Python 2 (protocols < 3)."""
    names = {(module, name)}
    if (module, name) in _compat_pickle.NAME_MAPPING:
        names.add(_compat_pickle.NAME_MAPPING[(module, name)])
    elif module in _compat_pickle.IMPORT_MAPPING:
        names.add((_compat_pickle.IMPORT_MAPPING[module], name))
    return names


def disagreement(stream: bytes, loader: LoaderResult) -> str | None:
    """Why the analyser is more lenient than the loader on ``stream``; ``None`` when it is not."""
    analysis = analyse_pickle(stream)
    seen = set(analysis.globals)
    refused = any(issue.rule == UNANALYSABLE for issue in analysis.issues)
    for module, name in loader.globals:
        if not _mapped(module, name) & seen and not refused:
            return f"the loader looks up {module}.{name}, the analyser never sees it"
    # A real loader stops at the first global it cannot resolve: a module no import finds, or (for the
    # globals the analyser's allowlist does not know anyway) a name that is not one.
    imported = list(itertools.takewhile(_resolvable, loader.globals))
    loaded = loader.loaded and len(imported) == len(loader.globals)
    report = scan_bytes(stream, "stream.bin")
    called_data = bool(report.files) and report.files[0].format == "data" and not report.findings
    if called_data and (loaded or imported):
        return f"the scanner calls it data, the loader {'loads it' if loaded else 'imports a module'}"
    if loader.loaded and not analysis.complete and not analysis.issues:
        return "the loader loads it, the analyser stops without a finding"
    return None


# --- generation ------------------------------------------------------------------------------------

_INTEGERS = [
    b"0", b"1", b"00", b"01", b"010", b"08", b"0x1f", b"0X1F", b"0o7", b"0b1", b" 5", b"5 ", b"\t7", b"+1", b"-0",
    b"-1", b"1_0", b"5\x00zz", b"9" * 25, b"", b"abc", b"1e3", b"2L", b"0L", b"12345678901234567890L",
]  # fmt: skip
_FLOATS = [b"1.5", b"-0.0", b"inf", b"nan", b"1e999", b" 2.5", b"2.5 ", b"1_0.5", b"0x1p3", b"3\x00x", b""]
_MEMO = [b"0", b"1", b"2", b"010", b" 1", b"1 ", b"1_0", b"0\x00x", b"-1", b"+1", b"x", b"", b"00000000000000000001"]
_MODULES = [b"harmless_mod", b"pkg.sub", b"os", b"__builtin__", b"copy_reg", b"numpy", b"collections", b"builtins"]
_NAMES = [b"fn", b"Cls", b"system", b"getattr", b"xrange", b"_reconstructor", b"OrderedDict", b"a.b"]
_STRINGS = [b"'abc'", b'"q"', b"'os'", b"'system'", b"'\\x41'", b"'unterminated", b"'mixed\"", b"''", b"'\xe9'"]
_FIXED = [
    b"N", b")", b"]", b"}", b"\x88", b"\x89", b"K\x05", b"M\x01\x02", b"J\xff\xff\xff\xff", b"\x8c\x02os",
    b"\x8c\x06system", b"X\x02\x00\x00\x00fn", b"U\x03abc", b"C\x02ab", b"B\x01\x00\x00\x00z", b"\x8a\x01\x05",
    b"G?\xf0\x00\x00\x00\x00\x00\x00", b"(", b"t", b"l", b"d", b"\x85", b"\x86", b"\x87", b"a", b"e", b"s", b"u",
    b"\x8f", b"\x90", b"\x91", b"0", b"1", b"2", b"\x94", b"q\x00", b"q\x01", b"h\x00", b"h\x01", b"r\x02\x00\x00\x00",
    b"j\x02\x00\x00\x00", b"\x93", b"R", b"\x81", b"\x92", b"o", b"b", b"Q", b"\x82\x01", b"\x97", b"\x98",
    b"\x80\x00", b"\x80\x01", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05",
    b"\x95\x00\x00\x00\x00\x00\x00\x00\x00",
]  # fmt: skip
_BENIGN_VALUES: list[object] = [
    None, 1, -5, 2**70, 1.5, "text", b"bytes", (1, 2), [1, [2, 3]], {"a": 1, 2: (3,)}, {1, 2}, frozenset({3}),
    bytearray(b"ab"), True, 3 + 4j, ["x"] * 3,
]  # fmt: skip


#: (cumulative probability, maker): what the next opcode of a generated stream is.
_SNIPPETS: list[tuple[float, Callable[[random.Random], bytes]]] = [
    (0.45, lambda rng: rng.choice(_FIXED)),
    (0.6, lambda rng: rng.choice((b"I", b"L")) + rng.choice(_INTEGERS) + b"\n"),
    (0.65, lambda rng: b"F" + rng.choice(_FLOATS) + b"\n"),
    (0.75, lambda rng: rng.choice((b"p", b"g")) + rng.choice(_MEMO) + b"\n"),
    (0.85, lambda rng: rng.choice((b"c", b"i")) + rng.choice(_MODULES) + b"\n" + rng.choice(_NAMES) + b"\n"),
    (0.92, lambda rng: b"S" + rng.choice(_STRINGS) + b"\n"),
    (0.96, lambda rng: rng.choice((b"V", b"P")) + rng.choice((b"os", b"\\u0041", b"x\\y", b"")) + b"\n"),
    (1.0, lambda rng: b"I" + b"1" * rng.choice((100, 5000, 70_000)) + b"\n"),
]


def _snippet(rng: random.Random) -> bytes:
    roll = rng.random()
    maker = next(make for threshold, make in _SNIPPETS if roll < threshold)
    return maker(rng)


def _grammar(rng: random.Random) -> bytes:
    parts = [_snippet(rng) for _ in range(rng.randint(1, 14))]
    if rng.random() < 0.85:
        parts.append(b".")
    return b"".join(parts)


def _mutated(rng: random.Random) -> bytes:
    value = rng.choice(_BENIGN_VALUES)
    data = bytearray(pickle.dumps(value, protocol=rng.randint(0, 5)))
    for _ in range(rng.randint(1, 3)):
        action = rng.random()
        at = rng.randrange(len(data) + 1)
        if action < 0.35 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif action < 0.7:
            data[at:at] = _snippet(rng)
        elif data:
            del data[at : at + rng.randint(1, 3)]
    return bytes(data)


def streams(seed: int, count: int) -> Iterator[bytes]:
    """``count`` streams, the same for the same seed: opcode sequences and mutated real pickles."""
    rng = random.Random(seed)
    for _ in range(count):
        yield _grammar(rng) if rng.random() < 0.7 else _mutated(rng)
