"""Synthetic packaged Electron apps: an executable carrying a fuse wire, an ``app.asar``, an ``Info.plist``.

The packaged apps of the corpus are built by :func:`build_corpus_apps` (run this module to
rewrite them: ``python -m tests.unit.electron._packaged``); a test checks that the committed
files are byte-for-byte what it builds, so they can always be regenerated and reviewed.
"""

from __future__ import annotations

import hashlib
import json
import plistlib
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.support.electron import file_integrity, pack_asar, pack_asar_header
from tracemark.electron import FUSE_NAMES, FuseState, encode_fuse_wire

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "electron"
HARDENED_SOURCE = CORPUS / "hardened_app_0"

#: The states Electron ships with (``@electron/fuses`` defaults).
DEFAULT_FUSES = dict(
    zip(
        FUSE_NAMES,
        [
            FuseState.ENABLED,
            FuseState.DISABLED,
            FuseState.ENABLED,
            FuseState.ENABLED,
            FuseState.DISABLED,
            FuseState.DISABLED,
            FuseState.DISABLED,
            FuseState.ENABLED,
        ],
        strict=True,
    )
)
#: Every fuse in its safe state.
HARDENED_FUSES = dict(
    zip(
        FUSE_NAMES,
        [
            FuseState.DISABLED,
            FuseState.ENABLED,
            FuseState.DISABLED,
            FuseState.DISABLED,
            FuseState.ENABLED,
            FuseState.ENABLED,
            FuseState.DISABLED,
            FuseState.DISABLED,
        ],
        strict=True,
    )
)


def executable_bytes(wire: bytes, version: str = "33.2.0") -> bytes:
    """A stand-in executable: a header, a user-agent string with the version, the fuse wire, padding."""
    return (
        b"\x7fELF\x02\x01\x01"
        + b"\0" * 57
        + f"Chrome/130.0.0.0 Electron/{version}\0".encode()
        + b"\0" * 13
        + wire
        + (b"\0" * 64)
    )


def app_files(source: Path = HARDENED_SOURCE) -> dict[str, bytes]:
    return {
        path.relative_to(source).as_posix(): path.read_bytes() for path in sorted(source.rglob("*")) if path.is_file()
    }


def info_plist(header_sha256: str) -> bytes:
    integrity = {"Resources/app.asar": {"algorithm": "SHA256", "hash": header_sha256}}
    return plistlib.dumps({"CFBundleName": "Demo", "ElectronAsarIntegrity": integrity}, sort_keys=True)


def header_of(archive: bytes) -> str:
    size = int.from_bytes(archive[12:16], "little")
    return archive[16 : 16 + size].decode()


def mac_app(root: Path, archive: bytes, fuses: dict[str, FuseState], recorded_header: str) -> None:
    contents = root / "Demo.app" / "Contents"
    (contents / "MacOS").mkdir(parents=True, exist_ok=True)
    (contents / "Resources").mkdir(parents=True, exist_ok=True)
    (contents / "MacOS" / "Demo").write_bytes(executable_bytes(encode_fuse_wire(fuses)))
    (contents / "Resources" / "app.asar").write_bytes(archive)
    (contents / "Info.plist").write_bytes(info_plist(hashlib.sha256(recorded_header.encode()).hexdigest()))


def tamper_block(archive: bytes, name: str) -> bytes:
    """Change one byte of a file's data, leaving the header alone."""
    header = json.loads(header_of(archive))
    entry = header["files"][name]
    data_start = 8 + int.from_bytes(archive[4:8], "little")
    position = data_start + int(entry["offset"])
    flipped = bytes([archive[position] ^ 0x01])
    return archive[:position] + flipped + archive[position + 1 :]


def swap_file_with_hashes(archive: bytes, name: str, replacement: bytes) -> bytes:
    """Replace a file and rewrite its size, offsets and integrity so the archive is self-consistent."""
    header = json.loads(header_of(archive))
    data_start = 8 + int.from_bytes(archive[4:8], "little")
    files: dict[str, bytes] = {}
    for key, entry in header["files"].items():
        start = data_start + int(entry["offset"])
        files[key] = archive[start : start + entry["size"]]
    files[name] = replacement
    return pack_asar(files)


def swap_file_keep_hashes(archive: bytes, name: str, replacement: bytes) -> bytes:
    """Replace a file's bytes and size but keep its old integrity record."""
    header = json.loads(header_of(archive))
    data_start = 8 + int.from_bytes(archive[4:8], "little")
    chunks: list[bytes] = []
    offset = 0
    for key in header["files"]:
        entry = header["files"][key]
        start = data_start + int(entry["offset"])
        data = replacement if key == name else archive[start : start + entry["size"]]
        entry["offset"] = str(offset)
        entry["size"] = len(data)
        chunks.append(data)
        offset += len(data)
    return pack_asar_header(json.dumps(header, separators=(",", ":"))) + b"".join(chunks)


