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

joblib files interleave raw array bytes with the pickle stream; the analyser follows joblib's
``NumpyArrayWrapper`` protocol so those bytes are skipped exactly, and object arrays (a nested
pickle) are analysed recursively.

The opcode table is ``pickletools.opcodes`` (name, byte, argument layout); :data:`_HANDLERS`
gives one small handler per opcode family, keyed by opcode name, over the simulated state in
:class:`_Machine`.  Arguments are framed by their ``pickletools`` descriptor but decoded as the
unpickler decodes them, not with ``pickletools.genops``: its readers escape-decode ``GLOBAL``
names, read ``INT`` in base 10 and read lines of any length, so a genops-based scanner would
disagree with the loader on exactly the bytes an attacker controls.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import mmap
import pickletools
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tracemark.supply._allowlist import is_allowed, is_known_dangerous

HIGHEST_PROTOCOL = 5
#: Nested pickles (joblib object arrays) deeper than this are refused.
MAX_NESTING = 8
#: Longest newline-terminated argument (protocol 0 names, numbers, strings) that is followed.
MAX_LINE = 65536

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

    __slots__ = ("args", "origin", "state")

    def __init__(self, origin: _Global | None, args: Any = None) -> None:
        self.origin = origin
        self.args = args
        self.state: Any = None


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

    @property
    def safe(self) -> bool:
        return self.complete and not self.issues


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
) -> PickleAnalysis:
    """Analyse the pickle that begins at ``start`` in ``data`` without loading it.

    ``allow`` adds ``(module, name)`` globals that the caller trusts to the built-in
    allowlist.  The caller decides what bytes after :attr:`PickleAnalysis.end` mean
    (trailing data is a finding for a standalone pickle, tensor data for a legacy
    PyTorch file).
    """
    analysis = PickleAnalysis(start=start)
    try:
        raw = data if isinstance(data, (bytes, bytearray, mmap.mmap)) else bytes(data)
        _Machine(raw, start, analysis, depth, allow).run()
    except _MalformedError as exc:
        analysis.issues.append(PickleIssue(exc.rule, "high", str(exc), exc.offset))
        analysis.complete = False
    return analysis


_Source = bytes | bytearray | mmap.mmap


