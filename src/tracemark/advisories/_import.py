"""Build the offline advisory database from OSV exports: ``tracemark advisories import`` and ``fetch``.

An OSV export is the ``all.zip`` of one ecosystem (``gs://osv-vulnerabilities/<ECOSYSTEM>/all.zip``,
served over HTTPS at ``https://osv-vulnerabilities.storage.googleapis.com/<ECOSYSTEM>/all.zip``).
Importing one validates every record first (the same parser the audit uses, so a database that
imports is one the audit can open), then replaces that ecosystem's folder under the database
atomically and records the export in the database's ``osv-manifest.json``:

.. code-block:: json

    {"exported": "2026-12-06T00:00:00+00:00",
     "sources": {"PyPI": {"exported": "...", "imported": "...", "records": 17012,
                          "sha256": "...", "source": "all.zip"}}}

``exported`` at the top is the oldest export among the ecosystems: the age the audit checks.  An
export's time is what its publisher says (``--exported``, or the ``Last-Modified`` header when
fetched), else its newest record that is not dated in the future.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from tracemark._fs import atomic_write_bytes
from tracemark.advisories._osv import MANIFEST_NAME, OsvDatabase
from tracemark.advisories._versions import canonical_ecosystem
from tracemark.errors import AdvisoryDatabaseError

#: Where ``fetch`` downloads an ecosystem's export from by default.
OSV_EXPORT_URL = "https://osv-vulnerabilities.storage.googleapis.com/{ecosystem}/all.zip"
#: Largest export ``fetch`` downloads (the PyPI export is about 30 MB, npm's about 200 MB).
MAX_EXPORT_BYTES = 2 * 1024 * 1024 * 1024


class ImportedSourceJSON(TypedDict):
    exported: str
    imported: str
    records: int
    sha256: str
    source: str


class ImportedExportJSON(TypedDict):
    ecosystem: str
    records: int
    exported: str
    sha256: str
    database: str


class ManifestJSON(TypedDict):
    exported: str
    sources: dict[str, ImportedSourceJSON]


@dataclass(frozen=True)
class ImportedExport:
    """One ecosystem's export, now in the database."""

    ecosystem: str
    records: int
    exported: datetime.datetime
    sha256: str
    database: Path

    def to_json(self) -> ImportedExportJSON:
        return {
            "ecosystem": self.ecosystem,
            "records": self.records,
            "exported": self.exported.isoformat(),
            "sha256": self.sha256,
            "database": str(self.database),
        }


def _ecosystem(name: str) -> str:
    canonical = canonical_ecosystem(name)
    if canonical is None:
        raise AdvisoryDatabaseError(f"ecosystem {name!r} is not supported (PyPI or npm)")
    return canonical


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_manifest(database: Path) -> ManifestJSON:
    path = database / MANIFEST_NAME
    if not path.exists():
        return {"exported": "", "sources": {}}
    try:
        payload = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise AdvisoryDatabaseError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("sources"), dict):
        # A manifest written by hand (only "exported"): this import starts the per-source record.
        return {"exported": "", "sources": {}}
    manifest: ManifestJSON = {"exported": str(payload.get("exported", "")), "sources": payload["sources"]}
    return manifest


def import_export(
    export: str | Path,
    database: str | Path,
    *,
    ecosystem: str,
    exported: datetime.datetime | None = None,
    now: datetime.datetime | None = None,
) -> ImportedExport:
    """Validate an OSV export zip and make it ``ecosystem``'s part of the offline database at ``database``.

    Raises :class:`AdvisoryDatabaseError` when the export is missing, not a zip, holds a malformed
    record, or is dated in the future; the database is left as it was.
    """
    source = Path(export)
    target = Path(database)
    canonical = _ecosystem(ecosystem)
    current = now or datetime.datetime.now(datetime.UTC)
    if not source.is_file():
        raise AdvisoryDatabaseError(f"OSV export {source} does not exist")
    # Every record parsed with the audit's own reader: what imports, the audit can open.
    checked = OsvDatabase.open(source, max_age=None, now=current)
    if exported is not None and exported.tzinfo is None:
        exported = exported.replace(tzinfo=datetime.UTC)
    when = exported or checked.freshness
    if when > current + datetime.timedelta(days=1):
        raise AdvisoryDatabaseError(f"OSV export {source}: exported {when.isoformat()}, in the future")
    target.mkdir(parents=True, exist_ok=True)
    digest = _sha256(source)
    _replace_folder(source, target / canonical)
    manifest = _read_manifest(target)
    manifest["sources"][canonical] = {
        "exported": when.isoformat(),
        "imported": current.isoformat(),
        "records": checked.records,
        "sha256": digest,
        "source": source.name,
    }
    manifest["exported"] = min(entry["exported"] for entry in manifest["sources"].values())
    atomic_write_bytes(target / MANIFEST_NAME, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return ImportedExport(canonical, checked.records, when, digest, target)


def _replace_folder(export: Path, folder: Path) -> None:
    """Extract the export's records into a fresh folder beside ``folder``, then swap it in."""
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        with zipfile.ZipFile(export) as archive:
            for index, info in enumerate(archive.infolist()):
                if not info.filename.endswith(".json"):
                    continue
                # Names come from the export: never used as paths, only counted.
                (staging / f"{index:07d}.json").write_bytes(archive.read(info))
        retired = folder.with_name(f".{folder.name}-old")
        if retired.exists():
            shutil.rmtree(retired)
        if folder.exists():
            os.replace(folder, retired)
        os.replace(staging, folder)
        shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def fetch_export(
    database: str | Path,
    *,
    ecosystem: str,
    url: str | None = None,
    timeout: float = 60.0,
    now: datetime.datetime | None = None,
) -> ImportedExport:
    """Download ``ecosystem``'s OSV export (the only verb that reaches the network) and import it.

    The export's time is the server's ``Last-Modified`` when it sends one.
    """
    canonical = _ecosystem(ecosystem)
    address = url or OSV_EXPORT_URL.format(ecosystem=canonical)
    target = Path(database)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".fetch-") as scratch:
        downloaded = Path(scratch) / "all.zip"
        exported = _download(address, downloaded, timeout)
        return import_export(downloaded, target, ecosystem=canonical, exported=exported, now=now)


def _download(address: str, destination: Path, timeout: float) -> datetime.datetime | None:
    if not address.startswith(("https://", "http://")):
        raise AdvisoryDatabaseError(f"{address}: only http(s) URLs can be fetched")
    try:
        with urllib.request.urlopen(address, timeout=timeout) as response, destination.open("wb") as out:
            size = 0
            while block := response.read(1 << 20):
                size += len(block)
                if size > MAX_EXPORT_BYTES:
                    raise AdvisoryDatabaseError(f"{address}: larger than {MAX_EXPORT_BYTES} bytes")
                out.write(block)
            modified = response.headers.get("Last-Modified")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise AdvisoryDatabaseError(f"cannot fetch {address}: {exc}") from None
    if not modified:
        return None
    try:
        return email.utils.parsedate_to_datetime(modified)
    except (TypeError, ValueError):
        return None
