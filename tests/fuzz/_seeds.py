"""Seed inputs for every fuzz target: valid (and known-hostile) inputs built from the repository's fixtures.

A fuzzer that starts from valid inputs gets past magic numbers, length prefixes and signatures
at once and spends its time in the parser's deeper branches.  Seeds that are not in
``tests/fixtures`` (receipts, notes, images, OSV records, key records) are built here
deterministically: the same bytes on every run, so a corpus and a crash replay stay comparable.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"

#: Seeds larger than this are left out: a fuzzer mutates small inputs many times faster.
MAX_SEED_BYTES = 256 * 1024


def _files(folder: Path, suffixes: tuple[str, ...] = (), names: tuple[str, ...] = ()) -> list[bytes]:
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.stat().st_size > MAX_SEED_BYTES:
            continue
        if (suffixes and path.name.endswith(suffixes)) or path.name in names or (not suffixes and not names):
            found.append(path.read_bytes())
    return found


def _unique(seeds: list[bytes]) -> list[bytes]:
    return list(dict.fromkeys(seeds))


# --- supply: pickles and model formats ------------------------------------------------------------


def pickle_seeds() -> list[bytes]:
    """Every pickle fixture (benign and hostile) and plain pickles of each protocol."""
    objects: list[object] = [
        None,
        True,
        -(2**70),
        3.5,
        "text \u00e9",
        b"\x00\xff",
        bytearray(b"ab"),
        [1, [2, (3, 4)], {"k": {5}}],
        {"a": 1, "b": frozenset({1, 2})},
        OrderedDict(a=1),
        complex(1, 2),
        slice(1, 2, 3),
    ]
    built = [pickle.dumps(value, protocol=protocol) for protocol in range(6) for value in objects]
    supply = FIXTURES / "supply"
    fixtures = _files(supply, (".pkl", ".joblib", ".pt", ".pth", ".bin"))
    return _unique(built + fixtures)


def scan_seeds() -> list[bytes]:
    """Every supply fixture: pickles, zips, tars, compressed streams, numpy, safetensors, GGUF, ONNX, Keras."""
    return _unique(_files(FIXTURES / "supply") + pickle_seeds()[:24])


def safetensors_seeds() -> list[bytes]:
    header = {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]},
        "c": {"dtype": "BOOL", "shape": [], "data_offsets": [22, 23]},
    }
    raw = json.dumps(header).encode()
    built = [struct.pack("<Q", len(raw)) + raw + bytes(23)]
    empty = b"{}"
    built.append(struct.pack("<Q", len(empty)) + empty)
    return _unique(built + _files(FIXTURES / "supply", (".safetensors",)))


def gguf_seeds() -> list[bytes]:
    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    kvs = (
        string("general.architecture")
        + struct.pack("<I", 8)
        + string("llama")
        + string("general.alignment")
        + struct.pack("<I", 4)
        + struct.pack("<I", 32)
        + string("tokenizer.ggml.tokens")
        + struct.pack("<I", 9)
        + struct.pack("<I", 8)
        + struct.pack("<Q", 2)
        + string("a")
        + string("b")
        + string("tokenizer.chat_template")
        + struct.pack("<I", 8)
        + string("{{ messages }}")
    )
    tensor = string("w") + struct.pack("<I", 2) + struct.pack("<QQ", 2, 2) + struct.pack("<I", 0) + struct.pack("<Q", 0)
    v3 = b"GGUF" + struct.pack("<I", 3) + struct.pack("<QQ", 1, 4) + kvs + tensor
    v3 += bytes(-len(v3) % 32) + bytes(16)
    v1 = b"GGUF" + struct.pack("<I", 1) + struct.pack("<II", 0, 1) + struct.pack("<I", 1) + b"x" + struct.pack("<I", 6)
    v1 += struct.pack("<f", 1.0)
    return _unique([v3, v1, *_files(FIXTURES / "supply", (".gguf",))])


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def onnx_seeds() -> list[bytes]:
    """ONNX protobufs with external data in initializers, sparse initializers and subgraph attributes."""
    entry = _field(1, b"location") + _field(2, b"weights.bin")
    tensor = _field(8, b"w") + _field(13, entry) + _varint(14 << 3) + _varint(1)
    sparse = _field(1, tensor) + _field(2, tensor)
    subgraph = _field(5, tensor)
    attribute = _field(1, b"then_branch") + _field(6, subgraph) + _field(5, tensor)
    node = _field(4, b"If") + _field(5, attribute)
    graph = _field(1, node) + _field(5, tensor) + _field(15, sparse) + _field(2, b"g")
    model = _varint(1 << 3) + _varint(8) + _field(7, graph) + _varint(8 << 3 | 5) + b"\x00\x00\x80\x3f"
    return _unique([model, *_files(FIXTURES / "supply", (".onnx",))])


def npy_seeds() -> list[bytes]:
    def npy(header: str, major: int = 1) -> bytes:
        raw = header.encode("latin-1")
        raw += b" " * (-(len(raw) + 11) % 64) + b"\n"
        size = struct.pack("<H", len(raw)) if major == 1 else struct.pack("<I", len(raw))
        return b"\x93NUMPY" + bytes([major, 0]) + size + raw

    built = [
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }") + bytes(8),
        npy("{'descr': [('a', '<i4'), ('b', [('c', '|O')])], 'fortran_order': False, 'shape': (1,), }", 2),
        npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", 3) + pickle.dumps([1], protocol=2),
    ]
    return _unique(built + _files(FIXTURES / "supply", (".npy", ".npz")))


# --- electron --------------------------------------------------------------------------------------


def _asar_header(header: object) -> bytes:
    """The two Chromium Pickles that frame an ASAR JSON header (see ``tracemark.electron._asar``)."""
    raw = json.dumps(header, separators=(",", ":")).encode()
    payload = struct.pack("<I", len(raw)) + raw + bytes(-len(raw) % 4)
    header_pickle = struct.pack("<I", len(payload)) + payload
    return struct.pack("<II", 4, len(header_pickle)) + header_pickle


def _asar(files: dict[str, bytes], block_size: int = 4 << 20, integrity: bool = True) -> bytes:
    root: dict[str, Any] = {"files": {}}
    offset = 0
    for name in sorted(files):
        folder = root
        *parents, leaf = name.split("/")
        for part in parents:
            folder = folder["files"].setdefault(part, {"files": {}})
        data = files[name]
        entry: dict[str, Any] = {"size": len(data), "offset": str(offset)}
        if integrity:
            blocks = [data[i : i + block_size] for i in range(0, max(len(data), 1), block_size)]
            entry["integrity"] = {
                "algorithm": "SHA256",
                "hash": hashlib.sha256(data).hexdigest(),
                "blockSize": block_size,
                "blocks": [hashlib.sha256(block).hexdigest() for block in blocks],
            }
        folder["files"][leaf] = entry
        offset += len(data)
    return _asar_header(root) + b"".join(files[name] for name in sorted(files))


def asar_seeds() -> list[bytes]:
    built = [
        _asar({"package.json": b'{"main": "main.js"}', "main.js": b"require('electron')", "lib/a/b.js": b"x"}),
        _asar({"a.txt": b"hello" * 10}, block_size=16),
        _asar({"one": b""}, integrity=False),
    ]
    header = {
        "files": {
            "native.node": {"size": 3, "unpacked": True, "integrity": {"algorithm": "SHA256", "hash": "00"}},
            "link": {"link": "native.node"},
            "dir": {"files": {"f": {"size": 2, "offset": "0", "executable": True}}},
        }
    }
    built.append(_asar_header(header) + b"ab")
    return _unique(built + _files(FIXTURES / "electron", (".asar",)))


def fuse_seeds() -> list[bytes]:
    from tracemark.electron import FUSE_NAMES, FuseState, encode_fuse_wire

    states = [FuseState.ENABLED, FuseState.DISABLED, FuseState.REMOVED] * 3
    wire = encode_fuse_wire(states[: len(FUSE_NAMES)])
    built = [
        b"\x7fELF" + bytes(32) + wire + bytes(16),
        wire + b"padding" + wire,
        encode_fuse_wire(states[:3]),
    ]
    return _unique(built + _files(FIXTURES / "electron", names=("Demo", "demo")))


def html_seeds() -> list[bytes]:
    built = [
        b"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'; script-src 'nonce-a'\">"
        b"<script>window.x = 1</script><webview src=https://a allowpopups nodeintegration></webview>",
    ]
    return _unique(built + _files(FIXTURES / "electron", (".html",)))


def csp_seeds() -> list[bytes]:
    built = [
        b"default-src 'self'; script-src 'self' 'unsafe-inline' https://*.example.com http://cdn",
        b"script-src 'nonce-abc' 'unsafe-inline' 'strict-dynamic'; object-src 'none'",
        b"default-src * data: blob: 'unsafe-eval'",
        b"img-src https:;;; ;SCRIPT-SRC 'UNSAFE-INLINE' 'sha256-x'",
    ]
    return _unique(built)


def js_seeds() -> list[bytes]:
    built = [
        b"const { BrowserWindow, ipcMain, shell } = require('electron');\n"
        b"const prefs = { nodeIntegration: !0, ...require('./helper').extra };\n"
        b"const win = new BrowserWindow({ webPreferences: Object.assign({}, prefs, { contextIsolation: false }) });\n"
        b"ipcMain.handle('open', (event, url) => shell.openExternal(url));\n"
        b"win.webContents.setWindowOpenHandler(() => ({ action: 'allow' }));\n"
        b"export default function make(x = {a: [1, `t${x}`]}) { return x?.a ?? (x ? 1 : -1); }\n",
    ]
    return _unique(built + _files(FIXTURES / "electron", (".js", ".ts", ".mjs")))


#: A second module every JS target run links against, so imports across files resolve.
JS_HELPER = (
    b"const base = { sandbox: false, webSecurity: 'x' === 'x' };\n"
    b"module.exports = { extra: base, make: (o) => ({ ...o, nodeIntegration: true }) };\n"
    b"export const prefs = { contextIsolation: !1 };\n"
)


# --- transparency log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogWorld:
    """A small log with a fixed key: what it signed, so a verifier that accepts anything else is caught."""

    log_vkey: str
    witness_vkey: str
    #: Entry bytes by index.
    entries: tuple[bytes, ...]
    #: Every checkpoint body the log (or log plus witness) signed.
    signed_bodies: frozenset[str]
    receipts: tuple[bytes, ...]
    notes: tuple[bytes, ...]
    requests: tuple[bytes, ...]


def _fixed_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"tracemark fuzz " + label.encode()).digest())


@functools.cache
def log_world() -> LogWorld:
    """Seven entries, checkpoints at sizes 3 and 7 (the latter cosigned), and a receipt for each entry."""
    from tracemark.tlog import (
        SIG_COSIGNATURE_V1,
        AddCheckpointRequest,
        MemoryStore,
        NoteSigner,
        ProvenanceRecord,
        Receipt,
        SignedNote,
        TransparencyLog,
    )

    signer = NoteSigner("example.com/fuzz-log", _fixed_key("log"))
    witness = NoteSigner("witness.example/fuzz", _fixed_key("witness"), SIG_COSIGNATURE_V1)
    entries: list[bytes] = []
    receipts: list[bytes] = []
    notes: list[bytes] = []
    requests: list[bytes] = []
    bodies: set[str] = set()
    with TransparencyLog(MemoryStore(), signer=signer) as log:
        for i in range(7):
            record = ProvenanceRecord.create(
                content_sha256=hashlib.sha256(f"content {i}".encode()).hexdigest(),
                kind="image" if i == 4 else "text",
                key_id="tm-native-0123456789abcdef",
                model_id="example/model@1",
                time="2026-08-02T12:00:00Z",
                c2pa_manifest_id="urn:c2pa:00000004-0000-4000-8000-000000000000" if i == 4 else None,
            )
            log.append(record)
            entries.append(record.to_json())
            if i in (2, 6):
                signed = log.checkpoint()
                bodies.add(signed.checkpoint.body())
        first = 3
        old = log.receipt(1, checkpoint_size=first)
        receipts.append(old.to_text().encode())
        latest = log.latest_checkpoint()
        assert latest is not None
        cosigned = (
            SignedNote.parse(latest.note)
            .with_signatures([witness.sign(latest.checkpoint.body().encode(), timestamp=1_785_000_000)])
            .to_text()
        )
        for index in range(7):
            receipt = log.receipt(index)
            receipts.append(receipt.to_text().encode())
        last = log.receipt(6)
        receipts.append(Receipt(last.index, last.proof, cosigned, None).to_text().encode())
        receipts.append(Receipt(last.index, last.proof, cosigned, last.extra).to_text().encode())
        notes.extend([latest.note.encode(), cosigned.encode(), old.checkpoint_note.encode()])
        consistency = log.consistency_proof(first, 7)
        requests.append(AddCheckpointRequest(first, consistency.hashes, latest.note).to_text().encode())
    return LogWorld(
        log_vkey=signer.vkey,
        witness_vkey=witness.vkey,
        entries=tuple(entries),
        signed_bodies=frozenset(bodies),
        receipts=tuple(receipts),
        notes=tuple(notes),
        requests=tuple(requests),
    )


def receipt_seeds() -> list[bytes]:
    return list(log_world().receipts)


def note_seeds() -> list[bytes]:
    world = log_world()
    return _unique([*world.notes, *world.requests])


def record_seeds() -> list[bytes]:
    return list(log_world().entries)


def note_key_seeds() -> list[bytes]:
    from tracemark.tlog import NoteSigner

    world = log_world()
    signer = NoteSigner("example.com/fuzz-log", _fixed_key("log"))
    return [world.log_vkey.encode(), world.witness_vkey.encode(), signer.skey.encode()]


# --- advisories ------------------------------------------------------------------------------------


def _osv_records() -> list[dict[str, object]]:
    def affected(ecosystem: str, name: str, **extra: object) -> dict[str, object]:
        return {"package": {"ecosystem": ecosystem, "name": name}, **extra}

    return [
        {
            "id": "GHSA-fuzz-0001",
            "modified": "2026-05-20T10:00:00.123456789Z",
            "aliases": ["CVE-2026-0001"],
            "summary": "an npm advisory",
            "database_specific": {"severity": "MODERATE"},
            "affected": [
                affected(
                    "npm",
                    "electron",
                    ranges=[
                        {"type": "SEMVER", "events": [{"introduced": "22.0.0-beta.1"}, {"fixed": "22.3.25"}]},
                        {"type": "SEMVER", "events": [{"introduced": "0"}, {"last_affected": "1.3.0"}]},
                        {"type": "SEMVER", "events": [{"introduced": "2.0.0"}, {"limit": "3.0.0-0"}]},
                    ],
                    severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}],
                )
            ],
        },
        {
            "id": "PYSEC-fuzz-0002",
            "modified": "2026-05-20T10:00:00+02:00",
            "details": "a PyPI advisory",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.0/AV:L/AC:H/PR:L/UI:R/S:U/C:L/I:N/A:N"}],
            "affected": [
                affected(
                    "PyPI",
                    "Demo_Package",
                    versions=["1.0", "1.1.post1"],
                    ranges=[
                        {"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.4.2"}]},
                        {"type": "GIT", "events": [{"introduced": "abc123"}]},
                    ],
                )
            ],
        },
        {"id": "GHSA-fuzz-0003", "modified": "2026-05-21T00:00:00Z", "withdrawn": "2026-05-22T00:00:00Z"},
    ]


def osv_seeds() -> list[bytes]:
    """Single OSV records, a manifest, and zip exports holding records (each target run tries all three roles)."""
    records = [json.dumps(record).encode() for record in _osv_records()]
    manifest = json.dumps({"exported": "2026-06-01T00:00:00Z"}).encode()
    exports = []
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=method) as archive:
            for index, raw in enumerate(records):
                archive.writestr(f"advisories/{index}.json", raw)
            archive.writestr("osv-manifest.json", manifest)
        exports.append(buffer.getvalue())
    return [*records, manifest, *exports]


#: A record that always parses: the manifest role writes the fuzzed bytes next to it.
OSV_ANCHOR_RECORD = json.dumps(_osv_records()[1]).encode()


# --- media -----------------------------------------------------------------------------------------


def image_seeds() -> list[bytes]:
    """Small images of every mode the decoder handles, in PNG, JPEG and WebP, one with an EXIF rotation."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    seeds: list[bytes] = []

    def save(picture: Image.Image, image_format: str, **options: object) -> None:
        out = io.BytesIO()
        picture.save(out, image_format, **options)
        seeds.append(out.getvalue())

    rgb_image = Image.fromarray(rgb)
    grey_image = Image.fromarray(grey)
    rgba = rgb_image.copy()
    rgba.putalpha(Image.fromarray(grey[:12, :10] if grey.shape[0] >= 12 else np.resize(grey, (12, 10))))
    palette = rgb_image.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    palette.info["transparency"] = 0
    save(rgb_image, "PNG")
    save(grey_image, "PNG")
    save(rgba, "PNG")
    save(palette, "PNG", transparency=0)
    save(grey_image.convert("1"), "PNG")
    save(grey_image.convert("LA"), "PNG")
    save(Image.fromarray(grey.astype(np.uint16) * 257), "PNG")
    save(rgb_image, "JPEG", quality=80)
    save(grey_image, "JPEG")
    save(rgb_image.convert("CMYK"), "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise
    save(rgb_image, "JPEG", exif=exif.tobytes())
    save(rgb_image, "WEBP", quality=80)
    save(rgba, "WEBP", lossless=True)
    return seeds


# --- keys ------------------------------------------------------------------------------------------


def key_record_seeds() -> list[bytes]:
    from tracemark.keys import KeyId, TextKey, compute_key_id

    base = TextKey(
        key_id=KeyId(""),
        scheme="native",
        scheme_version="1",
        params={"gamma": 0.25, "delta": 2.0, "context": 2},
        vocab_size=2001,
        tokenizer_sha256="ab" * 32,
        salt="00" * 16,
        created_at="2026-08-02T12:00:00+00:00",
        secret={"aes_key": "11" * 16},
        label="fuzz",
    )
    key = TextKey(**{**base.__dict__, "key_id": compute_key_id(base)})
    return [key.to_json()]


#: Seed builders by target name (the names of :data:`tests.fuzz._targets.TARGETS`).
SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "pickle": pickle_seeds,
    "scan": scan_seeds,
    "safetensors": safetensors_seeds,
    "gguf": gguf_seeds,
    "onnx": onnx_seeds,
    "npy": npy_seeds,
    "asar": asar_seeds,
    "fuses": fuse_seeds,
    "html": html_seeds,
    "csp": csp_seeds,
    "js": js_seeds,
    "receipt": receipt_seeds,
    "note": note_seeds,
    "record": record_seeds,
    "note-keys": note_key_seeds,
    "osv": osv_seeds,
    "image": image_seeds,
    "key-record": key_record_seeds,
}
