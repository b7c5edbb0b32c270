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
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from tracemark.electron._asar import AsarArchive, AsarFormatError, open_asar
from tracemark.electron._fuses import SENTINEL
from tracemark.electron._stream import LiteralSetting, scan_literal_settings
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
#: JSON files that are never settings a module requires.
_IGNORED_JSON = frozenset({"package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "tsconfig.json", "jsconfig.json"})
SKIPPED_FOLDERS = frozenset({"node_modules", ".git", "bower_components", ".cache"})
#: Largest single source file parsed by default (``audit(max_file_bytes=...)`` changes it).  A
#: parse takes about 60 MB of memory per MB of source, so a bigger file (a 5-20 MB bundled main
#: process) is scanned piece by piece for literal insecure settings instead, and the audit says
#: it was not fully audited (``audit-incomplete``).
MAX_SOURCE_BYTES = 8 * 1024 * 1024
#: Largest JSON file read as a module (``require('./settings.json')``).
MAX_JSON_BYTES = 1024 * 1024
#: Deepest tag nesting of a page that is parsed: the HTML grammar's cost grows with the square of the
#: depth (2,000 levels: 0.07 s; 100,000: over a minute), and real pages nest a few dozen deep.
MAX_HTML_DEPTH = 2000
#: Deepest bracket nesting of a script that is parsed.  Past about 65,000 levels of syntax tree,
#: tree-sitter's queries slow down sharply and then stop returning deeper nodes; real code nests
#: a few dozen brackets deep.
MAX_SCRIPT_NESTING = 10_000
_OPENERS = np.zeros(256, dtype=np.int8)
_OPENERS[list(b"([{")] = 1
_OPENERS[list(b")]}")] = -1
_TAG = re.compile(rb"<(/?)([A-Za-z][^\s/>]*)[^>]*?(/?)>")
#: Elements that never hold others, or whose end tag may be left out: they do not deepen the estimate.
_FLAT_TAGS = frozenset(
    b"area base br col embed hr img input link meta source track wbr p li dt dd option optgroup tr td th "
    b"thead tbody tfoot colgroup caption rt rp html head body".split()
)
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


@dataclass(frozen=True)
class Unaudited:
    """A file the audit should have read but did not: its path and why."""

    path: str
    reason: str


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
    #: Source files that were not audited (too large, unreadable in the archive).
    unaudited: list[Unaudited] = field(default_factory=list)
    #: Literal insecure settings found by the piecewise scan of files too large to parse.
    literal_settings: list[LiteralSetting] = field(default_factory=list)
    #: Largest source file parsed.
    max_file_bytes: int = MAX_SOURCE_BYTES


def load_app(path: Path, max_file_bytes: int = MAX_SOURCE_BYTES) -> AppInput:
    """Recognise the input and read its sources; raises :class:`InvalidInputError` for unusable paths.

    Source files over ``max_file_bytes`` are not parsed: they are scanned piece by piece for
    literal insecure settings and listed in :attr:`AppInput.unaudited`.
    """
    return _load(path, max_file_bytes)


def _load(path: Path, max_file_bytes: int) -> AppInput:
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix == ".asar" or _looks_like_asar(path):
            app = AppInput(target=path, kind="asar", asar_label=path.name, max_file_bytes=max_file_bytes)
            app.asar = open_asar(path)
            _read_asar_sources(app, app.asar)
            _version_from_package(app, f"{app.asar_label}/package.json")
            return app
        if not _has_sentinel(path):
            raise InvalidInputError(f"{path} is neither an .asar archive nor an Electron executable (no fuse wire)")
        app = AppInput(target=path, kind="packaged", executable=path, max_file_bytes=max_file_bytes)
        _attach_packaged(app, _resources_near(path))
        return app
    if not path.is_dir():
        raise InvalidInputError(f"{path} is not a regular file or folder")
    resources = _find_resources(path)
    if resources is not None:
        app = AppInput(
            target=path, kind="packaged", executable=_find_executable(path, resources), max_file_bytes=max_file_bytes
        )
        _attach_packaged(app, resources)
        return app
    app = AppInput(target=path, kind="folder", max_file_bytes=max_file_bytes)
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
        except (plistlib.InvalidFileException, ValueError, OSError, RecursionError):
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
    if name.endswith(".json"):
        return None if name.rsplit("/", 1)[-1] in _IGNORED_JSON else "json"
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    return SOURCE_SUFFIXES.get(suffix)


def _read_folder_sources(app: AppInput, root: Path, prefix: str = "") -> None:
    package = root / "package.json"
    if package.is_file():
        app.package_json = _parse_package(package.read_bytes(), f"{prefix}package.json")
    for file in sorted(_walk(root)):
        kind = _accept(file.name)
        if kind is None:
            continue
        if len(app.sources) >= MAX_SOURCE_FILES:
            raise ElectronAuditError(f"{root} holds more than {MAX_SOURCE_FILES} source files")
        path = prefix + file.relative_to(root).as_posix()
        try:
            size = file.stat().st_size
            if _too_large(app, path, kind, size, partial(_file_pieces, file)):
                continue
            data = file.read_bytes()
        except OSError as exc:
            raise ElectronAuditError(f"cannot read {file}: {exc.strerror or exc}") from None
        _accept_source(app, path, kind, data)
    configs = [
        config.read_text("utf-8", "replace")
        for config in sorted(root.glob("tsconfig*.json"))
        if config.is_file() and config.stat().st_size <= MAX_JSON_BYTES
    ]
    _drop_compiled(app, configs, prefix)
    _note_unaudited(app)


def _too_large(app: AppInput, path: str, kind: str, size: int, pieces: Callable[[], Iterable[bytes]]) -> bool:
    """Whether a file is over its cap.  A source file is then scanned piece by piece for literal
    settings and recorded as not fully audited; a JSON file is ignored."""
    if kind == "json":
        return size > MAX_JSON_BYTES
    if size <= app.max_file_bytes:
        return False
    reason = f"{size} bytes, over the {app.max_file_bytes}-byte limit for parsing one file"
    try:
        app.literal_settings.extend(scan_literal_settings(path, pieces()))
    except (OSError, AsarFormatError) as exc:
        app.unaudited.append(Unaudited(path, f"{reason}, and unreadable ({exc})"))
        return True
    app.unaudited.append(Unaudited(path, f"{reason}: only literal insecure window settings were searched for"))
    return True


def _file_pieces(file: Path, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    with file.open("rb") as handle:
        while piece := handle.read(chunk_size):
            yield piece


def html_depth(data: bytes) -> int:
    """An estimate of a page's deepest tag nesting, in one linear pass (no parse)."""
    depth = deepest = 0
    for match in _TAG.finditer(data):
        if match.group(3) or match.group(2).lower() in _FLAT_TAGS:
            continue
        depth = max(depth - 1, 0) if match.group(1) else depth + 1
        deepest = max(deepest, depth)
    return deepest


def bracket_depth(data: bytes) -> int:
    """The deepest running count of open brackets in a script (strings and comments included: an estimate)."""
    if not data:
        return 0
    return int(np.cumsum(_OPENERS[np.frombuffer(data, dtype=np.uint8)], dtype=np.int64).max(initial=0))


def _accept_source(app: AppInput, path: str, kind: str, data: bytes) -> bool:
    """Add a read file to the sources, unless it nests too deep to parse at a bounded cost."""
    if kind in ("js", "ts", "tsx"):
        depth = bracket_depth(data)
        if depth > MAX_SCRIPT_NESTING:
            app.literal_settings.extend(scan_literal_settings(path, [data]))
            reason = (
                f"its brackets nest about {depth} deep, past the {MAX_SCRIPT_NESTING} levels parsed at a bounded "
                "cost: only literal insecure window settings were searched for"
            )
            app.unaudited.append(Unaudited(path, reason))
            return False
    if kind == "html":
        depth = html_depth(data)
        if depth > MAX_HTML_DEPTH:
            reason = f"its tags nest about {depth} deep, past the {MAX_HTML_DEPTH} levels parsed at a bounded cost"
            app.unaudited.append(Unaudited(path, reason))
            return False
    app.sources.append(SourceFile(path, kind, data))
    return True


def _note_unaudited(app: AppInput) -> None:
    if app.unaudited:
        app.notices.append(f"{len(app.unaudited)} source files were NOT audited (see the audit-incomplete findings)")


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
    for name in sorted(archive.entries):
        if any(part in SKIPPED_FOLDERS for part in name.split("/")[:-1]):
            continue
        kind = _accept(name)
        if kind is None:
            continue
        path = f"{label}/{name}"
        if _too_large(app, path, kind, archive.entries[name].size, partial(archive.chunks, name)):
            continue
        if len(app.sources) >= MAX_SOURCE_FILES:
            raise ElectronAuditError(f"{archive.path} holds more than {MAX_SOURCE_FILES} source files")
        try:
            data = archive.read(name)
        except AsarFormatError as exc:
            app.notices.append(str(exc))
            if kind != "json":
                app.unaudited.append(Unaudited(path, f"unreadable in the archive ({exc})"))
            continue
        _accept_source(app, path, kind, data)
    configs = []
    for name in sorted(archive.entries):
        if _TSCONFIG.fullmatch(name) and archive.entries[name].size <= MAX_JSON_BYTES:
            try:
                configs.append(archive.read(name).decode("utf-8", "replace"))
            except AsarFormatError:
                continue
    _drop_compiled(app, configs, f"{label}/")
    _note_unaudited(app)


_TSCONFIG = re.compile(r"tsconfig[\w.-]*\.json")
_OUT_DIR = re.compile(r'"outDir"\s*:\s*"([^"]+)"')
_ROOT_DIR = re.compile(r'"rootDir"\s*:\s*"([^"]+)"')
_TS_SUFFIXES = (".ts", ".tsx", ".mts", ".cts")
_JS_SUFFIXES = (".js", ".jsx", ".mjs", ".cjs")


def _drop_compiled(app: AppInput, configs: list[str], prefix: str) -> None:
    """Leave out JavaScript compiled from TypeScript the app also ships, so each flaw is reported once.

    A ``.js`` file is compiled output when a TypeScript file with the same name sits next to it, or
    when it lies under a ``tsconfig`` ``outDir`` and the file it maps to under ``rootDir`` (or, as
    ``tsc`` infers it, the common folder of the TypeScript sources) exists.  The TypeScript is audited.
    """
    typescript = {_stem(s.path) for s in app.sources if s.path.endswith(_TS_SUFFIXES)}
    if not typescript:
        return
    layouts = []
    for config in configs:
        out_dir = _OUT_DIR.search(config)
        root_dir = _ROOT_DIR.search(config)
        if out_dir is not None:
            out = prefix + posixpath.normpath(out_dir.group(1)).strip("/") + "/"
            root = prefix + posixpath.normpath(root_dir.group(1)).strip("/") if root_dir else None
            inside = [stem for stem in typescript if not stem.startswith(out)]
            if root is None and inside:
                root = posixpath.commonpath([posixpath.dirname(stem) or "." for stem in inside])
            layouts.append((out, root))
    kept = []
    for source in app.sources:
        if source.path.endswith(_JS_SUFFIXES) and _compiled(_stem(source.path), typescript, layouts):
            continue
        kept.append(source)
    dropped = len(app.sources) - len(kept)
    if dropped:
        app.sources = kept
        app.notices.append(f"{dropped} compiled .js files were audited through the TypeScript they are built from")


def _stem(path: str) -> str:
    return path[: path.rfind(".")] if "." in path.rsplit("/", 1)[-1] else path


def _compiled(stem: str, typescript: set[str], layouts: list[tuple[str, str | None]]) -> bool:
    if stem in typescript:
        return True
    for out, root in layouts:
        if root is not None and stem.startswith(out):
            mapped = posixpath.normpath(posixpath.join(root, stem[len(out) :]))
            if mapped in typescript:
                return True
    return False


def _parse_package(data: bytes, where: str) -> dict[str, object] | None:
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    except RecursionError:
        raise ElectronAuditError(f"{where} is nested too deeply to parse") from None
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
