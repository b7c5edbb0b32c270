"""The C2SP tlog-tiles read API: ``/checkpoint``, ``/tile/<L>/<N>[.p/<W>]``, ``/tile/entries/<N>[.p/<W>]``.

What a static host serves after ``tracemark tlog export-tiles``, served here from the database,
so tlog-tiles clients, monitors, mirrors and witnesses can read the log without its JSON API.
Everything is bounded by the latest published checkpoint: a tile whose hashes that tree does
not hold yet is a 404.  A tile is one batch read of stored nodes (or entries), in the thread
pool; it never takes the log's write lock.

Caching (tlog-tiles §Checkpoints, §Merkle Tree): full tiles and full entry bundles never
change (``Cache-Control: public, max-age=31536000, immutable``); partial ones are served for
a minute and the checkpoint for two seconds.  Every answer carries
``Access-Control-Allow-Origin: *`` (these are public, static reads) and
``X-Content-Type-Options: nosniff``.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tracemark.errors import TlogFormatError
from tracemark.service._dependencies import ERRORS, Context, OpenAPIResponses, ServiceContext
from tracemark.service._errors import NotFoundError
from tracemark.tlog import TileAddress, read_tile

router = APIRouter()

FULL_TILE_CACHE = "public, max-age=31536000, immutable"
PARTIAL_TILE_CACHE = "public, max-age=60"
CHECKPOINT_CACHE = "public, max-age=2"

_COMMON = {"Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff"}
_BINARY: OpenAPIResponses = {
    200: {"content": {"application/octet-stream": {}}, "description": "the tile's bytes"},
    404: ERRORS[404],
}


@router.get(
    "/checkpoint",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "the signed checkpoint note"}, 404: ERRORS[404]},
)
async def checkpoint(context: Context) -> Response:
    """The latest published checkpoint, as the C2SP signed note (tlog-tiles §Checkpoints)."""
    signed = await run_in_threadpool(context.log.latest_checkpoint)
    headers = {**_COMMON, "Cache-Control": CHECKPOINT_CACHE}
    return Response(signed.note.encode("utf-8"), media_type="text/plain; charset=utf-8", headers=headers)


def _tile_bytes(context: ServiceContext, tile: TileAddress) -> bytes:
    size = context.log.latest_checkpoint().checkpoint.size
    if tile.leaves_needed > size:
        raise NotFoundError(f"{tile.path} is not in the published tree of size {size}")
    return read_tile(context.log.log.store, tile, size)


@router.get("/tile/{tile_path:path}", response_class=Response, responses=_BINARY)
async def tile(tile_path: str, context: Context) -> Response:
    """A Merkle tree tile (256 hashes of level 8*L, or W for a partial tile) or an entry bundle."""
    try:
        address = TileAddress.parse(f"tile/{tile_path}")
    except TlogFormatError:
        raise NotFoundError(f"/tile/{tile_path[:80]} is not a tile path") from None
    data = await run_in_threadpool(_tile_bytes, context, address)
    cache = FULL_TILE_CACHE if address.is_full else PARTIAL_TILE_CACHE
    return Response(data, media_type="application/octet-stream", headers={**_COMMON, "Cache-Control": cache})
