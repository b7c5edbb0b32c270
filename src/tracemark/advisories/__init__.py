"""tracemark.advisories: an offline OSV advisory database for PyPI and npm packages.

Shared by the dependency audit (``tracemark supply deps``) and the Electron audit::

    from tracemark.advisories import OsvDatabase

    db = OsvDatabase.open("osv/", max_age=datetime.timedelta(days=30))   # fails closed
    for advisory in db.affected(ecosystem="npm", name="electron", version="22.0.0"):
        print(advisory.id, advisory.severity, advisory.fixed)

The database is built from OSV exports with :func:`import_export` (an ``all.zip`` already
downloaded) or :func:`fetch_export` (downloads it; the only network access), one ecosystem at a
time; ``osv-manifest.json`` records what was imported and when it was exported.

Opening raises :class:`AdvisoryDatabaseError` when the database is missing, empty,
unreadable or older than ``max_age``: an audit never passes for lack of data.
"""

from tracemark.advisories._import import ImportedExport, fetch_export, import_export
from tracemark.advisories._osv import MANIFEST_NAME, SEVERITY_LABELS, Advisory, OsvDatabase
from tracemark.advisories._versions import normalise_name
from tracemark.errors import AdvisoryDatabaseError

__all__ = [
    "MANIFEST_NAME",
    "SEVERITY_LABELS",
    "Advisory",
    "AdvisoryDatabaseError",
    "ImportedExport",
    "OsvDatabase",
    "fetch_export",
    "import_export",
    "normalise_name",
]
