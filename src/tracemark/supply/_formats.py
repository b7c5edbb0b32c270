"""Header validators for the non-pickle model formats: safetensors, GGUF, numpy, Keras, ONNX.

Each validator reads only headers (never tensor data) and returns ``(rule, severity,
message)`` tuples; the scanner turns them into findings with a location.
"""

from __future__ import annotations

import ast
import json
import posixpath
import re
import struct
from collections.abc import Iterator
from typing import Any, TypedDict

from tracemark._json import JSONObject, JSONValue
from tracemark.supply._code import chat_template_issues

Issue = tuple[str, str, str]

#: Largest safetensors JSON header read (the format's own parsers cap it at 100 MB).
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
_SAFETENSORS_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
    "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64, "F4": 4,
    "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """An 8-byte little-endian header length followed by a JSON object that fits in the file."""
    if len(head) < 10:
        return False
    (length,) = struct.unpack_from("<Q", head)
    return 2 <= length <= min(size - 8, MAX_SAFETENSORS_HEADER) and head[8:9] == b"{"


def _no_duplicates(pairs: list[tuple[str, JSONValue]]) -> JSONObject:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate keys in JSON object")
    return dict(pairs)


def check_safetensors(data: Any, size: int) -> list[Issue]:
    """Validate a safetensors header: dtypes, shapes, and offsets that tile the data exactly."""
    (length,) = struct.unpack_from("<Q", data)
    rule = "safetensors.invalid-header"
    try:
        header = json.loads(bytes(data[8 : 8 + length]), object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return [(rule, "high", f"header is not valid JSON ({exc})")]
    if not isinstance(header, dict):
        return [(rule, "high", "header is not a JSON object")]
    issues: list[Issue] = []
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        issues.append((rule, "high", "__metadata__ must map strings to strings"))
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict):
            issues.append((rule, "high", f"tensor {name!r} is not an object"))
            continue
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _SAFETENSORS_BITS:
            issues.append((rule, "high", f"tensor {name!r} has unknown dtype {dtype!r}"))
            continue
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            issues.append((rule, "high", f"tensor {name!r} has an invalid shape"))
            continue
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(n, int) for n in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            issues.append((rule, "high", f"tensor {name!r} has invalid data_offsets"))
            continue
        count = 1
        for n in shape:
            count *= n
        bits = count * _SAFETENSORS_BITS[dtype]
        if bits % 8 or offsets[1] - offsets[0] != bits // 8:
            issues.append((rule, "high", f"tensor {name!r}: data_offsets do not match its dtype and shape"))
        spans.append((offsets[0], offsets[1], name))
    expected = 0
    for start, end, name in sorted(spans):
        if start != expected:
            kind = "overlaps another tensor" if start < expected else "leaves a gap before it"
            issues.append((rule, "high", f"tensor {name!r} {kind}"))
        expected = max(expected, end)
    if not issues and expected != size - 8 - length:
        issues.append((rule, "high", f"tensors cover {expected} bytes but the data section is {size - 8 - length}"))
    return issues


# --- GGUF (ggml/docs/gguf.md) ---------------------------------------------------------------

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class _GgufError(Exception):
    pass


class _Reader:
    def __init__(self, data: Any, size: int) -> None:
        self.data = data
        self.size = size
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        width = struct.calcsize(fmt)
        if self.pos + width > self.size:
            raise _GgufError("header runs past the end of the file")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += width
        return value

    def string(self, length_fmt: str) -> str:
        length = self.unpack(length_fmt)
        if self.pos + length > self.size:
            raise _GgufError("a string runs past the end of the file")
        raw = bytes(self.data[self.pos : self.pos + length])
        self.pos += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _GgufError("a string is not UTF-8") from None


def check_gguf(data: Any, size: int) -> list[Issue]:
    """Validate a GGUF header (v1-v3): bounded counts and strings, known value types, tensor offsets."""
    rule = "gguf.invalid-header"
    reader = _Reader(data, size)
    issues: list[Issue] = []
    try:
        reader.pos = 4
        version = reader.unpack("<I")
        if version not in (1, 2, 3):
            return [(rule, "high", f"unsupported GGUF version {version}")]
        count_fmt = "<I" if version == 1 else "<Q"
        tensors = reader.unpack(count_fmt)
        kvs = reader.unpack(count_fmt)
        if tensors > size // 24 or kvs > size // 12:
            return [(rule, "high", f"counts ({tensors} tensors, {kvs} keys) cannot fit in {size} bytes")]
        alignment = 32
        for _ in range(kvs):
            key = reader.string(count_fmt)
            value_type = reader.unpack("<I")
            value = _gguf_value(reader, value_type, count_fmt, 0)
            if key == "general.alignment" and isinstance(value, int) and value > 0:
                alignment = value
            if key.startswith("tokenizer.chat_template") and isinstance(value, str):
                issues.extend(chat_template_issues(value, key))
        for _ in range(tensors):
            name = reader.string(count_fmt)
            dims = reader.unpack("<I")
            if dims > 8:
                raise _GgufError(f"tensor {name!r} has {dims} dimensions")
            for _ in range(dims):
                reader.unpack(count_fmt)
            reader.unpack("<I")
            offset = reader.unpack("<Q")
            if offset % alignment:
                issues.append((rule, "high", f"tensor {name!r} offset {offset} is not {alignment}-aligned"))
            if offset >= size:
                issues.append((rule, "high", f"tensor {name!r} offset {offset} is past the end of the file"))
    except _GgufError as exc:
        issues.append((rule, "high", str(exc)))
    return issues


def _gguf_value(reader: _Reader, value_type: int, count_fmt: str, depth: int) -> Any:
    if value_type in _GGUF_SCALARS:
        return reader.unpack(_GGUF_SCALARS[value_type])
    if value_type == 8:
        return reader.string(count_fmt)
    if value_type == 9:
        if depth > 4:
            raise _GgufError("arrays nested too deeply")
        item_type = reader.unpack("<I")
        count = reader.unpack(count_fmt)
        if count > reader.size - reader.pos:
            raise _GgufError("an array is longer than the file")
        for _ in range(count):
            _gguf_value(reader, item_type, count_fmt, depth + 1)
        return None
    raise _GgufError(f"unknown metadata value type {value_type}")


# --- numpy .npy (numpy/lib/format.py) ---------------------------------------------------------


class NpyHeader(TypedDict):
    """The members of a ``.npy`` header that numpy requires, as the header's Python literal gives them.

    The header is a literal from the file (``ast.literal_eval``: tuples, not JSON), so the values are
    whatever the file says and are checked where they are read (:func:`npy_has_objects`).
    """

    descr: object
    fortran_order: object
    shape: object


def parse_npy_header(data: Any, size: int) -> tuple[NpyHeader | None, int, list[Issue]]:  # noqa: PLR0911 - one return per way a header can be wrong
    """The header's required members and the data offset of a ``.npy`` file, or ``None`` with an issue."""
    rule = "numpy.invalid-header"
    if size < 10:
        return None, 0, [(rule, "high", "truncated .npy header")]
    major = data[6]
    if major == 1:
        (length,) = struct.unpack_from("<H", data, 8)
        start = 10
    elif major in (2, 3):
        if size < 12:
            return None, 0, [(rule, "high", "truncated .npy header")]
        (length,) = struct.unpack_from("<I", data, 8)
        start = 12
    else:
        return None, 0, [(rule, "high", f"unknown .npy format version {major}")]
    if length > 65536 or start + length > size:
        return None, 0, [(rule, "high", "the .npy header is too long or truncated")]
    try:
        text = bytes(data[start : start + length]).decode("utf-8" if major == 3 else "latin-1")
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        return None, 0, [(rule, "high", "the .npy header is not a Python literal")]
    if not isinstance(header, dict) or {"descr", "fortran_order", "shape"} - header.keys():
        return None, 0, [(rule, "high", "the .npy header lacks descr, fortran_order or shape")]
    members = NpyHeader(descr=header["descr"], fortran_order=header["fortran_order"], shape=header["shape"])
    return members, start + length, []


