"""Finding what to audit: a source folder, an ``app.asar``, or a packaged app (folder or executable).

A packaged app is recognised by its ``resources/app.asar`` (Windows, Linux) or
``Contents/Resources/app.asar`` (macOS); its executable is the file that carries the fuse
sentinel.  Sources are read from the folder or straight out of the archive, never extracted.
``node_modules`` is skipped: third-party code is the dependency audit's job.
"""

from __future__ import annotations

import json
import mmap
import plistlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from tracemark.electron._asar import AsarArchive, AsarFormatError, open_asar
from tracemark.electron._fuses import SENTINEL
from tracemark.errors import ElectronAuditError, InvalidInputError

SOURCE_SUFFIXES = {
    ".js": "js",
    ".mjs": "js",
    ".cjs": "js",
    ".jsx": "js",
    ".ts": "ts",
    ".mts": "ts",
    ".cts": "ts",
    ".tsx": "tsx",
    ".html": "html",
    ".htm": "html",
}
SKIPPED_FOLDERS = frozenset({"node_modules", ".git", "bower_components", ".cache"})
#: Largest single source file read; bigger files are bundles the audit notes and skips.
MAX_SOURCE_BYTES = 4 * 1024 * 1024
#: Most source files read from one app.
MAX_SOURCE_FILES = 20_000
_VERSION = re.compile(rb"Electron/(\d{1,3}\.\d{1,3}\.\d{1,3})")
_WINDOWS_INTEGRITY = re.compile(rb'"alg"\s*:\s*"sha256"\s*,\s*"value"\s*:\s*"([0-9a-fA-F]{64})"', re.IGNORECASE)
_RANGE_VERSION = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")


@dataclass(frozen=True)
class SourceFile:
    """One file to parse: its path relative to the app (``app.asar/...`` inside an archive) and kind."""

    path: str
    kind: str
    data: bytes


@dataclass
class AppInput:
    """Everything the audit reads from the input."""

    target: Path
    kind: str
    sources: list[SourceFile] = field(default_factory=list)
    package_json: dict[str, object] | None = None
    executable: Path | None = None
    asar: AsarArchive | None = None
    asar_label: str = "app.asar"
    recorded_header_sha256: str | None = None
    electron_version: str | None = None
    electron_version_source: str | None = None
    notices: list[str] = field(default_factory=list)


def load_app(path: Path) -> AppInput:
    """Recognise the input and read its sources; raises :class:`InvalidInputError` for unusable paths."""
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix == ".asar" or _looks_like_asar(path):
            app = AppInput(target=path, kind="asar", asar_label=path.name)
            app.asar = open_asar(path)
            _read_asar_sources(app, app.asar)
            _version_from_package(app, f"{app.asar_label}/package.json")
            return app
        if not _has_sentinel(path):
            raise InvalidInputError(f"{path} is neither an .asar archive nor an Electron executable (no fuse wire)")
        app = AppInput(target=path, kind="packaged", executable=path)
        _attach_packaged(app, _resources_near(path))
        return app
    if not path.is_dir():
        raise InvalidInputError(f"{path} is not a regular file or folder")
    resources = _find_resources(path)
    if resources is not None:
        app = AppInput(target=path, kind="packaged", executable=_find_executable(path, resources))
        _attach_packaged(app, resources)
        return app
    app = AppInput(target=path, kind="folder")
    _read_folder_sources(app, path)
    _version_from_folder(app, path)
    return app


