"""A static pickle analyser: follows the unpickler's stack and memo exactly, executes nothing.

Every opcode of protocols 0 to 5 is decoded as CPython's ``pickle._Unpickler`` decodes it,
and its effect on the stack, the mark stack and the memo is simulated with symbolic values.
That is what lets the analyser resolve ``STACK_GLOBAL`` operands that come from the memo
(a trick that fools scanners which only look at neighbouring opcodes) and see which object
each ``REDUCE``, ``NEWOBJ``, ``OBJ`` and ``BUILD`` acts on.

Verdict rules (default deny):

* every global (``GLOBAL``, ``INST``, ``STACK_GLOBAL``) must be on the allowlist;
* a call must target an allowlisted global, never a computed object;
* ``BUILD`` and container mutations must not target a global (that would rewrite module state);
* invalid opcodes, truncation, stack or memo misuse, unknown protocols, extension codes
  and bytes after ``STOP`` are findings too: a loader and a scanner must never disagree
  about what a file contains.

The analyser is never more lenient than the loader.  It stops early only where CPython's C
unpickler (``Modules/_pickle.c``) fails on the same opcode (truncation, an invalid opcode, a
stack underflow, a missing mark or memo entry, an argument the loader cannot parse); where the
loader would call a method the analyser does not model (``APPEND`` on an object, ``BUILD`` with
an odd state), it goes on with an unknown value instead.  Where it cannot follow the stream at
all (nesting limits), the stream is ``pickle.unanalysable``: a finding, never data.

joblib files interleave raw array bytes with the pickle stream; the analyser follows joblib's
``NumpyArrayWrapper`` protocol so those bytes are skipped exactly, and object arrays (a nested
pickle) are analysed recursively.

The opcode table is ``pickletools.opcodes`` (name, byte, argument layout); :data:`_HANDLERS`
gives one small handler per opcode family, keyed by opcode name, over the simulated state in
:class:`_Machine`.  Arguments are framed by their ``pickletools`` descriptor but decoded as the
C unpickler decodes them, not with ``pickletools.genops``: its readers escape-decode ``GLOBAL``
names and read ``INT`` in base 10, where ``_pickle.c`` reads ``INT`` with ``strtol(s, 0)``
(so ``010`` is 8) and memo indices with ``PyLong_FromString(s, 10)`` (so ``010`` is 10), and
both stop at a NUL byte.  The text constants of protocol 0 (``INT``, ``LONG``, ``FLOAT``,
``STRING``, ``UNICODE``) are decoded by the C unpickler itself, fed a stream of that one
constant and ``STOP``, which names no global and so imports and calls nothing: the analyser
and the loader cannot disagree about them.
"""

from __future__ import annotations

import _compat_pickle
import functools
import importlib.metadata
import mmap
import pickle
import pickletools
import re
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tracemark.supply._allowlist import is_allowed, is_known_dangerous

HIGHEST_PROTOCOL = 5
#: Nested pickles (joblib object arrays) deeper than this are refused.
MAX_NESTING = 8

_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_JOBLIB_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_DTYPE_SIZES = {"b": 1, "?": 1, "B": 1}


class _Global:
    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name


class _Object:
    """The result of calling or instantiating a global; remembers what made it."""

    __slots__ = ("args", "label", "origin", "state")

    def __init__(self, origin: _Global | None, args: Any = None) -> None:
        self.origin = origin
        self.args = args
        self.state: Any = None
        #: The variable that holds it in a decompiled program.
        self.label = ""


