"""The PostgreSQL server tests use (a pytest plugin loaded by tests/conftest.py).

Tests marked ``postgres`` take ``postgres_url``: a fresh schema of their own on the machine's
server, dropped afterwards.  Without a server they fail with a message saying what is missing,
never skip silently; ``TRACEMARK_TEST_POSTGRES=0`` deselects them, and the summary says how many.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

#: The PostgreSQL server the log's PostgreSQL tests use (machines running `make test` have one).
POSTGRES_URL = os.environ.get("TRACEMARK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
POSTGRES_NEEDED = (
    "PostgreSQL is needed at 127.0.0.1:5432 (trust auth, database 'test', user 'postgres') for the"
    " PostgreSQL tests, with psycopg installed (pip install 'tracemark[postgres]'); start it, point"
    " TRACEMARK_TEST_POSTGRES_URL at another server, or set TRACEMARK_TEST_POSTGRES=0 to deselect these tests"
)
_DESELECTED: list[int] = []
_UNAVAILABLE: list[str] = []  # why the server check failed, printed again at the end of the run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``TRACEMARK_TEST_POSTGRES=0`` deselects the PostgreSQL tests, visibly (see the summary)."""
    if os.environ.get("TRACEMARK_TEST_POSTGRES", "1") != "0":
        return
    kept = [item for item in items if item.get_closest_marker("postgres") is None]
    dropped = [item for item in items if item.get_closest_marker("postgres") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
        _DESELECTED.append(len(dropped))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _UNAVAILABLE:
        terminalreporter.write_line(f"ERROR: {_UNAVAILABLE[0]}", red=True, bold=True)
    if _DESELECTED:
        terminalreporter.write_line(
            f"NOTICE: TRACEMARK_TEST_POSTGRES=0 deselected {sum(_DESELECTED)} PostgreSQL tests", yellow=True
        )


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The server's URL, checked once per session: a clear failure, never a silent skip, without it."""
    if _UNAVAILABLE:
        pytest.fail(_UNAVAILABLE[0], pytrace=False)
    reason = None
    try:
        import psycopg  # optional extra
    except ImportError:
        reason = "psycopg is not installed"
    else:
        try:
            with psycopg.connect(POSTGRES_URL, connect_timeout=5) as db:
                db.execute("SELECT 1")
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    if reason is not None:
        _UNAVAILABLE.append(f"{POSTGRES_NEEDED} ({reason})")
        pytest.fail(_UNAVAILABLE[0], pytrace=False)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL naming a fresh schema of its own (dropped afterwards), so tests can run in parallel."""
    import psycopg  # optional extra

    schema = f"tm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{postgres_server}?schema={schema}"
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as db:
            db.execute(f'DROP SCHEMA "{schema}" CASCADE')
