"""Build the pickle allowlist from what names resolve to in the installed libraries, not from how they look.

    python scripts/build_pickle_allowlist.py            # merge this environment's versions into the file
    python scripts/build_pickle_allowlist.py --check    # exit 1 when the file lacks this environment's lists

A name pattern over a module (CamelCase in ``sklearn.*``) admits every class that module imports
from elsewhere: file objects, network clients, threads, ``types.FunctionType``.  This script imports
each library's modules and keeps an explicit ``(module, name)`` pair only when the object it resolves
to belongs to the library:

* scikit-learn: classes whose ``__module__`` is in ``sklearn`` (re-exports included, since they
  resolve to the same class), minus subclasses of threads, processes, sockets, files,
  subprocesses and joblib's ``Parallel`` and ``Memory``; test and vendored modules are skipped;
* numpy: ufuncs (``numpy.log1p``: pickled as a global by ``FunctionTransformer(np.log1p)``; calling
  one computes, nothing else), scalar types and the ``numpy.dtypes`` classes, all owned by numpy.

Each list is stored per library version in ``src/tracemark/supply/pickle_allowlist.json`` (the
versions already there are kept, so running the script under another version adds that version);
the scanner allows the union.  Functions are never added here: the few a checkpoint needs
(``_rebuild_tensor_v2``, ``newObj``) are listed by hand in ``tracemark.supply._allowlist``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import io
import json
import multiprocessing.process
import pkgutil
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import TypedDict

OUTPUT = Path(__file__).resolve().parents[1] / "src" / "tracemark" / "supply" / "pickle_allowlist.json"
#: Classes that reach files, processes, threads or the network, whoever defines the subclass.
DANGEROUS_BASES: tuple[type, ...] = (
    threading.Thread,
    multiprocessing.process.BaseProcess,
    socket.socket,
    subprocess.Popen,
    io.IOBase,
)
#: Module name parts that are never scanned: tests, vendored code, private test helpers.
SKIPPED_PARTS = frozenset({"tests", "conftest", "_testing", "externals", "_build_utils", "__check_build"})


class VersionList(TypedDict):
    module: str
    globals: list[list[str]]


class AllowlistFile(TypedDict):
    format: int
    libraries: dict[str, dict[str, VersionList]]


def _dangerous_bases() -> tuple[type, ...]:
    """:data:`DANGEROUS_BASES` and joblib's ``Parallel`` (calling one runs what it is given) and ``Memory``."""
    try:
        joblib = importlib.import_module("joblib")
    except ImportError:
        return DANGEROUS_BASES
    return (*DANGEROUS_BASES, joblib.Parallel, joblib.Memory)


def _modules(package: ModuleType) -> list[ModuleType]:
    found = [package]
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if SKIPPED_PARTS & set(info.name.split(".")):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found.append(importlib.import_module(info.name))
        except Exception as exc:  # an optional dependency missing: that module's names stay refused
            print(f"skipped {info.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return found


def _owned(obj: object, top: str) -> bool:
    module = getattr(obj, "__module__", None)
    return isinstance(module, str) and (module == top or module.startswith(top + "."))


def sklearn_globals() -> set[tuple[str, str]]:
    sklearn = importlib.import_module("sklearn")
    pairs: set[tuple[str, str]] = set()
    dangerous = _dangerous_bases()
    for module in _modules(sklearn):
        for name, obj in vars(module).items():
            if isinstance(obj, type) and _owned(obj, "sklearn") and not issubclass(obj, dangerous):
                pairs.add((module.__name__, name))
                pairs.add((obj.__module__, obj.__qualname__))
    return pairs


def numpy_globals() -> set[tuple[str, str]]:
    import numpy

    pairs: set[tuple[str, str]] = set()
    core = "numpy._core" if importlib.util.find_spec("numpy._core") else "numpy.core"  # numpy < 2: numpy.core
    # numpy 2 pickles a ufunc as numpy.<name>; numpy 1 as numpy.core._multiarray_umath.<name>.
    for module_name in ("numpy", f"{core}.umath", f"{core}._multiarray_umath", "numpy.dtypes"):
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            scalar_or_dtype = isinstance(obj, type) and issubclass(obj, (numpy.generic, numpy.dtype))
            if isinstance(obj, numpy.ufunc) or (scalar_or_dtype and _owned(obj, "numpy")):
                pairs.add((module_name, name))
    return pairs


LIBRARIES = {"scikit-learn": ("sklearn", sklearn_globals), "numpy": ("numpy", numpy_globals)}


def build() -> dict[str, tuple[str, VersionList]]:
    built = {}
    for distribution, (module, collect) in LIBRARIES.items():
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            print(f"{distribution} is not installed: its list is not rebuilt", file=sys.stderr)
            continue
        pairs = sorted(collect())
        built[distribution] = (version, VersionList(module=module, globals=[list(pair) for pair in pairs]))
        print(f"{distribution} {version}: {len(pairs)} globals", file=sys.stderr)
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file lacks this environment's lists")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    current: AllowlistFile = {"format": 1, "libraries": {}}
    if args.output.exists():
        current = json.loads(args.output.read_text())
    built = build()
    if args.check:
        stale = [
            f"{name} {version}"
            for name, (version, entry) in built.items()
            if not _covers(current["libraries"].get(name, {}).get(version), entry)
        ]
        if stale:
            print(f"{args.output} lacks names of: {', '.join(stale)}", file=sys.stderr)
            return 1
        return 0
    for name, (version, entry) in built.items():
        versions = current["libraries"].setdefault(name, {})
        known = versions.get(version)
        if known is not None and known["module"] == entry["module"]:  # the same version beside another numpy
            merged = {tuple(pair) for pair in known["globals"]} | {tuple(pair) for pair in entry["globals"]}
            entry = VersionList(module=entry["module"], globals=[list(pair) for pair in sorted(merged)])
        versions[version] = entry
    args.output.write_text(_dumps(current))
    return 0


def _covers(known: VersionList | None, built: VersionList) -> bool:
    """Whether the file's list for a version holds every name this environment resolved (a library
    version can resolve a few names more or fewer beside another numpy: the file keeps their union)."""
    if known is None or known["module"] != built["module"]:
        return False
    return {tuple(pair) for pair in built["globals"]} <= {tuple(pair) for pair in known["globals"]}


def _dumps(document: AllowlistFile) -> str:
    """JSON with one ``[module, name]`` pair per line, so a new library version reads as a diff."""
    lines = [f'{{"format": {document["format"]}, "libraries": {{']
    libraries = sorted(document["libraries"].items())
    for i, (name, versions) in enumerate(libraries):
        lines.append(f"  {json.dumps(name)}: {{")
        for j, (version, entry) in enumerate(sorted(versions.items())):
            lines.append(f'    {json.dumps(version)}: {{"module": {json.dumps(entry["module"])}, "globals": [')
            pairs = [f"      {json.dumps(pair)}" for pair in entry["globals"]]
            lines.append(",\n".join(pairs))
            lines.append("    ]}" + ("," if j < len(versions) - 1 else ""))
        lines.append("  }" + ("," if i < len(libraries) - 1 else ""))
    lines.append("}}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
