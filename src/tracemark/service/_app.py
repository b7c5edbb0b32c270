"""The tracemark HTTP service: mark, verify and browse the log, plus the web page.

Reads are public; writes (generation, log appends) need an API token minted with
``tracemark keys token``.  Every error is a JSON object ``{"error": {"type", "message"}}``
with a 4xx status; request bodies over the limit are refused before they are read.
"""


import asyncio
import threading
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from tracemark import __version__
from tracemark.errors import InvalidInputError, KeyringError, TracemarkError
from tracemark.keys import InvalidTokenError, Keyring, verify_api_token
from tracemark.service._settings import ServiceSettings
from tracemark.text import TextTokenizer, WatermarkedGenerator, detect_watermark, select_text_key


class ErrorBody(BaseModel):
    """``{"error": {"type": ..., "message": ...}}``"""

    error: dict[str, str]


class DetectRequest(BaseModel):
    """Text to test, with the optional prompt and key."""

    text: str = Field(min_length=1)
    prompt: str | None = None
    key_id: str | None = None
    alpha: float = Field(default=1e-6, gt=0.0, lt=1.0)
    explain: bool = False


class GenerateRequest(BaseModel):
    """A prompt for marked generation with the service's model."""

    prompt: str = Field(min_length=1, max_length=4000)
    max_new_tokens: int = Field(default=200, ge=1, le=400)
    temperature: float = Field(default=1.0, gt=0.0, le=5.0)
    seed: int | None = None
    key_id: str | None = None


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, by header and while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _send_error(send, 413, "PayloadTooLarge", f"request body over {self.limit} bytes")
            return
        seen = 0

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLargeError
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLargeError:
            await _send_error(send, 413, "PayloadTooLarge", f"request body over {self.limit} bytes")


class _BodyTooLargeError(Exception):
    pass


async def _send_error(send: Send, status: int, kind: str, message: str) -> None:
    body = JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)
    await body(
        {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""},
        _empty_receive,
        send,
    )


async def _empty_receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _status_for(error: TracemarkError) -> int:
    if isinstance(error, InvalidTokenError):
        return 401
    if isinstance(error, KeyringError):
        return 404 if "unknown" in str(error) else 503
    return 400 if isinstance(error, InvalidInputError) else 422


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the FastAPI application (``make run`` serves it on 127.0.0.1)."""
    config = settings or ServiceSettings()
    app = FastAPI(
        title="tracemark",
        version=__version__,
        description="Mark what models produce, record it in a transparency log, verify origin with evidence.",
    )
    app.state.settings = config
    keyring = Keyring(config.home)
    generators: dict[str, WatermarkedGenerator] = {}
    generator_lock = threading.Lock()

    @app.exception_handler(TracemarkError)
    async def tracemark_error(_: Request, exc: TracemarkError) -> JSONResponse:
        return JSONResponse(
            {"error": {"type": type(exc).__name__, "message": exc.diagnostics()}}, status_code=_status_for(exc)
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        return JSONResponse({"error": {"type": "InvalidRequest", "message": message}}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": {"type": "InternalError", "message": "internal error"}}, status_code=500)

    def tokenizer() -> TextTokenizer:
        if config.model_dir is None:
            raise InvalidInputError("the service has no model directory configured")
        cached: TextTokenizer | None = getattr(app.state, "tokenizer", None)
        if cached is None:
            cached = TextTokenizer(config.model_dir)
            app.state.tokenizer = cached
        return cached

    def require_token(authorization: Annotated[str | None, Header()] = None) -> str:
        if not authorization or not authorization.startswith("Bearer "):
            raise InvalidTokenError("this route needs 'Authorization: Bearer <token>' (tracemark keys token)")
        return verify_api_token(keyring, authorization.removeprefix("Bearer ").strip())

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        """Liveness and what the service serves."""
        return {
            "status": "ok",
            "version": __version__,
            "model": str(config.model_dir) if config.model_dir else None,
            "keyring": keyring.exists(),
        }

    @app.post("/v1/text/detect", responses={400: {"model": ErrorBody}, 422: {"model": ErrorBody}})
    def detect(body: DetectRequest) -> dict[str, Any]:
        """Test a text for the watermark: the verdict JSON (``tracemark.text.verdict/v1``)."""
        tok = tokenizer()
        key = select_text_key(keyring, tok, key_id=body.key_id)
        verdict = detect_watermark(
            body.text, key, tok, prompt=body.prompt, alpha=body.alpha, explain=body.explain,
            max_chars=config.max_text_chars,
        )  # fmt: skip
        return verdict.to_json()

    @app.post("/v1/text/generate", responses={401: {"model": ErrorBody}, 422: {"model": ErrorBody}})
    async def generate(body: GenerateRequest, token_id: Annotated[str, Depends(require_token)]) -> dict[str, Any]:
        """Generate marked text with the service's model and default key."""
        tok = tokenizer()
        key = select_text_key(keyring, tok, key_id=body.key_id)

        def run() -> dict[str, Any]:
            with generator_lock:
                generator = generators.get(key.key_id)
                if generator is None:
                    assert config.model_dir is not None
                    generator = WatermarkedGenerator(config.model_dir, key)
                    generators[key.key_id] = generator
                (result,) = generator.generate(
                    [body.prompt], max_new_tokens=body.max_new_tokens, temperature=body.temperature, seed=body.seed
                )
            return {"generation": result.to_json(), "receipt": None}

        return await asyncio.to_thread(run)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        html = resources.files("tracemark.service").joinpath("static/index.html").read_text()
        return HTMLResponse(html)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        allowed = {"app.js": "text/javascript", "style.css": "text/css"}
        if name not in allowed:
            return JSONResponse({"error": {"type": "NotFound", "message": name}}, status_code=404)
        content = resources.files("tracemark.service").joinpath(f"static/{name}").read_text()
        return Response(content, media_type=allowed[name])

    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    return app
