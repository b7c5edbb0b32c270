"""The evidence folder: every file a report row cites is written here, atomically, with its SHA-256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tracemark._fs import atomic_write_bytes
from tracemark.comply._report import Evidence


class EvidenceFolder:
    """Writes evidence files under ``root`` and describes them for the report (paths relative to ``root``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, data: bytes, description: str) -> Evidence:
        """Write ``data`` to ``root/name`` (sub-folders made as needed)."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data, sync_directory=False)
        return Evidence(path=name, sha256=hashlib.sha256(data).hexdigest(), description=description)

    def write_text(self, name: str, text: str, description: str) -> Evidence:
        """Write UTF-8 text."""
        return self.write(name, text.encode("utf-8"), description)

    def write_json(self, name: str, value: object, description: str) -> Evidence:
        """Write a JSON document (sorted keys, two-space indent)."""
        text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
        return self.write_text(name, text, description)
