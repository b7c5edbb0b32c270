"""Without the ``postgres`` extra, a PostgreSQL URL is one line naming the extra and exit 5 (no server needed)."""

from __future__ import annotations

import sys

import pytest

from tracemark.cli import main


def test_a_postgresql_url_without_psycopg_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    status = main(["tlog", "init", "--db", "postgresql://postgres@127.0.0.1:5432/test"])
    err = capsys.readouterr().err
    assert status == 5
    assert "pip install 'tracemark[postgres]'" in err
    assert len(err.strip().splitlines()) == 1
