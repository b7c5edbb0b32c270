"""What a request must pass before any route sees it: its Host, its rate, its content type, a heavy-work slot.

:class:`RequestGuard` is one ASGI middleware around every route (the direct detect route included),
checking in this order:

1. **Host** (against DNS rebinding): the ``Host`` header's name must be one of the settings'
   ``allowed_hosts`` (by default the loopback names and the host the service binds); else
   421 ``MisdirectedRequest``.
2. **Rate** per client address: a token bucket of ``rate_limit_per_second`` refilled up to
   ``rate_limit_burst``; the expensive routes (image marking and verification, generation) also draw on
   a second bucket of ``heavy_rate_per_second`` / ``heavy_rate_burst``.  Over either: 429
   ``RateLimitedError`` with ``Retry-After``.  Requests with an API token are also counted per token
   (:meth:`RateLimits.charge_token`, called by the token check).  A request with an **authority key**
   (``Authorization: Bearer`` with a token of tier ``authority``, minted by ``tracemark comply
   authority-key``) is counted per key on the higher ``authority_*`` limits instead of per address: the
   public detection interface stays open to authorities, fact-checkers and researchers (EU AI Act
   Art. 50, Code of Practice).  An authority key writes nothing; a bad one is ignored (address limits).
3. **Content type**: a POST to a route whose body is a JSON model needs ``Content-Type:
   application/json``; else 415 ``UnsupportedMediaType`` (a cross-site ``text/plain`` form post
   runs nothing).
4. **Heavy slots**: at most ``max_heavy_requests`` expensive requests run at once in this process;
   one more gets 503 ``ServiceBusyError`` with ``Retry-After`` at once instead of queueing.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from tracemark.keys import InvalidTokenError, Keyring, verify_api_token
from tracemark.service._errors import RateLimitedError, send_error
from tracemark.service._metrics import Metrics
from tracemark.service._settings import ServiceSettings

#: Routes whose requests cost up to seconds of CPU: they take a heavy slot and draw on the heavy bucket.
HEAVY_PATHS = frozenset({"/v1/media/verify", "/v1/media/mark", "/v1/text/generate"})
#: Host names always served: the loopback names.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Most clients (addresses or tokens) one bucket table remembers; idle, refilled ones are dropped first.
MAX_TRACKED = 10_000
#: Seconds an authority key's check is remembered (a revoked key stops counting as one within this time).
AUTHORITY_CACHE_SECONDS = 10.0
#: Most bearer tokens whose authority check is remembered.
AUTHORITY_CACHE_SIZE = 1024


class TokenBucket:
    """Per-key token buckets: ``rate`` tokens a second, at most ``burst`` saved; a request takes one."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._state: dict[str, tuple[float, float]] = {}  # key -> (tokens left, when counted)
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token for ``key``: 0.0 when allowed, else the seconds until one is there."""
        if self.rate <= 0:
            return 0.0
        moment = time.monotonic() if now is None else now
        with self._lock:
            tokens, stamp = self._state.get(key, (self.burst, moment))
            tokens = min(self.burst, tokens + (moment - stamp) * self.rate)
            if tokens < 1.0:
                self._state[key] = (tokens, moment)
                return (1.0 - tokens) / self.rate
            if len(self._state) >= MAX_TRACKED and key not in self._state:
                self._forget_idle(moment)
            self._state[key] = (tokens - 1.0, moment)
            return 0.0

    def _forget_idle(self, now: float) -> None:
        refill = self.burst / self.rate
        idle = [key for key, (_, stamp) in self._state.items() if now - stamp >= refill]
        for key in idle:
            del self._state[key]
        if len(self._state) >= MAX_TRACKED:  # a flood of distinct keys: start afresh rather than grow
            self._state.clear()


def _retry_after(wait: float) -> int:
    return max(1, math.ceil(wait))


class RateLimits:
    """The buckets of one application: per client address, per API token, and for heavy routes."""

    def __init__(self, settings: ServiceSettings, metrics: Metrics) -> None:
        self.client = TokenBucket(settings.rate_limit_per_second, settings.rate_limit_burst)
        self.token = TokenBucket(settings.rate_limit_per_second, settings.rate_limit_burst)
        self.heavy = TokenBucket(settings.heavy_rate_per_second, settings.heavy_rate_burst)
        self.authority = TokenBucket(settings.authority_rate_per_second, settings.authority_rate_burst)
        self.authority_heavy = TokenBucket(
            settings.authority_heavy_rate_per_second, settings.authority_heavy_rate_burst
        )
        self.metrics = metrics

    def charge_token(self, token_id: str) -> None:
        """Count a request made with API token ``token_id``; raises :class:`RateLimitedError` over the rate."""
        wait = self.token.take(token_id)
        if wait:
            self.metrics.rate_limited("token")
            raise RateLimitedError(f"too many requests with this API token; retry in {wait:.1f} s", _retry_after(wait))


def allowed_host_names(settings: ServiceSettings) -> frozenset[str] | None:
    """The Host names served (lower case, no port), or None when ``allowed_hosts`` is ``*``."""
    names = {name.strip().lower().strip("[]") for name in settings.allowed_hosts.split(",") if name.strip()}
    if "*" in names:
        return None
    bound = settings.bind_host.strip().lower().strip("[]")
    if bound and bound not in ("0.0.0.0", "::"):  # an unspecified address is no name a client can use
        names.add(bound)
    return frozenset(names | LOOPBACK_HOSTS)


def _host_name(value: bytes) -> str:
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):  # [v6]:port
        return text[1:].partition("]")[0]
    if text.count(":") == 1:
        return text.partition(":")[0]
    return text


class RequestGuard:
    """Refuse a request for a foreign Host, over its client's rate, with a non-JSON body or without a heavy slot."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: ServiceSettings,
        limits: RateLimits,
        json_paths: Iterable[str],
        heavy_paths: Iterable[str] = HEAVY_PATHS,
    ) -> None:
        self.app = app
        self.hosts = allowed_host_names(settings)
        self.limits = limits
        self.json_paths = frozenset(json_paths)
        self.heavy_paths = frozenset(heavy_paths)
        self.max_heavy = settings.max_heavy_requests
        self.heavy_running = 0
        self.keyring = Keyring(settings.home)
        self._authority: dict[bytes, tuple[str | None, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = content_type = authorization = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"content-type":
                content_type = value
            elif name == b"authorization":
                authorization = value
        if host is not None and self.hosts is not None and _host_name(host) not in self.hosts:
            await send_error(send, 421, "MisdirectedRequest",
                             "this service does not answer for that Host name (allowed_hosts)")  # fmt: skip
            return
        path = scope["path"]
        heavy = path in self.heavy_paths
        if await self._over_rate(scope, send, heavy, self._authority_key(authorization)):
            return
        if scope["method"] == "POST" and path in self.json_paths and not _is_json(content_type):
            await send_error(send, 415, "UnsupportedMediaType", "send the body as Content-Type: application/json")
            return
        if not heavy:
            await self.app(scope, receive, send)
            return
        if self.heavy_running >= self.max_heavy:
            self.limits.metrics.busy()
            await send_error(send, 503, "ServiceBusyError",
                             f"all {self.max_heavy} slots for image and generation requests are busy; retry shortly",
                             retry_after=1)  # fmt: skip
            return
        self.heavy_running += 1  # the event loop is one thread: no lock needed
        self.limits.metrics.heavy_in_flight(self.heavy_running)
        try:
            await self.app(scope, receive, send)
        finally:
            self.heavy_running -= 1
            self.limits.metrics.heavy_in_flight(self.heavy_running)

    def _authority_key(self, authorization: bytes | None) -> str | None:
        """The id of a valid authority key in ``Authorization: Bearer``, else None (checks cached briefly)."""
        if authorization is None or authorization[:7].lower() != b"bearer ":
            return None
        now = time.monotonic()
        cached = self._authority.get(authorization)
        if cached is not None and now - cached[1] < AUTHORITY_CACHE_SECONDS:
            return cached[0]
        try:
            key_id: str | None = verify_api_token(
                self.keyring, authorization[7:].decode("latin-1").strip(), tier="authority"
            )
        except InvalidTokenError:
            key_id = None
        if len(self._authority) >= AUTHORITY_CACHE_SIZE:
            self._authority.clear()
        self._authority[authorization] = (key_id, now)
        return key_id

    async def _over_rate(self, scope: Scope, send: Send, heavy: bool, authority: str | None = None) -> bool:
        client = scope.get("client")
        who = f"authority:{authority}" if authority else (str(client[0]) if client else "unknown")
        buckets = (
            ((self.limits.authority, "authority"), (self.limits.authority_heavy, "heavy"))
            if authority
            else ((self.limits.client, "client"), (self.limits.heavy, "heavy"))
        )
        for bucket, kind in buckets:
            if kind == "heavy" and not heavy:
                break
            wait = bucket.take(who)
            if wait:
                self.limits.metrics.rate_limited(kind)
                await send_error(
                    send,
                    429,
                    "RateLimitedError",
                    f"too many requests from this {'authority key' if authority else 'address'}; retry in {wait:.1f} s",
                    retry_after=_retry_after(wait),
                )
                return True
        return False


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return False
    media_type = content_type.partition(b";")[0].strip().lower()
    return media_type == b"application/json"
