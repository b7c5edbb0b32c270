"""What every router shares: the application's services, the API-token check and the documented error responses.

One :class:`ServiceContext` per application, built by :func:`~tracemark.service._app.create_app` and
kept in ``app.state.context``; routes receive it through the :data:`Context` dependency and the
write routes also depend on :data:`Token`.  The limits a route enforces are the context's
:class:`~tracemark.service._settings.ServiceSettings`; the body size limit is the
:class:`~tracemark.service._errors.BodyLimit` middleware around every route, the direct detect
route included.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the dependency annotations at run time.

import threading
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeAlias, TypedDict

from fastapi import Depends, Header, Request
from pydantic import BaseModel

from tracemark.errors import KnownOutputIndexError, MissingExtraError
from tracemark.keys import InvalidTokenError, Keyring, TextKey, verify_api_token
from tracemark.service._json import FastJSONResponse
from tracemark.service._limits import RateLimits
from tracemark.service._log import ServiceLog
from tracemark.service._metrics import Metrics
from tracemark.service._settings import ServiceSettings
from tracemark.service._text import TextService
from tracemark.text import KnownOutputIndex


def media_extra() -> Any:
    """``tracemark.media``, imported on first use so the service runs without the ``media`` extra."""
    try:
        import tracemark.media as media
    except ImportError:
        raise MissingExtraError("image marking and verification", "media") from None
    return media


@dataclass
class ServiceContext:
    """The services of one application: its settings, keyring, text side, log and soft-binding repository."""

    settings: ServiceSettings
    keyring: Keyring
    text: TextService
    log: ServiceLog
    metrics: Metrics
    limits: RateLimits
    _repository: Any = field(default=None, init=False, repr=False)
    _repository_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _known_outputs: dict[str, KnownOutputIndex] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> "ServiceContext":
        """The services for ``settings``; nothing is opened or loaded until a request needs it."""
        keyring = Keyring(settings.home)
        metrics = Metrics()
        return cls(
            settings=settings,
            keyring=keyring,
            text=TextService(keyring, settings.model_dir, settings.model_id),
            log=ServiceLog(
                settings.database,
                keyring,
                batch_delay=settings.append_batch_delay,
                checkpoint_interval=settings.checkpoint_interval,
            ),
            metrics=metrics,
            limits=RateLimits(settings, metrics),
        )

    def soft_binding_repository(self) -> Any:
        """The C2PA soft-binding repository, in the log's database (opened on first use): the same SQLite
        file, or the same PostgreSQL database and schema, so every instance of a shared log resolves
        every binding."""
        with self._repository_lock:
            if self._repository is None:
                self._repository = media_extra().SoftBindingRepository(self.settings.database)
            return self._repository

    def known_outputs(self, key: TextKey, *, create: bool) -> KnownOutputIndex | None:
        """The provider's known-output index of ``key`` in the log's database (the spoofing defence; opened on
        first use).  None for a scheme it does not support (synthid) or, without ``create``, while no output
        of ``key`` has been indexed yet."""
        if key.scheme not in ("native", "kgw"):
            return None
        with self._repository_lock:
            index = self._known_outputs.get(key.key_id)
            if index is None:
                try:
                    index = KnownOutputIndex.open(self.settings.database, key, create=create)
                except KnownOutputIndexError:
                    if create:
                        raise
                    return None
                self._known_outputs[key.key_id] = index
        if not create:
            index.refresh()  # other instances of a shared log may have added outputs
        return index

    def close_known_outputs(self) -> None:
        with self._repository_lock:
            for index in self._known_outputs.values():
                index.close()
            self._known_outputs.clear()


async def service_context(request: Request) -> ServiceContext:
    """The application's :class:`ServiceContext` (a FastAPI dependency; ``async`` so that it runs on the
    event loop: FastAPI runs a plain function dependency in the thread pool)."""
    context: ServiceContext = request.app.state.context
    return context


Context = Annotated[ServiceContext, Depends(service_context)]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme is case-insensitive, RFC 6750)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def require_token(context: Context, authorization: Annotated[str | None, Header()] = None) -> str:
    """The write routes' guard: a valid ``Authorization: Bearer <token>`` minted with ``tracemark keys token``."""
    token = bearer_token(authorization)
    if token is None:
        raise InvalidTokenError("this route needs 'Authorization: Bearer <token>' (tracemark keys token)")
    token_id = verify_api_token(context.keyring, token)
    context.limits.charge_token(token_id)
    return token_id


Token = Annotated[str, Depends(require_token)]


class ErrorDetail(BaseModel):
    """What went wrong: the error's class name and a one-line message."""

    type: str
    message: str


class ErrorBody(BaseModel):
    """``{"error": {"type": ..., "message": ...}}``"""

    error: ErrorDetail


#: A route's OpenAPI ``responses`` table: status -> ``{"model": ..., "description": ...}``.  FastAPI types the
#: entries as plain dicts, so a TypedDict would not be accepted where they are passed.
OpenAPIResponses: TypeAlias = dict[int | str, dict[str, object]]


class JSONRouteOptions(TypedDict):
    """Route options of a read route answering JSON (``@router.get(path, **JSON_ROUTE)``)."""

    response_class: type[FastJSONResponse]
    responses: OpenAPIResponses


#: The error responses a JSON route documents (their bodies come from :mod:`tracemark.service._errors`).
ERRORS: OpenAPIResponses = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "malformed input"),
        (404, "no such key, entry or tree size"),
        (413, "request body too large"),
        (422, "invalid request, or a proof or signature that does not verify"),
        (503, "the service is not set up for this (no keyring, no model)"),
    )
}
#: The same for routes that need a token.
WRITE_ERRORS: OpenAPIResponses = {**ERRORS, 401: {"model": ErrorBody, "description": "no token"}}
#: Route options of a read route answering JSON.
JSON_ROUTE: JSONRouteOptions = {"response_class": FastJSONResponse, "responses": ERRORS}
