"""The tracemark HTTP service (FastAPI) and its web page; needs the ``service`` extra."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracemark.service._settings import ServiceSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ServiceSettings", "create_app"]


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the application (imports FastAPI lazily so the package imports without it)."""
    try:
        from tracemark.service._app import create_app as build
    except ImportError:
        from tracemark.errors import MissingExtraError

        raise MissingExtraError("the HTTP service", "service") from None
    return build(settings)
