"""The provider gateway: the service's model behind the OpenAI API, marked, batched and logged.

Routes: ``POST /v1/chat/completions`` (the prompt is the model's chat template from its
tokenizer config, or a plain ``role: content`` template when it has none),
``POST /v1/completions`` and ``GET /v1/models``.  Both POST routes stream server-sent events
with ``stream: true``.  They need an API token (``Authorization: Bearer``, minted with
``tracemark keys token``), as the other write routes do; the official ``openai`` client sends it
as its ``api_key``.

Every completion is marked with the deployment's default text key and every choice that
produced a token is appended to the transparency log.  The answer's ``tracemark`` field
(:class:`~tracemark.service._openai_schemas.TracemarkJSON`) holds the log entries and their
tlog-proof@v1 receipts; non-streamed answers also carry them in headers
(``X-Tracemark-Log-Index``: the entries' indexes, ``X-Tracemark-Receipt``: each receipt in
standard base64, comma-separated in choice order).  A stream carries them in its final chunk,
just before ``data: [DONE]``.  When a client goes away mid-stream, generation stops at the next
step and what was generated is still logged.

Errors are OpenAI error objects, ``{"error": {"message", "type", "param", "code"}}``, with the
status OpenAI uses (400 invalid request, 401 no or bad token, 404 unknown model, 429 over a
quota, 503 busy or not set up).  Requests are batched by
:class:`~tracemark.service._openai_engine.BatchingEngine`; its settings and the per-token quota
come from ``TRACEMARK_GATEWAY_*`` variables (:class:`GatewaySettings`).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

import asyncio
import base64
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from tracemark.errors import ServiceError, TracemarkError
from tracemark.keys import InvalidTokenError
from tracemark.service._dependencies import ServiceContext, require_token
from tracemark.service._errors import public_message, status_for
from tracemark.service._json import dumps
from tracemark.service._limits import TokenBucket
from tracemark.service._log import AppendedEntry
from tracemark.service._openai_engine import (
    BatchingEngine,
    ChoiceOutcome,
    EngineEvent,
    EngineFailure,
    GenerationJob,
    SamplingOptions,
    StepDelta,
    TokenLogprob,
    asyncio_poster,
)
from tracemark.service._openai_schemas import (
    ChatChoiceJSON,
    ChatCompletionJSON,
    ChatCompletionRequest,
    ChatLogprobsJSON,
    ChoiceReceiptJSON,
    ChunkJSON,
    CompletionChoiceJSON,
    CompletionJSON,
    CompletionLogprobsJSON,
    CompletionRequest,
    ModelListJSON,
    OpenAIErrorJSON,
    TokenLogprobJSON,
    TracemarkJSON,
    UsageJSON,
)
from tracemark.text import WatermarkedGenerator
from tracemark.tlog import ProvenanceRecord

router = APIRouter()
_LOG = logging.getLogger("tracemark.service")

GATEWAY_ENV_PREFIX = "TRACEMARK_GATEWAY_"
#: Used when the tokenizer config has no ``chat_template``.
PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


@dataclass(frozen=True)
class GatewaySettings:
    """The gateway's knobs, from ``TRACEMARK_GATEWAY_<NAME>`` variables (read when the app is built)."""

    #: Most rows (choices) decoded together in one step.
    max_batch: int = 16
    #: How long (seconds) a round waits for more requests after its first one.
    wait_seconds: float = 0.02
    #: Requests waiting for a round before new ones get 503.
    max_waiting: int = 256
    #: Tokens (prompt plus completion) an API token may use a minute; 0: no quota.
    tokens_per_minute: float = 200_000.0
    #: torch's CPU threads for the whole process, set when the engine starts; 0 leaves torch's default.
    #: On a machine whose cores are shared (CI, a busy host), 1 avoids threads spinning against each other.
    torch_threads: int = 0

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> "GatewaySettings":
        """Settings from ``TRACEMARK_GATEWAY_*`` variables; absent ones keep their defaults."""
        source = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for item in fields(cls):
            raw = source.get(GATEWAY_ENV_PREFIX + item.name.upper())
            if raw is None:
                continue
            try:
                values[item.name] = int(raw) if item.type in (int, "int") else float(raw)
            except ValueError:
                raise ServiceError(f"{GATEWAY_ENV_PREFIX}{item.name.upper()}={raw!r} is not a number") from None
        return cls(**values)  # type: ignore[arg-type]