def _looks_like_asar(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"\x04\x00\x00\x00"
    except OSError:
        return False


def _has_sentinel(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            if path.stat().st_size == 0:
                return False
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return mapped.find(SENTINEL) != -1
    except OSError:
        return False


def _find_resources(root: Path) -> Path | None:
    candidates = [root / "resources", root / "Contents" / "Resources"]
    candidates += sorted(root.glob("*.app/Contents/Resources"))
    for candidate in candidates:
        if (candidate / "app.asar").is_file() or (candidate / "app").is_dir():
            return candidate
    return None


def _resources_near(executable: Path) -> Path | None:
    for candidate in (executable.parent / "resources", executable.parent.parent / "Resources"):
        if (candidate / "app.asar").is_file() or (candidate / "app").is_dir():
            return candidate
    return None


def _find_executable(root: Path, resources: Path) -> Path | None:
    folders = [root, resources.parent / "MacOS", resources.parent / "Frameworks"]
    skipped = {".pak", ".dat", ".bin", ".asar", ".json", ".html", ".js", ".txt", ".plist", ".png", ".icns", ".ico"}
    for folder in folders:
        if not folder.is_dir():
            continue
        for file in sorted(folder.iterdir()):
            if file.is_file() and file.suffix.lower() not in skipped and _has_sentinel(file):
                return file
    return None


def _attach_packaged(app: AppInput, resources: Path | None) -> None:
    if resources is None:
        app.notices.append("no resources/app.asar or resources/app folder next to the executable: no sources read")
    elif (resources / "app.asar").is_file():
        archive_path = resources / "app.asar"
        app.asar = open_asar(archive_path)
        app.asar_label = "app.asar"
        _read_asar_sources(app, app.asar)
        app.recorded_header_sha256 = _recorded_header_hash(app, resources)
    else:
        _read_folder_sources(app, resources / "app", prefix="app/")
        app.notices.append("the app is not packed in an ASAR archive: its code can be edited without any check")
    if app.executable is None:
        app.notices.append("no Electron executable with a fuse wire was found: fuses were NOT checked")
    _version_from_binary(app, resources)
    if app.electron_version is None:
        _version_from_package(app, f"{app.asar_label}/package.json" if app.asar is not None else "app/package.json")


def _recorded_header_hash(app: AppInput, resources: Path) -> str | None:
    """The header hash Electron pins: ``ElectronAsarIntegrity`` in Info.plist, or the Windows resource."""
    plist_path = resources.parent / "Info.plist"
    if plist_path.is_file():
        try:
            plist = plistlib.loads(plist_path.read_bytes())
        except (plistlib.InvalidFileException, ValueError, OSError):
            raise ElectronAuditError(f"{plist_path} is not a valid property list") from None
        integrity = plist.get("ElectronAsarIntegrity") if isinstance(plist, dict) else None
        if isinstance(integrity, dict):
            record = integrity.get("Resources/app.asar")
            if isinstance(record, dict) and isinstance(record.get("hash"), str):
                return str(record["hash"]).lower()
    if app.executable is not None:
        try:
            with app.executable.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                match = _WINDOWS_INTEGRITY.search(data)
                found = bytes(match.group(1)).decode("ascii").lower() if match is not None else None
        except (OSError, ValueError):
            return None
        if found is not None:
            return found
    return None


def _accept(name: str) -> str | None:
    if name.endswith(".d.ts"):
        return None
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    return SOURCE_SUFFIXES.get(suffix)


def _read_folder_sources(app: AppInput, root: Path, prefix: str = "") -> None:
    package = root / "package.json"
    if package.is_file():
        app.package_json = _parse_package(package.read_bytes(), f"{prefix}package.json")
    skipped = 0
    for file in sorted(_walk(root)):
        kind = _accept(file.name)
        if kind is None:
            continue
        if len(app.sources) >= MAX_SOURCE_FILES:
            raise ElectronAuditError(f"{root} holds more than {MAX_SOURCE_FILES} source files")
        try:
            size = file.stat().st_size
            if size > MAX_SOURCE_BYTES:
                skipped += 1
                continue
            data = file.read_bytes()
        except OSError as exc:
            raise ElectronAuditError(f"cannot read {file}: {exc.strerror or exc}") from None
        app.sources.append(SourceFile(prefix + file.relative_to(root).as_posix(), kind, data))
    if skipped:
        app.notices.append(f"{skipped} source files larger than {MAX_SOURCE_BYTES} bytes were skipped")


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            children = list(folder.iterdir())
        except OSError as exc:
            raise ElectronAuditError(f"cannot list {folder}: {exc.strerror or exc}") from None
        for child in children:
            if child.is_symlink():
                continue
            if child.is_dir():
                if child.name not in SKIPPED_FOLDERS:
                    stack.append(child)
            elif child.is_file():
                found.append(child)
    return found


def _read_asar_sources(app: AppInput, archive: AsarArchive) -> None:
    label = app.asar_label
    if "package.json" in archive.entries:
        app.package_json = _parse_package(archive.read("package.json", MAX_SOURCE_BYTES), f"{label}/package.json")
    skipped = 0
    for name in sorted(archive.entries):
        if any(part in SKIPPED_FOLDERS for part in name.split("/")[:-1]):
            continue
        kind = _accept(name)
        if kind is None:
            continue
        if archive.entries[name].size > MAX_SOURCE_BYTES:
            skipped += 1
            continue
        if len(app.sources) >= MAX_SOURCE_FILES:
            raise ElectronAuditError(f"{archive.path} holds more than {MAX_SOURCE_FILES} source files")
        try:
            data = archive.read(name)
        except AsarFormatError as exc:
            app.notices.append(str(exc))
            continue
        app.sources.append(SourceFile(f"{label}/{name}", kind, data))
    if skipped:
        app.notices.append(f"{skipped} source files larger than {MAX_SOURCE_BYTES} bytes were skipped")


def _parse_package(data: bytes, where: str) -> dict[str, object] | None:
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _version_from_folder(app: AppInput, root: Path) -> None:
    installed = root / "node_modules" / "electron" / "package.json"
    if installed.is_file():
        package = _parse_package(installed.read_bytes(), str(installed))
        version = package.get("version") if package else None
        if isinstance(version, str) and _RANGE_VERSION.fullmatch(version):
            app.electron_version = version
            app.electron_version_source = "node_modules/electron/package.json"
            return
    _version_from_package(app, "package.json")


def _version_from_package(app: AppInput, where: str) -> None:
    """The lowest version the ``electron`` dependency range admits (``^22.1.0`` -> ``22.1.0``)."""
    package = app.package_json or {}
    for section in ("dependencies", "devDependencies", "optionalDependencies"):
        deps = package.get(section)
        if isinstance(deps, dict) and isinstance(deps.get("electron"), str):
            match = _RANGE_VERSION.search(deps["electron"])
            if match is not None:
                major, minor, patch = (part or "0" for part in match.groups())
                app.electron_version = f"{int(major)}.{int(minor)}.{int(patch)}"
                app.electron_version_source = f"{where} {section} ({deps['electron']})"
                return


def _version_from_binary(app: AppInput, resources: Path | None) -> None:
    folders = [app.executable.parent] if app.executable is not None else []
    if resources is not None:
        folders.append(resources.parent)
    for folder in folders:
        version_file = folder / "version"
        if version_file.is_file():
            value = version_file.read_text("utf-8", "replace").strip().lstrip("v")
            if _RANGE_VERSION.fullmatch(value):
                app.electron_version = value
                app.electron_version_source = "version file"
                return
    if app.executable is not None:
        try:
            with app.executable.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                match = _VERSION.search(data)
                found = bytes(match.group(1)).decode("ascii") if match is not None else None
        except (OSError, ValueError):
            return
        if found is not None:
            app.electron_version = found
            app.electron_version_source = "executable"