def build_corpus_apps(corpus: Path = CORPUS) -> dict[str, dict[str, bytes]]:
    """The packaged corpus apps as ``{app name: {relative path: bytes}}``."""
    archive = pack_asar(app_files())
    header = header_of(archive)
    apps: dict[str, dict[str, bytes]] = {}

    def collect(name: str, build: Callable[[Path], object]) -> None:
        staging = corpus.parent / ".staging" / name
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        build(staging)
        apps[name] = {
            p.relative_to(staging).as_posix(): p.read_bytes() for p in sorted(staging.rglob("*")) if p.is_file()
        }
        shutil.rmtree(corpus.parent / ".staging")

    def linux_default(root: Path) -> None:
        (root / "resources").mkdir()
        (root / "demo").write_bytes(executable_bytes(encode_fuse_wire(DEFAULT_FUSES)))
        (root / "resources" / "app.asar").write_bytes(archive)

    collect("packaged_default_fuses_8", linux_default)
    collect("packaged_hardened_mac_0", lambda root: mac_app(root, archive, HARDENED_FUSES, header))
    collect(
        "packaged_tampered_block_mac_2",
        lambda root: mac_app(root, tamper_block(archive, "renderer.js"), HARDENED_FUSES, header),
    )
    swapped = swap_file_with_hashes(archive, "renderer.js", b"document.title = 'changed';\n")
    collect("packaged_tampered_header_mac_1", lambda root: mac_app(root, swapped, HARDENED_FUSES, header))
    kept = swap_file_keep_hashes(archive, "renderer.js", b"console.log('replaced');\n")
    collect("packaged_swapped_file_mac_3", lambda root: mac_app(root, kept, HARDENED_FUSES, header))
    insecure = {
        "package.json": b'{"name":"bare","main":"main.js"}\n',
        "main.js": b"const { BrowserWindow } = require('electron');\nconst prefs = { nodeIntegration: true };\n"
        b"new BrowserWindow({ webPreferences: prefs }).loadFile('index.html');\n",
    }
    collect("asar_input_insecure_5", lambda root: (root / "app.asar").write_bytes(pack_asar(insecure)))
    collect("asar_unpacked_missing_6", lambda root: (root / "app.asar").write_bytes(unpacked_missing_archive()))
    return apps


def unpacked_missing_archive() -> bytes:
    """An archive whose ``native.js`` is marked unpacked, shipped without its ``app.asar.unpacked`` folder."""
    main = (
        b"const { BrowserWindow } = require('electron');\n"
        b"new BrowserWindow({ webPreferences: { sandbox: true } }).loadFile('index.html');\n"
    )
    package = b'{"name":"unpacked","main":"main.js"}\n'
    native = b"module.exports = require('./addon.node');\n"
    header = {
        "files": {
            "main.js": {"size": len(main), "offset": "0", "integrity": file_integrity(main)},
            "package.json": {"size": len(package), "offset": str(len(main)), "integrity": file_integrity(package)},
            "native.js": {"size": len(native), "unpacked": True, "integrity": file_integrity(native)},
        }
    }
    return pack_asar_header(json.dumps(header, separators=(",", ":"))) + main + package


EXPECT = {
    "packaged_default_fuses_8": "fuse-run-as-node demo\nfuse-node-options demo\nfuse-node-inspect demo\n"
    "fuse-cookie-encryption demo\nfuse-asar-integrity demo\nfuse-only-asar demo\nfuse-file-privileges demo\n"
    "asar-integrity-unanchored app.asar\n",
    "packaged_tampered_block_mac_2": "asar-integrity app.asar/renderer.js\nasar-integrity app.asar/renderer.js\n",
    "packaged_tampered_header_mac_1": "asar-integrity app.asar\n",
    "packaged_swapped_file_mac_3": "asar-integrity app.asar\nasar-integrity app.asar/renderer.js\n"
    "asar-integrity app.asar/renderer.js\n",
    "asar_input_insecure_5": "node-integration app.asar/main.js\ncsp-missing\npermission-handler\nnavigation-limit\n"
    "new-window-limit\n",
    "asar_unpacked_missing_6": "csp-missing\npermission-handler\nnavigation-limit\nnew-window-limit\n"
    "asar-integrity app.asar/native.js\naudit-incomplete app.asar/native.js\n",
}
TARGETS = {"asar_input_insecure_5": "app.asar", "asar_unpacked_missing_6": "app.asar"}


def write_corpus_apps(corpus: Path = CORPUS) -> None:
    for name, files in build_corpus_apps(corpus).items():
        folder = corpus / name
        if folder.exists():
            shutil.rmtree(folder)
        for relative, data in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(data)
        (folder / "EXPECT").write_text(EXPECT.get(name, ""))
        if name in TARGETS:
            (folder / "TARGET").write_text(TARGETS[name] + "\n")


if __name__ == "__main__":
    write_corpus_apps()
