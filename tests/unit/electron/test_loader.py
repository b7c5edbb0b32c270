"""Inputs: source folders, bare archives, packaged folders and executables; versions and recorded hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.electron import pack_asar
from tests.unit.electron._corpus import CORPUS
from tests.unit.electron._packaged import HARDENED_FUSES, executable_bytes, header_of
from tracemark.electron import audit, encode_fuse_wire
from tracemark.electron._loader import MAX_SOURCE_BYTES, load_app
from tracemark.errors import InvalidInputError


def test_executable_input_finds_its_resources() -> None:
    executable = CORPUS / "packaged_hardened_mac_0" / "Demo.app" / "Contents" / "MacOS" / "Demo"
    report = audit(executable)
    assert report.input_kind == "packaged"
    assert report.electron_version == "33.2.0"
    assert report.electron_version_source == "executable"
    assert report.fuses is not None
    assert report.fuses["RunAsNode"] == "disabled"
    assert [f.rule_id for f in report.findings] == ["electron-version-unchecked"]


def test_windows_integrity_resource_is_read(tmp_path: Path) -> None:
    archive = pack_asar({"main.js": b"console.log(1)\n"})
    digest = hashlib.sha256(header_of(archive).encode()).hexdigest()
    resource = f'[{{"file":"resources\\\\app.asar","alg":"sha256","value":"{digest}"}}]'.encode()
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "app.asar").write_bytes(archive)
    (tmp_path / "Demo.exe").write_bytes(executable_bytes(encode_fuse_wire(HARDENED_FUSES)) + resource)
    report = audit(tmp_path)
    assert not [f for f in report.findings if f.rule_id.startswith("asar")]
    wrong = resource.replace(digest.encode(), b"0" * 64)
    (tmp_path / "Demo.exe").write_bytes(executable_bytes(encode_fuse_wire(HARDENED_FUSES)) + wrong)
    assert [f.rule_id for f in audit(tmp_path).findings if f.rule_id.startswith("asar")] == ["asar-integrity"]


def test_bare_asar_with_pinned_header(tmp_path: Path) -> None:
    archive = pack_asar({"main.js": b"console.log(1)\n"})
    path = tmp_path / "x.asar"
    path.write_bytes(archive)
    report = audit(path)
    assert any("not pinned" in notice for notice in report.notices)
    assert audit(path, expected_asar_header_sha256="0" * 64).findings[0].rule_id == "asar-integrity"
    assert report.asar_header_sha256 == hashlib.sha256(header_of(archive).encode()).hexdigest()


def test_folder_skips_node_modules_and_huge_files(tmp_path: Path) -> None:
    (tmp_path / "node_modules" / "dep").mkdir(parents=True)
    (tmp_path / "node_modules" / "dep" / "index.js").write_text(
        "new BrowserWindow({webPreferences:{nodeIntegration:true}})"
    )
    (tmp_path / "bundle.js").write_bytes(b"x" * 4000 + b"{nodeIntegration:!0}")
    (tmp_path / "types.d.ts").write_text("export {}")
    (tmp_path / "main.js").write_text("1")
    app = load_app(tmp_path, max_file_bytes=4000)
    assert [s.path for s in app.sources] == ["main.js"]
    assert [u.path for u in app.unaudited] == ["bundle.js"]  # too large to parse: never silently skipped
    assert [(hit.rule, hit.line, hit.column) for hit in app.literal_settings] == [("node-integration", 1, 4002)]
    assert load_app(tmp_path).max_file_bytes == MAX_SOURCE_BYTES


def test_installed_electron_version_wins_over_range(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"devDependencies": {"electron": "^22.0.0"}}')
    (tmp_path / "node_modules" / "electron").mkdir(parents=True)
    (tmp_path / "node_modules" / "electron" / "package.json").write_text('{"version": "22.3.27"}')
    app = load_app(tmp_path)
    assert (app.electron_version, app.electron_version_source) == ("22.3.27", "node_modules/electron/package.json")


def test_unusable_inputs(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        load_app(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidInputError, match="neither"):
        load_app(tmp_path / "notes.txt")