class OpenAIError(Exception):
    """An answer in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.retry_after = retry_after

    def body(self) -> OpenAIErrorJSON:
        """The error object."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> Response:
        """The HTTP answer."""
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return Response(dumps(self.body()), self.status, media_type="application/json", headers=headers)


_KIND_FOR_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error_for(error: TracemarkError) -> OpenAIError:
    """The OpenAI error for a tracemark error (the status the rest of the service would give it)."""
    status = status_for(error)
    if status == 422:
        status = 400
    kind = _KIND_FOR_STATUS.get(status, "server_error")
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    return OpenAIError(
        status,
        public_message(status, error.diagnostics()),
        kind,
        code=code,
        retry_after=getattr(error, "retry_after", None),
    )


class TokenQuota:
    """Tokens an API token may spend a minute: reserved before a request runs, the unused part refunded after."""

    def __init__(self, per_minute: float) -> None:
        self.per_minute = per_minute
        self._bucket = TokenBucket(per_minute / 60.0, per_minute)
        self._lock = threading.Lock()

    def reserve(self, token_id: str, amount: int) -> None:
        """Take ``amount`` tokens from ``token_id``'s allowance; raises a 429 :class:`OpenAIError` when short."""
        if self.per_minute <= 0:
            return
        if amount > self.per_minute:
            raise OpenAIError(
                429,
                f"this request needs {amount} tokens; the quota is {self.per_minute:g} a minute",
                "tokens",
                code="rate_limit_exceeded",
                retry_after=60,
            )
        with self._lock:
            now = time.monotonic()
            # one bucket token per request: take `amount` by checking the balance first
            tokens, stamp = self._bucket._state.get(token_id, (self._bucket.burst, now))
            tokens = min(self._bucket.burst, tokens + (now - stamp) * self._bucket.rate)
            if tokens < amount:
                wait = (amount - tokens) / self._bucket.rate
                self._bucket._state[token_id] = (tokens, now)
                raise OpenAIError(
                    429,
                    f"token quota reached ({self.per_minute:g} tokens a minute per API token); retry in {wait:.1f} s",
                    "tokens",
                    code="rate_limit_exceeded",
                    retry_after=max(1, int(wait + 0.999)),
                )
            self._bucket._state[token_id] = (tokens - amount, now)

    def refund(self, token_id: str, amount: int) -> None:
        """Give back ``amount`` reserved tokens that were not used."""
        if self.per_minute <= 0 or amount <= 0:
            return
        with self._lock:
            state = self._bucket._state.get(token_id)
            if state is not None:
                tokens, stamp = state
                self._bucket._state[token_id] = (min(self._bucket.burst, tokens + amount), stamp)


@dataclass
class Gateway:
    """The gateway of one application: its settings, quota, and the batching engine (started on first use)."""

    context: ServiceContext
    settings: GatewaySettings
    quota: TokenQuota
    tasks: set["asyncio.Task[None]"] = field(default_factory=set)
    _engine: BatchingEngine | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def engine(self) -> BatchingEngine:
        """The engine over the default key's generator (loads the model on first call)."""
        with self._lock:
            if self._engine is None:
                text = self.context.text
                key = text.key()
                if self.settings.torch_threads > 0:
                    import torch

                    torch.set_num_threads(self.settings.torch_threads)
                with text.generation_lock:
                    generator = text.generator(key)
                self._engine = BatchingEngine(
                    generator,
                    max_batch=self.settings.max_batch,
                    wait_seconds=self.settings.wait_seconds,
                    max_waiting=self.settings.max_waiting,
                )
            return self._engine

    def close(self) -> None:
        """Stop the engine thread."""
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None


def install(app: FastAPI, context: ServiceContext, settings: GatewaySettings | None = None) -> Gateway:
    """Serve the gateway's routes from ``app`` and stop its engine when the app shuts down."""
    config = settings or GatewaySettings.from_environment()
    gateway = Gateway(context=context, settings=config, quota=TokenQuota(config.tokens_per_minute))
    app.state.gateway = gateway
    app.router.routes.extend(router.routes)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with inner(application) as state:
            try:
                yield state
            finally:
                await run_in_threadpool(gateway.close)

    app.router.lifespan_context = lifespan
    return gateway


