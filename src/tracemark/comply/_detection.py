"""The public detection interface, asked the way a third party asks it.

``in-process`` builds the service's own application (the routes ``tracemark service run`` serves)
over the deployment's keyring and log and calls it through an in-memory client; a URL is called
over HTTP.  Each probe sends one real sample and checks that the answer agrees with the local
detector: a text sample must come back ``marked``, an image must come back with our watermark.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from tracemark.comply._evidence import EvidenceFolder
from tracemark.comply._report import Evidence

#: Seconds a probe over HTTP waits for an answer.
HTTP_TIMEOUT = 60.0

#: (method, path, body, content type) -> (status, body).
Transport = Callable[[str, str, bytes | None, str], tuple[int, bytes]]


@dataclass(frozen=True)
class Probe:
    """One request to the interface and what came back."""

    route: str
    status: int
    answered: bool
    agrees: bool
    detail: str


@dataclass(frozen=True)
class DetectionProbe:
    """The interface's answers for text and images."""

    endpoint: str
    probes: tuple[Probe, ...]
    evidence: tuple[Evidence, ...]
    #: Why the interface could not be asked here (a missing extra), when it could not.
    unavailable: str | None = None


def _http_transport(base: str) -> Transport:
    def call(method: str, path: str, body: bytes | None, content_type: str) -> tuple[int, bytes]:
        request = urllib.request.Request(
            base.rstrip("/") + path,
            data=body,
            method=method,
            headers={"Content-Type": content_type, "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())
        except (urllib.error.URLError, OSError) as exc:
            return 0, str(getattr(exc, "reason", exc)).encode()

    return call


def _in_process_transport(home: Path, database: Path, model_dir: Path | None) -> tuple[Transport, Callable[[], None]]:
    """The service's own ASGI application, called directly (no socket, no HTTP client library)."""
    import asyncio

    from tracemark.service import ServiceSettings, create_app

    settings = ServiceSettings(
        home=home, database=database, model_dir=model_dir, rate_limit_per_second=0.0, heavy_rate_per_second=0.0
    )
    app = create_app(settings)

    async def exchange(method: str, target: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        path, _, query = target.partition("?")
        scope: dict[str, object] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        status, chunks = 0, []

        async def receive() -> dict[str, object]:
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, object]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(str(message["status"]))
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                chunks.append(chunk if isinstance(chunk, bytes) else b"")

        await app(scope, receive, send)
        return status, b"".join(chunks)

    def call(method: str, path: str, body: bytes | None, content_type: str) -> tuple[int, bytes]:
        return asyncio.run(exchange(method, path, body or b"", content_type))

    def close() -> None:
        app.state.context.log.close()

    return call, close


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _resolve(transport: Transport, alg: str, value: str, manifest_id: str, exchanges: list[dict[str, object]]) -> Probe:
    """C2PA soft-binding resolution: the watermark's binding must lead a third party to the image's manifest."""
    route = "GET /matches/byBinding"
    query = urllib.parse.urlencode({"alg": alg, "value": value})
    status, body = transport("GET", f"/matches/byBinding?{query}", None, "application/json")
    answer = _json(body)
    matches = answer.get("matches") if isinstance(answer, dict) else None
    ids = [m.get("manifestId") for m in matches if isinstance(m, dict)] if isinstance(matches, list) else []
    exchanges.append({"route": route, "status": status, "answer": answer})
    return Probe(
        route, status, status == 200, manifest_id in ids, f"{len(ids)} manifest(s), image's found: {manifest_id in ids}"
    )


def probe_detection(
    endpoint: str,
    *,
    home: Path,
    database: Path,
    model_dir: Path | None,
    text_sample: str | None,
    image_sample: bytes | None,
    evidence: EvidenceFolder,
) -> DetectionProbe:
    """Ask the interface for health, a text verdict and an image verdict; record every exchange."""
    if endpoint == "in-process":
        transport, close = _in_process_transport(home, database, model_dir)
    else:
        transport, close = _http_transport(endpoint), lambda: None
    exchanges: list[dict[str, object]] = []
    probes = []
    try:
        status, body = transport("GET", "/v1/health", None, "application/json")
        probes.append(
            Probe("GET /v1/health", status, status == 200, status == 200, body[:200].decode(errors="replace"))
        )
        exchanges.append({"route": "GET /v1/health", "status": status, "answer": _json(body)})
        if text_sample is not None:
            payload = json.dumps({"text": text_sample}).encode()
            status, body = transport("POST", "/v1/text/detect", payload, "application/json")
            answer = _json(body)
            marked = isinstance(answer, dict) and answer.get("marked") is True
            form = answer.get("format") if isinstance(answer, dict) else None
            probes.append(
                Probe("POST /v1/text/detect", status, status == 200, marked, f"marked={marked}, format={form}")
            )
            exchanges.append({"route": "POST /v1/text/detect", "status": status, "answer": answer})
        if image_sample is not None:
            kind = "image/png" if image_sample.startswith(b"\x89PNG") else "image/jpeg"
            status, body = transport("POST", "/v1/media/verify", image_sample, kind)
            answer = _json(body)
            mark = answer.get("watermark") if isinstance(answer, dict) else None
            found = isinstance(mark, dict) and mark.get("found") is True
            outcome = answer.get("outcome") if isinstance(answer, dict) else None
            probes.append(
                Probe(
                    "POST /v1/media/verify", status, status == 200, found, f"outcome={outcome}, watermark found={found}"
                )
            )
            exchanges.append({"route": "POST /v1/media/verify", "status": status, "answer": answer})
            manifest_id = answer.get("manifest_id") if isinstance(answer, dict) else None
            binding = mark.get("binding_value") if isinstance(mark, dict) else None
            if isinstance(manifest_id, str) and isinstance(binding, str) and isinstance(mark, dict):
                probes.append(_resolve(transport, str(mark.get("algorithm")), binding, manifest_id, exchanges))
    finally:
        close()
    record = evidence.write_json(
        "detection/exchanges.json",
        {"endpoint": endpoint, "exchanges": exchanges},
        "requests sent to the detection interface and its answers",
    )
    return DetectionProbe(endpoint, tuple(probes), (record,))
