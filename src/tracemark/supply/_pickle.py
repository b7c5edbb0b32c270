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
"""

from __future__ import annotations

import _compat_pickle
import codecs
import mmap
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Protocol

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


_MARK = object()


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
        _run(raw, start, analysis, depth, allow)
    except _MalformedError as exc:
        analysis.issues.append(PickleIssue(exc.rule, "high", str(exc), exc.offset))
        analysis.complete = False
    return analysis


class _Searchable(Protocol):
    def find(self, sub: bytes, start: int, end: int, /) -> int: ...


def _line(raw: _Searchable, buf: memoryview, pos: int, op_at: int) -> tuple[bytes, int]:
    """The newline-terminated argument at ``pos`` (searched in place: no copy per opcode)."""
    end = raw.find(b"\n", pos, min(pos + 65536, len(buf)))
    if end < 0:
        if len(buf) - pos <= 65536:
            raise _MalformedError("pickle.truncated", "line argument is not terminated", op_at)
        raise _MalformedError("pickle.malformed", "line argument longer than 64 KiB", op_at)
    return bytes(buf[pos:end]), end + 1


def _take(buf: memoryview, pos: int, size: int, op_at: int) -> tuple[memoryview, int]:
    if size < 0 or pos + size > len(buf):
        raise _MalformedError("pickle.truncated", f"argument of {size} bytes runs past the end of the data", op_at)
    return buf[pos : pos + size], pos + size


def _global_name(raw: bytes, op_at: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _MalformedError("pickle.malformed", "global name is not UTF-8", op_at) from None


def _run(source: Any, pos: int, analysis: PickleAnalysis, depth: int, allow: frozenset[tuple[str, str]]) -> None:
    buf = memoryview(source)
    stack: list[Any] = []
    metastack: list[list[Any]] = []
    memo: dict[int, Any] = {}
    size = len(buf)
    unpack_from = struct.unpack_from

    def pop() -> Any:
        if not stack:
            raise _MalformedError("pickle.malformed", "stack underflow", op_at)
        return stack.pop()

    def pop_mark() -> list[Any]:
        nonlocal stack
        if not metastack:
            raise _MalformedError("pickle.malformed", "MARK expected but the mark stack is empty", op_at)
        items = stack
        stack = metastack.pop()
        return items

    def top() -> Any:
        if not stack:
            raise _MalformedError("pickle.malformed", "stack underflow", op_at)
        return stack[-1]

    def issue(rule: str, severity: str, message: str) -> None:
        analysis.issues.append(PickleIssue(rule, severity, message, op_at))

    def reference(module: str, name: str) -> _Global:
        if analysis.protocol < 3:
            # pickle.Unpickler(fix_imports=True) maps Python 2 names before importing them.
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        if _IDENTIFIER_PATH.match(module) and _IDENTIFIER_PATH.match(name):
            analysis.evidence = True
        analysis.globals.append((module, name))
        if (module, name) not in allow and not is_allowed(module, name):
            dangerous = is_known_dangerous(module, name)
            issue(
                "pickle.global-denied",
                "critical" if dangerous else "high",
                f"references {module}.{name}, which is not on the allowlist"
                + (" (executes code or touches files/network)" if dangerous else ""),
            )
        return _Global(module, name)

    def check_callable(callee: Any, opname: str) -> _Global | None:
        if isinstance(callee, _Global):
            return callee
        issue("pickle.computed-call", "critical", f"{opname} calls a computed object, not an allowlisted global")
        return None

    def check_mutable(target: Any, kinds: tuple[type, ...], opname: str) -> None:
        if isinstance(target, _Global):
            issue("pickle.global-mutation", "critical", f"{opname} mutates the global {target.module}.{target.name}")
        elif not isinstance(target, (*kinds, _Object, _Opaque)):
            raise _MalformedError("pickle.malformed", f"{opname} on a {type(target).__name__}", op_at)

    op_at = pos
    while True:
        if pos >= size:
            raise _MalformedError("pickle.truncated", "data ends before STOP", pos)
        op_at = pos
        op = buf[pos]
        pos += 1
        # Protocol 0/1 text and binary constants
        if op == 0x58:  # X BINUNICODE
            (n,) = unpack_from("<I", buf, pos) if pos + 4 <= size else (-1,)
            raw, pos = _take(buf, pos + 4, n, op_at)
            stack.append(_decode_utf8(raw, op_at))
        elif op == 0x8C:  # SHORT_BINUNICODE
            raw, pos = _take(buf, pos + 1, buf[pos] if pos < size else -1, op_at)
            stack.append(_decode_utf8(raw, op_at))
        elif op == 0x71:  # q BINPUT
            if pos >= size:
                raise _MalformedError("pickle.truncated", "BINPUT argument missing", op_at)
            memo[buf[pos]] = top()
            pos += 1
        elif op == 0x72:  # r LONG_BINPUT
            raw, pos = _take(buf, pos, 4, op_at)
            memo[int.from_bytes(raw, "little")] = top()
        elif op == 0x94:  # MEMOIZE
            memo[len(memo)] = top()
        elif op == 0x68:  # h BINGET
            if pos >= size:
                raise _MalformedError("pickle.truncated", "BINGET argument missing", op_at)
            stack.append(_memo_get(memo, buf[pos], op_at))
            pos += 1
        elif op == 0x6A:  # j LONG_BINGET
            raw, pos = _take(buf, pos, 4, op_at)
            stack.append(_memo_get(memo, int.from_bytes(raw, "little"), op_at))
        elif op == 0x4B:  # K BININT1
            raw, pos = _take(buf, pos, 1, op_at)
            stack.append(raw[0])
        elif op == 0x4D:  # M BININT2
            raw, pos = _take(buf, pos, 2, op_at)
            stack.append(int.from_bytes(raw, "little"))
        elif op == 0x4A:  # J BININT
            raw, pos = _take(buf, pos, 4, op_at)
            stack.append(int.from_bytes(raw, "little", signed=True))
        elif op == 0x28:  # ( MARK
            metastack.append(stack)
            stack = []
        elif op == 0x74:  # t TUPLE
            marked = pop_mark()
            stack.append(tuple(marked))
        elif op == 0x29:  # ) EMPTY_TUPLE
            stack.append(())
        elif op == 0x85:  # TUPLE1
            stack.append((pop(),))
        elif op == 0x86:  # TUPLE2
            second = pop()
            stack.append((pop(), second))
        elif op == 0x87:  # TUPLE3
            third = pop()
            second = pop()
            stack.append((pop(), second, third))
        elif op == 0x88:  # NEWTRUE
            stack.append(True)
        elif op == 0x89:  # NEWFALSE
            stack.append(False)
        elif op == 0x4E:  # N NONE
            stack.append(None)
        elif op == 0x5D:  # ] EMPTY_LIST
            stack.append([])
        elif op == 0x7D:  # } EMPTY_DICT
            stack.append({})
        elif op == 0x8F:  # EMPTY_SET
            stack.append(set())
        elif op == 0x51:  # Q BINPERSID
            stack.append(_Opaque(f"persistent id {_describe(pop())}"))
        elif op == 0x50:  # P PERSID
            raw_line, pos = _line(source, buf, pos, op_at)
            stack.append(_Opaque(f"persistent id {raw_line!r}"))
        elif op == 0x52:  # R REDUCE
            args = pop()
            callee = check_callable(pop(), "REDUCE")
            if not isinstance(args, tuple):
                raise _MalformedError("pickle.malformed", "REDUCE arguments are not a tuple", op_at)
            stack.append(_Object(callee, args))
        elif op == 0x62:  # b BUILD
            state = pop()
            target = top()
            if isinstance(target, _Global):
                issue(
                    "pickle.global-mutation",
                    "critical",
                    f"BUILD sets state on the global {target.module}.{target.name}",
                )
            elif isinstance(target, _Object):
                target.state = state
                origin = target.origin
                if origin is not None and (origin.module, origin.name) == _JOBLIB_WRAPPER:
                    stack[-1], pos = _joblib_array(source, buf, pos, target, analysis, depth, allow, op_at)
            elif not isinstance(target, _Opaque):
                raise _MalformedError("pickle.malformed", f"BUILD on a {type(target).__name__}", op_at)
        elif op == 0x63 or op == 0x69:  # c GLOBAL, i INST
            module_raw, pos = _line(source, buf, pos, op_at)
            name_raw, pos = _line(source, buf, pos, op_at)
            ref = reference(_global_name(module_raw, op_at), _global_name(name_raw, op_at))
            if op == 0x63:
                stack.append(ref)
            else:
                marked = pop_mark()
                stack.append(_Object(ref, tuple(marked)))
        elif op == 0x93:  # STACK_GLOBAL
            name = pop()
            module = pop()
            if not isinstance(module, str) or not isinstance(name, str):
                issue(
                    "pickle.dynamic-global",
                    "critical",
                    "STACK_GLOBAL operands are not string constants "
                    f"({_describe(module)}, {_describe(name)}): the global cannot be resolved statically",
                )
                stack.append(_Opaque("unresolved global"))
            else:
                stack.append(reference(module, name))
        elif op == 0x81:  # NEWOBJ
            args = pop()
            cls = check_callable(pop(), "NEWOBJ")
            stack.append(_Object(cls, args))
        elif op == 0x92:  # NEWOBJ_EX
            kwargs = pop()
            args = pop()
            cls = check_callable(pop(), "NEWOBJ_EX")
            stack.append(_Object(cls, (args, kwargs)))
        elif op == 0x6F:  # o OBJ
            items = pop_mark()
            if not items:
                raise _MalformedError("pickle.malformed", "OBJ without a class", op_at)
            cls = check_callable(items[0], "OBJ")
            stack.append(_Object(cls, tuple(items[1:])))
        elif op == 0x61:  # a APPEND
            value = pop()
            target = top()
            check_mutable(target, (list,), "APPEND")
            if isinstance(target, list):
                target.append(value)
        elif op == 0x65:  # e APPENDS
            items = pop_mark()
            target = top()
            check_mutable(target, (list,), "APPENDS")
            if isinstance(target, list):
                target.extend(items)
        elif op == 0x73:  # s SETITEM
            value = pop()
            key = pop()
            target = top()
            check_mutable(target, (dict,), "SETITEM")
            if isinstance(target, dict):
                _setitem(target, key, value, op_at)
        elif op == 0x75:  # u SETITEMS
            items = pop_mark()
            target = top()
            check_mutable(target, (dict,), "SETITEMS")
            if len(items) % 2:
                raise _MalformedError("pickle.malformed", "SETITEMS with an odd number of items", op_at)
            if isinstance(target, dict):
                for i in range(0, len(items), 2):
                    _setitem(target, items[i], items[i + 1], op_at)
        elif op == 0x90:  # ADDITEMS
            items = pop_mark()
            target = top()
            check_mutable(target, (set,), "ADDITEMS")
            if isinstance(target, set):
                for item in items:
                    _add(target, item, op_at)
        elif op == 0x91:  # FROZENSET
            items = pop_mark()
            frozen: set[Any] = set()
            for item in items:
                _add(frozen, item, op_at)
            stack.append(frozenset(frozen))
        elif op == 0x6C:  # l LIST
            marked = pop_mark()
            stack.append(list(marked))
        elif op == 0x64:  # d DICT
            items = pop_mark()
            if len(items) % 2:
                raise _MalformedError("pickle.malformed", "DICT with an odd number of items", op_at)
            built: dict[Any, Any] = {}
            for i in range(0, len(items), 2):
                _setitem(built, items[i], items[i + 1], op_at)
            stack.append(built)
        elif op == 0x30:  # 0 POP
            if stack:
                stack.pop()
            else:
                pop_mark()
        elif op == 0x31:  # 1 POP_MARK
            pop_mark()
        elif op == 0x32:  # 2 DUP
            stack.append(top())
        elif op == 0x80:  # PROTO
            raw, pos = _take(buf, pos, 1, op_at)
            if raw[0] > HIGHEST_PROTOCOL:
                raise _MalformedError("pickle.unsupported-protocol", f"unsupported pickle protocol {raw[0]}", op_at)
            analysis.protocol = max(analysis.protocol, raw[0])
        elif op == 0x95:  # FRAME
            raw, pos = _take(buf, pos, 8, op_at)
            if pos + int.from_bytes(raw, "little") > size:
                raise _MalformedError("pickle.truncated", "FRAME is longer than the remaining data", op_at)
        elif op == 0x2E:  # . STOP
            analysis.result = pop()
            analysis.end = pos
            analysis.complete = True
            analysis.evidence = True
            if stack or metastack:
                issue("pickle.malformed", "high", "values or marks left on the stack at STOP")
            return
        elif op == 0x42:  # B BINBYTES
            raw, pos = _take(buf, pos, 4, op_at)
            data, pos = _take(buf, pos, int.from_bytes(raw, "little"), op_at)
            stack.append(bytes(data))
        elif op == 0x43:  # C SHORT_BINBYTES
            raw, pos = _take(buf, pos, 1, op_at)
            data, pos = _take(buf, pos, raw[0], op_at)
            stack.append(bytes(data))
        elif op == 0x8E or op == 0x96:  # BINBYTES8, BYTEARRAY8
            raw, pos = _take(buf, pos, 8, op_at)
            data, pos = _take(buf, pos, int.from_bytes(raw, "little"), op_at)
            stack.append(bytes(data) if op == 0x8E else bytearray(data))
        elif op == 0x8D:  # BINUNICODE8
            raw, pos = _take(buf, pos, 8, op_at)
            data, pos = _take(buf, pos, int.from_bytes(raw, "little"), op_at)
            stack.append(_decode_utf8(data, op_at))
        elif op == 0x54:  # T BINSTRING
            raw, pos = _take(buf, pos, 4, op_at)
            data, pos = _take(buf, pos, int.from_bytes(raw, "little", signed=True), op_at)
            stack.append(bytes(data).decode("latin-1"))
        elif op == 0x55:  # U SHORT_BINSTRING
            raw, pos = _take(buf, pos, 1, op_at)
            data, pos = _take(buf, pos, raw[0], op_at)
            stack.append(bytes(data).decode("latin-1"))
        elif op == 0x53:  # S STRING
            raw_line, pos = _line(source, buf, pos, op_at)
            stack.append(_quoted_string(raw_line, op_at))
        elif op == 0x56:  # V UNICODE
            raw_line, pos = _line(source, buf, pos, op_at)
            try:
                stack.append(raw_line.decode("raw-unicode-escape"))
            except UnicodeDecodeError:
                raise _MalformedError("pickle.malformed", "UNICODE argument is not raw-unicode-escape", op_at) from None
        elif op == 0x49:  # I INT
            raw_line, pos = _line(source, buf, pos, op_at)
            if raw_line == b"00":
                stack.append(False)
            elif raw_line == b"01":
                stack.append(True)
            else:
                stack.append(_parse_int(raw_line, op_at))
        elif op == 0x4C:  # L LONG
            raw_line, pos = _line(source, buf, pos, op_at)
            stack.append(_parse_int(raw_line[:-1] if raw_line.endswith(b"L") else raw_line, op_at))
        elif op == 0x46:  # F FLOAT
            raw_line, pos = _line(source, buf, pos, op_at)
            try:
                stack.append(float(raw_line))
            except ValueError:
                raise _MalformedError("pickle.malformed", "FLOAT argument is not a number", op_at) from None
        elif op == 0x47:  # G BINFLOAT
            raw, pos = _take(buf, pos, 8, op_at)
            stack.append(struct.unpack(">d", raw)[0])
        elif op == 0x8A or op == 0x8B:  # LONG1, LONG4
            width = 1 if op == 0x8A else 4
            raw, pos = _take(buf, pos, width, op_at)
            count = int.from_bytes(raw, "little", signed=op == 0x8B)
            data, pos = _take(buf, pos, count, op_at)
            stack.append(int.from_bytes(data, "little", signed=True))
        elif op == 0x67 or op == 0x70:  # g GET, p PUT
            raw_line, pos = _line(source, buf, pos, op_at)
            index = _parse_int(raw_line, op_at)
            if op == 0x67:
                stack.append(_memo_get(memo, index, op_at))
            else:
                if index < 0:
                    raise _MalformedError("pickle.malformed", "negative PUT index", op_at)
                memo[index] = top()
        elif op in (0x82, 0x83, 0x84):  # EXT1, EXT2, EXT4
            _, pos = _take(buf, pos, {0x82: 1, 0x83: 2, 0x84: 4}[op], op_at)
            issue("pickle.extension", "high", "extension-registry code: the global it names cannot be checked")
            stack.append(_Opaque("extension"))
        elif op == 0x97:  # NEXT_BUFFER
            issue("pickle.out-of-band", "high", "out-of-band buffer: the data it stands for is not in the file")
            stack.append(_Opaque("buffer"))
        elif op == 0x98:  # READONLY_BUFFER
            top()
        else:
            raise _MalformedError("pickle.invalid-opcode", f"invalid opcode 0x{op:02x}", op_at)


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


def _memo_get(memo: dict[int, Any], index: int, op_at: int) -> Any:
    try:
        return memo[index]
    except KeyError:
        raise _MalformedError("pickle.malformed", f"memo index {index} read before it is written", op_at) from None


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


def _joblib_array(
    source: Any,
    buf: memoryview,
    pos: int,
    wrapper: _Object,
    analysis: PickleAnalysis,
    depth: int,
    allow: frozenset[tuple[str, str]],
    op_at: int,
) -> tuple[Any, int]:
    """Skip the array joblib wrote after a ``NumpyArrayWrapper`` (joblib ``NumpyArrayWrapper.read``)."""
    state = wrapper.state
    if not isinstance(state, dict):
        raise _MalformedError("pickle.malformed", "joblib array wrapper without a state dict", op_at)
    shape = state.get("shape")
    dtype = state.get("dtype")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise _MalformedError("pickle.malformed", "joblib array wrapper has no valid shape", op_at)
    itemsize, has_object = _dtype_layout(dtype, op_at)
    if has_object:
        if depth >= MAX_NESTING:
            raise _MalformedError("pickle.malformed", "joblib object arrays nested too deeply", op_at)
        nested = analyse_pickle(source, pos, allow=allow, depth=depth + 1)
        analysis.globals.extend(nested.globals)
        analysis.issues.extend(nested.issues)
        if not nested.complete:
            raise _MalformedError("pickle.malformed", "joblib object array holds an incomplete pickle", op_at)
        return _Opaque("object array"), nested.end
    if "numpy_array_alignment_bytes" in state:
        padding, pos = _take(buf, pos, 1, op_at)
        _, pos = _take(buf, pos, padding[0], op_at)
    count = 1
    for n in shape:
        count *= n
    _, pos = _take(buf, pos, count * itemsize, op_at)
    return _Opaque("array"), pos


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
