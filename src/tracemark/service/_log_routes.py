"""Transparency-log routes under ``/v1/log/``: append (token), checkpoint, entries, proofs, receipts, key.

Reads run on the event loop (a few primary-key lookups are cheaper than a thread hop); appends
wait for their durable commit and their checkpoint on the event loop too, holding no thread (the
batcher's thread writes, the publishing thread signs).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

import base64
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response

from tracemark.errors import InvalidInputError, TlogFormatError
from tracemark.service._dependencies import ERRORS, JSON_ROUTE, WRITE_ERRORS, Context, Token
from tracemark.service._json import FastJSONResponse
from tracemark.service._log import ServiceLog
from tracemark.tlog import MAX_RECEIPT_BYTES, RECORD_FORMAT, ProvenanceRecord
from tracemark.tlog.merkle import MAX_TREE_SIZE

router = APIRouter()

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_B64_HASH = re.compile(r"[A-Za-z0-9+/]{43}=")


class RecordRequest(BaseModel):
    """A provenance record (``tracemark.provenance/v1``); ``time`` defaults to the service's clock."""

    model_config = ConfigDict(extra="forbid", strict=True)

    content_sha256: str = Field(description="SHA-256 of the content, 64 lowercase hex digits")
    kind: Literal["text", "image", "model-artifact"]
    key_id: str
    model_id: str
    time: str | None = Field(default=None, description="RFC 3339 UTC to the second, e.g. 2026-08-02T12:00:00Z")
    c2pa_manifest_id: str | None = Field(default=None, description="C2PA manifest URN (images only)")
    format: str | None = Field(default=None, description=f"if given, {RECORD_FORMAT!r}")


class VerifyReceiptRequest(BaseModel):
    """A tlog-proof@v1 receipt, and optionally the content it should record."""

    model_config = ConfigDict(extra="forbid", strict=True)

    receipt: str = Field(min_length=1, max_length=MAX_RECEIPT_BYTES)
    content: str | None = Field(default=None, description="the content (UTF-8 text) whose hash the record holds")


def _prefers_note(accept: str) -> bool:
    return "text/plain" in accept and "application/json" not in accept


def _parse_leaf_hash(text: str) -> bytes:
    if _HEX64.fullmatch(text):
        return bytes.fromhex(text)
    if _B64_HASH.fullmatch(text):
        return base64.b64decode(text)
    raise TlogFormatError("leaf_hash must be 32 bytes as 64 hex digits or base64")


async def _read(log: ServiceLog, function: Callable[..., Any], *args: Any) -> Any:
    """Run a log read on the event loop: a few primary-key lookups, cheaper than a thread hop.
    The first use opens the log (and may sign its first checkpoint), in the thread pool."""
    if not log.is_open:
        await run_in_threadpool(log.size)
    return function(*args)


@router.post("/v1/log/entries", response_class=FastJSONResponse, responses=WRITE_ERRORS)
async def append_entry(
    body: RecordRequest,
    _token: Token,
    context: Context,
    wait: Annotated[bool, Query(description="wait for the next checkpoint and answer with the receipt")] = True,
) -> Response:
    """Append a provenance record; answers once it is durable, with its index and receipt.

    The log publishes checkpoints on a rhythm (at most one per checkpoint interval): by default
    the answer waits for the first checkpoint covering the entry and holds its receipt; with
    ``?wait=false`` it comes as soon as the entry is durable, with ``receipt`` null, and
    ``GET /v1/log/receipt/{index}`` gives the receipt once the next checkpoint is published.
    A record identical to one already stored is not appended twice: the answer is the stored
    entry, with ``duplicate`` true (so a retry after a lost answer is safe).  ``time`` is the
    submitter's claim (``claimed_time``), refused when more than 24 hours ahead of the log's
    clock; ``integrated_time`` is when the log integrated the entry."""
    if body.format is not None and body.format != RECORD_FORMAT:
        raise TlogFormatError(f"record format must be {RECORD_FORMAT!r}")
    record = ProvenanceRecord.create(content_sha256=body.content_sha256, kind=body.kind, key_id=body.key_id,
                                     model_id=body.model_id, time=body.time,
                                     c2pa_manifest_id=body.c2pa_manifest_id)  # fmt: skip
    return FastJSONResponse((await context.log.append_async(record, wait=wait)).to_json())


