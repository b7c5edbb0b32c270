"""How the service reports failures: one JSON shape, a 4xx status chosen by the error's class.

Every error response is ``{"error": {"type": <class name>, "message": <one line>}}``.  Errors
tracemark raises on purpose (:class:`~tracemark.errors.TracemarkError`) map to a 4xx (or 503
when the service itself is not set up); anything else is a 500 with a generic message and no
traceback.  Request bodies over the limit are refused with 413 before they are read whole.
A 5xx answer names no file: absolute paths in its message are cut to their last component
(the whole message goes to the ``tracemark.service`` logger).
FastAPI's routes (:func:`add_error_handlers`) and the direct detect route
(:mod:`tracemark.service._fastpath`) build their answers with the same functions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracemark.errors import (
    InvalidInputError,
    KeyMismatchError,
    KeyringError,
    MissingExtraError,
    ModelLoadError,
    ServiceError,
    TlogError,
    TlogFormatError,
    TlogStorageError,
    TracemarkError,
    UnknownKeyError,
)
from tracemark.keys import InvalidTokenError
from tracemark.service._json import dumps
from tracemark.tlog import WitnessQuorumError

_LOG = logging.getLogger("tracemark.service")
#: An absolute POSIX path of two or more components (a Windows drive path too), as error messages quote them.
_PATH = re.compile(r"""(?<![\w.:/])(?:[A-Za-z]:)?[/\\](?:[^\s'"/\\]+[/\\])+([^\s'"/\\,;:)]*)""")


class NotFoundError(ServiceError):
    """The thing asked for (a log entry, a tree size, a route) does not exist."""


class NotConfiguredError(ServiceError):
    """The service lacks what the request needs (a model directory, a keyring)."""


class RateLimitedError(ServiceError):
    """Too many requests from this client or token: retry after ``retry_after`` seconds (429)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceBusyError(ServiceError):
    """Every slot for expensive requests (images, generation) is taken: retry after ``retry_after`` seconds (503)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


#: Most specific class first: the first match decides the status.
_STATUS: tuple[tuple[type[TracemarkError], int], ...] = (
    (InvalidTokenError, 401),
    (RateLimitedError, 429),
    (ServiceBusyError, 503),
    (WitnessQuorumError, 503),
    (UnknownKeyError, 404),
    (NotFoundError, 404),
    (NotConfiguredError, 503),
    (MissingExtraError, 503),
    (ModelLoadError, 503),
    (KeyringError, 503),
    (KeyMismatchError, 422),
    (InvalidInputError, 400),
    (TlogFormatError, 400),
    (TlogStorageError, 503),
    (TlogError, 422),
)


def status_for(error: TracemarkError) -> int:
    """The HTTP status of a tracemark error (422 when nothing more specific applies)."""
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 422


def error_body(kind: str, message: str) -> bytes:
    """The JSON bytes of an error response."""
    return dumps({"error": {"type": kind, "message": message}})


def public_message(status: int, message: str) -> str:
    """What an answer may say: a 5xx message loses the directories of the paths it names."""
    if status < 500:
        return message
    cleaned = _PATH.sub(lambda found: found.group(1) or "<path>", message)
    if cleaned != message:
        _LOG.warning("%s", message)
    return cleaned


def retry_headers(error: Exception) -> dict[str, str] | None:
    """``Retry-After`` for a refusal that says when to come back (429, 503 busy)."""
    retry_after = getattr(error, "retry_after", None)
    return {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else None


def tracemark_error_response(error: TracemarkError) -> tuple[int, bytes]:
    """Status and body of the answer to a tracemark error, on every request path."""
    status = status_for(error)
    return status, error_body(type(error).__name__, public_message(status, error.diagnostics()))


def invalid_request_body(errors: Sequence[Any]) -> bytes:
    """Body of the 422 answer to a request that does not validate, on every request path."""
    return error_body("InvalidRequest", validation_message(list(errors)))


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error raised behind FastAPI's router with the JSON error body."""

    @app.exception_handler(TracemarkError)
    async def tracemark_error(_: Request, exc: TracemarkError) -> Response:
        status, body = tracemark_error_response(exc)
        return Response(body, status, media_type="application/json", headers=retry_headers(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return Response(invalid_request_body(exc.errors()), 422, media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        status, kind, message = exc.status_code, _HTTP_TYPES.get(exc.status_code, "HTTPError"), str(exc.detail)
        if status == 400:  # FastAPI could not read the body (bad UTF-8, nesting): as the direct detect route says
            status, kind, message = 422, "InvalidRequest", f"the body is not valid JSON: {message}"
        return Response(error_body(kind, message), status, media_type="application/json",
                        headers=getattr(exc, "headers", None))  # fmt: skip

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        _LOG.error("internal error", exc_info=exc)
        return Response(error_body("InternalError", "internal error"), 500, media_type="application/json")


#: Types of the errors Starlette's router raises itself.
_HTTP_TYPES = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge", 415: "UnsupportedMediaType"}


async def send_error(send: Send, status: int, kind: str, message: str, *, retry_after: int | None = None) -> None:
    """Answer an HTTP request with a JSON error straight from ASGI (used before routing)."""
    body = error_body(kind, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLargeError(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, by their declared length and while streaming.

    ``per_prefix`` gives other limits to paths that start with a prefix (image uploads are
    larger than texts).
    """

    def __init__(self, app: ASGIApp, limit: int, per_prefix: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.per_prefix = dict(per_prefix or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = next((size for prefix, size in self.per_prefix.items() if path.startswith(prefix)), self.limit)
        message = f"request body over {limit} bytes"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await send_error(send, 413, "PayloadTooLarge", message)
            return
        seen = 0
        too_large = False
        answered = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            received = await receive()
            seen += len(received.get("body", b""))
            if seen > limit:
                too_large = True
                raise _BodyTooLargeError
            return received

        async def guarded_send(sent: Message) -> None:
            # A framework may turn the receive error into a response of its own (FastAPI answers 400
            # "error parsing the body"): once the body went over the limit, the answer is our 413.
            nonlocal answered
            if not too_large:
                await send(sent)
            elif not answered and sent["type"] == "http.response.start":
                answered = True
                await send_error(send, 413, "PayloadTooLarge", message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLargeError:
            if not answered:
                await send_error(send, 413, "PayloadTooLarge", message)


def validation_message(errors: list[Any]) -> str:
    """One line from pydantic's validation errors: where, and what is wrong."""
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    what = str(first.get("msg", "invalid request"))
    return f"{where}: {what}" if where else what
