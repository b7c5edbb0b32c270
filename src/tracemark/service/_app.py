"""The tracemark HTTP service: mark, verify and browse the log, plus the web page.

Reads are public; writes (generation, log appends) need an API token minted with
``tracemark keys token``.  Every error is a JSON object ``{"error": {"type", "message"}}``
with a 4xx status; request bodies over the limit are refused before they are read whole.
The OpenAPI document is at ``/openapi.json`` (the interactive docs are off: they load
third-party scripts).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

import hashlib
import re
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse, Response

from tracemark import __version__
from tracemark.errors import InvalidInputError, TlogFormatError, TracemarkError
from tracemark.keys import InvalidTokenError, Keyring, verify_api_token
from tracemark.service._errors import BodyLimit, NotFoundError, error_body, status_for, validation_message
from tracemark.service._fastpath import DirectJSONRoute
from tracemark.service._json import FastJSONResponse
from tracemark.service._log import ServiceLog, checkpoint_json
from tracemark.service._media import register_media_routes
from tracemark.service._settings import ServiceSettings
from tracemark.service._text import TextService, verdict_json
from tracemark.text import detect_watermark
from tracemark.tlog import RECORD_FORMAT, ProvenanceRecord
from tracemark.tlog._merkle import MAX_TREE_SIZE
from tracemark.tlog._receipt import MAX_RECEIPT_BYTES

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_B64_HASH = re.compile(r"[A-Za-z0-9+/]{43}=")

#: The page may load only its own scripts and styles and talk only to this service.
_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {"Content-Security-Policy": _PAGE_POLICY, "X-Content-Type-Options": "nosniff",
                 "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}  # fmt: skip
_ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}


# -- request bodies ------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """What went wrong: the error's class name and a one-line message."""

    type: str
    message: str


class ErrorBody(BaseModel):
    """``{"error": {"type": ..., "message": ...}}``"""

    error: ErrorDetail


class DetectRequest(BaseModel):
    """Text to test, with the optional prompt and key."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="the text to test")
    prompt: str | None = Field(default=None, description="the prompt it answered; prompt tokens are never scored")
    key_id: str | None = Field(default=None, max_length=200, description="default: the service's default text key")
    alpha: float = Field(default=1e-6, gt=0.0, lt=1.0, description="decision level: marked when p <= alpha")
    explain: bool = Field(default=False, description="add token_marks: every token's characters and status")


class GenerateRequest(BaseModel):
    """A prompt for marked generation with the service's model."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=4000)
    max_new_tokens: int = Field(default=200, ge=1, le=4096)
    temperature: float = Field(default=1.0, gt=0.0, le=5.0)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    key_id: str | None = Field(default=None, max_length=200)


class RecordRequest(BaseModel):
    """A provenance record (``tracemark.provenance/v1``); ``time`` defaults to the service's clock."""

    model_config = ConfigDict(extra="forbid")

    content_sha256: str = Field(description="SHA-256 of the content, 64 lowercase hex digits")
    kind: Literal["text", "image", "model-artifact"]
    key_id: str
    model_id: str
    time: str | None = Field(default=None, description="RFC 3339 UTC to the second, e.g. 2026-08-02T12:00:00Z")
    c2pa_manifest_id: str | None = Field(default=None, description="C2PA manifest URN (images only)")
    format: str | None = Field(default=None, description=f"if given, {RECORD_FORMAT!r}")


class VerifyReceiptRequest(BaseModel):
    """A tlog-proof@v1 receipt, and optionally the content it should record."""

    model_config = ConfigDict(extra="forbid")

    receipt: str = Field(min_length=1, max_length=MAX_RECEIPT_BYTES)
    content: str | None = Field(default=None, description="the content (UTF-8 text) whose hash the record holds")


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "malformed input"),
        (404, "no such key, entry or tree size"),
        (413, "request body too large"),
        (422, "invalid request, or a proof or signature that does not verify"),
        (503, "the service is not set up for this (no keyring, no model)"),
    )
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {**_ERRORS, 401: {"model": ErrorBody, "description": "no token"}}
_JSON: dict[str, Any] = {"response_class": FastJSONResponse, "responses": _ERRORS}