@router.get("/v1/log/receipt/{index}", **JSON_ROUTE)
async def receipt(index: Annotated[int, Path(ge=0, le=MAX_TREE_SIZE)], context: Context) -> Response:
    """The entry's tlog-proof@v1 receipt against the latest published checkpoint: how a client that
    appended with ``?wait=false`` redeems its promise.  404 while no published checkpoint covers it."""
    return FastJSONResponse(await _read(context.log, context.log.receipt, index))


@router.get("/v1/log/checkpoint", response_class=FastJSONResponse, responses=ERRORS)
async def checkpoint(
    request: Request,
    context: Context,
    note_format: Annotated[Literal["json", "note"] | None, Query(alias="format")] = None,
) -> Response:
    """The latest signed checkpoint: JSON, or the C2SP signed note itself as ``text/plain``
    (``?format=note`` or ``Accept: text/plain``)."""
    signed = await _read(context.log, context.log.latest_checkpoint)
    if note_format == "note" or (note_format is None and _prefers_note(request.headers.get("accept", ""))):
        return PlainTextResponse(signed.note)
    return FastJSONResponse(signed.to_json())


@router.get("/v1/log/checkpoint/timestamp", **JSON_ROUTE)
async def checkpoint_timestamp(
    context: Context, size: Annotated[int | None, Query(ge=0, le=MAX_TREE_SIZE)] = None
) -> Response:
    """The RFC 3161 timestamp token a configured TSA gave the published checkpoint of ``size``
    (default: the latest), verified again before it is served; 404 when there is none."""
    return FastJSONResponse(await _read(context.log, context.log.checkpoint_timestamp, size))


@router.get("/v1/log/entries/{index}", **JSON_ROUTE)
async def entry(index: Annotated[int, Path(ge=0, le=MAX_TREE_SIZE)], context: Context) -> Response:
    """One entry: its provenance record, leaf hash (hex) and stored bytes (base64)."""
    return FastJSONResponse(await _read(context.log, context.log.entry, index))


@router.get("/v1/log/entries", **JSON_ROUTE)
async def entries(
    context: Context,
    start: Annotated[int, Query(ge=0, le=MAX_TREE_SIZE)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Response:
    """A page of entries from ``start``, oldest first; ``next`` is the next page's start."""
    page = min(limit, context.settings.max_page)
    return FastJSONResponse(await _read(context.log, context.log.entries, start, page))


@router.get("/v1/log/proof/inclusion", **JSON_ROUTE)
async def inclusion(
    context: Context,
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
    log = context.log
    tree_size = await _read(log, log.tree_size_for, size)
    if leaf_hash is not None:  # may first index the leaves appended since the last lookup: a thread's job
        index = await run_in_threadpool(log.find_leaf, _parse_leaf_hash(leaf_hash), tree_size)
    elif content_sha256 is not None:
        index = await _read(log, log.find_content, content_sha256, tree_size)
    return FastJSONResponse(await _read(log, log.inclusion, index, tree_size))


@router.get("/v1/log/proof/consistency", **JSON_ROUTE)
async def consistency(
    context: Context,
    old: Annotated[int, Query(ge=0, le=MAX_TREE_SIZE)],
    new: Annotated[int | None, Query(ge=0, le=MAX_TREE_SIZE)] = None,
) -> Response:
    """RFC 9162 consistency proof from tree size ``old`` to ``new`` (default: the latest checkpoint)."""
    return FastJSONResponse(await _read(context.log, context.log.consistency, old, new))


@router.post("/v1/log/verify-receipt", **JSON_ROUTE)
async def verify_receipt(body: VerifyReceiptRequest, context: Context) -> Response:
    """Verify a tlog-proof@v1 receipt as an offline client would, against this log's public key.

    Checks the checkpoint's origin and signature, then the inclusion proof; with ``content``,
    also that the record holds that content's SHA-256.  Invalid receipts get a 4xx whose
    message says which check failed.
    """
    content = body.content.encode("utf-8") if body.content is not None else None
    return FastJSONResponse(await _read(context.log, context.log.verify, body.receipt, content))


@router.get("/v1/log/key", **JSON_ROUTE)
async def log_key(context: Context) -> Response:
    """The log's verifier key (C2SP signed-note vkey) and origin: what receipts are checked against."""
    verifier = await _read(context.log, context.log.verifier)
    return FastJSONResponse({"origin": verifier.name, "log_key": verifier.vkey})
