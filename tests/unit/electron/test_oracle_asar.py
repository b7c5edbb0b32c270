"""Cross-check the ASAR reader, packer and integrity records with ``@electron/asar`` (Node.js).

The oracle is the ``@electron/asar`` that the benchmark's npm install brings along
(``bench/.node-electronegativity/``, or a folder named by ``TRACEMARK_ELECTRON_ASAR``); without
Node.js or the package the tests skip.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_oracle
from tests.support.electron import pack_asar
from tracemark.electron import check_integrity, open_asar

REPO = Path(__file__).resolve().parents[3]
ORACLE = Path(
    os.environ.get(
        "TRACEMARK_ELECTRON_ASAR", REPO / "bench" / ".node-electronegativity" / "node_modules" / "@electron" / "asar"
    )
)


@pytest.fixture(autouse=True)
def _oracle_installed() -> None:
    require_oracle(shutil.which("node") is not None and (ORACLE / "package.json").is_file(), "@electron/asar")


FILES = {"main.js": b"console.log('main')\n", "lib/util.js": b"y" * 5_000_000, "assets/empty.txt": b""}


def _node(script: str, *args: str) -> str:
    result = subprocess.run(
        ["node", "-e", script, str(ORACLE), *args], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout


def test_we_read_and_verify_what_electron_asar_writes(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for name, data in FILES.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    archive_path = tmp_path / "app.asar"
    script = (
        "const asar = require(process.argv[1]);"
        "asar.createPackage(process.argv[2], process.argv[3]).then(() => {"
        "  process.stdout.write(asar.getRawHeader(process.argv[3]).headerString); });"
    )
    header_string = _node(script, str(source), str(archive_path))
    archive = open_asar(archive_path)
    assert archive.header_string == header_string
    assert sorted(archive.entries) == sorted(FILES)
    for name, data in FILES.items():
        assert archive.read(name) == data
    assert check_integrity(archive, hashlib.sha256(header_string.encode()).hexdigest()) == []


def test_electron_asar_reads_what_we_write(tmp_path: Path) -> None:
    archive_path = tmp_path / "ours.asar"
    archive_path.write_bytes(pack_asar(FILES))
    script = (
        "const asar = require(process.argv[1]);"
        "const out = {header: asar.getRawHeader(process.argv[2]).headerString, files: {}};"
        "for (const name of JSON.parse(process.argv[3])) {"
        "  out.files[name] = asar.extractFile(process.argv[2], name).toString('base64'); }"
        "process.stdout.write(JSON.stringify(out));"
    )
    result = json.loads(_node(script, str(archive_path), json.dumps(sorted(FILES))))
    assert result["header"] == open_asar(archive_path).header_string
    for name, data in FILES.items():
        assert base64.b64decode(result["files"][name]) == data


def test_integrity_records_match_electron_asar(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(bytes(range(256)) * 40_000)
    archive_path = tmp_path / "theirs.asar"
    script = (
        "const asar = require(process.argv[1]);"
        "asar.createPackage(process.argv[2], process.argv[3]).then(() => {"
        "  process.stdout.write(asar.getRawHeader(process.argv[3]).headerString); });"
    )
    theirs = json.loads(_node(script, str(source), str(archive_path)))["files"]["big.bin"]["integrity"]
    ours = json.loads(open_asar_header(pack_asar({"big.bin": (source / "big.bin").read_bytes()})))["files"]["big.bin"]
    assert ours["integrity"] == theirs


def open_asar_header(data: bytes) -> str:
    size = int.from_bytes(data[12:16], "little")
    return data[16 : 16 + size].decode()
