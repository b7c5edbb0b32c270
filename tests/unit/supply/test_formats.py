"""Header validators for GGUF, ONNX, Keras and numpy, on hand-built files."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

from tracemark.supply import scan_bytes, scan_path
from tracemark.supply._formats import location_escapes, onnx_external_locations


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def external_tensor(location: str) -> bytes:
    entry = field(1, b"location") + field(2, location.encode())
    return field(8, b"w") + field(13, entry) + field(14, 1)


def model(graph: bytes) -> bytes:
    return field(1, 8) + field(7, graph)


def test_onnx_locations_in_initializers_and_nested_subgraphs() -> None:
    inner_graph = field(5, external_tensor("../../secret"))
    attribute = field(1, b"then_branch") + field(6, inner_graph)
    node = field(4, b"If") + field(5, attribute)
    graph = field(1, node) + field(5, external_tensor("weights.bin"))
    assert sorted(onnx_external_locations(model(graph)) or []) == ["../../secret", "weights.bin"]
    assert onnx_external_locations(b"\x08\x07garbage") is None
    assert [f.rule_id for f in scan_bytes(model(graph), "m.onnx").findings] == ["onnx.external-data-escape"]


def test_onnx_external_data_resolving_outside_through_a_symlink(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside").mkdir()
    (folder / "data").symlink_to(tmp_path / "outside")
    (folder / "m.onnx").write_bytes(model(field(5, external_tensor("data/weights.bin"))))
    rules = sorted(f.rule_id for f in scan_path(folder).findings)
    assert rules == ["file.symlink-escape", "onnx.external-data-escape"]


def test_location_escapes() -> None:
    for bad in ("../x", "a/../../x", "/etc/passwd", "C:\\\\Windows", "..", "a\\\\..\\\\..\\\\x"):
        assert location_escapes(bad), bad
    for good in ("weights.bin", "a/b/../c.bin", "./w.bin"):
        assert not location_escapes(good), good


def gguf(kvs: list[tuple[str, int, bytes]], tensors: list[tuple[str, int]], version: int = 3) -> bytes:
    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    body = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, kind, value in kvs:
        body += string(key) + struct.pack("<I", kind) + value
    for name, offset in tensors:
        body += string(name) + struct.pack("<I", 1) + struct.pack("<Q", 4) + struct.pack("<IQ", 0, offset)
    body += b"\x00" * (-len(body) % 32)
    return body + b"\x00" * 64


def test_gguf_metadata_types_and_offsets() -> None:
    array = struct.pack("<IQ", 4, 3) + struct.pack("<3I", 1, 2, 3)
    nested = struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 8, 1) + struct.pack("<Q", 1) + b"x"
    kvs = [
        ("general.architecture", 8, struct.pack("<Q", 5) + b"llama"),
        ("general.alignment", 4, struct.pack("<I", 32)),
        ("llama.ids", 9, array),
        ("nested", 9, nested),
        ("flag", 7, b"\x01"),
        ("scale", 12, struct.pack("<d", 0.5)),
    ]
    assert scan_bytes(gguf(kvs, [("a", 0), ("b", 32)]), "m.gguf").findings == ()
    misaligned = scan_bytes(gguf(kvs, [("a", 3)]), "m.gguf").findings
    assert [f.rule_id for f in misaligned] == ["gguf.invalid-header"]
    unknown_type = scan_bytes(gguf([("k", 99, b"")], []), "m.gguf").findings
    assert "unknown metadata value type" in unknown_type[0].message
    template = struct.pack("<Q", 44) + b"{{ cycler.__init__.__globals__.os.popen() }}"
    ssti = scan_bytes(gguf([("tokenizer.chat_template", 8, template)], []), "m.gguf").findings
    assert [f.rule_id for f in ssti] == ["gguf.template-code"]


def test_keras_lambda_in_zip_and_hdf5() -> None:
    config = {"class_name": "Functional", "config": {"layers": [{"class_name": "Lambda", "config": {"name": "l"}}]}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    assert [f.rule_id for f in scan_bytes(buffer.getvalue(), "m.keras").findings] == ["keras.lambda-layer"]
    hdf5 = b"\x89HDF\r\n\x1a\n" + b"\x00" * 100 + json.dumps(config).encode() + b"\x00" * 100
    assert [f.rule_id for f in scan_bytes(hdf5, "m.h5").findings] == ["keras.lambda-layer"]
    clean = b"\x89HDF\r\n\x1a\n" + b"\x00" * 100 + b'{"class_name": "Dense"}'
    assert scan_bytes(clean, "m.h5").findings == ()


def test_npy_headers() -> None:
    def npy(header: str, data: bytes) -> bytes:
        raw = header.encode("latin-1")
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(raw)) + raw + data

    assert scan_bytes(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", b"\x00" * 16)).findings == ()
    bad = scan_bytes(npy("__import__('os')", b"")).findings
    assert [f.rule_id for f in bad] == ["numpy.invalid-header"]
    not_pickle = scan_bytes(npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\x00junk")).findings
    assert "numpy.object-array" in [f.rule_id for f in not_pickle]
