"""The tracemark HTTP service: mark, verify and browse the log, plus the web page.

Reads are public; writes (generation, log appends) need an API token minted with
``tracemark keys token``.  Every error is a JSON object ``{"error": {"type", "message"}}``
with a 4xx status; request bodies over the limit are refused before they are read whole.
The OpenAPI document is at ``/openapi.json`` (the interactive docs are off: they load
third-party scripts).

One router per capability (``_health_routes``, ``_text_routes``, ``_log_routes``,
``_media_routes``, ``_page_routes``); what they share (the services, the token check, the
documented errors) is in ``_dependencies``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from tracemark import __version__
from tracemark.service import (
    _health_routes,
    _log_routes,
    _media_routes,
    _openai_routes,
    _page_routes,
    _text_routes,
    _tile_routes,
    _witness_routes,
)
from tracemark.service._dependencies import ServiceContext
from tracemark.service._errors import BodyLimit, add_error_handlers
from tracemark.service._fastpath import DirectJSONRoute
from tracemark.service._limits import RequestGuard
from tracemark.service._metrics import MetricsMiddleware
from tracemark.service._settings import ServiceSettings


def _preload(context: ServiceContext) -> None:
    """Open the log and load the model ahead of the first requests; failures are theirs to report."""
    try:
        context.log.size()
        context.text.warm_up()
    except Exception:  # the same error reaches the request that needs the missing piece
        return


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """Serve ``router``'s routes from the app's own route table, as ``@app.get`` would.

    ``app.include_router`` keeps each router behind a wrapper that matches every request once more
    per router (about 55 µs a request here, as much as a whole ``GET /v1/log/key``); the routes
    are the same objects either way, and so is the OpenAPI document.
    """
    app.router.routes.extend(router.routes)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the FastAPI application (``make run`` serves it on 127.0.0.1)."""
    context = ServiceContext.from_settings(settings or ServiceSettings())
    config = context.settings

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if config.preload:
            threading.Thread(target=_preload, args=(context,), name="tracemark-preload", daemon=True).start()
        yield
        await run_in_threadpool(context.close_known_outputs)
        await run_in_threadpool(context.log.close)

    app = FastAPI(
        title="tracemark",
        version=__version__,
        description="Mark what models produce, record it in a transparency log, verify origin with evidence.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.context = context
    app.state.settings = config
    app.state.text = context.text
    app.state.log = context.log
    add_error_handlers(app)
    for module in (_health_routes, _text_routes, _log_routes, _tile_routes, _media_routes, _page_routes):
        _add_routes(app, module.router)
    _witness_routes.install(app, context)  # POST /add-checkpoint; witnessed publishing under a witness policy
    _openai_routes.install(app, context)  # the OpenAI-compatible gateway: /v1/chat/completions, /v1/completions
    _page_routes.load_static()

    detect = functools.partial(_text_routes.detect_payload, context)
    app.add_middleware(DirectJSONRoute, path="/v1/text/detect", model=_text_routes.DetectRequest, handler=detect)
    # it also bounds the direct route; image uploads get their own, larger limit
    app.add_middleware(BodyLimit, limit=config.max_body_bytes, per_prefix={"/v1/media/": config.max_media_bytes})
    routes = [route for route in app.routes if isinstance(route, APIRoute)]
    json_paths = {route.path for route in routes if route.body_field is not None and "POST" in (route.methods or ())}
    app.add_middleware(RequestGuard, settings=config, limits=context.limits, json_paths=json_paths)
    # outermost: it counts the guard's and the body limit's refusals too
    known = frozenset(route.path for route in app.routes if isinstance(route, Route) and "{" not in route.path)
    app.add_middleware(MetricsMiddleware, metrics=context.metrics, known_paths=known)
    return app


def create_app_from_environment() -> FastAPI:
    """The app with settings from ``TRACEMARK_SERVICE_*`` variables: the factory each uvicorn worker calls."""
    return create_app(ServiceSettings.from_environment())
