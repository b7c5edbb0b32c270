"""A CycloneDX 1.6 ML-BOM for a model folder: model card, file digests, dependencies.

cyclonedx-python-lib models the ``machine-learning-model`` component type but not the
``modelCard`` object (CycloneDX/cyclonedx-python-lib#912), so the document is built as
plain JSON here and then validated, offline, against the CycloneDX 1.6 JSON schema that
the library ships (``JsonStrictValidator``).  An invalid BOM is never written.

The model card is filled from what the folder says about itself: a Hugging Face
``config.json`` (``architectures`` and ``model_type``) and the model card's YAML front matter in
``README.md`` (``license``, ``datasets``, ``pipeline_tag``, ``base_model``), plus what the caller
passes (task, datasets); fields that are unknown are left out, not guessed.  Development
dependencies (``"dev": true`` in package-lock, a ``requirements-dev.txt``) are listed with scope
``excluded`` and are not what the model depends on; ``dependsOn`` is written only when there is
something to list.
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


class CycloneDxLicense(TypedDict):
    """A ``license`` named as the model card states it (Hugging Face ids are not all SPDX ids)."""

    name: str


class CycloneDxLicenseChoice(TypedDict):
    license: CycloneDxLicense


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
        "scope": str,
        "purl": str,
        "licenses": list[CycloneDxLicenseChoice],
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


#: The model card's YAML front matter: ``---`` lines around ``key: value`` and ``key:`` + ``- item`` lists.
_FRONT_MATTER_LIMIT = 1 << 20


def read_model_card(folder: Path) -> dict[str, list[str]]:
    """The front matter of the folder's ``README.md`` (a Hugging Face model card), each key's values.

    Only the flat shapes model cards use are read (a scalar, an inline ``[a, b]`` list, or a block
    of ``- item`` lines); anything else is left out rather than guessed.
    """
    readme = folder / "README.md"
    if not readme.is_file() or readme.stat().st_size > _FRONT_MATTER_LIMIT:
        return {}
    lines = readme.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    card: dict[str, list[str]] = {}
    key: str | None = None
    for line in lines[1:]:
        if line.strip() == "---":
            return card
        if line.startswith((" ", "\t", "-")) and key is not None:
            item = line.strip()
            if item.startswith("- "):
                card[key].append(_scalar(item[2:]))
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or name.startswith("#"):
            key = None
            continue
        key = name.strip()
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            card[key] = [_scalar(v) for v in value[1:-1].split(",") if v.strip()]
        else:
            card[key] = [_scalar(value)] if value else []
    return {}  # no closing line: not front matter


def _scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _model_parameters(
    folder: Path, task: str | None, datasets: Sequence[str], card: dict[str, list[str]]
) -> CycloneDxModelParameters:
    parameters: CycloneDxModelParameters = {}
    task = task or next(iter(card.get("pipeline_tag", [])), None)
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
    named = list(dict.fromkeys([*datasets, *card.get("datasets", [])]))
    if named:
        parameters["datasets"] = [
            {"type": "dataset", "name": name, "bom-ref": f"dataset:{name}", "classification": "training"}
            for name in named
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
    card = read_model_card(folder)
    model_component: CycloneDxComponent = {
        "type": "machine-learning-model",
        "bom-ref": model_ref,
        "name": name or folder.name,
        "modelCard": {"modelParameters": _model_parameters(folder, task, datasets, card)},
        "components": files,
    }
    if version:
        model_component["version"] = version
    licences = [value for value in card.get("license", []) if value]
    if licences:
        model_component["licenses"] = [{"license": {"name": value}} for value in licences]
    if card.get("base_model"):
        model_component["properties"] = [
            {"name": "huggingface:base_model", "value": value} for value in card["base_model"] if value
        ]
    libraries: dict[str, CycloneDxComponent] = {}
    for dependency in dependencies:
        purl = package_url(dependency)
        component: CycloneDxComponent = {"type": "library", "bom-ref": purl, "name": dependency.name, "purl": purl}
        if dependency.version:
            component["version"] = dependency.version
        previous = libraries.get(purl)
        # Needed at run time if any source says so; only development dependencies are excluded.
        runtime = not dependency.development or (previous is not None and previous.get("scope") == "required")
        component["scope"] = "required" if runtime else "excluded"
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
            _model_dependency(model_ref, libraries),
            *(CycloneDxDependency(ref=p) for p in sorted(libraries)),
        ],
    }
    validate_bom(bom)
    return bom


def _model_dependency(model_ref: str, libraries: Mapping[str, CycloneDxComponent]) -> CycloneDxDependency:
    """The model's entry: what it needs at run time, or no ``dependsOn`` at all (not an empty list)."""
    runtime = sorted(purl for purl, component in libraries.items() if component.get("scope") == "required")
    entry = CycloneDxDependency(ref=model_ref)
    if runtime:
        entry["dependsOn"] = runtime
    return entry


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