class _Opaque:
    """A value the analyser does not model (persistent ids, buffers, arrays)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


@dataclass(frozen=True)
class PickleIssue:
    """One reason to refuse a pickle, at a byte offset of the stream."""

    rule: str
    severity: str
    message: str
    offset: int


@dataclass
class PickleAnalysis:
    """What the analyser learnt about one pickle stream."""

    start: int
    #: Offset just after ``STOP`` (or where analysis stopped on an error).
    end: int = 0
    #: Whether the stream reached ``STOP`` without a structural error.
    complete: bool = False
    #: The highest protocol declared by ``PROTO`` (0 when absent).
    protocol: int = 0
    globals: list[tuple[str, str]] = field(default_factory=list)
    issues: list[PickleIssue] = field(default_factory=list)
    #: The symbolic value left by ``STOP``.
    result: Any = None
    #: Whether the bytes are plausibly a pickle (reached ``STOP`` or named a global).
    evidence: bool = False
    #: With ``decompile=True``: what loading would do, as Python-like lines (imports, calls, state).
    program: list[str] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        return self.complete and not self.issues


@functools.cache
def _installed_top_levels() -> frozenset[str]:
    return frozenset(importlib.metadata.packages_distributions())


def module_exists(module: str) -> bool:
    """Whether ``module``'s top-level package is in the standard library or installed here: importing it
    runs code even when the pickle then names nothing it defines."""
    top = module.partition(".")[0]
    return top in sys.stdlib_module_names or top in _installed_top_levels()


class _MalformedError(Exception):
    def __init__(self, rule: str, message: str, offset: int) -> None:
        super().__init__(message)
        self.rule = rule
        self.offset = offset


def analyse_pickle(
    data: bytes | bytearray | memoryview | mmap.mmap,
    start: int = 0,
    *,
    allow: frozenset[tuple[str, str]] = frozenset(),
    depth: int = 0,
    decompile: bool = False,
) -> PickleAnalysis:
    """Analyse the pickle that begins at ``start`` in ``data`` without loading it.

    ``allow`` adds ``(module, name)`` globals that the caller trusts to the built-in
    allowlist.  The caller decides what bytes after :attr:`PickleAnalysis.end` mean
    (trailing data is a finding for a standalone pickle, tensor data for a legacy
    PyTorch file).  ``decompile`` also writes :attr:`PickleAnalysis.program`, a readable account
    of what loading would do (``from os import system``, ``_v0 = os.system('id')``).
    """
    analysis = PickleAnalysis(start=start)
    try:
        raw = data if isinstance(data, (bytes, bytearray, mmap.mmap)) else bytes(data)
        machine = _Machine(raw, start, analysis, depth, allow)
        machine.trace = decompile
        machine.run()
    except _MalformedError as exc:
        analysis.issues.append(PickleIssue(exc.rule, "high", str(exc), exc.offset))
        analysis.complete = False
        if exc.rule == UNANALYSABLE:
            # The analyser gave up where the loader may go on: fail closed.
            analysis.evidence = True
    return analysis


#: The rule of a stream the analyser cannot follow to its end although the loader might.
UNANALYSABLE = "pickle.unanalysable"
#: What a plain-pickle reading of joblib array bytes may add to the analysis (not its structural errors).
_TWIN_RULES = frozenset(
    {
        "pickle.global-denied",
        "pickle.computed-call",
        "pickle.global-mutation",
        "pickle.dynamic-global",
        "pickle.extension",
        UNANALYSABLE,
    }
)


_Source = bytes | bytearray | mmap.mmap


class _Machine:
    """The unpickler's state, simulated: the stream position, the stack, the mark stack and the memo."""

    __slots__ = (
        "allow",
        "analysis",
        "buf",
        "depth",
        "frame_end",
        "memo",
        "metastack",
        "op_at",
        "plain",
        "pos",
        "proto",
        "size",
        "source",
        "stack",
        "trace",
        "twinned",
    )

    def __init__(
        self,
        source: _Source,
        start: int,
        analysis: PickleAnalysis,
        depth: int,
        allow: frozenset[tuple[str, str]],
        *,
        plain: bool = False,
    ) -> None:
        self.source = source
        self.buf = memoryview(source)
        self.size = len(self.buf)
        self.pos = start
        #: Offset of the opcode being simulated: every finding points at it.
        self.op_at = start
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.analysis = analysis
        self.depth = depth
        self.allow = allow
        #: The protocol the loader is in now: ``_pickle.c`` keeps the last ``PROTO``, not the highest.
        self.proto = 0
        #: Read as ``pickle.load`` reads the stream (joblib array bytes are opcodes), not as ``joblib.load``.
        self.plain = plain
        #: Whether the plain reading has been followed (from the first joblib array on, it covers the rest).
        self.twinned = plain or depth > 0
        #: Where the current ``FRAME`` ends (0 outside frames).
        self.frame_end = 0
        self.trace = False

    def run(self) -> None:
        """Simulate opcodes until ``STOP`` (a handler returns True) or a structural error."""
        buf, size, dispatch = self.buf, self.size, _DISPATCH
        while True:
            pos = self.pos
            if pos >= size:
                raise _MalformedError("pickle.truncated", "data ends before STOP", pos)
            self.op_at = pos
            self.pos = pos + 1
            read, handle = dispatch[buf[pos]]
            if handle(self, read(self) if read is not None else None):
                return

    # --- the stream ---------------------------------------------------------------------

    def malformed(self, message: str) -> _MalformedError:
        return _MalformedError("pickle.malformed", message, self.op_at)

    def take(self, size: int) -> memoryview:
        pos = self.pos
        if size < 0 or pos + size > self.size:
            raise _MalformedError(
                "pickle.truncated", f"argument of {size} bytes runs past the end of the data", self.op_at
            )
        if pos < self.frame_end < pos + size:
            raise self.split_by_frame()
        self.pos = pos + size
        return self.buf[pos : pos + size]

    def split_by_frame(self) -> _MalformedError:
        """An argument that crosses its ``FRAME``'s end: ``pickle.loads`` refuses it, but the C unpickler
        reading a file drops the frame's last bytes and reads the argument from after the frame, and a
        pickler never writes one.  The loaders disagree, so the analyser cannot stand in for them."""
        return _MalformedError(UNANALYSABLE, "an argument crosses the end of its FRAME", self.op_at)

    def line(self) -> bytes:
        """The newline-terminated argument, of any length as ``_Unpickler_Readline`` reads it (found in place)."""
        pos = self.pos
        end = self.source.find(b"\n", pos, self.size)
        if pos < self.frame_end <= end:
            raise self.split_by_frame()
        if end < 0:
            raise _MalformedError("pickle.truncated", "line argument is not terminated", self.op_at)
        self.pos = end + 1
        return bytes(self.buf[pos:end])

    # --- the stack ----------------------------------------------------------------------

    def pop(self) -> Any:
        if not self.stack:
            raise self.malformed("stack underflow")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise self.malformed("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise self.malformed("MARK expected but the mark stack is empty")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def memo_get(self, index: int) -> Any:
        try:
            return self.memo[index]
        except KeyError:
            raise self.malformed(f"memo index {index} read before it is written") from None

    # --- verdicts -----------------------------------------------------------------------

    def issue(self, rule: str, severity: str, message: str) -> None:
        self.analysis.issues.append(PickleIssue(rule, severity, message, self.op_at))

    def reference(self, module: str, name: str) -> _Global:
        """Record a global the unpickler would import, and refuse it unless it is allowlisted."""
        analysis = self.analysis
        if self.proto < 3:
            # pickle.Unpickler(fix_imports=True) maps Python 2 names before importing them.
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        importable = _IDENTIFIER_PATH.match(module) is not None
        if self.plain and not importable:
            # Reading joblib array bytes as opcodes: no module of such a name can be imported.
            raise self.malformed("global name that no import can resolve")
        # The loader imports the module before it looks the name up, so a real module's import runs
        # even when the name is not one.
        if importable and (_IDENTIFIER_PATH.match(name) is not None or module_exists(module)):
            analysis.evidence = True
        analysis.globals.append((module, name))
        if self.trace:
            analysis.program.append(f"from {module} import {name}")
        if (module, name) not in self.allow and not is_allowed(module, name):
            dangerous = is_known_dangerous(module, name)
            self.issue(
                "pickle.global-denied",
                "critical" if dangerous else "high",
                f"references {module}.{name}, which is not on the allowlist"
                + (" (executes code or touches files/network)" if dangerous else ""),
            )
        return _Global(module, name)

    def called(self, made: _Object, callee: Any, args: Any) -> _Object:
        """Push the result of a call; in a decompiled program, a numbered variable assigned from it."""
        self.stack.append(made)
        if self.trace:
            made.label = f"_v{sum(line.startswith('_v') for line in self.analysis.program)}"
            shown = args if isinstance(args, tuple) else (args,)
            call = f"{_expression(callee)}({', '.join(_expression(a) for a in shown)})"
            self.analysis.program.append(f"{made.label} = {call}")
        return made

    def check_callable(self, callee: Any, opname: str) -> _Global | None:
        if isinstance(callee, _Global):
            return callee
        self.issue("pickle.computed-call", "critical", f"{opname} calls a computed object, not an allowlisted global")
        return None

    def check_mutable(self, target: Any, opname: str) -> None:
        """Refuse a container opcode on a global.  On anything else the loader calls ``extend``, ``append``,
        ``add`` or ``__setitem__`` (``_pickle.c`` ``do_append``, ``do_setitems``, ``load_additems``), which many
        types have: the analyser goes on rather than guess which fail."""
        if isinstance(target, _Global):
            self.issue(
                "pickle.global-mutation", "critical", f"{opname} mutates the global {target.module}.{target.name}"
            )

    # --- joblib -------------------------------------------------------------------------

    def joblib_array(self, wrapper: _Object) -> _Opaque:
        """Skip the array joblib wrote after a ``NumpyArrayWrapper`` (joblib ``NumpyArrayWrapper.read``).

        ``pickle.load`` reads those bytes as opcodes, so they are read that way too first (:meth:`twin`)."""
        if not self.twinned:
            self.twinned = True
            self.twin()
        state = wrapper.state
        if not isinstance(state, dict):
            raise self.malformed("joblib array wrapper without a state dict")
        shape = state.get("shape")
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise self.malformed("joblib array wrapper has no valid shape")
        itemsize, has_object = _dtype_layout(state.get("dtype"), self.op_at)
        if has_object:
            return self.nested_pickle()
        if "numpy_array_alignment_bytes" in state:
            self.take(self.take(1)[0])
        count = 1
        for n in shape:
            count *= n
        self.take(count * itemsize)
        return _Opaque("array")

    def twin(self) -> None:
        """Follow the stream from here as plain ``pickle.load`` would, on a copy of the state, and keep
        what it would import or call: joblib array bytes must not hide opcodes from a plain loader.

        Only the first array forks: the plain reading goes on through every later array itself, and
        each opcode consumes a byte, so both readings together cost at most twice the stream."""
        twin_analysis = PickleAnalysis(start=self.pos)
        twin = _Machine(self.source, self.pos, twin_analysis, self.depth, self.allow, plain=True)
        twin.stack = list(self.stack)
        twin.metastack = [list(frame) for frame in self.metastack]
        twin.memo = dict(self.memo)
        twin.proto = self.proto
        try:
            twin.run()
        except _MalformedError as exc:
            # The loader fails there too; only a limit of the analyser's is a finding.
            if exc.rule == UNANALYSABLE:
                twin_analysis.issues.append(PickleIssue(exc.rule, "high", str(exc), exc.offset))
        self.analysis.globals.extend(twin_analysis.globals)
        for issue in twin_analysis.issues:
            if issue.rule in _TWIN_RULES:
                self.analysis.issues.append(
                    PickleIssue(issue.rule, issue.severity, f"read as a plain pickle: {issue.message}", issue.offset)
                )

    def nested_pickle(self) -> _Opaque:
        """An object array: a whole pickle inside this one, analysed with the same allowlist."""
        if self.depth >= MAX_NESTING:
            raise _MalformedError(UNANALYSABLE, "joblib object arrays nested too deeply to analyse", self.op_at)
        nested = analyse_pickle(self.source, self.pos, allow=self.allow, depth=self.depth + 1)
        self.analysis.globals.extend(nested.globals)
        self.analysis.issues.extend(nested.issues)
        if not nested.complete:
            raise self.malformed("joblib object array holds an incomplete pickle")
        self.pos = nested.end
        return _Opaque("object array")


# --- argument readers, keyed by pickletools.ArgumentDescriptor name ----------------------
# Binary numbers come back decoded; strings come back as raw bytes for the opcode to decode.

_Reader = Callable[[_Machine], Any]


def _read_uint1(m: _Machine) -> int:
    pos = m.pos
    if pos >= m.size:
        raise _MalformedError("pickle.truncated", "argument of 1 bytes runs past the end of the data", m.op_at)
    m.pos = pos + 1
    return m.buf[pos]


def _fixed_int(width: int, *, signed: bool) -> _Reader:
    def read(m: _Machine) -> int:
        return int.from_bytes(m.take(width), "little", signed=signed)

    return read


def _counted(read_length: _Reader) -> _Reader:
    def read(m: _Machine) -> memoryview:
        return m.take(read_length(m))

    return read


def _read_long(read_length: _Reader) -> _Reader:
    def read(m: _Machine) -> int:
        return int.from_bytes(m.take(read_length(m)), "little", signed=True)

    return read


def _read_float8(m: _Machine) -> float:
    value: float = struct.unpack(">d", m.take(8))[0]
    return value


def _read_line(m: _Machine) -> bytes:
    return m.line()


def _read_line_pair(m: _Machine) -> tuple[bytes, bytes]:
    first = m.line()
    return first, m.line()


_uint4 = _fixed_int(4, signed=False)
_int4 = _fixed_int(4, signed=True)
_uint8 = _fixed_int(8, signed=False)
_READERS: dict[str, _Reader] = {
    "uint1": _read_uint1,
    "uint2": _fixed_int(2, signed=False),
    "int4": _int4,
    "uint4": _uint4,
    "uint8": _uint8,
    "float8": _read_float8,
    "long1": _read_long(_read_uint1),
    "long4": _read_long(_int4),
    "string1": _counted(_read_uint1),
    "bytes1": _counted(_read_uint1),
    "unicodestring1": _counted(_read_uint1),
    "string4": _counted(_int4),
    "bytes4": _counted(_uint4),
    "unicodestring4": _counted(_uint4),
    "bytes8": _counted(_uint8),
    "bytearray8": _counted(_uint8),
    "unicodestring8": _counted(_uint8),
    "stringnl": _read_line,
    "stringnl_noescape": _read_line,
    "stringnl_noescape_pair": _read_line_pair,
    "decimalnl_short": _read_line,
    "decimalnl_long": _read_line,
    "floatnl": _read_line,
    "unicodestringnl": _read_line,
}


# --- opcode handlers, one per family; a handler returns True only for STOP ---------------

_Handler = Callable[[_Machine, Any], bool | None]


def _push_argument(m: _Machine, value: Any) -> None:
    m.stack.append(value)


def _push_utf8(m: _Machine, raw: memoryview) -> None:
    m.stack.append(_decode_utf8(raw, m.op_at))


def _push_latin1(m: _Machine, raw: memoryview) -> None:
    m.stack.append(bytes(raw).decode("latin-1"))


def _push_bytes(m: _Machine, raw: memoryview) -> None:
    m.stack.append(bytes(raw))


def _push_bytearray(m: _Machine, raw: memoryview) -> None:
    m.stack.append(bytearray(raw))


def _text_constant(opcode: bytes) -> _Handler:
    """``INT``, ``LONG``, ``FLOAT``, ``STRING``, ``UNICODE``: decoded by the C unpickler (:func:`_decode_constant`)."""

    def push(m: _Machine, line: bytes) -> None:
        m.stack.append(_loads_constant(opcode, line, m.op_at))

    return push


def _constant(make: Callable[[], Any]) -> _Handler:
    def push(m: _Machine, _: None) -> None:
        m.stack.append(make())

    return push


def _mark(m: _Machine, _: None) -> None:
    m.metastack.append(m.stack)
    m.stack = []


def _pop(m: _Machine, _: None) -> None:
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()


def _pop_mark(m: _Machine, _: None) -> None:
    m.pop_mark()


def _dup(m: _Machine, _: None) -> None:
    m.stack.append(m.top())


def _tuple_from_mark(m: _Machine, _: None) -> None:
    marked = m.pop_mark()
    m.stack.append(tuple(marked))


def _tuple1(m: _Machine, _: None) -> None:
    m.stack.append((m.pop(),))


def _tuple2(m: _Machine, _: None) -> None:
    second = m.pop()
    m.stack.append((m.pop(), second))


def _tuple3(m: _Machine, _: None) -> None:
    third = m.pop()
    second = m.pop()
    m.stack.append((m.pop(), second, third))


def _list_from_mark(m: _Machine, _: None) -> None:
    marked = m.pop_mark()
    m.stack.append(list(marked))


def _dict_from_mark(m: _Machine, _: None) -> None:
    items = m.pop_mark()
    if len(items) % 2:
        raise m.malformed("DICT with an odd number of items")
    built: dict[Any, Any] = {}
    for i in range(0, len(items), 2):
        _setitem(built, items[i], items[i + 1], m.op_at)
    m.stack.append(built)


def _frozenset_from_mark(m: _Machine, _: None) -> None:
    items = m.pop_mark()
    frozen: set[Any] = set()
    for item in items:
        _add(frozen, item, m.op_at)
    m.stack.append(frozenset(frozen))


def _append(m: _Machine, _: None) -> None:
    value = m.pop()
    target = m.top()
    m.check_mutable(target, "APPEND")
    if isinstance(target, list):
        target.append(value)


def _appends(m: _Machine, _: None) -> None:
    items = m.pop_mark()
    target = m.top()
    m.check_mutable(target, "APPENDS")
    if isinstance(target, list):
        target.extend(items)


def _setitem_op(m: _Machine, _: None) -> None:
    value = m.pop()
    key = m.pop()
    target = m.top()
    m.check_mutable(target, "SETITEM")
    if isinstance(target, dict):
        _setitem(target, key, value, m.op_at)


def _setitems(m: _Machine, _: None) -> None:
    items = m.pop_mark()
    target = m.top()
    m.check_mutable(target, "SETITEMS")
    if len(items) % 2:
        raise m.malformed("SETITEMS with an odd number of items")
    if items and isinstance(target, dict):
        for i in range(0, len(items), 2):
            _setitem(target, items[i], items[i + 1], m.op_at)


def _additems(m: _Machine, _: None) -> None:
    items = m.pop_mark()
    target = m.top()
    m.check_mutable(target, "ADDITEMS")
    if items and isinstance(target, set):
        for item in items:
            _add(target, item, m.op_at)


def _put(m: _Machine, index: int) -> None:
    m.memo[index] = m.top()


def _put_decimal(m: _Machine, line: bytes) -> None:
    index = _memo_index(line, m.op_at)
    if index < 0:
        raise m.malformed("negative PUT index")
    m.memo[index] = m.top()


def _memoize(m: _Machine, _: None) -> None:
    m.memo[len(m.memo)] = m.top()


def _get(m: _Machine, index: int) -> None:
    m.stack.append(m.memo_get(index))


def _get_decimal(m: _Machine, line: bytes) -> None:
    m.stack.append(m.memo_get(_memo_index(line, m.op_at)))


def _global(m: _Machine, names: tuple[bytes, bytes]) -> None:
    m.stack.append(m.reference(_global_name(names[0], m.op_at), _global_name(names[1], m.op_at)))


def _inst(m: _Machine, names: tuple[bytes, bytes]) -> None:
    ref = m.reference(_global_name(names[0], m.op_at), _global_name(names[1], m.op_at))
    marked = m.pop_mark()
    m.called(_Object(ref, tuple(marked)), ref, tuple(marked))


def _stack_global(m: _Machine, _: None) -> None:
    name = m.pop()
    module = m.pop()
    if isinstance(module, str) and isinstance(name, str):
        m.stack.append(m.reference(module, name))
        return
    m.issue(
        "pickle.dynamic-global",
        "critical",
        "STACK_GLOBAL operands are not string constants "
        f"({_describe(module)}, {_describe(name)}): the global cannot be resolved statically",
    )
    m.stack.append(_Opaque("unresolved global"))


def _reduce(m: _Machine, _: None) -> None:
    args = m.pop()
    target = m.pop()
    callee = m.check_callable(target, "REDUCE")
    if not isinstance(args, (tuple, _Object, _Opaque)):
        # PyObject_CallObject refuses anything but a tuple; a computed value may be one.
        raise m.malformed("REDUCE arguments are not a tuple")
    m.called(_Object(callee, args), target, args)


def _newobj(m: _Machine, _: None) -> None:
    args = m.pop()
    target = m.pop()
    cls = m.check_callable(target, "NEWOBJ")
    m.called(
        _Object(cls, args), _Attribute(target, "__new__"), (target, *(args if isinstance(args, tuple) else (args,)))
    )


def _newobj_ex(m: _Machine, _: None) -> None:
    kwargs = m.pop()
    args = m.pop()
    target = m.pop()
    cls = m.check_callable(target, "NEWOBJ_EX")
    m.called(_Object(cls, (args, kwargs)), _Attribute(target, "__new__"), (target, args, kwargs))


def _obj(m: _Machine, _: None) -> None:
    items = m.pop_mark()
    if not items:
        raise m.malformed("OBJ without a class")
    cls = m.check_callable(items[0], "OBJ")
    m.called(_Object(cls, tuple(items[1:])), items[0], tuple(items[1:]))


def _build(m: _Machine, _: None) -> None:
    state = m.pop()
    target = m.top()
    if m.trace:
        m.analysis.program.append(f"{_expression(target)}.__setstate__({_expression(state)})")
    if isinstance(target, _Global):
        m.issue("pickle.global-mutation", "critical", f"BUILD sets state on the global {target.module}.{target.name}")
    elif isinstance(target, _Object):
        target.state = state
        origin = target.origin
        if origin is not None and (origin.module, origin.name) == _JOBLIB_WRAPPER and not m.plain:
            m.stack[-1] = m.joblib_array(target)


def _persistent_id(m: _Machine, line: bytes) -> None:
    m.stack.append(_Opaque(f"persistent id {line!r}"))


def _binary_persistent_id(m: _Machine, _: None) -> None:
    m.stack.append(_Opaque(f"persistent id {_describe(m.pop())}"))


def _extension(m: _Machine, _: int) -> None:
    m.issue("pickle.extension", "high", "extension-registry code: the global it names cannot be checked")
    m.stack.append(_Opaque("extension"))


def _next_buffer(m: _Machine, _: None) -> None:
    m.issue("pickle.out-of-band", "high", "out-of-band buffer: the data it stands for is not in the file")
    m.stack.append(_Opaque("buffer"))


def _readonly_buffer(m: _Machine, _: None) -> None:
    m.top()


def _proto(m: _Machine, version: int) -> None:
    if version > HIGHEST_PROTOCOL:
        raise _MalformedError("pickle.unsupported-protocol", f"unsupported pickle protocol {version}", m.op_at)
    m.proto = version
    m.analysis.protocol = max(m.analysis.protocol, version)


def _frame(m: _Machine, length: int) -> None:
    end = m.pos + length
    if end > m.size:
        raise _MalformedError("pickle.truncated", "FRAME is longer than the remaining data", m.op_at)
    if m.pos < m.frame_end < end:
        # A frame that outlasts the one it starts in: read from the file, not the frame, by the C unpickler.
        raise m.split_by_frame()
    if end > m.frame_end:
        m.frame_end = end


def _stop(m: _Machine, _: None) -> bool:
    analysis = m.analysis
    analysis.result = m.pop()
    if m.trace:
        analysis.program.append(f"result = {_expression(analysis.result)}")
    analysis.end = m.pos
    analysis.complete = True
    analysis.evidence = True
    if m.stack or m.metastack:
        m.issue("pickle.malformed", "high", "values or marks left on the stack at STOP")
    return True


_HANDLERS: dict[str, _Handler] = {
    # constants
    "NONE": _constant(lambda: None),
    "NEWTRUE": _constant(lambda: True),
    "NEWFALSE": _constant(lambda: False),
    "EMPTY_TUPLE": _constant(tuple),
    "EMPTY_LIST": _constant(list),
    "EMPTY_DICT": _constant(dict),
    "EMPTY_SET": _constant(set),
    # numbers
    "BININT": _push_argument,
    "BININT1": _push_argument,
    "BININT2": _push_argument,
    "LONG1": _push_argument,
    "LONG4": _push_argument,
    "BINFLOAT": _push_argument,
    "INT": _text_constant(b"I"),
    "LONG": _text_constant(b"L"),
    "FLOAT": _text_constant(b"F"),
    # strings and bytes
    "SHORT_BINUNICODE": _push_utf8,
    "BINUNICODE": _push_utf8,
    "BINUNICODE8": _push_utf8,
    "UNICODE": _text_constant(b"V"),
    "SHORT_BINSTRING": _push_latin1,
    "BINSTRING": _push_latin1,
    "STRING": _text_constant(b"S"),
    "SHORT_BINBYTES": _push_bytes,
    "BINBYTES": _push_bytes,
    "BINBYTES8": _push_bytes,
    "BYTEARRAY8": _push_bytearray,
    # the stack and marks
    "MARK": _mark,
    "POP": _pop,
    "POP_MARK": _pop_mark,
    "DUP": _dup,
    # containers
    "TUPLE": _tuple_from_mark,
    "TUPLE1": _tuple1,
    "TUPLE2": _tuple2,
    "TUPLE3": _tuple3,
    "LIST": _list_from_mark,
    "DICT": _dict_from_mark,
    "FROZENSET": _frozenset_from_mark,
    "APPEND": _append,
    "APPENDS": _appends,
    "SETITEM": _setitem_op,
    "SETITEMS": _setitems,
    "ADDITEMS": _additems,
    # the memo
    "BINPUT": _put,
    "LONG_BINPUT": _put,
    "PUT": _put_decimal,
    "MEMOIZE": _memoize,
    "BINGET": _get,
    "LONG_BINGET": _get,
    "GET": _get_decimal,
    # globals, calls and state
    "GLOBAL": _global,
    "INST": _inst,
    "STACK_GLOBAL": _stack_global,
    "REDUCE": _reduce,
    "NEWOBJ": _newobj,
    "NEWOBJ_EX": _newobj_ex,
    "OBJ": _obj,
    "BUILD": _build,
    # what the file does not contain
    "PERSID": _persistent_id,
    "BINPERSID": _binary_persistent_id,
    "EXT1": _extension,
    "EXT2": _extension,
    "EXT4": _extension,
    "NEXT_BUFFER": _next_buffer,
    "READONLY_BUFFER": _readonly_buffer,
    # framing
    "PROTO": _proto,
    "FRAME": _frame,
    "STOP": _stop,
}


def _invalid_opcode(m: _Machine, _: None) -> None:
    raise _MalformedError("pickle.invalid-opcode", f"invalid opcode 0x{m.buf[m.op_at]:02x}", m.op_at)


def _dispatch_table() -> tuple[tuple[_Reader | None, _Handler], ...]:
    """Reader and handler per opcode byte, from ``pickletools.opcodes``; other bytes are invalid opcodes."""
    table: list[tuple[_Reader | None, _Handler]] = [(None, _invalid_opcode)] * 256
    for opcode in pickletools.opcodes:
        reader = _READERS[opcode.arg.name] if opcode.arg is not None else None
        table[ord(opcode.code)] = (reader, _HANDLERS[opcode.name])
    return tuple(table)


_DISPATCH = _dispatch_table()


# --- value decoding, as pickle._Unpickler does it ----------------------------------------


def _global_name(raw: bytes, op_at: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _MalformedError("pickle.malformed", "global name is not UTF-8", op_at) from None


def _decode_utf8(raw: memoryview, op_at: int) -> str:
    try:
        return str(raw, "utf-8", "surrogatepass")
    except UnicodeDecodeError:
        raise _MalformedError("pickle.malformed", "string is not valid UTF-8", op_at) from None


class _Unparsed:
    """A text constant the loader may parse in another configuration (an integer over the digit limit)."""


_UNPARSED = _Unparsed()


def _loads_constant(opcode: bytes, line: bytes, op_at: int) -> Any:
    value = _decode_constant(opcode, line)
    if isinstance(value, _Unparsed):
        return _Opaque("a number over the integer digit limit")
    if isinstance(value, Exception):
        raise _MalformedError("pickle.malformed", f"the loader refuses this argument ({value})"[:200], op_at)
    return value


@functools.lru_cache(maxsize=4096)
def _decode_constant(opcode: bytes, line: bytes) -> Any:
    """One protocol 0 constant, decoded by ``_pickle.c`` itself; the exception it raises when it refuses it.

    The stream is ``opcode line \\n STOP``: ``line`` holds no newline (it was cut at the first one),
    so it is exactly one constant and names no global.  ``latin1`` is the most lenient ``STRING``
    decoding a loader may ask for (the default, ASCII, refuses more).
    """
    try:
        # One constant and STOP: nothing to import, nothing to call.
        return pickle.loads(opcode + line + b"\n.", encoding="latin1")
    except ValueError as exc:
        if "digits" in str(exc) and "limit" in str(exc):
            return _UNPARSED
        return exc.with_traceback(None)
    except Exception as exc:  # whatever the loader raises, it refuses the argument
        return exc.with_traceback(None)


def _memo_index(raw_line: bytes, op_at: int) -> int:
    """A ``PUT``/``GET`` index as ``_pickle.c`` reads it: ``PyLong_FromString(s, NULL, 10)`` on a C string."""
    try:
        return int(raw_line.split(b"\0", 1)[0], 10)
    except ValueError:
        raise _MalformedError("pickle.malformed", "memo index is not a decimal number", op_at) from None


def _setitem(target: dict[Any, Any], key: Any, value: Any, op_at: int) -> None:
    try:
        target[key] = value
    except TypeError:
        raise _MalformedError("pickle.malformed", "unhashable dictionary key", op_at) from None


def _add(target: set[Any], item: Any, op_at: int) -> None:
    try:
        target.add(item)
    except TypeError:
        raise _MalformedError("pickle.malformed", "unhashable set item", op_at) from None


class _Attribute:
    """``NEWOBJ``'s callee in a decompiled program: ``cls.__new__``."""

    __slots__ = ("name", "owner")

    def __init__(self, owner: Any, name: str) -> None:
        self.owner = owner
        self.name = name


def _expression(value: Any, depth: int = 0) -> str:
    """A value as a decompiled program writes it: globals dotted, call results by variable."""
    if isinstance(value, _Global):
        return f"{value.module}.{value.name}"
    if isinstance(value, _Object):
        return value.label or f"{_expression(value.origin)}(...)"
    if isinstance(value, _Attribute):
        return f"{_expression(value.owner, depth)}.{value.name}"
    if isinstance(value, _Opaque):
        return f"<{value.what}>"
    return _container_expression(value, depth)


def _container_expression(value: Any, depth: int) -> str:
    if depth > 3:
        return "..."
    if isinstance(value, (tuple, list)):
        items = [_expression(item, depth + 1) for item in value[:8]] + (["..."] if len(value) > 8 else [])
        if isinstance(value, list):
            return "[" + ", ".join(items) + "]"
        return "(" + ", ".join(items) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict):
        pairs = [f"{_expression(k, depth + 1)}: {_expression(v, depth + 1)}" for k, v in list(value.items())[:8]]
        return "{" + ", ".join(pairs + (["..."] if len(value) > 8 else [])) + "}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(value: Any) -> str:
    if isinstance(value, _Global):
        return f"global {value.module}.{value.name}"
    if isinstance(value, _Object):
        origin = value.origin
        return f"result of {origin.module}.{origin.name}" if origin else "result of a computed call"
    if isinstance(value, _Opaque):
        return value.what
    return type(value).__name__


def _dtype_layout(dtype: Any, op_at: int) -> tuple[int, bool]:
    """Item size and whether the dtype holds Python objects, from ``numpy.dtype(code, ...)`` + its state."""
    if not isinstance(dtype, _Object) or not isinstance(dtype.args, tuple) or not dtype.args:
        raise _MalformedError("pickle.malformed", "joblib array wrapper has no numpy dtype", op_at)
    code = dtype.args[0]
    if not isinstance(code, str) or not code:
        raise _MalformedError("pickle.malformed", "numpy dtype code is not a string", op_at)
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    flags = state[-1] if state and isinstance(state[-1], int) else 0
    elsize = state[5] if len(state) > 5 and isinstance(state[5], int) else -1
    kind = code[0]
    if kind == "O" or flags & 1:
        return 8, True
    if elsize > 0:
        return elsize, False
    if code in _DTYPE_SIZES:
        return _DTYPE_SIZES[code], False
    digits = code[1:]
    if not digits.isdigit():
        raise _MalformedError("pickle.malformed", f"unknown numpy dtype code {code!r}", op_at)
    return int(digits) * (4 if kind == "U" else 1), False
