"""EU AI Act compliance evidence: Article 50 marking, labelling and detection, Article 12 logs, one report.

:func:`run_check` reads a deployment (:func:`load_deployment`), runs the real marking layers on
real samples (text from the model, images through the watermark and C2PA signer, every output
through the log), asks the detection interface, exports the log's checkpoints and consistency
proofs, and writes a :class:`ComplianceReport` as JSON (``tracemark.comply.report/v1``) and HTML,
signed by the log key and appended to the log (:func:`verify_report` checks that later).
:func:`label_image` and :func:`label_text` are the deployer's visible disclosure.
"""

from tracemark.comply._article12 import BundledCheckpoint, LogBundle, export_log_bundle
from tracemark.comply._check import CheckResult, log_verifier, run_check
from tracemark.comply._deployment import (
    CODE_TEXT_FLOOR_TOKENS,
    MIN_RETENTION_DAYS,
    MODALITIES,
    Deployment,
    load_deployment,
)
from tracemark.comply._html import render_html
from tracemark.comply._label import (
    CORNERS,
    DISCLOSURES,
    LabelledImage,
    LabelledText,
    disclosure,
    label_image,
    label_text,
)
from tracemark.comply._obligations import OBLIGATIONS, Obligation
from tracemark.comply._report import (
    REPORT_FORMAT,
    ComplianceReport,
    DeploymentInfo,
    Evidence,
    Fact,
    Plot,
    ReportJSON,
    Row,
    RowJSON,
    Status,
    report_schema,
)
from tracemark.comply._signing import REPORT_ENTRY_FORMAT, SignedReport, VerifiedReport, verify_report

__all__ = [
    "CODE_TEXT_FLOOR_TOKENS",
    "CORNERS",
    "DISCLOSURES",
    "MIN_RETENTION_DAYS",
    "MODALITIES",
    "OBLIGATIONS",
    "REPORT_ENTRY_FORMAT",
    "REPORT_FORMAT",
    "BundledCheckpoint",
    "CheckResult",
    "ComplianceReport",
    "Deployment",
    "DeploymentInfo",
    "Evidence",
    "Fact",
    "LabelledImage",
    "LabelledText",
    "LogBundle",
    "Obligation",
    "Plot",
    "ReportJSON",
    "Row",
    "RowJSON",
    "SignedReport",
    "Status",
    "VerifiedReport",
    "disclosure",
    "export_log_bundle",
    "label_image",
    "label_text",
    "load_deployment",
    "log_verifier",
    "render_html",
    "report_schema",
    "run_check",
    "verify_report",
]