def npy_has_objects(descr: object) -> bool:
    """Whether a numpy ``descr`` holds Python objects (then the data is a pickle)."""
    if isinstance(descr, str):
        return "O" in descr.lstrip("<>|=")[:1]
    if isinstance(descr, (list, tuple)):
        return any(npy_has_objects(field[1]) for field in descr if isinstance(field, (list, tuple)) and len(field) > 1)
    return True


# --- Keras ----------------------------------------------------------------------------------

#: Where a JSON object may start inside an HDF5 file (the ``model_config`` attribute is a JSON string).
_JSON_OBJECT_START = re.compile(rb'\{\s*"')
#: Longest JSON document read out of an HDF5 file.
MAX_EMBEDDED_JSON = 64 * 1024 * 1024
#: Modules a Keras config may name for a function or class without it being foreign code.
_KERAS_MODULES = ("keras", "tf_keras", "tensorflow", "builtins")


def keras_lambda_issues(config: JSONValue, where: str = "config") -> list[Issue]:
    """Keras objects in a model config that run code on load: ``Lambda`` layers (stored Python code)
    and functions named from modules outside Keras (``{"module": "os", "class_name": "function"}``)."""
    issues: list[Issue] = []
    for node in _walk_json(config):
        class_name = node.get("class_name")
        if class_name == "Lambda":
            layer_config = node.get("config")
            layer = layer_config.get("name", "?") if isinstance(layer_config, dict) else "?"
            issues.append(("keras.lambda-layer", "critical", f"{where}: Lambda layer {layer!r} runs stored code"))
        elif class_name == "function" and isinstance(node.get("module"), str):
            module = str(node["module"])
            if module.partition(".")[0] not in _KERAS_MODULES:
                issues.append(
                    ("keras.foreign-function", "critical", f"{where}: names the function {module}.{node.get('config')}")
                )
    return issues


