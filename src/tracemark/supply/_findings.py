"""The scanner's report and rule titles, on the shared findings model of :mod:`tracemark.report`.

A supply finding is a :class:`tracemark.report.Finding` whose location path names archive layers
after ``!`` (``model.tar.gz!gunzip!model/data.pkl``) and whose offset, when known, is a byte offset
inside the innermost member.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracemark import report
from tracemark._json import FrozenDict, FrozenJSONObject, JSONObject, freeze, thaw_object
from tracemark.report import Severity

#: Severity labels the supply chain reports, worst first (advisories may also be ``unknown``).
SEVERITIES = ("critical", "high", "medium", "low")

#: One line per scanner rule: what the finding means (SARIF ``shortDescription``, Markdown and HTML).
RULE_TITLES: dict[str, str] = {
    "pickle.global-denied": "The pickle imports a global outside the allowlist of what model checkpoints need.",
    "pickle.computed-call": "The pickle calls an object it computed, so the callee cannot be checked.",
    "pickle.global-mutation": "The pickle sets state on a module-level object.",
    "pickle.dynamic-global": "STACK_GLOBAL operands are not string constants.",
    "pickle.extension": "The pickle uses copyreg extension codes.",
    "pickle.out-of-band": "The pickle needs out-of-band buffers that are not in the file.",
    "pickle.invalid-opcode": "The pickle holds an opcode no unpickler defines.",
    "pickle.truncated": "The pickle ends before its STOP opcode.",
    "pickle.malformed": "The pickle's stack or memo is used inconsistently.",
    "pickle.unsupported-protocol": "The pickle declares a protocol above 5.",
    "pickle.trailing-data": "Bytes follow the pickle's STOP opcode.",
    "pickle.unanalysable": "The stream loads as a pickle but the analyser cannot follow it; refused, not passed.",
    "archive.path-traversal": "An archive member's path leaves the extraction folder.",
    "archive.link-escape": "An archive link points outside the archive.",
    "archive.bomb": "A compressed member expands beyond the scan limits.",
    "archive.corrupt": "An archive or compressed stream cannot be read.",
    "archive.crc-mismatch": "A zip member's CRC-32 does not match its directory entry.",
    "archive.duplicate-member": "Two archive members share a name.",
    "archive.too-deep": "Archives are nested deeper than the scan limit.",
    "archive.too-many-members": "The archive has more members than the scan limit.",
    "archive.member-too-large": "An archive member is larger than the scan limit.",
    "archive.unsupported": "The archive format cannot be inspected.",
    "archive.special-file": "The archive holds a device or FIFO.",
    "file.symlink-escape": "A symlink in the model folder points outside it.",
    "file.special": "The model folder holds something other than regular files.",
    "file.unreadable": "A file cannot be read.",
    "scan.error": "The scanner could not analyse the bytes; the file is refused rather than passed.",
    "numpy.invalid-header": "A .npy header is malformed.",
    "numpy.object-array": "A numpy object array does not hold a valid pickle.",
    "safetensors.invalid-header": "A safetensors header is malformed or its offsets do not tile the data.",
    "gguf.invalid-header": "A GGUF header is malformed.",
    "gguf.template-code": "A GGUF chat template reaches Python internals (template injection).",
    "keras.lambda-layer": "A Keras Lambda layer stores Python code that runs when the model loads.",
    "keras.config-unreadable": "The JSON in an HDF5 file could not all be read within the scan's limits.",
    "keras.foreign-function": "A Keras config names a function from a module outside Keras, imported on load.",
    "tensorflow.risky-op": "A TensorFlow SavedModel graph reads or writes files or runs Python (ReadFile, PyFunc).",
    "torchscript.code-io": "TorchScript code calls file, process or library-loading operations when the model runs.",
    "torchscript.unparsable": "TorchScript code does not parse, so what it calls cannot be checked.",
    "onnx.external-data-escape": "An ONNX external-data path leaves the model folder.",
}


@dataclass(frozen=True)
class ScannedFile:
    """A file or archive member the scanner looked at, and what it recognised it as."""

    location: str
    format: str
    size: int
    #: Every global a pickle in this file would import, ``module:name`` (as ``--allow`` takes it), in first-use order.
    globals: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScanReport:
    """The result of scanning a model file or folder.

    ``extra`` holds members a caller adds to the JSON object, as a deep read-only copy.
    """

    target: str
    files: tuple[ScannedFile, ...]
    findings: tuple[report.Finding, ...]
    tool: str = "tracemark supply scan"
    extra: FrozenJSONObject = field(default_factory=FrozenDict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", freeze(self.extra))

    @property
    def worst(self) -> Severity | None:
        """The worst severity among the findings, or ``None`` when there are none."""
        return max((f.severity for f in self.findings), default=None)

    def fails(self, threshold: str) -> bool:
        """Whether any finding is at or above ``threshold`` (``critical``/``high``/``medium``/``low``)."""
        return report.count_at_least((f.severity for f in self.findings), Severity(threshold)) > 0

    def to_json(self) -> JSONObject:
        """``target``, ``worst``, ``files`` and ``findings``, then the members of ``extra``."""
        worst = self.worst
        return {
            "target": self.target,
            "worst": worst.value if worst is not None else None,
            "files": [_file_json(f) for f in self.files],
            "findings": [f.to_json() for f in self.findings],
            **thaw_object(self.extra),
        }


def _file_json(file: ScannedFile) -> JSONObject:
    entry: JSONObject = {"location": file.location, "format": file.format, "size": file.size}
    if file.globals:
        entry["globals"] = list(file.globals)
    return entry
