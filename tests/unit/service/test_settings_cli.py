"""Service settings through the environment, and ``tracemark service run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tracemark.errors import ServiceError
from tracemark.keys import Keyring
from tracemark.service import ServiceSettings


def test_settings_round_trip_through_the_environment(tmp_path: Path) -> None:
    settings = ServiceSettings(home=tmp_path, database=tmp_path / "db", model_dir=tmp_path / "m", model_id="m@1",
                               max_body_bytes=10, append_batch_delay=0.5)  # fmt: skip
    assert ServiceSettings.from_environment(settings.to_environment()) == settings
    unset = ServiceSettings(home=tmp_path, database=tmp_path / "db", model_dir=None)
    back = ServiceSettings.from_environment(unset.to_environment())
    assert back.model_id is None
    assert back.home == tmp_path


def test_bad_environment_values_are_errors() -> None:
    with pytest.raises(ServiceError, match="MAX_BODY_BYTES"):
        ServiceSettings.from_environment({"TRACEMARK_SERVICE_MAX_BODY_BYTES": "lots"})


@pytest.fixture
def fake_uvicorn(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    import uvicorn

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    return calls


def test_service_run_mints_a_dev_token(
    fake_uvicorn: list[tuple[Any, dict[str, Any]]], word_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracemark.cli import main

    Keyring().create()
    assert main(["service", "run", "--dev-token", "--model", str(word_model), "--port", "8123", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["url"] == "http://127.0.0.1:8123/"
    assert printed["api_token"].startswith("tmk_")
    app, kwargs = fake_uvicorn[0]
    assert kwargs["port"] == 8123
    assert app.state.settings.model_dir == word_model


def test_service_run_with_workers_passes_settings_by_environment(
    fake_uvicorn: list[tuple[Any, dict[str, Any]]], word_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from tracemark.cli import main

    for name in [n for n in os.environ if n.startswith("TRACEMARK_SERVICE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(os, "environ", dict(os.environ))  # the command exports; keep it away from other tests
    assert main(["service", "run", "--workers", "2", "--model", str(word_model), "--model-id", "w@1"]) == 0
    app, kwargs = fake_uvicorn[0]
    assert app == "tracemark.service._app:create_app_from_environment"
    assert (kwargs["workers"], kwargs["factory"]) == (2, True)
    settings = ServiceSettings.from_environment()
    assert (settings.model_dir, settings.model_id) == (word_model, "w@1")
    assert main(["service", "run", "--workers", "0"]) != 0


def test_service_run_serves_its_host_and_reads_limits_from_the_environment(
    fake_uvicorn: list[tuple[Any, dict[str, Any]]], word_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracemark.cli import main

    Keyring().create()
    monkeypatch.setenv("TRACEMARK_SERVICE_RATE_LIMIT_PER_SECOND", "0")
    monkeypatch.setenv("TRACEMARK_SERVICE_MAX_HEAVY_REQUESTS", "3")
    argv = ["service", "run", "--model", str(word_model), "--host", "10.1.2.3", "--allowed-hosts", "log.example"]
    assert main(argv) == 0
    settings = fake_uvicorn[0][0].state.settings
    assert (settings.bind_host, settings.allowed_hosts) == ("10.1.2.3", "log.example")
    assert (settings.rate_limit_per_second, settings.max_heavy_requests) == (0.0, 3)


def test_service_run_dev_tokens_expire_in_12_hours(
    fake_uvicorn: list[tuple[Any, dict[str, Any]]], word_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime, timedelta

    from tracemark.cli import main
    from tracemark.keys import list_api_tokens

    Keyring().create()
    assert main(["service", "run", "--dev-token", "--model", str(word_model), "--json"]) == 0
    (info,) = list_api_tokens(Keyring())
    assert timedelta(hours=11) < datetime.fromisoformat(info["expires_at"]) - datetime.now(UTC) <= timedelta(hours=12)


def test_the_checkpoint_interval_comes_from_the_flag_or_the_environment(
    fake_uvicorn: list[tuple[Any, dict[str, Any]]], word_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracemark.cli import main

    Keyring().create()
    monkeypatch.setenv("TRACEMARK_SERVICE_CHECKPOINT_INTERVAL", "0.25")
    assert ServiceSettings().checkpoint_interval == 0.25
    assert main(["service", "run", "--model", str(word_model), "--checkpoint-interval", "2.5"]) == 0
    app = fake_uvicorn[0][0]
    assert app.state.settings.checkpoint_interval == 2.5
    assert app.state.context.log.checkpoint_interval == 2.5  # what the log publishes by
    assert main(["service", "run", "--model", str(word_model), "--checkpoint-interval", "-1"]) != 0
    monkeypatch.setenv("TRACEMARK_SERVICE_CHECKPOINT_INTERVAL", "soon")
    with pytest.raises(ServiceError, match="CHECKPOINT_INTERVAL"):
        ServiceSettings()