class EmbeddedJsonBudgetError(Exception):
    """Reading JSON objects out of a file's bytes would cost more than :data:`MAX_EMBEDDED_JSON_WORK`."""


#: Bytes decoded in all, over every candidate object of one file, before the file is refused unread.
MAX_EMBEDDED_JSON_WORK = 512 * 1024 * 1024
_FIRST_WINDOW = 4096


def embedded_keras_configs(data: Any) -> Iterator[JSONValue]:
    """The JSON objects stored inside an HDF5 file's bytes (Keras ``model_config``/``training_config``),
    decoded as JSON so that escapes (``"\\u004cambda"``) read as the loader reads them.

    Each candidate ``{"`` is decoded from a 4 KiB window, widened eightfold only while the object
    is still open at the window's end, so random weight bytes cost little; past
    :data:`MAX_EMBEDDED_JSON_WORK` decoded bytes in all, :class:`EmbeddedJsonBudgetError` is raised
    (the caller refuses the file rather than skip what it did not read).
    """
    decoder = json.JSONDecoder()
    end = 0
    size = len(data)
    work = 0
    for match in _JSON_OBJECT_START.finditer(data):
        start = match.start()
        if start < end:
            continue
        window = _FIRST_WINDOW
        while True:
            text = bytes(data[start : min(size, start + window)]).decode("utf-8", "ignore")
            work += len(text)
            if work > MAX_EMBEDDED_JSON_WORK:
                raise EmbeddedJsonBudgetError
            try:
                document, length = decoder.raw_decode(text)
            except json.JSONDecodeError as exc:
                if exc.pos >= len(text) - 1 and start + window < size and window < MAX_EMBEDDED_JSON:
                    window *= 8
                    continue
                break
            except (ValueError, RecursionError):
                break
            end = start + len(text[:length].encode("utf-8"))
            yield document
            break


def _walk_json(node: JSONValue) -> Iterator[JSONObject]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


# --- ONNX external data (onnx.proto3) -----------------------------------------------------------


class _ProtoError(Exception):
    pass


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """Protobuf wire-format fields: (number, wire type, value or bytes)."""
    pos, size = 0, len(data)

    def varint() -> int:
        nonlocal pos
        result = shift = 0
        while True:
            if pos >= size or shift > 63:
                raise _ProtoError("bad varint")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    while pos < size:
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, wire, varint()
        elif wire == 1:
            pos += 8
            yield number, wire, None
        elif wire == 2:
            length = varint()
            if pos + length > size:
                raise _ProtoError("field runs past the end")
            yield number, wire, data[pos : pos + length]
            pos += length
        elif wire == 5:
            pos += 4
            yield number, wire, None
        else:
            raise _ProtoError(f"unsupported wire type {wire}")
        if pos > size:
            raise _ProtoError("field runs past the end")


def onnx_external_locations(data: bytes) -> list[str] | None:
    """Every external-data ``location`` in an ONNX model, or ``None`` when it is not an ONNX model."""
    try:
        top = list(_fields(data))
        if not top or top[0][:2] != (1, 0) or not any(n == 7 and w == 2 for n, w, _ in top):
            return None
        locations: list[str] = []
        for number, wire, value in top:
            if number == 7 and wire == 2:
                _graph_locations(value, locations, 0)
        return locations
    except _ProtoError:
        return None


def _graph_locations(graph: bytes, out: list[str], depth: int) -> None:
    if depth > 16:
        raise _ProtoError("graphs nested too deeply")
    for number, wire, value in _fields(graph):
        if wire != 2:
            continue
        if number == 5:  # GraphProto.initializer
            _tensor_locations(value, out)
        elif number == 15:  # GraphProto.sparse_initializer: values (1) and indices (2)
            for inner, inner_wire, tensor in _fields(value):
                if inner in (1, 2) and inner_wire == 2:
                    _tensor_locations(tensor, out)
        elif number == 1:  # GraphProto.node -> NodeProto.attribute (5)
            for inner, inner_wire, attribute in _fields(value):
                if inner == 5 and inner_wire == 2:
                    _attribute_locations(attribute, out, depth)


