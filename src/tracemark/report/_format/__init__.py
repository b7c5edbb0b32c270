"""Report formats, one :class:`Formatter` implementation per format (pip-audit's ``_format`` shape)."""

from __future__ import annotations

from tracemark.report._format.html import HtmlFormat
from tracemark.report._format.interface import Formatter
from tracemark.report._format.json import JsonFormat
from tracemark.report._format.markdown import MarkdownFormat
from tracemark.report._format.sarif import SarifFormat
from tracemark.report._format.table import TableFormat

#: Every format by its ``--format`` name, the human table first.
FORMATS: dict[str, Formatter] = {
    formatter.name: formatter
    for formatter in (TableFormat(), JsonFormat(), SarifFormat(), MarkdownFormat(), HtmlFormat())
}

__all__ = ["FORMATS", "Formatter", "HtmlFormat", "JsonFormat", "MarkdownFormat", "SarifFormat", "TableFormat"]