class _Machine:
    """The unpickler's state, simulated: the stream position, the stack, the mark stack and the memo."""

    __slots__ = ("allow", "analysis", "buf", "depth", "memo", "metastack", "op_at", "pos", "size", "source", "stack")

    def __init__(
        self, source: _Source, start: int, analysis: PickleAnalysis, depth: int, allow: frozenset[tuple[str, str]]
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
        self.pos = pos + size
        return self.buf[pos : pos + size]

    def line(self) -> bytes:
        """The newline-terminated argument (searched in place: no copy per opcode)."""
        pos, size = self.pos, self.size
        end = self.source.find(b"\n", pos, min(pos + MAX_LINE, size))
        if end < 0:
            if size - pos <= MAX_LINE:
                raise _MalformedError("pickle.truncated", "line argument is not terminated", self.op_at)
            raise self.malformed("line argument longer than 64 KiB")
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
        if analysis.protocol < 3:
            # pickle.Unpickler(fix_imports=True) maps Python 2 names before importing them.
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        if _IDENTIFIER_PATH.match(module) and _IDENTIFIER_PATH.match(name):
            analysis.evidence = True
        analysis.globals.append((module, name))
        if (module, name) not in self.allow and not is_allowed(module, name):
            dangerous = is_known_dangerous(module, name)
            self.issue(
                "pickle.global-denied",
                "critical" if dangerous else "high",
                f"references {module}.{name}, which is not on the allowlist"
                + (" (executes code or touches files/network)" if dangerous else ""),
            )
        return _Global(module, name)

    def check_callable(self, callee: Any, opname: str) -> _Global | None:
        if isinstance(callee, _Global):
            return callee
        self.issue("pickle.computed-call", "critical", f"{opname} calls a computed object, not an allowlisted global")
        return None

    def check_mutable(self, target: Any, kinds: tuple[type, ...], opname: str) -> None:
        if isinstance(target, _Global):
            self.issue(
                "pickle.global-mutation", "critical", f"{opname} mutates the global {target.module}.{target.name}"
            )
        elif not isinstance(target, (*kinds, _Object, _Opaque)):
            raise self.malformed(f"{opname} on a {type(target).__name__}")

    # --- joblib -------------------------------------------------------------------------

    def joblib_array(self, wrapper: _Object) -> _Opaque:
        """Skip the array joblib wrote after a ``NumpyArrayWrapper`` (joblib ``NumpyArrayWrapper.read``)."""
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

    def nested_pickle(self) -> _Opaque:
        """An object array: a whole pickle inside this one, analysed with the same allowlist."""
        if self.depth >= MAX_NESTING:
            raise self.malformed("joblib object arrays nested too deeply")
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


def _push_quoted_string(m: _Machine, line: bytes) -> None:
    m.stack.append(_quoted_string(line, m.op_at))


def _push_raw_unicode(m: _Machine, line: bytes) -> None:
    try:
        m.stack.append(line.decode("raw-unicode-escape"))
    except UnicodeDecodeError:
        raise m.malformed("UNICODE argument is not raw-unicode-escape") from None


def _push_decimal_int(m: _Machine, line: bytes) -> None:
    if line == b"00":
        m.stack.append(False)
    elif line == b"01":
        m.stack.append(True)
    else:
        m.stack.append(_parse_int(line, m.op_at))


def _push_decimal_long(m: _Machine, line: bytes) -> None:
    m.stack.append(_parse_int(line[:-1] if line.endswith(b"L") else line, m.op_at))


def _push_decimal_float(m: _Machine, line: bytes) -> None:
    try:
        m.stack.append(float(line))
    except ValueError:
        raise m.malformed("FLOAT argument is not a number") from None


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
    m.check_mutable(target, (list,), "APPEND")
    if isinstance(target, list):
        target.append(value)


def _appends(m: _Machine, _: None) -> None:
    items = m.pop_mark()
    target = m.top()
    m.check_mutable(target, (list,), "APPENDS")
    if isinstance(target, list):
        target.extend(items)


def _setitem_op(m: _Machine, _: None) -> None:
    value = m.pop()
    key = m.pop()
    target = m.top()
    m.check_mutable(target, (dict,), "SETITEM")
    if isinstance(target, dict):
        _setitem(target, key, value, m.op_at)


def _setitems(m: _Machine, _: None) -> None:
    items = m.pop_mark()
    target = m.top()
    m.check_mutable(target, (dict,), "SETITEMS")
    if len(items) % 2:
        raise m.malformed("SETITEMS with an odd number of items")
    if isinstance(target, dict):
        for i in range(0, len(items), 2):
            _setitem(target, items[i], items[i + 1], m.op_at)


def _additems(m: _Machine, _: None) -> None:
    items = m.pop_mark()
    target = m.top()
    m.check_mutable(target, (set,), "ADDITEMS")
    if isinstance(target, set):
        for item in items:
            _add(target, item, m.op_at)


def _put(m: _Machine, index: int) -> None:
    m.memo[index] = m.top()


def _put_decimal(m: _Machine, line: bytes) -> None:
    index = _parse_int(line, m.op_at)
    if index < 0:
        raise m.malformed("negative PUT index")
    m.memo[index] = m.top()


def _memoize(m: _Machine, _: None) -> None:
    m.memo[len(m.memo)] = m.top()


def _get(m: _Machine, index: int) -> None:
    m.stack.append(m.memo_get(index))


def _get_decimal(m: _Machine, line: bytes) -> None:
    m.stack.append(m.memo_get(_parse_int(line, m.op_at)))


def _global(m: _Machine, names: tuple[bytes, bytes]) -> None:
    m.stack.append(m.reference(_global_name(names[0], m.op_at), _global_name(names[1], m.op_at)))


def _inst(m: _Machine, names: tuple[bytes, bytes]) -> None:
    ref = m.reference(_global_name(names[0], m.op_at), _global_name(names[1], m.op_at))
    marked = m.pop_mark()
    m.stack.append(_Object(ref, tuple(marked)))


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
    callee = m.check_callable(m.pop(), "REDUCE")
    if not isinstance(args, tuple):
        raise m.malformed("REDUCE arguments are not a tuple")
    m.stack.append(_Object(callee, args))


def _newobj(m: _Machine, _: None) -> None:
    args = m.pop()
    cls = m.check_callable(m.pop(), "NEWOBJ")
    m.stack.append(_Object(cls, args))


def _newobj_ex(m: _Machine, _: None) -> None:
    kwargs = m.pop()
    args = m.pop()
    cls = m.check_callable(m.pop(), "NEWOBJ_EX")
    m.stack.append(_Object(cls, (args, kwargs)))


def _obj(m: _Machine, _: None) -> None:
    items = m.pop_mark()
    if not items:
        raise m.malformed("OBJ without a class")
    cls = m.check_callable(items[0], "OBJ")
    m.stack.append(_Object(cls, tuple(items[1:])))


def _build(m: _Machine, _: None) -> None:
    state = m.pop()
    target = m.top()
    if isinstance(target, _Global):
        m.issue("pickle.global-mutation", "critical", f"BUILD sets state on the global {target.module}.{target.name}")
    elif isinstance(target, _Object):
        target.state = state
        origin = target.origin
        if origin is not None and (origin.module, origin.name) == _JOBLIB_WRAPPER:
            m.stack[-1] = m.joblib_array(target)
    elif not isinstance(target, _Opaque):
        raise m.malformed(f"BUILD on a {type(target).__name__}")


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
    m.analysis.protocol = max(m.analysis.protocol, version)


def _frame(m: _Machine, length: int) -> None:
    if m.pos + length > m.size:
        raise _MalformedError("pickle.truncated", "FRAME is longer than the remaining data", m.op_at)


def _stop(m: _Machine, _: None) -> bool:
    analysis = m.analysis
    analysis.result = m.pop()
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
    "INT": _push_decimal_int,
    "LONG": _push_decimal_long,
    "FLOAT": _push_decimal_float,
    # strings and bytes
    "SHORT_BINUNICODE": _push_utf8,
    "BINUNICODE": _push_utf8,
    "BINUNICODE8": _push_utf8,
    "UNICODE": _push_raw_unicode,
    "SHORT_BINSTRING": _push_latin1,
    "BINSTRING": _push_latin1,
    "STRING": _push_quoted_string,
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


def _quoted_string(raw_line: bytes, op_at: int) -> str:
    if len(raw_line) < 2 or raw_line[0] != raw_line[-1] or raw_line[0] not in b"\"'":
        raise _MalformedError("pickle.malformed", "STRING argument must be quoted", op_at)
    try:
        decoded: bytes = codecs.escape_decode(raw_line[1:-1])[0]
    except ValueError:
        raise _MalformedError("pickle.malformed", "STRING argument has a bad escape", op_at) from None
    return decoded.decode("latin-1")


def _parse_int(raw_line: bytes, op_at: int) -> int:
    try:
        return int(raw_line, 0)
    except ValueError:
        raise _MalformedError("pickle.malformed", "integer argument is not a number", op_at) from None


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
