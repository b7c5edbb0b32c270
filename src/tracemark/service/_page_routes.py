"""The web page (``/``) and its two assets (``/static/app.js``, ``/static/style.css``), outside the API schema.

The page may load only its own scripts and styles and talk only to this service; asset URLs carry
a hash of their bytes, so a new release is never served from a stale cache.  Images may also come
from ``blob:`` (the preview of an image the page marked, built from the API's answer in memory) and
``data:`` (the empty favicon); nothing else outside the origin.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

import functools
import hashlib
from importlib import resources

from fastapi import APIRouter
from starlette.responses import Response

from tracemark.service._errors import NotFoundError

router = APIRouter()

_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {"Content-Security-Policy": _PAGE_POLICY, "X-Content-Type-Options": "nosniff",
                 "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}  # fmt: skip
_ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}


@functools.cache
def load_static() -> tuple[bytes, dict[str, bytes]]:
    """The page, its asset URLs tagged with a hash of their bytes, and the assets (read once)."""
    static = resources.files("tracemark.service").joinpath("static")
    assets = {name: static.joinpath(name).read_bytes() for name in _ASSETS}
    page_html = static.joinpath("index.html").read_bytes()
    for name, data in assets.items():
        tag = hashlib.sha256(data).hexdigest()[:12]
        page_html = page_html.replace(f"/static/{name}".encode(), f"/static/{name}?v={tag}".encode())
    return page_html, assets


@router.get("/", include_in_schema=False)
async def page() -> Response:
    return Response(load_static()[0], media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


@router.get("/static/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    assets = load_static()[1]
    if name not in assets:
        raise NotFoundError(f"no asset {name!r}")
    return Response(assets[name], media_type=_ASSETS[name], headers=_PAGE_HEADERS)