def _attribute_locations(attribute: bytes, out: list[str], depth: int) -> None:
    for number, wire, value in _fields(attribute):
        if wire != 2:
            continue
        if number in (5, 10):  # t, tensors
            _tensor_locations(value, out)
        elif number in (6, 11):  # g, graphs
            _graph_locations(value, out, depth + 1)


def _tensor_locations(tensor: bytes, out: list[str]) -> None:
    for number, wire, entry in _fields(tensor):
        if number == 13 and wire == 2:  # TensorProto.external_data: StringStringEntryProto
            pairs = {n: v for n, w, v in _fields(entry) if w == 2}
            if pairs.get(1) == b"location":
                out.append(bytes(pairs.get(2, b"")).decode("utf-8", "replace"))


def location_escapes(location: str) -> bool:
    """Whether an external-data path leaves the model's folder (absolute, drive, or ``..`` above it)."""
    unified = location.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified) or "\x00" in unified:
        return True
    normalised = posixpath.normpath(unified)
    return normalised == ".." or normalised.startswith("../")


# --- zip, found from the end (APPNOTE.TXT 4.3.16) ----------------------------------------------------

_EOCD = b"PK\x05\x06"
#: The end-of-central-directory record is 22 bytes plus a comment of at most 65,535.
_EOCD_SEARCH = 22 + 65535


def has_zip_directory(data: Any) -> bool:
    """Whether ``data`` ends with a zip end-of-central-directory record whose directory lies inside it.

    Zip readers (Python's ``zipfile``, Keras, PyTorch's miniz) start from this record, so an archive
    opens whatever bytes precede it.
    """
    size = len(data)
    start = max(0, size - _EOCD_SEARCH)
    tail = bytes(data[start:])
    at = tail.rfind(_EOCD)
    while at >= 0:
        record = tail[at : at + 22]
        if len(record) == 22:
            directory_size, directory_offset = struct.unpack("<II", record[12:20])
            comment = struct.unpack("<H", record[20:22])[0]
            if at + 22 + comment <= len(tail) and directory_size + directory_offset <= start + at:
                return True
        at = tail.rfind(_EOCD, 0, at)
    return False


# --- TensorFlow SavedModel (tensorflow/core/protobuf/saved_model.proto) ------------------------------

#: Graph ops that read or write files or run Python when the graph runs.
SAVED_MODEL_RISKY_OPS = frozenset(
    {"ReadFile", "WriteFile", "MatchingFiles", "PyFunc", "PyFuncStateless", "EagerPyFunc", "ImmutableConst"}
)


def saved_model_ops(data: bytes) -> set[str] | None:
    """Every op name in a SavedModel's graphs and function libraries, or ``None`` when it is not one.

    ``SavedModel.meta_graphs`` (2) -> ``MetaGraphDef.graph_def`` (2) -> ``GraphDef.node`` (1) and
    ``GraphDef.library`` (2) -> ``FunctionDefLibrary.function`` (1) -> ``FunctionDef.node_def`` (3);
    ``NodeDef.op`` is field 2.
    """
    try:
        top = list(_fields(data))
        if not top or top[0][:2] != (1, 0) or any(n == 7 for n, _, _ in top):  # ONNX has graph = 7
            return None
        ops: set[str] = set()
        graphs = 0
        for number, wire, meta_graph in top:
            if number == 2 and wire == 2:
                for inner, inner_wire, graph in _fields(meta_graph):
                    if inner == 2 and inner_wire == 2:
                        graphs += 1
                        _graph_ops(graph, ops)
        return ops if graphs else None
    except _ProtoError:
        return None


def _graph_ops(graph: bytes, ops: set[str]) -> None:
    for number, wire, value in _fields(graph):
        if wire != 2:
            continue
        if number == 1:
            _node_op(value, ops)
        elif number == 2:  # FunctionDefLibrary
            for inner, inner_wire, function in _fields(value):
                if inner == 1 and inner_wire == 2:
                    for field_number, field_wire, node in _fields(function):
                        if field_number == 3 and field_wire == 2:
                            _node_op(node, ops)


def _node_op(node: bytes, ops: set[str]) -> None:
    for number, wire, value in _fields(node):
        if number == 2 and wire == 2:
            ops.add(bytes(value).decode("utf-8", "replace"))
