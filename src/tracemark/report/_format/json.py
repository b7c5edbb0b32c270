"""The JSON form: a capability's documented document, or the generic one (``tracemark.report/v1``)."""

from __future__ import annotations

import json
from typing import cast

from tracemark._json import FrozenJSONObject, JSONObject, thaw_object
from tracemark.report._format.interface import Formatter
from tracemark.report._report import Report

#: The schema of the generic JSON form.
GENERIC_SCHEMA = "tracemark.report/v1"


class JsonFormat(Formatter):
    """``{format, <facts>, counts, findings}``, keys sorted; see :meth:`document`."""

    name = "json"
    for_people = False

    def document(self, report: Report) -> JSONObject:
        """The JSON object: ``report.document`` when the capability defines one, else the generic form."""
        if report.document is not None:
            # The capability built the document from JSON values (its schema's TypedDict).
            return thaw_object(cast(FrozenJSONObject, report.document))
        return {
            "format": report.schema or GENERIC_SCHEMA,
            **thaw_object(report.facts),
            "counts": {severity.value: count for severity, count in report.counts().items()},
            "findings": [finding.to_json() for finding in report.findings],
        }

    def format(self, report: Report) -> str:
        return json.dumps(self.document(report), indent=2, sort_keys=True, ensure_ascii=False)
