"""Media routes: mark and verify images, and the C2PA soft-binding resolution API over the repository.

* ``POST /v1/media/mark`` (token): the request body is the image (JPEG, PNG or WebP); the answer holds
  the marked, signed image (base64), its record id, manifest id, soft binding and log entry.
* ``POST /v1/media/verify``: the body is any image; the answer is the verdict, the manifest and the
  EU AI Act Article 50 layer report (the same JSON as ``tracemark media verify --json``).
* ``GET|POST /matches/byBinding``, ``GET /manifests/{manifestId}``, ``GET /services/supportedAlgorithms``:
  the C2PA soft-binding resolution API (C2PA 2.x, "Decoupled manifests"), read-only and unauthenticated.
"""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at run time.

import base64
from typing import Annotated, Literal, TypedDict

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tracemark._json import JSONObject
from tracemark.errors import ImageInputError, KeyringError
from tracemark.keys import load_media_certificate
from tracemark.service._dependencies import Context, ServiceContext, Token, media_extra
from tracemark.service._errors import NotFoundError
from tracemark.service._json import FastJSONResponse
from tracemark.tlog import image_log_checker, image_recorder

router = APIRouter()

_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
#: The provenance record's model id rule (tracemark.tlog), checked before the image is marked and signed.
MODEL_ID_PATTERN = r"^[A-Za-z0-9._:/+=@-]+$"
#: Largest image body accepted (the service's body limit may be lower).
MAX_IMAGE_BYTES = 64 * 1024 * 1024


class BindingQuery(BaseModel):
    """A soft-binding lookup (``POST /matches/byBinding``)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    alg: str = Field(min_length=1, max_length=256)
    value: str = Field(min_length=1, max_length=256)


async def _image_body(request: Request) -> bytes:
    data = await request.body()
    if not data:
        raise ImageInputError("send the image as the request body (Content-Type image/jpeg, image/png or image/webp)")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageInputError(f"image is larger than {MAX_IMAGE_BYTES} bytes")
    return data


class Match(TypedDict):
    """One manifest found under a soft binding."""

    manifestId: str  # the C2PA soft-binding API's member name


class MatchesJSON(TypedDict):
    """``/matches/byBinding``: the C2PA soft-binding resolution API's answer."""

    matches: list[Match]


def _mark(context: ServiceContext, data: bytes, output_format: str | None, model_id: str) -> JSONObject:
    media = media_extra()
    keyring = context.keyring
    certificate = load_media_certificate(keyring)
    marked = media.mark_image(
        data,
        key=media.media_key(keyring),
        signer=media.signer_for(certificate.chain_pem, certificate.private_key_pem),
        model_id=model_id,
        output_format=_FORMATS[output_format] if output_format else None,
        title="image",
        repository=context.soft_binding_repository(),
        record=image_recorder(lambda entry: context.log.append(entry).result.index, model_id),
    )
    return {**marked.to_json(), "image": base64.b64encode(marked.data).decode("ascii")}


@router.post("/v1/media/mark", response_class=FastJSONResponse)
async def media_mark(
    request: Request,
    _token: Token,
    context: Context,
    output_format: Annotated[Literal["jpeg", "png", "webp"] | None, Query(alias="format")] = None,
    model_id: Annotated[str, Query(min_length=1, max_length=256, pattern=MODEL_ID_PATTERN)] = "unspecified-image-model",
) -> Response:
    """Watermark the uploaded image, sign a C2PA manifest, record it in the log and the repository."""
    data = await _image_body(request)
    return FastJSONResponse(await run_in_threadpool(_mark, context, data, output_format, model_id))


def _verify(context: ServiceContext, data: bytes) -> JSONObject:
    media = media_extra()
    keyring = context.keyring
    keys = [media.media_key(keyring)] if keyring.exists() else []
    try:
        anchors: bytes | None = load_media_certificate(keyring).root_pem
    except KeyringError:  # no development chain: nothing is trusted
        anchors = None
    verdict = media.verify_image(data, keys=keys, trust_anchors_pem=anchors,
                                 repository=context.soft_binding_repository(),
                                 check_log=image_log_checker(context.log.record))  # fmt: skip
    result: JSONObject = verdict.to_json()
    return result


@router.post("/v1/media/verify", response_class=FastJSONResponse)
async def media_verify(request: Request, context: Context) -> Response:
    """Verify an uploaded image: manifest, watermark, recovered manifest, log entry."""
    data = await _image_body(request)
    return FastJSONResponse(await run_in_threadpool(_verify, context, data))


def _matches(context: ServiceContext, alg: str, value: str) -> MatchesJSON:
    found = context.soft_binding_repository().by_binding(alg, value)
    return {"matches": [{"manifestId": match.manifest_id} for match in found]}


@router.get("/matches/byBinding", response_class=FastJSONResponse)
async def by_binding_get(
    alg: Annotated[str, Query(min_length=1, max_length=256)],
    value: Annotated[str, Query(min_length=1, max_length=256)],
    context: Context,
) -> Response:
    """C2PA soft-binding resolution: the manifests stored under (alg, value)."""
    return FastJSONResponse(await run_in_threadpool(_matches, context, alg, value))


@router.post("/matches/byBinding", response_class=FastJSONResponse)
async def by_binding_post(body: BindingQuery, context: Context) -> Response:
    """The same lookup with a JSON body ``{"alg": ..., "value": ...}``."""
    return FastJSONResponse(await run_in_threadpool(_matches, context, body.alg, body.value))


@router.get("/manifests/{manifest_id}")
async def manifest(manifest_id: Annotated[str, Path(min_length=1, max_length=256)], context: Context) -> Response:
    """The manifest store (``application/c2pa``) with this id."""
    store = await run_in_threadpool(context.soft_binding_repository().manifest, manifest_id)
    if store is None:
        raise NotFoundError(f"no manifest {manifest_id!r} in the soft-binding repository")
    return Response(store, media_type="application/c2pa")


@router.get("/services/supportedAlgorithms", response_class=FastJSONResponse)
async def supported_algorithms() -> Response:
    """Soft-binding algorithms this repository resolves."""
    return FastJSONResponse({"watermarks": [{"alg": media_extra().ALGORITHM}], "fingerprints": []})
