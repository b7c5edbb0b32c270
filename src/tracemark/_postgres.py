"""PostgreSQL connections shared by the log store and the media soft-binding repository (psycopg 3,
the ``postgres`` extra, imported on first use).

A URL is a libpq URL (``postgresql://user@host:port/dbname``) with one parameter of tracemark's own,
``schema=NAME``: the tables live in that schema (created if missing), so one database can hold
several logs.  Passwords never reach messages (:func:`redact`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tracemark.errors import MissingExtraError

if TYPE_CHECKING:
    import psycopg

#: URL prefixes that name a PostgreSQL database.
URL_PREFIXES = ("postgresql://", "postgres://")


def is_postgres_url(value: object) -> bool:
    """Whether a ``--db`` value names a PostgreSQL database rather than a SQLite file."""
    return isinstance(value, str) and value.startswith(URL_PREFIXES)


def import_psycopg(feature: str) -> Any:
    """The psycopg module, or :class:`MissingExtraError` naming ``feature`` and the extra."""
    try:
        import psycopg  # optional extra, imported on first use
    except ImportError:
        raise MissingExtraError(feature, "postgres") from None
    return psycopg


def split_schema(url: str) -> tuple[str, str | None]:
    """``url`` without tracemark's own ``schema=`` query parameter, and that schema (or None)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((value for key, value in query if key == "schema"), None)
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def connect(url: str, schema: str | None, *, connect_timeout: float, feature: str) -> psycopg.Connection[Any]:
    """An autocommit connection whose commits wait for the WAL flush, in ``schema`` (created if missing)."""
    driver = import_psycopg(feature)
    connection: psycopg.Connection[Any] = driver.connect(
        url, autocommit=True, connect_timeout=max(1, int(connect_timeout))
    )
    connection.execute("SET synchronous_commit = on")  # a commit returns once its WAL is flushed
    if schema:
        found = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        if found is None:  # instances starting together may race to create it: one wins, all go on
            with contextlib.suppress(driver.errors.UniqueViolation, driver.errors.DuplicateSchema):
                connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        connection.execute(f"SET search_path TO {quote_ident(schema)}")
    return connection
