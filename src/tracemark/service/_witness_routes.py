"""``POST /add-checkpoint``: the service as a C2SP tlog-witness, and witnessed publishing of its own log.

Both sides read one witness policy file (``ServiceSettings.witness_policy``, from
``tracemark service run --witness-policy FILE`` or ``TRACEMARK_SERVICE_WITNESS_POLICY``; format in
:mod:`tracemark.tlog`'s :class:`~tracemark.tlog.WitnessPolicy`):

* ``log`` lines name the logs this service witnesses.  It cosigns with the keyring's witness key
  (``keys/witness.skey``, created on first use) and keeps its state in
  ``TRACEMARK_HOME/witness/state.json``, the file ``tracemark tlog witness`` uses.  Answers follow
  tlog-witness §add-checkpoint: 200 with cosignature lines (``text/plain``), 409 with the latest
  cosigned size (``text/x.tlog.size``), 400/403/404/422 for the documented refusals (a JSON error
  body, as on every other route), 413 above :data:`~tracemark.tlog.MAX_WITNESS_REQUEST_BYTES`.
* ``witness`` and ``quorum`` lines make the service's own log publish a checkpoint only once that
  many witnesses cosigned it (:class:`~tracemark.tlog.CheckpointPublisher`, set on the
  :class:`~tracemark.service._log.ServiceLog`).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

import threading

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tracemark.errors import TracemarkError, WitnessConflictError
from tracemark.keys import ensure_witness_key
from tracemark.service._dependencies import ErrorBody, OpenAPIResponses, ServiceContext
from tracemark.service._errors import error_body
from tracemark.tlog import (
    MAX_WITNESS_REQUEST_BYTES,
    WITNESS_SIZE_CONTENT_TYPE,
    CheckpointPublisher,
    Witness,
    WitnessPolicy,
    WitnessStateError,
    WitnessUnknownLogError,
    witness_status,
)

router = APIRouter()


class ServedWitness:
    """The witness this service runs for the policy's logs (its key and state are loaded on first use)."""

    def __init__(self, context: ServiceContext, policy: WitnessPolicy) -> None:
        self.context = context
        self.policy = policy
        self._witness: Witness | None = None
        self._lock = threading.Lock()

    def witness(self) -> Witness:
        """The :class:`~tracemark.tlog.Witness` (creating the witness key on first use)."""
        with self._lock:
            if self._witness is None:
                if not self.policy.logs:
                    raise WitnessUnknownLogError("this service witnesses no logs: its witness policy has no log line")
                cosigner = ensure_witness_key(self.context.keyring)
                state = self.context.settings.home / "witness" / "state.json"
                self._witness = Witness(cosigner, state, self.policy.log_keys())
            return self._witness

    def add_checkpoint(self, body: bytes) -> str:
        """Answer one add-checkpoint request body with the cosignature lines."""
        return self.witness().handle_request(body)


def install(app: FastAPI, context: ServiceContext) -> None:
    """Serve ``POST /add-checkpoint`` and, when the policy names witnesses, publish the log through them."""
    path = context.settings.witness_policy
    policy = WitnessPolicy.load(path) if path is not None else WitnessPolicy()
    app.state.witness = ServedWitness(context, policy)
    if policy.witnesses:
        context.log.publisher = CheckpointPublisher(policy)
    app.router.routes.extend(router.routes)


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, error: TracemarkError) -> Response:
    message = error.diagnostics()
    if isinstance(error, WitnessStateError):
        message = "the witness cannot read or save its state"  # the details (paths) stay in the server's log
    return Response(error_body(type(error).__name__, message), status, media_type="application/json")


_DOCUMENTED: OpenAPIResponses = {
    200: {"description": "cosignature lines (c2sp.org/tlog-cosignature)", "content": {"text/plain": {}}},
    409: {"description": "the latest cosigned size, then a newline", "content": {WITNESS_SIZE_CONTENT_TYPE: {}}},
    **{
        status: {"model": ErrorBody, "description": text}
        for status, text in (
            (400, "malformed request, or an old size larger than the checkpoint"),
            (403, "no valid signature from a log key this witness trusts"),
            (404, "a log this witness does not witness"),
            (413, "request body too large"),
            (422, "the consistency proof does not verify"),
            (503, "the witness cannot read or save its state, or has no keyring"),
        )
    },
}


@router.post("/add-checkpoint", responses=_DOCUMENTED)
async def add_checkpoint(request: Request) -> Response:
    """c2sp.org/tlog-witness add-checkpoint: check the checkpoint against the last one cosigned, then cosign."""
    body = await _bounded_body(request, MAX_WITNESS_REQUEST_BYTES)
    if body is None:
        message = f"request body over {MAX_WITNESS_REQUEST_BYTES} bytes"
        return Response(error_body("PayloadTooLarge", message), 413, media_type="application/json")
    served: ServedWitness = request.app.state.witness
    try:
        lines = await run_in_threadpool(served.add_checkpoint, body)
    except WitnessConflictError as conflict:
        # tlog-witness: the body is the latest cosigned size; the content type is exactly text/x.tlog.size.
        return Response(f"{conflict.latest_size}\n", 409, headers={"Content-Type": WITNESS_SIZE_CONTENT_TYPE})
    except TracemarkError as error:
        return _error(witness_status(error), error)
    return Response(lines, 200, headers={"Content-Type": "text/plain; charset=utf-8"})
