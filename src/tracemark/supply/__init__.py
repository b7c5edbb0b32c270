"""tracemark.supply: a supply-chain gate for models.

Scan model files without loading them, sign and verify model folders with OpenSSF model
signing, emit a CycloneDX ML-BOM, and audit dependencies against an offline OSV database::

    from tracemark.supply import scan_path

    report = scan_path("models/my-model")        # never unpickles anything
    if report.fails("high"):
        for finding in report.findings:
            print(finding.severity, finding.location, finding.message)
"""

from tracemark.supply._allowlist import is_allowed as is_allowed_global
from tracemark.supply._bom import CycloneDxBom, CycloneDxComponent, build_ml_bom, validate_bom
from tracemark.supply._deps import (
    Dependency,
    DependencyAudit,
    DependencyAuditJSON,
    Vulnerability,
    VulnerabilityJSON,
    audit_dependencies,
    installed_dependencies,
    read_dependencies,
)
from tracemark.supply._findings import SEVERITIES, ScannedFile, ScanReport
from tracemark.supply._pickle import PickleAnalysis, analyse_pickle
from tracemark.supply._scan import ScanLimits, parse_allowed, scan_bytes, scan_hugging_face, scan_path
from tracemark.supply._signing import SignedFile, VerifiedModel, sign_model, verify_model

__all__ = [
    "SEVERITIES",
    "CycloneDxBom",
    "CycloneDxComponent",
    "Dependency",
    "DependencyAudit",
    "DependencyAuditJSON",
    "PickleAnalysis",
    "ScanLimits",
    "ScanReport",
    "ScannedFile",
    "SignedFile",
    "VerifiedModel",
    "Vulnerability",
    "VulnerabilityJSON",
    "analyse_pickle",
    "audit_dependencies",
    "build_ml_bom",
    "installed_dependencies",
    "is_allowed_global",
    "parse_allowed",
    "read_dependencies",
    "scan_bytes",
    "scan_hugging_face",
    "scan_path",
    "sign_model",
    "validate_bom",
    "verify_model",
]
