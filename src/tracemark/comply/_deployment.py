"""The deployment file: what a provider runs and what the compliance check should test.

A TOML file (``examples/deployment.toml`` is a complete one) names the model(s) and their
modalities, the marking layers switched on, the text length floor, the log, the detection
endpoint, the samples to make and the benchmark results to cite.  Relative paths are resolved
against the file's folder, so a deployment file travels with its samples.
"""

from __future__ import annotations

import glob
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tracemark.errors import ComplianceError

#: The Code of Practice's working figure: text watermarks are expected from about this many tokens.
CODE_TEXT_FLOOR_TOKENS = 200
#: Article 19(1): providers keep the automatically generated logs for at least six months.
MIN_RETENTION_DAYS = 183
#: Modalities a deployment may declare; ``audio`` and ``video`` are accepted and reported as not assessed.
MODALITIES = ("text", "image", "audio", "video")
#: Largest deployment file read (bytes).
MAX_DEPLOYMENT_BYTES = 1 << 20

_TOML = Mapping[str, object]


@dataclass(frozen=True)
class ModelEntry:
    """One model of the deployment: its id in provenance records, its folder, what it outputs."""

    model_id: str
    path: Path | None
    modalities: tuple[str, ...]


@dataclass(frozen=True)
class TextSettings:
    """The text marking layer and its samples: ``min_tokens`` is the floor above which output is marked."""

    watermark: bool
    min_tokens: int
    alpha: float
    prompts: tuple[str, ...]
    seed: int
    key_id: str | None


@dataclass(frozen=True)
class ImageSettings:
    """The image marking layers (invisible watermark, signed C2PA manifest) and the images to mark."""

    watermark: bool
    c2pa: bool
    inputs: tuple[Path, ...]


@dataclass(frozen=True)
class LogSettings:
    """Where outputs are recorded: ``record_outputs`` off means no output reaches the log."""

    record_outputs: bool
    database: Path | None
    witness: bool
    retention_days: int


@dataclass(frozen=True)
class DetectionSettings:
    """The public detection interface: ``in-process`` (the service's own app), a URL, or none."""

    endpoint: str | None
    free_for_authorities: bool


@dataclass(frozen=True)
class Deployment:
    """A parsed deployment file."""

    source: Path
    name: str
    provider: str
    models: tuple[ModelEntry, ...]
    text: TextSettings
    image: ImageSettings
    log: LogSettings
    detection: DetectionSettings
    robustness_results: tuple[Path, ...]

    @property
    def modalities(self) -> tuple[str, ...]:
        """Every modality some model of the deployment outputs, in :data:`MODALITIES` order."""
        declared = {m for model in self.models for m in model.modalities}
        return tuple(m for m in MODALITIES if m in declared)


def _table(document: _TOML, name: str) -> _TOML:
    value = document.get(name, {})
    if not isinstance(value, Mapping):
        raise ComplianceError(f"[{name}] must be a table")
    return value


