"""A CycloneDX 1.6 ML-BOM for a model folder: model card, file digests, dependencies.

cyclonedx-python-lib models the ``machine-learning-model`` component type but not the
``modelCard`` object (CycloneDX/cyclonedx-python-lib#912), so the document is built as
plain JSON here and then validated, offline, against the CycloneDX 1.6 JSON schema that
the library ships (``JsonStrictValidator``).  An invalid BOM is never written.

The model card is filled from what the folder says about itself (a Hugging Face
``config.json``: ``architectures`` and ``model_type``) plus what the caller passes
(task, datasets); fields that are unknown are left out, not guessed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Required, TypedDict
from urllib.parse import quote

from tracemark import __version__
from tracemark._json import JSONValue
from tracemark.errors import BomValidationError, InvalidInputError, MissingExtraError
from tracemark.supply._deps import Dependency

SPEC_VERSION = "1.6"
_HASH_CHUNK = 1 << 20

# The parts of a CycloneDX 1.6 document that tracemark writes.  Keys that are not Python names use
# the functional form; optional members are added after the required ones, in the order written.


class CycloneDxHash(TypedDict):
    """A ``hash``: the algorithm's CycloneDX name and the hex digest."""

    alg: str
    content: str


class CycloneDxProperty(TypedDict):
    """A ``property``: a namespaced name and a string value."""

    name: str
    value: str


#: A training data set named in the model card (``componentData``).
CycloneDxDataset = TypedDict("CycloneDxDataset", {"type": str, "name": str, "bom-ref": str, "classification": str})


class CycloneDxModelParameters(TypedDict, total=False):
    """A model card's ``modelParameters``: only what the folder or the caller states."""

    task: str
    architectureFamily: str
    modelArchitecture: str
    datasets: list[CycloneDxDataset]


class CycloneDxModelCard(TypedDict):
    """A ``modelCard``."""

    modelParameters: CycloneDxModelParameters


#: A ``component``: the model (with its model card and its files), a file, a library or the tool.
CycloneDxComponent = TypedDict(
    "CycloneDxComponent",
    {
        "type": Required[str],
        "bom-ref": str,
        "name": Required[str],
        "version": str,
        "purl": str,
        "hashes": list[CycloneDxHash],
        "properties": list[CycloneDxProperty],
        "modelCard": CycloneDxModelCard,
        "components": list["CycloneDxComponent"],
    },
    total=False,
)


class CycloneDxTools(TypedDict):
    """``metadata.tools``: the tools that made the BOM, as components."""

    components: list[CycloneDxComponent]


class CycloneDxMetadata(TypedDict):
    """``metadata``: when, by what, and about which component (the model)."""

    timestamp: str
    tools: CycloneDxTools
    component: CycloneDxComponent


class CycloneDxDependency(TypedDict, total=False):
    """A ``dependency``: a component's ``bom-ref`` and the refs it depends on."""

    ref: Required[str]
    dependsOn: list[str]


class CycloneDxBom(TypedDict):
    """The ML-BOM document :func:`build_ml_bom` returns."""

    bomFormat: str
    specVersion: str
    serialNumber: str
    version: int
    metadata: CycloneDxMetadata
    components: list[CycloneDxComponent]
    dependencies: list[CycloneDxDependency]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def package_url(dependency: Dependency) -> str:
    """The purl of a dependency (``pkg:pypi/name@version``, ``pkg:npm/%40scope/name@version``)."""
    if dependency.ecosystem == "npm":
        name = quote(dependency.name, safe="/")
        kind = "npm"
    else:
        name = dependency.name.lower().replace("_", "-").replace(".", "-")
        kind = "pypi"
    return f"pkg:{kind}/{name}" + (f"@{quote(dependency.version, safe='')}" if dependency.version else "")


