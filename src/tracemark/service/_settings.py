"""Service configuration: embedded defaults, overridable from the environment or the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tracemark.keys import default_database_path, tracemark_home


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
    database: Path = field(default_factory=default_database_path)
    model_dir: Path | None = field(default_factory=_default_model)
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = int(os.environ.get("TRACEMARK_MAX_BODY_BYTES", 1024 * 1024))
    #: Longest text accepted for detection, in characters.
    max_text_chars: int = 200_000
    #: Most new tokens one generation request may ask for.
    max_new_tokens: int = 400
