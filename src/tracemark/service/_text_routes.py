"""Text routes: ``POST /v1/text/detect`` (public) and ``POST /v1/text/generate`` (token).

Detection requests are served by :class:`~tracemark.service._fastpath.DirectJSONRoute`, which
calls :func:`detect_payload` straight from ASGI; the FastAPI declaration below calls the same
function and is what the OpenAPI document describes.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tracemark.errors import InvalidInputError
from tracemark.service._dependencies import JSON_ROUTE, WRITE_ERRORS, Context, ServiceContext, Token
from tracemark.service._json import FastJSONResponse
from tracemark.service._log import AppendedEntryJSON
from tracemark.text import AttributedVerdictJSON, GenerationJSON, attribute, detect_watermark, not_checked
from tracemark.tlog import ProvenanceRecord

router = APIRouter()


class DetectRequest(BaseModel):
    """Text to test, with the optional prompt and key."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(min_length=1, description="the text to test")
    prompt: str | None = Field(default=None, description="the prompt it answered; prompt tokens are never scored")
    key_id: str | None = Field(default=None, max_length=200, description="default: the service's default text key")
    alpha: float = Field(default=1e-6, gt=0.0, lt=1.0, description="decision level: marked when p <= alpha")
    explain: bool = Field(default=False, description="add token_marks: every token's characters and status")


class GenerateRequest(BaseModel):
    """A prompt for marked generation with the service's model."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, max_length=4000)
    max_new_tokens: int = Field(default=200, ge=1, le=4096)
    temperature: float = Field(default=1.0, gt=0.0, le=5.0)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    key_id: str | None = Field(default=None, max_length=200)


class GenerateJSON(AppendedEntryJSON):
    """``POST /v1/text/generate``: the generation (``tracemark.text.generation/v1``) and its log entry."""

    generation: GenerationJSON


def _run_detect(context: ServiceContext, body: DetectRequest) -> AttributedVerdictJSON:
    text = context.text
    key = text.key(body.key_id)
    verdict = detect_watermark(body.text, key, text.tokenizer(), prompt=body.prompt,
                               alpha=body.alpha, explain=body.explain,
                               max_chars=context.settings.max_text_chars)  # fmt: skip
    if key.scheme not in ("native", "kgw"):
        attribution = not_checked(f"the known-output check supports native and kgw keys, not {key.scheme}")
    elif not verdict.marked:
        attribution = not_checked("the text is not marked at alpha: nothing to attribute")
    else:
        index = context.known_outputs(key, create=False)
        if index is None:
            attribution = not_checked(f"no output of key {key.key_id} is in this service's known-output index")
        else:
            variant = verdict.canonicalization.get("variant")
            attribution = attribute(True, variant if isinstance(variant, str) else None, body.text,
                                    text.tokenizer(), index, alpha=body.alpha, prompt=body.prompt)  # fmt: skip
    return {**verdict.to_json(), "attribution": attribution.to_json()}


async def detect_payload(context: ServiceContext, body: DetectRequest) -> AttributedVerdictJSON:
    """The verdict JSON for a detection request: short texts on the event loop, long ones in the thread pool."""
    size = len(body.text) + len(body.prompt or "")
    if size <= context.settings.inline_detect_chars:  # a millisecond or two: cheaper than a thread hop
        return _run_detect(context, body)
    return await run_in_threadpool(_run_detect, context, body)


@router.post("/v1/text/detect", **JSON_ROUTE)
async def detect(body: DetectRequest, context: Context) -> Response:
    """Test a text for the watermark: the verdict JSON (``tracemark.text.verdict/v1``) with ``attribution``.

    ``attribution.status`` is ``attributed`` (the mark holds on units that are novel or from one output
    this service generated), ``assembled-from-known-outputs`` (the mark rests on units of several of its
    outputs: a spoof is suspected, and ``attribution.ours`` is false) or ``not-checked`` (unmarked text, a
    synthid key, or no output of the key indexed yet); ``attribution.ours`` is true only for ``attributed``.

    ``p_value`` is the exact probability that text written without the key scores this well;
    ``marked`` is ``p_value <= alpha``; with ``explain`` each token's status comes back in
    ``token_marks`` as ``[start_char, end_char, status]`` over the text as sent.
    (Requests are served by :class:`DirectJSONRoute` with this same model and function.)
    """
    return FastJSONResponse(await detect_payload(context, body))


def _generate_and_record(context: ServiceContext, body: GenerateRequest) -> GenerateJSON:
    text = context.text
    key = text.key(body.key_id)
    with text.generation_lock:
        generator = text.generator(key)
        (result,) = generator.generate([body.prompt], max_new_tokens=body.max_new_tokens,
                                       temperature=body.temperature, seed=body.seed)  # fmt: skip
    record = ProvenanceRecord.create(content=result.text.encode("utf-8"), kind="text", key_id=key.key_id,
                                     model_id=text.model_id())  # fmt: skip
    appended = context.log.append(record)
    index = context.known_outputs(key, create=True)
    if index is not None:  # the spoofing defence: the output's units, as a verifier will read them
        index.add_texts([result.text], text.tokenizer(), [appended.result.index])
    return {"generation": result.to_json(), **appended.to_json()}


@router.post("/v1/text/generate", response_class=FastJSONResponse, responses=WRITE_ERRORS)
async def generate(body: GenerateRequest, _token: Token, context: Context) -> Response:
    """Generate marked text with the service's model and default key, record it in the log.

    The log records a provenance record (SHA-256 of the generated text's UTF-8 bytes, kind
    ``text``, key id, model id, time); the answer holds the generation, the record, its index
    and its tlog-proof@v1 receipt.
    """
    if body.max_new_tokens > context.settings.max_new_tokens:
        raise InvalidInputError(f"max_new_tokens is at most {context.settings.max_new_tokens} on this service")
    return FastJSONResponse(await run_in_threadpool(_generate_and_record, context, body))