# -- request checks -----------------------------------------------------------------------------------


def _authorize(context: ServiceContext, request: Request) -> str:
    try:
        return require_token(context, request.headers.get("authorization"))
    except InvalidTokenError as exc:
        raise OpenAIError(
            401,
            exc.diagnostics() + "; pass the token as the client's api_key",
            "authentication_error",
            code="invalid_api_key",
        ) from None
    except TracemarkError as exc:
        raise openai_error_for(exc) from None


async def _parse(request: Request, model: type[BaseModel]) -> Any:
    raw = await request.body()
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OpenAIError(400, f"We could not parse the JSON body of your request: {exc}") from None
    if not isinstance(payload, dict):
        raise OpenAIError(400, "the request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = [str(part) for part in first["loc"] if not str(part).startswith(("function-", "list[", "str"))]
        param = ".".join(place) or None
        raise OpenAIError(400, f"{param}: {first['msg']}" if param else first["msg"], param=param) from None


def _check_model(context: ServiceContext, name: str) -> str:
    served = context.text.model_id()
    # "default": what clients that serve one model send (tracemark's own theft and red-team adapters do)
    if name not in (served, served.partition("@")[0], "default"):
        raise OpenAIError(
            404,
            f"The model '{name}' does not exist; this gateway serves '{served}' (GET /v1/models)",
            param="model",
            code="model_not_found",
        )
    return served


def _options(body: ChatCompletionRequest | CompletionRequest, max_tokens: int, logprobs: int | None) -> SamplingOptions:
    return SamplingOptions(
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        stop=body.stop_strings(),
        logprobs=logprobs,
        min_tokens=min(body.min_tokens, max_tokens),
        ignore_eos=body.ignore_eos,
    )


def _window(generator: WatermarkedGenerator) -> int | None:
    config = generator.model.config
    window = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return window if isinstance(window, int) else None


def _budget(gateway: Gateway, generator: WatermarkedGenerator, prompt_ids: list[int], asked: int | None,
            prompt_param: str) -> int:  # fmt: skip
    """The request's max_tokens, checked against the service's limit and the model's context."""
    limit = gateway.context.settings.max_new_tokens
    if asked is not None and asked > limit:
        raise OpenAIError(400, f"max_tokens is at most {limit} on this service (asked for {asked})", param="max_tokens")
    if not prompt_ids:
        raise OpenAIError(400, "the prompt is empty", param=prompt_param)
    window = _window(generator)
    room = limit if window is None else min(limit, window - len(prompt_ids))
    wanted = room if asked is None else asked
    if room < 1 or wanted > room:
        raise OpenAIError(
            400,
            f"This model's maximum context length is {window} tokens; the prompt has "
            f"{len(prompt_ids)} and {wanted} more were asked for",
            param=prompt_param,
            code="context_length_exceeded",
        )
    return wanted


def _chat_prompt(generator: WatermarkedGenerator, body: ChatCompletionRequest) -> list[int]:
    tokenizer = generator.tokenizer
    messages = [{"role": message.role, "content": message.text()} for message in body.messages]
    template = None if getattr(tokenizer, "chat_template", None) else PLAIN_CHAT_TEMPLATE
    try:
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, chat_template=template
        )
    except ImportError:
        raise OpenAIError(503, "chat templates need jinja2 (in the text extra): pip install 'tracemark[text]'",
                          "server_error") from None  # fmt: skip
    except Exception as exc:  # jinja2 raises its own errors on a template the messages do not fit
        raise OpenAIError(400, f"the chat template could not render these messages: {exc}", param="messages") from None
    return [int(i) for i in tokenizer(str(text), add_special_tokens=False)["input_ids"]]


def _encode(generator: WatermarkedGenerator, prompt: str) -> list[int]:
    return [int(i) for i in generator.tokenizer(prompt, add_special_tokens=False)["input_ids"]]


# -- one completion run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Logged:
    """Every choice is finished and logged."""

    outcomes: tuple[ChoiceOutcome, ...]
    entries: tuple[tuple[int, AppendedEntry], ...]


@dataclass(frozen=True)
class _Failed:
    error: OpenAIError


_RunItem = StepDelta | ChoiceOutcome | _Logged | _Failed


@dataclass
class _Run:
    """A request's jobs in the engine, drained by a task of its own that logs every output.

    The task outlives the response: when a streaming client goes away, the response cancels the
    jobs and stops reading, and the task still logs what was generated.
    """

    gateway: Gateway
    token_id: str
    reserved: int
    jobs: list[GenerationJob] = field(default_factory=list)
    outbox: "asyncio.Queue[_RunItem]" = field(default_factory=asyncio.Queue)
    usage_prompt: int = 0

    def start(self, prompts: list[list[int]], options: SamplingOptions, n: int) -> None:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[EngineEvent] = asyncio.Queue()
        post = asyncio_poster(loop, inbox)
        engine = self.gateway.engine()
        if engine.waiting() >= self.gateway.settings.max_waiting:
            raise OpenAIError(
                503, "the gateway is at capacity; retry shortly", "server_error", code="overloaded", retry_after=1
            )
        for offset, prompt in enumerate(prompts):
            job = GenerationJob(prompt_ids=tuple(prompt), options=options, n=n, post=_offset_poster(post, offset * n))
            self.jobs.append(job)
            engine.submit(job)
        self.usage_prompt = sum(len(prompt) for prompt in prompts) * n
        task = loop.create_task(self._drain(inbox, len(prompts) * n))
        self.gateway.tasks.add(task)
        task.add_done_callback(self.gateway.tasks.discard)

    def cancel(self) -> None:
        for job in self.jobs:
            job.cancel()

    async def _drain(self, inbox: "asyncio.Queue[EngineEvent]", choices: int) -> None:
        outcomes: dict[int, ChoiceOutcome] = {}
        failure: BaseException | None = None
        while len(outcomes) < choices and failure is None:
            event = await inbox.get()
            if isinstance(event, EngineFailure):
                failure = event.error
            else:
                if isinstance(event, ChoiceOutcome):
                    outcomes[event.choice] = event
                self.outbox.put_nowait(event)
        if any(outcome.finish_reason == "error" for outcome in outcomes.values()):
            failure = failure or RuntimeError("generation failed")
        finished = [outcomes[index] for index in sorted(outcomes)]
        used = self.usage_prompt + sum(len(outcome.token_ids) for outcome in finished)
        self.gateway.quota.refund(self.token_id, self.reserved - used)
        try:
            entries = await self._log(finished)
        except TracemarkError as exc:
            self.outbox.put_nowait(_Failed(openai_error_for(exc)))
            return
        except Exception as exc:  # the response waits on the outbox: it must always get a last item
            _LOG.error("gateway logging failed", exc_info=exc)
            self.outbox.put_nowait(_Failed(OpenAIError(500, "the output could not be logged", "server_error")))
            return
        if failure is not None:
            self.outbox.put_nowait(_Failed(OpenAIError(500, "generation failed", "server_error")))
            return
        self.outbox.put_nowait(_Logged(tuple(finished), tuple(entries)))

    async def _log(self, outcomes: list[ChoiceOutcome]) -> list[tuple[int, AppendedEntry]]:
        context = self.gateway.context
        text = context.text
        key = text.key()
        model_id = text.model_id()
        logged = [outcome for outcome in outcomes if outcome.token_ids]
        records = [
            ProvenanceRecord.create(
                content=outcome.text.encode("utf-8"), kind="text", key_id=key.key_id, model_id=model_id
            )
            for outcome in logged
        ]
        appended = await asyncio.gather(*(context.log.append_async(record) for record in records))
        index = context.known_outputs(key, create=True) if logged else None
        if index is not None:  # the spoofing defence: each output's units, as a verifier will read them
            await run_in_threadpool(index.add_texts, [outcome.text for outcome in logged], text.tokenizer(),
                                    [entry.result.index for entry in appended])  # fmt: skip
        return [(outcome.choice, entry) for outcome, entry in zip(logged, appended, strict=True)]


def _offset_poster(post: Callable[[EngineEvent], None], offset: int) -> Callable[[EngineEvent], None]:
    """Renumber a job's choices into the request's (prompt ``p``'s choice ``c`` is ``p * n + c``)."""
    if offset == 0:
        return post

    def shifted(event: EngineEvent) -> None:
        if isinstance(event, StepDelta):
            event = StepDelta(event.choice + offset, event.text, event.token, event.top, event.logprobs_wanted)
        elif isinstance(event, ChoiceOutcome):
            event = ChoiceOutcome(event.choice + offset, event.text, event.token_ids, event.finish_reason)
        post(event)

    return shifted


def _tracemark_json(gateway: Gateway, entries: Sequence[tuple[int, AppendedEntry]]) -> TracemarkJSON:
    text = gateway.context.text
    key = text.key()
    receipts: list[ChoiceReceiptJSON] = []
    for choice, entry in entries:
        data = entry.to_json()
        receipts.append(
            {
                "choice": choice,
                "index": data["index"],
                "leaf_hash": data["leaf_hash"],
                "tree_size": data["tree_size"],
                "record": data["record"],
                "receipt": data["receipt"],
                "integrated_time": data["integrated_time"],
                "duplicate": data["duplicate"],
            }
        )
    origin = gateway.context.log.log.origin if gateway.context.log.is_open else None
    return {
        "key_id": key.key_id,
        "scheme": key.scheme,
        "model_id": text.model_id(),
        "log_origin": origin,
        "receipts": receipts,
    }


def _receipt_headers(tracemark: TracemarkJSON) -> dict[str, str]:
    receipts = tracemark["receipts"]
    return {
        "X-Tracemark-Log-Index": ",".join(str(item["index"]) for item in receipts),
        "X-Tracemark-Receipt": ",".join(
            base64.b64encode((item["receipt"] or "").encode()).decode() for item in receipts
        ),
    }


def _usage(run: _Run, outcomes: Sequence[ChoiceOutcome]) -> UsageJSON:
    completion = sum(len(outcome.token_ids) for outcome in outcomes)
    return {
        "prompt_tokens": run.usage_prompt,
        "completion_tokens": completion,
        "total_tokens": run.usage_prompt + completion,
    }


def _chat_logprobs(deltas: list[StepDelta]) -> ChatLogprobsJSON:
    def entry(item: TokenLogprob) -> TokenLogprobJSON:
        return {"token": item.text, "logprob": item.logprob, "bytes": list(item.text.encode()), "top_logprobs": []}

    content = []
    for delta in deltas:
        sampled = entry(delta.token)
        sampled["top_logprobs"] = [
            {"token": t.text, "logprob": t.logprob, "bytes": list(t.text.encode())} for t in delta.top
        ]
        content.append(sampled)
    return {"content": content}


def _completion_logprobs(deltas: list[StepDelta], start: int = 0) -> CompletionLogprobsJSON:
    offsets, at = [], start
    for delta in deltas:
        offsets.append(at)
        at += len(delta.token.text)
    return {
        "tokens": [d.token.text for d in deltas],
        "token_logprobs": [d.token.logprob for d in deltas],
        "top_logprobs": [{t.text: t.logprob for t in d.top} for d in deltas],
        "text_offset": offsets,
    }


@dataclass(frozen=True)
class _Shape:
    """What differs between chat and completions on the wire."""

    chat: bool
    model: str
    created: int = field(default_factory=lambda: int(time.time()))
    id: str = ""

    @property
    def object(self) -> str:
        return "chat.completion" if self.chat else "text_completion"

    @property
    def chunk_object(self) -> str:
        return "chat.completion.chunk" if self.chat else "text_completion"


def _fingerprint(gateway: Gateway) -> str:
    return "tracemark-" + gateway.context.text.key().key_id[:16]


async def _collect(run: _Run) -> tuple[_Logged, dict[int, list[StepDelta]]]:
    deltas: dict[int, list[StepDelta]] = {}
    while True:
        item = await run.outbox.get()
        if isinstance(item, StepDelta):
            deltas.setdefault(item.choice, []).append(item)
        elif isinstance(item, _Failed):
            raise item.error
        elif isinstance(item, _Logged):
            return item, deltas


async def _whole_answer(run: _Run, shape: _Shape) -> Response:
    logged, deltas = await _collect(run)
    gateway = run.gateway
    tracemark = _tracemark_json(gateway, logged.entries)
    usage = _usage(run, logged.outcomes)
    body: ChatCompletionJSON | CompletionJSON
    if shape.chat:
        chat_choices: list[ChatChoiceJSON] = [
            {
                "index": o.choice,
                "message": {"role": "assistant", "content": o.text},
                "logprobs": _chat_logprobs(deltas.get(o.choice, [])) if _wants_logprobs(deltas, o.choice) else None,
                "finish_reason": o.finish_reason,
            }
            for o in logged.outcomes
        ]
        body = {
            "id": shape.id,
            "object": shape.object,
            "created": shape.created,
            "model": shape.model,
            "system_fingerprint": _fingerprint(gateway),
            "choices": chat_choices,
            "usage": usage,
            "tracemark": tracemark,
        }
    else:
        choices: list[CompletionChoiceJSON] = [
            {
                "index": o.choice,
                "text": o.text,
                "logprobs": _completion_logprobs(deltas.get(o.choice, []))
                if _wants_logprobs(deltas, o.choice)
                else None,
                "finish_reason": o.finish_reason,
            }
            for o in logged.outcomes
        ]
        body = {
            "id": shape.id,
            "object": shape.object,
            "created": shape.created,
            "model": shape.model,
            "system_fingerprint": _fingerprint(gateway),
            "choices": choices,
            "usage": usage,
            "tracemark": tracemark,
        }
    return Response(dumps(body), 200, media_type="application/json", headers=_receipt_headers(tracemark))


def _wants_logprobs(deltas: dict[int, list[StepDelta]], choice: int) -> bool:
    steps = deltas.get(choice)
    return bool(steps) and steps[0].logprobs_wanted  # type: ignore[index]


def _sse(payload: object) -> bytes:
    return b"data: " + dumps(payload) + b"\n\n"


def _chunk(shape: _Shape, gateway: Gateway, choices: list[Any], **extra: Any) -> ChunkJSON:
    return {
        "id": shape.id,
        "object": shape.chunk_object,
        "created": shape.created,
        "model": shape.model,
        "system_fingerprint": _fingerprint(gateway),
        "choices": choices,
        "usage": extra.get("usage"),
        "tracemark": extra.get("tracemark"),
    }


def _delta_choice(shape: _Shape, item: StepDelta | ChoiceOutcome) -> Any:
    if isinstance(item, ChoiceOutcome):
        if shape.chat:
            return {"index": item.choice, "delta": {}, "logprobs": None, "finish_reason": item.finish_reason}
        return {"index": item.choice, "text": "", "logprobs": None, "finish_reason": item.finish_reason}
    if shape.chat:
        return {
            "index": item.choice,
            "delta": {"content": item.text},
            "logprobs": _chat_logprobs([item]) if item.logprobs_wanted else None,
            "finish_reason": None,
        }
    return {
        "index": item.choice,
        "text": item.text,
        "logprobs": _completion_logprobs([item]) if item.logprobs_wanted else None,
        "finish_reason": None,
    }


async def _stream(run: _Run, shape: _Shape, choices: int, include_usage: bool) -> AsyncGenerator[bytes, None]:
    gateway = run.gateway
    try:
        if shape.chat:
            opening = [
                {"index": c, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
                for c in range(choices)
            ]
            yield _sse(_chunk(shape, gateway, opening))
        while True:
            item = await run.outbox.get()
            if isinstance(item, _Failed):
                yield _sse(item.error.body())
                break
            if isinstance(item, _Logged):
                usage = _usage(run, item.outcomes) if include_usage else None
                yield _sse(_chunk(shape, gateway, [], usage=usage, tracemark=_tracemark_json(gateway, item.entries)))
                break
            if isinstance(item, StepDelta) and not item.text and not item.logprobs_wanted:
                continue
            yield _sse(_chunk(shape, gateway, [_delta_choice(shape, item)]))
        yield b"data: [DONE]\n\n"
    finally:
        run.cancel()  # a no-op once every choice finished; stops generation when the client went away


async def _serve(
    request: Request,
    prompts: Callable[[WatermarkedGenerator], list[list[int]]],
    body: ChatCompletionRequest | CompletionRequest,
    asked: int | None,
    logprobs: int | None,
    chat: bool,
) -> Response:
    gateway: Gateway = request.app.state.gateway
    context = gateway.context
    token_id = _authorize(context, request)
    try:
        model = _check_model(context, body.model)
        engine = await run_in_threadpool(gateway.engine)
        prompt_ids = prompts(engine.generator)
    except TracemarkError as exc:
        raise openai_error_for(exc) from None
    budgets = [_budget(gateway, engine.generator, ids, asked, "messages" if chat else "prompt") for ids in prompt_ids]
    max_tokens = min(budgets)
    cost = (sum(len(ids) for ids in prompt_ids) + max_tokens * len(prompt_ids)) * body.n
    gateway.quota.reserve(token_id, cost)
    run = _Run(gateway=gateway, token_id=token_id, reserved=cost)
    try:
        run.start(prompt_ids, _options(body, max_tokens, logprobs), body.n)
    except (TracemarkError, OpenAIError) as exc:
        gateway.quota.refund(token_id, cost)
        raise exc if isinstance(exc, OpenAIError) else openai_error_for(exc) from None
    shape = _Shape(chat=chat, model=model, id=("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex)
    if not body.stream:
        return await _whole_answer(run, shape)
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    return StreamingResponse(
        _stream(run, shape, len(prompt_ids) * body.n, include_usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


async def _answer(request: Request, handler: Callable[[], Any]) -> Response:
    try:
        response: Response = await handler()
    except OpenAIError as exc:
        return exc.response()
    except TracemarkError as exc:
        return openai_error_for(exc).response()
    except Exception as exc:  # the answer is still an OpenAI error object; the cause goes to the service log
        _LOG.error("gateway request failed", exc_info=exc)
        return OpenAIError(500, "internal error", "server_error").response()
    return response


def _inline_refs(node: object, definitions: dict[str, object]) -> object:
    """``node`` with every ``{"$ref": "#/$defs/X"}`` replaced by X's schema (the request models are not recursive)."""
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inline_refs(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {name: _inline_refs(value, definitions) for name, value in node.items() if name != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(item, definitions) for item in node]
    return node


def _documented_body(model: type[BaseModel]) -> dict[str, object]:
    """``openapi_extra`` describing a route's JSON body (the routes read it themselves, to answer OpenAI errors)."""
    schema = model.model_json_schema()
    definitions = schema.get("$defs", {})
    inlined = _inline_refs(schema, definitions if isinstance(definitions, dict) else {})
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inlined}}}}


@router.post("/v1/chat/completions", tags=["gateway"], openapi_extra=_documented_body(ChatCompletionRequest))
async def chat_completions(request: Request) -> Response:
    """OpenAI chat completion with the service's model, marked and logged (``stream: true`` for SSE).

    The body is OpenAI's chat completion request; the answer (or the stream's final chunk) adds
    ``tracemark``: the key, the model and each choice's log entry with its receipt.
    """

    async def handle() -> Response:
        body: ChatCompletionRequest = await _parse(request, ChatCompletionRequest)
        asked = body.max_completion_tokens or body.max_tokens
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
        return await _serve(
            request, lambda generator: [_chat_prompt(generator, body)], body, asked, logprobs, chat=True
        )

    return await _answer(request, handle)


@router.post("/v1/completions", tags=["gateway"], openapi_extra=_documented_body(CompletionRequest))
async def completions(request: Request) -> Response:
    """OpenAI (legacy) text completion with the service's model, marked and logged.

    ``prompt`` is a string or a list of up to 8 strings (choice ``p * n + c`` answers prompt ``p``).
    """

    async def handle() -> Response:
        body: CompletionRequest = await _parse(request, CompletionRequest)
        prompts = body.prompts()
        if not 1 <= len(prompts) <= 8:
            raise OpenAIError(400, "prompt must be a string or a list of 1 to 8 strings", param="prompt")
        return await _serve(
            request,
            lambda generator: [_encode(generator, p) for p in prompts],
            body,
            body.max_tokens,
            body.logprobs,
            chat=False,
        )

    return await _answer(request, handle)


@router.get("/v1/models", tags=["gateway"])
async def list_models(request: Request) -> Response:
    """The model this gateway serves (OpenAI's model list)."""
    gateway: Gateway = request.app.state.gateway
    try:
        model_id = gateway.context.text.model_id()
    except TracemarkError as exc:
        return openai_error_for(exc).response()
    payload: ModelListJSON = {
        "object": "list",
        "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "tracemark"}],
    }
    return Response(dumps(payload), 200, media_type="application/json")


__all__ = ["Gateway", "GatewaySettings", "OpenAIError", "TokenQuota", "install"]