def _prefers_note(accept: str) -> bool:
    return "text/plain" in accept and "application/json" not in accept


def _parse_leaf_hash(text: str) -> bytes:
    if _HEX64.fullmatch(text):
        return bytes.fromhex(text)
    if _B64_HASH.fullmatch(text):
        import base64

        return base64.b64decode(text)
    raise TlogFormatError("leaf_hash must be 32 bytes as 64 hex digits or base64")


def _preload(text_service: TextService, log_service: ServiceLog) -> None:
    """Open the log and load the model ahead of the first requests; failures are theirs to report."""
    try:
        log_service.size()
        text_service.warm_up()
    except Exception:  # the same error reaches the request that needs the missing piece
        return


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the FastAPI application (``make run`` serves it on 127.0.0.1)."""
    config = settings or ServiceSettings()
    keyring = Keyring(config.home)
    text_service = TextService(keyring, config.model_dir, config.model_id)
    log_service = ServiceLog(config.database, keyring, batch_delay=config.append_batch_delay)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if config.preload:
            threading.Thread(target=_preload, args=(text_service, log_service), name="tracemark-preload",
                             daemon=True).start()  # fmt: skip
        yield
        await run_in_threadpool(log_service.close)

    app = FastAPI(
        title="tracemark",
        version=__version__,
        description="Mark what models produce, record it in a transparency log, verify origin with evidence.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = config
    app.state.text = text_service
    app.state.log = log_service

    # -- errors ----------------------------------------------------------------------------------
    @app.exception_handler(TracemarkError)
    async def tracemark_error(_: Request, exc: TracemarkError) -> Response:
        return Response(error_body(type(exc).__name__, exc.diagnostics()), status_for(exc),
                        media_type="application/json")  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return Response(error_body("InvalidRequest", validation_message(list(exc.errors()))), 422,
                        media_type="application/json")  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return Response(error_body(kind, str(exc.detail)), exc.status_code, media_type="application/json",
                        headers=getattr(exc, "headers", None))  # fmt: skip

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        return Response(error_body("InternalError", "internal error"), 500, media_type="application/json")

    def require_token(authorization: Annotated[str | None, Header()] = None) -> str:
        if not authorization or not authorization.startswith("Bearer "):
            raise InvalidTokenError("this route needs 'Authorization: Bearer <token>' (tracemark keys token)")
        return verify_api_token(keyring, authorization.removeprefix("Bearer ").strip())

    # -- health ----------------------------------------------------------------------------------
    @app.get("/v1/health", response_class=FastJSONResponse)
    def health() -> Response:
        """Liveness, what the service serves, and the log's size."""
        log: dict[str, Any] | None
        try:
            checkpoint = log_service.latest_checkpoint().checkpoint
            log = {"size": log_service.size(), "checkpoint_size": checkpoint.size, "origin": checkpoint.origin}
        except TracemarkError as exc:
            log = {"size": None, "error": exc.diagnostics()}
        return FastJSONResponse({
            "status": "ok",
            "version": __version__,
            "model": str(config.model_dir) if config.model_dir else None,
            "keyring": keyring.exists(),
            "log": log,
        })  # fmt: skip

    # -- text ------------------------------------------------------------------------------------
    def run_detect(body: DetectRequest) -> dict[str, Any]:
        tokenizer = text_service.tokenizer()
        key = text_service.key(body.key_id)
        verdict = detect_watermark(body.text, key, tokenizer, prompt=body.prompt, alpha=body.alpha,
                                   explain=body.explain, max_chars=config.max_text_chars)  # fmt: skip
        return verdict_json(verdict)

    async def detect_payload(body: DetectRequest) -> dict[str, Any]:
        size = len(body.text) + len(body.prompt or "")
        if size <= config.inline_detect_chars:  # a millisecond or two: cheaper than a thread hop
            return run_detect(body)
        return await run_in_threadpool(run_detect, body)

    @app.post("/v1/text/detect", **_JSON)
    async def detect(body: DetectRequest) -> Response:
        """Test a text for the watermark: the verdict JSON (``tracemark.text.verdict/v1``).

        ``p_value`` is the exact probability that text written without the key scores this well;
        ``marked`` is ``p_value <= alpha``; with ``explain`` each token's status comes back in
        ``token_marks`` as ``[start_char, end_char, status]`` over ``canonicalization.text``.
        (Requests are served by :class:`DirectJSONRoute` with this same model and function.)
        """
        return FastJSONResponse(await detect_payload(body))

    @app.post("/v1/text/generate", response_class=FastJSONResponse, responses=_WRITE_ERRORS)
    async def generate(body: GenerateRequest, _token: Annotated[str, Depends(require_token)]) -> Response:
        """Generate marked text with the service's model and default key, record it in the log.

        The log records a provenance record (SHA-256 of the generated text's UTF-8 bytes, kind
        ``text``, key id, model id, time); the answer holds the generation, the record, its index
        and its tlog-proof@v1 receipt.
        """
        if body.max_new_tokens > config.max_new_tokens:
            raise InvalidInputError(f"max_new_tokens is at most {config.max_new_tokens} on this service")

        def run() -> dict[str, Any]:
            key = text_service.key(body.key_id)
            with text_service.generation_lock:
                generator = text_service.generator(key)
                (result,) = generator.generate([body.prompt], max_new_tokens=body.max_new_tokens,
                                               temperature=body.temperature, seed=body.seed)  # fmt: skip
            record = ProvenanceRecord.create(content=result.text.encode("utf-8"), kind="text", key_id=key.key_id,
                                             model_id=text_service.model_id())  # fmt: skip
            appended = log_service.append(record)
            return {"generation": result.to_json(), **appended.to_json()}

        return FastJSONResponse(await run_in_threadpool(run))

    # -- log -------------------------------------------------------------------------------------
    @app.post("/v1/log/entries", response_class=FastJSONResponse, responses=_WRITE_ERRORS)
    def append_entry(body: RecordRequest, _token: Annotated[str, Depends(require_token)]) -> Response:
        """Append a provenance record; answers once it is durable, with its index and receipt."""
        if body.format is not None and body.format != RECORD_FORMAT:
            raise TlogFormatError(f"record format must be {RECORD_FORMAT!r}")
        record = ProvenanceRecord.create(content_sha256=body.content_sha256, kind=body.kind, key_id=body.key_id,
                                         model_id=body.model_id, time=body.time,
                                         c2pa_manifest_id=body.c2pa_manifest_id)  # fmt: skip
        return FastJSONResponse(log_service.append(record).to_json())

    async def read(function: Callable[..., Any], *args: Any) -> Any:
        """Run a log read on the event loop: a few primary-key lookups, cheaper than a thread hop.
        The first use opens the log (and may sign its first checkpoint), in the thread pool."""
        if not log_service.is_open:
            await run_in_threadpool(log_service.size)
        return function(*args)

    @app.get("/v1/log/checkpoint", response_class=FastJSONResponse, responses=_ERRORS)
    async def checkpoint(
        request: Request, note_format: Annotated[Literal["json", "note"] | None, Query(alias="format")] = None
    ) -> Response:
        """The latest signed checkpoint: JSON, or the C2SP signed note itself as ``text/plain``
        (``?format=note`` or ``Accept: text/plain``)."""
        signed = await read(log_service.latest_checkpoint)
        if note_format == "note" or (note_format is None and _prefers_note(request.headers.get("accept", ""))):
            return PlainTextResponse(signed.note)
        return FastJSONResponse(checkpoint_json(signed))

    @app.get("/v1/log/entries/{index}", **_JSON)
    async def entry(index: Annotated[int, Path(ge=0, le=MAX_TREE_SIZE)]) -> Response:
        """One entry: its provenance record, leaf hash (hex) and stored bytes (base64)."""
        return FastJSONResponse(await read(log_service.entry, index))

    @app.get("/v1/log/entries", **_JSON)
    async def entries(
        start: Annotated[int, Query(ge=0, le=MAX_TREE_SIZE)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    ) -> Response:
        """A page of entries from ``start``, oldest first; ``next`` is the next page's start."""
        return FastJSONResponse(await read(log_service.entries, start, min(limit, config.max_page)))

    @app.get("/v1/log/proof/inclusion", **_JSON)
    async def inclusion(
        index: Annotated[int | None, Query(ge=0, le=MAX_TREE_SIZE)] = None,
        leaf_hash: Annotated[str | None, Query(max_length=64)] = None,
        content_sha256: Annotated[str | None, Query(max_length=64)] = None,
        size: Annotated[int | None, Query(ge=0, le=MAX_TREE_SIZE)] = None,
    ) -> Response:
        """RFC 9162 inclusion proof of an entry (by ``index``, ``leaf_hash`` or ``content_sha256``)
        in the tree of ``size`` (default: the latest checkpoint), with the checkpoint and the
        entry's receipt when that size was signed."""
        given = [name for name, value in (("index", index), ("leaf_hash", leaf_hash),
                                          ("content_sha256", content_sha256)) if value is not None]  # fmt: skip
        if len(given) != 1:
            raise InvalidInputError("give exactly one of index, leaf_hash or content_sha256")
        tree_size = await read(log_service.tree_size_for, size)
        if leaf_hash is not None:  # may first index the leaves appended since the last lookup: a thread's job
            index = await run_in_threadpool(log_service.find_leaf, _parse_leaf_hash(leaf_hash), tree_size)
        elif content_sha256 is not None:
            index = await read(log_service.find_content, content_sha256, tree_size)
        return FastJSONResponse(await read(log_service.inclusion, index, tree_size))

    @app.get("/v1/log/proof/consistency", **_JSON)
    async def consistency(
        old: Annotated[int, Query(ge=0, le=MAX_TREE_SIZE)],
        new: Annotated[int | None, Query(ge=0, le=MAX_TREE_SIZE)] = None,
    ) -> Response:
        """RFC 9162 consistency proof from tree size ``old`` to ``new`` (default: the latest checkpoint)."""
        return FastJSONResponse(await read(log_service.consistency, old, new))

    @app.post("/v1/log/verify-receipt", **_JSON)
    async def verify_receipt(body: VerifyReceiptRequest) -> Response:
        """Verify a tlog-proof@v1 receipt as an offline client would, against this log's public key.

        Checks the checkpoint's origin and signature, then the inclusion proof; with ``content``,
        also that the record holds that content's SHA-256.  Invalid receipts get a 4xx whose
        message says which check failed.
        """
        content = body.content.encode("utf-8") if body.content is not None else None
        return FastJSONResponse(await read(log_service.verify, body.receipt, content))

    @app.get("/v1/log/key", **_JSON)
    async def log_key() -> Response:
        """The log's verifier key (C2SP signed-note vkey) and origin: what receipts are checked against."""
        verifier = await read(log_service.verifier)
        return FastJSONResponse({"origin": verifier.name, "log_key": verifier.vkey})

    register_media_routes(app, keyring=keyring, log_service=log_service, database=config.database,
                          require_token=require_token)  # fmt: skip

    # -- the page --------------------------------------------------------------------------------
    static = resources.files("tracemark.service").joinpath("static")
    assets = {name: static.joinpath(name).read_bytes() for name in _ASSETS}
    page_html = static.joinpath("index.html").read_bytes()
    asset_tags = {name: hashlib.sha256(data).hexdigest()[:12] for name, data in assets.items()}
    for name, tag in asset_tags.items():
        page_html = page_html.replace(f"/static/{name}".encode(), f"/static/{name}?v={tag}".encode())

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return Response(page_html, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in assets:
            raise NotFoundError(f"no asset {name!r}")
        return Response(assets[name], media_type=_ASSETS[name], headers=_PAGE_HEADERS)

    app.add_middleware(DirectJSONRoute, path="/v1/text/detect", model=DetectRequest, handler=detect_payload)
    # outermost: it also bounds the direct route; image uploads get their own, larger limit
    app.add_middleware(BodyLimit, limit=config.max_body_bytes, per_prefix={"/v1/media/": config.max_media_bytes})
    return app


def create_app_from_environment() -> FastAPI:
    """The app with settings from ``TRACEMARK_SERVICE_*`` variables: the factory each uvicorn worker calls."""
    return create_app(ServiceSettings.from_environment())
