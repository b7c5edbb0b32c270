"""SARIF 2.1.0 and human-table renderings of supply-chain findings.

SARIF is what code-scanning services ingest; each finding becomes a ``result`` whose
``ruleId`` is the finding's rule and whose ``level`` follows its severity.  GitHub reads the
numeric ``security-severity`` property to rank security results, so it is set too.
Locations inside archives keep the outer file as the artifact and the member path as a
logical location (``model.pt!archive/data.pkl``).
"""

from __future__ import annotations

from typing import Any

from tracemark import __version__
from tracemark.supply._findings import Finding, severity_rank

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "unknown": "error"}
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0", "unknown": "8.0"}

RULE_HELP: dict[str, str] = {
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
    "onnx.external-data-escape": "An ONNX external-data path leaves the model folder.",
}


def to_sarif(findings: tuple[Finding, ...] | list[Finding], *, tool: str, rule_help: dict[str, str]) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run; rules are listed once, in first-seen order."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results = []
    for finding in findings:
        if finding.rule not in index:
            index[finding.rule] = len(rules)
            description = rule_help.get(finding.rule, finding.rule)
            rules.append(
                {
                    "id": finding.rule,
                    "shortDescription": {"text": description},
                    "defaultConfiguration": {"level": _LEVEL.get(finding.severity, "warning")},
                    "properties": {"security-severity": _SECURITY_SEVERITY.get(finding.severity, "5.5")},
                }
            )
        artifact, _, member = finding.location.partition("!")
        location: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": artifact}}}
        if member:
            location["logicalLocations"] = [{"fullyQualifiedName": finding.location, "kind": "member"}]
        elif finding.offset is not None:
            location["physicalLocation"]["region"] = {"byteOffset": finding.offset}
        results.append(
            {
                "ruleId": finding.rule,
                "ruleIndex": index[finding.rule],
                "level": _LEVEL.get(finding.severity, "warning"),
                "message": {"text": f"{finding.location}: {finding.message}"},
                "locations": [location],
                "properties": {
                    "severity": finding.severity,
                    "security-severity": _SECURITY_SEVERITY.get(finding.severity, "5.5"),
                },
            }
        )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "tracemark",
                        "fullName": tool,
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


def findings_table(findings: tuple[Finding, ...] | list[Finding]) -> str:
    """A fixed-width table, worst findings first."""
    if not findings:
        return "no findings"
    ordered = sorted(findings, key=lambda f: (-severity_rank(f.severity), f.location, f.rule))
    headers = ("SEVERITY", "RULE", "LOCATION", "MESSAGE")
    rows = [(f.severity, f.rule, f.location, f.message) for f in ordered]
    widths = [min(60, max(len(str(row[i])) for row in [headers, *rows])) for i in range(3)]
    lines = []
    for row in [headers, *rows]:
        cells = [str(row[i])[: widths[i]].ljust(widths[i]) for i in range(3)]
        lines.append("  ".join([*cells, str(row[3])]))
    return "\n".join(lines)