def _model_parameters(folder: Path, task: str | None, datasets: Sequence[str]) -> CycloneDxModelParameters:
    parameters: CycloneDxModelParameters = {}
    if task:
        parameters["task"] = task
    config_path = folder / "config.json"
    if config_path.is_file() and config_path.stat().st_size < 16 * 1024 * 1024:
        config: JSONValue
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            config = None
        if isinstance(config, dict):
            model_type = config.get("model_type")
            if isinstance(model_type, str):
                parameters["architectureFamily"] = model_type
            architectures = config.get("architectures")
            if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
                parameters["modelArchitecture"] = architectures[0]
    if datasets:
        parameters["datasets"] = [
            {"type": "dataset", "name": name, "bom-ref": f"dataset:{name}", "classification": "training"}
            for name in datasets
        ]
    return parameters


def build_ml_bom(
    model: str | Path,
    *,
    name: str | None = None,
    version: str | None = None,
    task: str | None = None,
    datasets: Sequence[str] = (),
    dependencies: Sequence[Dependency] = (),
    timestamp: datetime.datetime | None = None,
    serial: uuid.UUID | None = None,
) -> CycloneDxBom:
    """A validated CycloneDX 1.6 ML-BOM for the model folder (raises :class:`BomValidationError`)."""
    folder = Path(model)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a model folder")
    model_ref = f"model:{name or folder.name}"
    files: list[CycloneDxComponent] = []
    for directory, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for filename in sorted(filenames):
            path = Path(directory) / filename
            if path.is_symlink() or not path.is_file():
                continue
            relative = path.relative_to(folder).as_posix()
            files.append(
                {
                    "type": "file",
                    "bom-ref": f"file:{relative}",
                    "name": relative,
                    "hashes": [{"alg": "SHA-256", "content": _sha256(path)}],
                    "properties": [{"name": "tracemark:size", "value": str(path.stat().st_size)}],
                }
            )
    model_component: CycloneDxComponent = {
        "type": "machine-learning-model",
        "bom-ref": model_ref,
        "name": name or folder.name,
        "modelCard": {"modelParameters": _model_parameters(folder, task, datasets)},
        "components": files,
    }
    if version:
        model_component["version"] = version
    libraries: dict[str, CycloneDxComponent] = {}
    for dependency in dependencies:
        purl = package_url(dependency)
        component: CycloneDxComponent = {"type": "library", "bom-ref": purl, "name": dependency.name, "purl": purl}
        if dependency.version:
            component["version"] = dependency.version
        libraries[purl] = component
    when = (timestamp or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
    bom: CycloneDxBom = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": (serial or uuid.uuid4()).urn,
        "version": 1,
        "metadata": {
            "timestamp": when.isoformat().replace("+00:00", "Z"),
            "tools": {"components": [{"type": "application", "name": "tracemark", "version": __version__}]},
            # The BOM's subject is the model; its files are its sub-components.
            "component": model_component,
        },
        "components": list(libraries.values()),
        "dependencies": [
            {"ref": model_ref, "dependsOn": sorted(libraries)},
            *(CycloneDxDependency(ref=purl) for purl in sorted(libraries)),
        ],
    }
    validate_bom(bom)
    return bom


def validate_bom(bom: Mapping[str, object] | str) -> None:
    """Validate against the CycloneDX 1.6 JSON schema, offline; raises :class:`BomValidationError`."""
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise MissingExtraError("CycloneDX validation", "supply") from exc
    text = bom if isinstance(bom, str) else json.dumps(bom)
    try:
        error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    except ValueError as exc:
        raise BomValidationError(f"the BOM is not JSON: {exc}") from None
    if error is not None:
        detail = getattr(error, "data", None)
        if detail is not None and hasattr(detail, "message"):
            where = "/".join(str(p) for p in getattr(detail, "absolute_path", ()))
            raise BomValidationError(f"invalid CycloneDX 1.6 at /{where}: {detail.message}")
        raise BomValidationError(f"invalid CycloneDX 1.6: {str(error).splitlines()[0]}")
