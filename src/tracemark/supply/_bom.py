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
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tracemark import __version__
from tracemark.errors import BomValidationError, InvalidInputError, MissingExtraError
from tracemark.supply._deps import Dependency

SPEC_VERSION = "1.6"
_HASH_CHUNK = 1 << 20


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


def _model_parameters(folder: Path, task: str | None, datasets: Sequence[str]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    if task:
        parameters["task"] = task
    config_path = folder / "config.json"
    if config_path.is_file() and config_path.stat().st_size < 16 * 1024 * 1024:
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            config = None
        if isinstance(config, dict):
            if isinstance(config.get("model_type"), str):
                parameters["architectureFamily"] = config["model_type"]
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
) -> dict[str, Any]:
    """A validated CycloneDX 1.6 ML-BOM for the model folder (raises :class:`BomValidationError`)."""
    folder = Path(model)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a model folder")
    model_ref = f"model:{name or folder.name}"
    files = []
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
    model_component: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": model_ref,
        "name": name or folder.name,
        "modelCard": {"modelParameters": _model_parameters(folder, task, datasets)},
        "components": files,
    }
    if version:
        model_component["version"] = version
    libraries: dict[str, dict[str, Any]] = {}
    for dependency in dependencies:
        purl = package_url(dependency)
        component: dict[str, Any] = {"type": "library", "bom-ref": purl, "name": dependency.name, "purl": purl}
        if dependency.version:
            component["version"] = dependency.version
        libraries[purl] = component
    when = (timestamp or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
    bom: dict[str, Any] = {
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
            *({"ref": purl} for purl in sorted(libraries)),
        ],
    }
    validate_bom(bom)
    return bom


def validate_bom(bom: dict[str, Any] | str) -> None:
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
