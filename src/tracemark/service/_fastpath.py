"""A direct ASGI route for ``POST /v1/text/detect``, the service's hot path.

A 200-token detection takes one to two milliseconds; going through Starlette's router and
FastAPI's dependency and body machinery adds a large fraction of that again.  This route
does the same work with the same request model, the same detection function and the same
error bodies, straight from ASGI.  FastAPI still declares the route (so the OpenAPI document
describes it); requests simply never reach that declaration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from tracemark.errors import TracemarkError
from tracemark.service._errors import invalid_request_body, tracemark_error_response
from tracemark.service._json import dumps

_JSON_HEADERS = [(b"content-type", b"application/json")]


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class DirectJSONRoute:
    """Serve ``POST <path>`` by validating the JSON body as ``model`` and awaiting ``handler`` on it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        model: type[BaseModel],
        handler: Callable[[Any], Awaitable[Mapping[str, object]]],
    ) -> None:
        self.app = app
        self.path = path
        self.model = model
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            request = self.model.model_validate_json(b"".join(chunks))
        except ValidationError as exc:
            await _respond(send, 422, invalid_request_body(exc.errors()))
            return
        try:
            payload = await self.handler(request)
        except TracemarkError as exc:
            await _respond(send, *tracemark_error_response(exc))
            return
        await _respond(send, 200, dumps(payload))
