"""JSON encoding for responses: orjson when it is installed (several times faster), else the standard library."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; non-finite floats are refused (verdicts turn them into null first)."""
    if orjson is not None:
        return orjson.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class FastJSONResponse(Response):
    """A JSON response encoded with :func:`dumps` (FastAPI's default re-validates and re-encodes)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """The encoded body."""
        return dumps(content)