def _get(table: _TOML, name: str, kind: type, default: object, where: str) -> object:
    value = table.get(name, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ComplianceError(f"{where}.{name} must be a {kind.__name__}, got {value!r}")
    return value


def _string(table: _TOML, name: str, default: str, where: str) -> str:
    return str(_get(table, name, str, default, where))


def _flag(table: _TOML, name: str, default: bool, where: str) -> bool:
    return bool(_get(table, name, bool, default, where))


def _integer(table: _TOML, name: str, default: int, where: str) -> int:
    value = _get(table, name, int, default, where)
    return value if isinstance(value, int) else default


def _strings(table: _TOML, name: str, where: str) -> tuple[str, ...]:
    value = table.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ComplianceError(f"{where}.{name} must be a list of strings")
    return tuple(str(item) for item in value)


def _path(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _models(document: _TOML, base: Path) -> tuple[ModelEntry, ...]:
    raw = document.get("models", [])
    if not isinstance(raw, list) or not raw:
        raise ComplianceError("the deployment names no model: add a [[models]] table with id and modalities")
    models = []
    for number, item in enumerate(raw, start=1):
        if not isinstance(item, Mapping):
            raise ComplianceError(f"[[models]] entry {number} must be a table")
        where = f"models[{number}]"
        model_id = _string(item, "id", "", where)
        if not model_id:
            raise ComplianceError(f"{where}.id is missing")
        modalities = _strings(item, "modalities", where)
        unknown = sorted(set(modalities) - set(MODALITIES))
        if unknown or not modalities:
            raise ComplianceError(f"{where}.modalities must be some of {', '.join(MODALITIES)}; got {modalities}")
        folder = _string(item, "path", "", where)
        models.append(ModelEntry(model_id, _path(base, folder) if folder else None, modalities))
    return tuple(models)


def _text(document: _TOML) -> TextSettings:
    table = _table(document, "text")
    min_tokens = _integer(table, "min_tokens", CODE_TEXT_FLOOR_TOKENS, "text")
    if not 1 <= min_tokens <= 4096:
        raise ComplianceError(f"text.min_tokens must lie in 1..4096, got {min_tokens}")
    alpha = float(str(_get(table, "alpha", float, 1e-6, "text")))
    if not 0.0 < alpha < 0.5:
        raise ComplianceError(f"text.alpha must lie in (0, 0.5), got {alpha}")
    key_id = _string(table, "key_id", "", "text")
    return TextSettings(
        watermark=_flag(table, "watermark", True, "text"),
        min_tokens=min_tokens,
        alpha=alpha,
        prompts=_strings(table, "prompts", "text"),
        seed=_integer(table, "seed", 0, "text"),
        key_id=key_id or None,
    )


def _image(document: _TOML, base: Path) -> ImageSettings:
    table = _table(document, "image")
    watermark = _flag(table, "watermark", True, "image")
    c2pa = _flag(table, "c2pa", True, "image")
    if c2pa and not watermark:
        raise ComplianceError(
            "image.c2pa without image.watermark is not supported: the manifest's soft binding is the watermark"
        )
    inputs: list[Path] = []
    for pattern in _strings(table, "inputs", "image"):
        target = _path(base, pattern)
        matches = sorted(Path(m) for m in glob.glob(str(target))) if glob.has_magic(pattern) else [target]
        if not matches:
            raise ComplianceError(f"image.inputs: nothing matches {pattern!r} under {base}")
        inputs.extend(path.resolve() for path in matches)
    return ImageSettings(watermark=watermark, c2pa=c2pa, inputs=tuple(inputs))


def _log(document: _TOML, base: Path) -> LogSettings:
    table = _table(document, "log")
    database = _string(table, "database", "", "log")
    retention = _integer(table, "retention_days", 0, "log")
    return LogSettings(
        record_outputs=_flag(table, "record_outputs", True, "log"),
        database=_path(base, database) if database else None,
        witness=_flag(table, "witness", True, "log"),
        retention_days=retention,
    )


def _detection(document: _TOML) -> DetectionSettings:
    table = _table(document, "detection")
    endpoint = _string(table, "endpoint", "", "detection")
    if endpoint and endpoint != "in-process" and not endpoint.startswith(("http://", "https://")):
        raise ComplianceError(f"detection.endpoint must be 'in-process' or an http(s) URL, got {endpoint!r}")
    return DetectionSettings(
        endpoint=endpoint or None, free_for_authorities=_flag(table, "free_for_authorities", False, "detection")
    )


def load_deployment(path: Path | str) -> Deployment:
    """Read and check a deployment file; raises :class:`~tracemark.errors.ComplianceError`."""
    source = Path(path)
    try:
        if source.stat().st_size > MAX_DEPLOYMENT_BYTES:
            raise ComplianceError(f"{source} is larger than {MAX_DEPLOYMENT_BYTES} bytes")
        document = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ComplianceError(f"{source}: no such deployment file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ComplianceError(f"cannot read {source}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ComplianceError(f"{source} is not valid TOML: {exc}") from None
    base = source.resolve().parent
    header = _table(document, "deployment")
    robustness = _table(document, "robustness")
    return Deployment(
        source=source.resolve(),
        name=_string(header, "name", source.stem, "deployment"),
        provider=_string(header, "provider", "", "deployment"),
        models=_models(document, base),
        text=_text(document),
        image=_image(document, base),
        log=_log(document, base),
        detection=_detection(document),
        robustness_results=tuple(_path(base, p) for p in _strings(robustness, "results", "robustness")),
    )
