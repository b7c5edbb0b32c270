"""``GET /v1/health``: liveness, what the service serves, and the log's size; ``GET /metrics`` for Prometheus."""

# No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

from typing import TypedDict

from fastapi import APIRouter
from starlette.responses import PlainTextResponse, Response

from tracemark import __version__
from tracemark.errors import TracemarkError
from tracemark.service._dependencies import Context, ServiceContext
from tracemark.service._errors import public_message
from tracemark.service._json import FastJSONResponse
from tracemark.service._metrics import CONTENT_TYPE

router = APIRouter()


class LogHealth(TypedDict, total=False):
    """The log part of the health answer: its size and latest checkpoint, or (size None) the error."""

    size: int | None
    checkpoint_size: int
    origin: str
    error: str


class HealthJSON(TypedDict):
    """``GET /v1/health``."""

    status: str
    version: str
    model: str | None
    keyring: bool
    log: LogHealth


@router.get("/v1/health", response_class=FastJSONResponse)
def health(context: Context) -> Response:
    """Liveness, what the service serves, and the log's size."""
    log: LogHealth
    try:
        checkpoint = context.log.latest_checkpoint().checkpoint
        log = {"size": context.log.size(), "checkpoint_size": checkpoint.size, "origin": checkpoint.origin}
    except TracemarkError as exc:
        log = {"size": None, "error": public_message(503, exc.diagnostics())}  # the log is unavailable: no paths
    model_dir = context.settings.model_dir
    health: HealthJSON = {
        "status": "ok",
        "version": __version__,
        "model": model_dir.name if model_dir else None,  # the folder's name: a public answer names no path
        "keyring": context.keyring.exists(),
        "log": log,
    }
    return FastJSONResponse(health)


def _log_state(context: ServiceContext) -> tuple[int, int, str]:
    checkpoint = context.log.latest_checkpoint()
    return context.log.size(), checkpoint.checkpoint.size, checkpoint.note


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(context: Context) -> Response:
    """Request counts and latencies, rate-limit refusals, appends and the log's size and checkpoint age,
    in the Prometheus text format (see :mod:`tracemark.service._metrics`)."""
    text = context.metrics.render(lambda: _log_state(context))
    return PlainTextResponse(text, media_type=CONTENT_TYPE)
