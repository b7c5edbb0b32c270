"""Where tracemark keeps its state: ``TRACEMARK_HOME``."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "TRACEMARK_HOME"


def tracemark_home() -> Path:
    """The state directory: ``$TRACEMARK_HOME`` or the user's data directory."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("tracemark", appauthor=False))


def default_database_path() -> Path:
    """The default SQLite database (transparency log, soft-binding store)."""
    return tracemark_home() / "tracemark.sqlite3"
