"""Builders of Electron test inputs: ASAR archives and the rule map to electronegativity's checks.

The audit only reads archives; writing them (as ``@electron/asar`` does) is for fixtures, tests
and benchmarks, so it lives here and not in ``tracemark.electron``.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from tracemark.electron import AdvisorySource
from tracemark.electron._audit import context_for
from tracemark.electron._checks import CHECKS, Context
from tracemark.electron._loader import load_app

#: Block size ``@electron/asar`` uses for integrity blocks.
DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024

#: Electronegativity check ids covering the same flaw as each rule (rules it has no check for are left out).
ELECTRONEGATIVITY: dict[str, tuple[str, ...]] = {
    check.id: check.electronegativity for check in CHECKS if check.electronegativity
}


def file_integrity(data: bytes, block_size: int = DEFAULT_BLOCK_SIZE) -> dict[str, Any]:
    """The ``integrity`` record ``@electron/asar`` writes for a file."""
    blocks = [
        hashlib.sha256(data[start : start + block_size]).hexdigest()
        for start in range(0, max(len(data), 1), block_size)
    ]
    return {"algorithm": "SHA256", "hash": hashlib.sha256(data).hexdigest(), "blockSize": block_size, "blocks": blocks}


def pack_asar(files: dict[str, bytes], *, block_size: int = DEFAULT_BLOCK_SIZE, with_integrity: bool = True) -> bytes:
    """Build an archive from ``{"dir/name.js": bytes}`` (Electron reads the result)."""
    root: dict[str, Any] = {"files": {}}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(files):
        parts = name.split("/")
        folder = root
        for part in parts[:-1]:
            folder = folder["files"].setdefault(part, {"files": {}})
        data = files[name]
        entry: dict[str, Any] = {"size": len(data), "offset": str(offset)}
        if with_integrity:
            entry["integrity"] = file_integrity(data, block_size)
        folder["files"][parts[-1]] = entry
        chunks.append(data)
        offset += len(data)
    return pack_asar_header(json.dumps(root, separators=(",", ":"))) + b"".join(chunks)


def pack_asar_header(header_string: str) -> bytes:
    """The two Chromium Pickles that frame a JSON header string."""
    raw = header_string.encode("utf-8")
    padding = (4 - len(raw) % 4) % 4
    payload = struct.pack("<I", len(raw)) + raw + b"\0" * padding
    header_pickle = struct.pack("<I", len(payload)) + payload
    return struct.pack("<II", 4, len(header_pickle)) + header_pickle


def load_context(
    path: str | Path, *, advisories: AdvisorySource | None = None, expected_asar_header_sha256: str | None = None
) -> Context:
    """Load an app and build the context its checks read, to run some checks alone."""
    return context_for(
        load_app(Path(path)), advisories=advisories, expected_asar_header_sha256=expected_asar_header_sha256
    )
