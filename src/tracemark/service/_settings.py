"""Service configuration: embedded defaults, overridable from the environment or the CLI.

Several uvicorn worker processes cannot share a Python object, so the settings also travel
as ``TRACEMARK_SERVICE_*`` environment variables (:meth:`ServiceSettings.to_environment`,
:meth:`ServiceSettings.from_environment`), which each worker reads when it builds its app.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from tracemark.errors import ServiceError
from tracemark.keys import default_database_path, tracemark_home

#: Prefix of the environment variables that carry settings to worker processes.
ENV_PREFIX = "TRACEMARK_SERVICE_"


#: Default seconds between two published checkpoints.
DEFAULT_CHECKPOINT_INTERVAL = 1.0


def _checkpoint_interval() -> float:
    """``TRACEMARK_SERVICE_CHECKPOINT_INTERVAL`` when set (so that settings made in code follow it too), else 1 s."""
    raw = os.environ.get(ENV_PREFIX + "CHECKPOINT_INTERVAL")
    if raw is None:
        return DEFAULT_CHECKPOINT_INTERVAL
    try:
        return float(raw)
    except ValueError:
        raise ServiceError(f"{ENV_PREFIX}CHECKPOINT_INTERVAL={raw!r} is not a number of seconds") from None


def _default_model() -> Path | None:
    from tracemark.errors import ModelLoadError
    from tracemark.text import reference_model_dir

    try:
        return reference_model_dir()
    except ModelLoadError:
        return None


@dataclass(frozen=True)
class ServiceSettings:
    """Where the service keeps its state and what it serves."""

    home: Path = field(default_factory=tracemark_home)
    #: The log's database: a SQLite file, or a ``postgresql://`` URL (a log shared by several instances).
    database: Path | str = field(default_factory=default_database_path)
    model_dir: Path | None = field(default_factory=_default_model)
    #: Model id recorded in provenance records (default: the model folder's name and a hash of its files).
    model_id: str | None = None
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = int(os.environ.get("TRACEMARK_MAX_BODY_BYTES", 1024 * 1024))
    #: Largest image upload (``/v1/media/`` routes), in bytes.
    max_media_bytes: int = int(os.environ.get("TRACEMARK_MAX_MEDIA_BYTES", 32 * 1024 * 1024))
    #: Longest text accepted for detection, in characters.
    max_text_chars: int = 200_000
    #: Most new tokens one generation request may ask for.
    max_new_tokens: int = 400
    #: Texts up to this many characters are tested on the event loop (about a millisecond);
    #: longer ones go to the thread pool so that they do not hold up other requests.
    inline_detect_chars: int = 8192
    #: Most log entries one page of ``GET /v1/log/entries`` returns.
    max_page: int = 100
    #: How long (seconds) an append waits for others to share its durable commit.
    append_batch_delay: float = 0.002
    #: Least time (seconds, 0..3600) between two published checkpoints: appends wait for the next one
    #: (or take a promise with ``?wait=false``); 0 signs one checkpoint per append batch.
    checkpoint_interval: float = field(default_factory=_checkpoint_interval)
    #: Load the tokenizer, key, model and log in the background at start-up (``service run`` does),
    #: so that the first requests do not wait for them.
    preload: bool = False
    #: Witness policy file (``log``, ``witness`` and ``quorum`` lines; see :class:`tracemark.tlog.WitnessPolicy`):
    #: the logs ``POST /add-checkpoint`` witnesses, and the witnesses whose quorum publishes this log.
    witness_policy: Path | None = None
    #: The address ``service run`` binds: a name clients may use in ``Host`` (with the loopback names).
    bind_host: str = "127.0.0.1"
    #: More ``Host`` names served, comma-separated (``*``: any, for a proxy that checks them itself).
    #: Other names get 421, so that a DNS-rebinding page cannot reach the API.
    allowed_hosts: str = ""
    #: Requests a second per client address (and per API token), refilled up to the burst; 0: no limit.
    rate_limit_per_second: float = 50.0
    #: Requests a client may make at once before the rate applies.
    rate_limit_burst: float = 200.0
    #: Image marking and verification and generation, a second per client address; 0: no limit.
    heavy_rate_per_second: float = 2.0
    #: Heavy requests a client may make at once before that rate applies.
    heavy_rate_burst: float = 20.0
    #: Requests a second per authority key (``tracemark comply authority-key``: authorities, fact-checkers,
    #: researchers), in place of the per-address limit; 0: no limit.
    authority_rate_per_second: float = 200.0
    #: Requests an authority key may make at once before its rate applies.
    authority_rate_burst: float = 1000.0
    #: Heavy requests (image verification) a second per authority key; 0: no limit.
    authority_heavy_rate_per_second: float = 20.0
    #: Heavy requests an authority key may make at once before that rate applies.
    authority_heavy_rate_burst: float = 100.0
    #: Heavy requests running at once in one process; one more gets 503 with Retry-After.
    max_heavy_requests: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.checkpoint_interval <= 3600:
            raise ServiceError("checkpoint_interval must lie in 0..3600 seconds")
        if self.max_heavy_requests < 1:
            raise ServiceError("max_heavy_requests must be at least 1")
        if (
            min(
                self.rate_limit_per_second,
                self.rate_limit_burst,
                self.heavy_rate_per_second,
                self.heavy_rate_burst,
                self.authority_rate_per_second,
                self.authority_rate_burst,
                self.authority_heavy_rate_per_second,
                self.authority_heavy_rate_burst,
            )
            < 0
        ):
            raise ServiceError("rate limits must not be negative (0 turns a limit off)")

    def to_environment(self) -> dict[str, str]:
        """These settings as ``TRACEMARK_SERVICE_*`` variables (unset optional values are left out)."""
        out = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None:
                out[ENV_PREFIX + item.name.upper()] = str(value)
        return out

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """Settings from ``TRACEMARK_SERVICE_*`` variables; absent ones keep their defaults."""
        source = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for item in fields(cls):
            raw = source.get(ENV_PREFIX + item.name.upper())
            if raw is None:
                continue
            kind = str(item.type)
            try:
                if "Path" in kind:
                    values[item.name] = raw if raw.startswith(("postgresql://", "postgres://")) else Path(raw)
                elif kind == "bool":
                    if raw.lower() not in ("true", "false", "1", "0"):
                        raise ValueError(raw)
                    values[item.name] = raw.lower() in ("true", "1")
                elif kind.startswith("int"):
                    values[item.name] = int(raw)
                elif kind.startswith("float"):
                    values[item.name] = float(raw)
                else:
                    values[item.name] = raw
            except ValueError:
                raise ServiceError(f"{ENV_PREFIX}{item.name.upper()}={raw!r} is not a valid {kind}") from None
        return cls(**values)  # type: ignore[arg-type]
