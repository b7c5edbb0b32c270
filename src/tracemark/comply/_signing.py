"""Signing a report and appending it to the log, so a regulator can check later that it was not changed.

The report's folder gets ``report.sig``, a C2SP signed note by the log's key over the SHA-256 of
``report.json`` and ``report.html``, and ``report.receipt``, a tlog-proof@v1 receipt for the log
entry that records those same hashes.  :func:`verify_report` checks all of it offline.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from tracemark._fs import atomic_write_bytes
from tracemark.errors import ComplianceError
from tracemark.tlog import NoteSigner, NoteVerifier, TransparencyLog, open_note, sign_note, verify_receipt

#: The log entry a report is recorded as.
REPORT_ENTRY_FORMAT = "tracemark.comply.report-entry/v1"
REPORT_FILES = ("report.json", "report.html")


class ReportEntryJSON(TypedDict):
    """The log entry of a signed report."""

    format: str
    report_json_sha256: str
    report_html_sha256: str
    generated_at: str


@dataclass(frozen=True)
class SignedReport:
    """Where the signed report was recorded."""

    report_json_sha256: str
    report_html_sha256: str
    log_index: int
    tree_size: int
    origin: str


def _digests(folder: Path) -> tuple[str, str]:
    try:
        json_sha, html_sha = (hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in REPORT_FILES)
    except OSError as exc:
        raise ComplianceError(f"cannot read the report in {folder}: {exc.strerror}") from None
    return json_sha, html_sha


def _note_text(json_sha: str, html_sha: str) -> str:
    return f"{REPORT_ENTRY_FORMAT}\nreport.json sha256 {json_sha}\nreport.html sha256 {html_sha}\n"


def sign_and_log(folder: Path, log: TransparencyLog, signer: NoteSigner, generated_at: str) -> SignedReport:
    """Sign the report in ``folder`` with the log key, append its entry and write the receipt."""
    json_sha, html_sha = _digests(folder)
    entry: ReportEntryJSON = {
        "format": REPORT_ENTRY_FORMAT,
        "report_json_sha256": json_sha,
        "report_html_sha256": html_sha,
        "generated_at": generated_at,
    }
    data = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    atomic_write_bytes(folder / "report.sig", _sign(signer, json_sha, html_sha).encode(), sync_directory=False)
    (appended,) = log.append_entries([data], [bytes.fromhex(json_sha)])
    receipt = log.receipt(appended.index, sign=True)
    atomic_write_bytes(folder / "report.receipt", receipt.to_text().encode(), sync_directory=False)
    return SignedReport(
        json_sha, html_sha, appended.index, receipt_tree_size(receipt.checkpoint_note), log.origin or ""
    )


def _sign(signer: NoteSigner, json_sha: str, html_sha: str) -> str:
    return sign_note(_note_text(json_sha, html_sha), [signer])


def receipt_tree_size(checkpoint_note: str) -> int:
    """The tree size line of a checkpoint note."""
    lines = checkpoint_note.splitlines()
    return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else 0


@dataclass(frozen=True)
class VerifiedReport:
    """A report whose files match its signature and its log entry."""

    report_json_sha256: str
    report_html_sha256: str
    log_index: int
    tree_size: int
    origin: str


def verify_report(folder: Path, log_key: NoteVerifier) -> VerifiedReport:
    """Check that ``report.json`` and ``report.html`` are the ones signed and logged; raises
    :class:`~tracemark.errors.ComplianceError` (or a :class:`~tracemark.errors.TlogError`) otherwise."""
    json_sha, html_sha = _digests(folder)
    try:
        signature = (folder / "report.sig").read_text(encoding="utf-8")
        receipt = (folder / "report.receipt").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ComplianceError(f"{folder} holds no readable report.sig and report.receipt: {exc}") from None
    opened = open_note(signature, [log_key])
    if opened.text != _note_text(json_sha, html_sha):
        raise ComplianceError("the report files differ from the ones signed (report.sig)")
    verified = verify_receipt(receipt, log_key)
    try:
        entry = json.loads(verified.entry)
    except ValueError:
        raise ComplianceError("the logged entry is not a report entry") from None
    if not isinstance(entry, dict) or entry.get("format") != REPORT_ENTRY_FORMAT:
        raise ComplianceError("the logged entry is not a report entry")
    if entry.get("report_json_sha256") != json_sha or entry.get("report_html_sha256") != html_sha:
        raise ComplianceError("the report files differ from the ones recorded in the log")
    return VerifiedReport(json_sha, html_sha, verified.index, verified.tree_size, verified.origin)
