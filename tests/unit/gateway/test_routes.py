"""The gateway's routes in process: OpenAI shapes, receipts, streams, refusals and quotas."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tracemark.errors import ServiceError
from tracemark.keys import Keyring, mint_api_token
from tracemark.service import ServiceSettings, create_app
from tracemark.service._openai_routes import GatewaySettings, OpenAIError, TokenQuota
from tracemark.text import new_text_key

Build = Callable[..., TestClient]


@pytest.fixture
def build(isolated_home: Path, reference_model: Path) -> Iterator[Build]:
    opened: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        ring = Keyring()
        ring.create()
        new_text_key(ring, "native", reference_model, make_default=True)
        values: dict[str, object] = {"home": isolated_home, "database": isolated_home / "db.sqlite3",
                                     "model_dir": reference_model, "allowed_hosts": "testserver",
                                     "checkpoint_interval": 0.0, **overrides}  # fmt: skip
        client = TestClient(create_app(ServiceSettings(**values)), raise_server_exceptions=False)  # type: ignore[arg-type]
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_api_token(Keyring())}"}


def _model(client: TestClient) -> str:
    model: str = client.get("/v1/models").json()["data"][0]["id"]
    return model


def _log_size(client: TestClient) -> int:
    size: int = client.get("/v1/log/entries", params={"start": 0, "limit": 1}).json()["tree_size"]
    return size


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_models_lists_the_served_model_and_its_folder_name_is_accepted(build: Build) -> None:
    client = build()
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list"
    (model,) = listing["data"]
    assert model["id"].startswith("reference@sha256:")
    short = {"model": "reference", "prompt": "The", "max_tokens": 2, "ignore_eos": True}
    assert client.post("/v1/completions", json=short, headers=_auth()).status_code == 200


def test_chat_completion_is_openai_shaped_logged_and_its_receipts_verify(build: Build) -> None:
    client = build()
    body = {"model": _model(client), "messages": [{"role": "system", "content": "Be brief."},
                                                  {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "max_tokens": 12, "n": 2, "seed": 8, "logprobs": True, "top_logprobs": 2, "ignore_eos": True}  # fmt: skip
    response = client.post("/v1/chat/completions", json=body, headers=_auth())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["id"].startswith("chatcmpl-")
    assert answer["usage"]["completion_tokens"] == 24
    receipts = answer["tracemark"]["receipts"]
    assert [item["choice"] for item in receipts] == [0, 1]
    assert _log_size(client) == 2
    for choice, item in zip(answer["choices"], receipts, strict=True):
        assert choice["message"]["role"] == "assistant"
        assert choice["finish_reason"] == "length"
        tokens = choice["logprobs"]["content"]
        assert len(tokens) == 12
        assert all(len(token["top_logprobs"]) == 2 for token in tokens)
        content = choice["message"]["content"]
        assert item["record"]["content_sha256"] == hashlib.sha256(content.encode()).hexdigest()
        check = client.post("/v1/log/verify-receipt", json={"receipt": item["receipt"], "content": content})
        assert check.status_code == 200, check.text


def _events(response: Any) -> list[Any]:
    lines = [line for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def test_a_stream_ends_with_usage_and_the_receipt_of_what_it_sent(build: Build) -> None:
    client = build()
    body = {"model": _model(client), "prompt": ["The os module", "A dict"], "max_tokens": 10, "stream": True,
            "stream_options": {"include_usage": True}, "seed": 2, "ignore_eos": True}  # fmt: skip
    response = client.post("/v1/completions", json=body, headers=_auth())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = _events(response)
    final = chunks[-1]
    assert final["choices"] == []
    assert final["usage"]["completion_tokens"] == 20
    texts = {0: "", 1: ""}
    for chunk in chunks[:-1]:
        assert chunk["object"] == "text_completion"
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["text"]
    receipts = final["tracemark"]["receipts"]
    assert [item["record"]["content_sha256"] for item in receipts] == [
        hashlib.sha256(texts[index].encode()).hexdigest() for index in (0, 1)
    ]


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"presence_penalty": 1.0}, "presence_penalty"),
        ({"n": 9}, "n"),
        ({"tools": []}, "tools"),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 401}, "max_tokens"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ],
)
def test_refused_parameters_name_themselves_and_log_nothing(build: Build, change: dict[str, Any], param: str) -> None:
    client = build()
    body = {"model": _model(client), "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **change}
    error = _error(client.post("/v1/chat/completions", json=body, headers=_auth()), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert _log_size(client) == 0


def test_token_quota_refuses_with_rate_limit_exceeded(build: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEMARK_GATEWAY_TOKENS_PER_MINUTE", "60")
    client = build()
    headers = _auth()
    small = {"model": _model(client), "prompt": "The", "max_tokens": 24, "ignore_eos": True}
    error = _error(client.post("/v1/completions", json={**small, "max_tokens": 70}, headers=headers), 429)
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    # 25 tokens each (1 prompt + 24): two fit in 60, the third waits for the allowance to refill (1 a second)
    assert [client.post("/v1/completions", json=small, headers=headers).status_code for _ in range(2)] == [200, 200]
    third = client.post("/v1/completions", json=small, headers=headers)
    assert int(third.headers["retry-after"]) >= 1
    assert _error(third, 429)["code"] == "rate_limit_exceeded"
    other = client.post("/v1/completions", json=small, headers=_auth())  # another API token has its own
    assert other.status_code == 200
    assert _log_size(client) == 3


def test_token_quota_reserve_and_refund() -> None:
    quota = TokenQuota(per_minute=100)
    quota.reserve("a", 80)
    with pytest.raises(OpenAIError) as short:
        quota.reserve("a", 30)
    assert short.value.status == 429
    quota.refund("a", 50)
    quota.reserve("a", 30)
    quota.reserve("b", 100)  # each API token has its own allowance
    with pytest.raises(OpenAIError):
        quota.reserve("c", 101)
    TokenQuota(per_minute=0).reserve("a", 10**9)  # 0: no quota


def test_gateway_settings_from_the_environment() -> None:
    settings = GatewaySettings.from_environment({"TRACEMARK_GATEWAY_MAX_BATCH": "4",
                                                 "TRACEMARK_GATEWAY_WAIT_SECONDS": "0.1"})  # fmt: skip
    assert (settings.max_batch, settings.wait_seconds, settings.torch_threads) == (4, 0.1, 0)
    assert isinstance(settings.max_batch, int)
    with pytest.raises(ServiceError, match="MAX_BATCH"):
        GatewaySettings.from_environment({"TRACEMARK_GATEWAY_MAX_BATCH": "many"})


def test_missing_token_and_bad_json_are_openai_errors(build: Build) -> None:
    client = build()
    body = {"model": _model(client), "messages": [{"role": "user", "content": "hi"}]}
    assert _error(client.post("/v1/chat/completions", json=body), 401)["code"] == "invalid_api_key"
    bad = client.post("/v1/completions", content=b"{not json", headers={**_auth(), "Content-Type": "application/json"})
    assert _error(bad, 400)["type"] == "invalid_request_error"
    listed = client.post("/v1/completions", content=b"[1, 2]", headers={**_auth(), "Content-Type": "application/json"})
    assert _error(listed, 400)["message"] == "the request body must be a JSON object"
    assert _log_size(client) == 0


def test_closing_a_stream_stops_generation_and_still_logs_what_was_generated(
    isolated_home: Path, reference_model: Path
) -> None:
    """What the server does when a client goes away: the response's generator is closed mid-stream."""
    import asyncio

    from tracemark.service._openai_engine import ChoiceOutcome, SamplingOptions
    from tracemark.service._openai_routes import Gateway, _Run, _Shape, _stream

    ring = Keyring()
    ring.create()
    new_text_key(ring, "native", reference_model, make_default=True)
    app = create_app(ServiceSettings(home=isolated_home, database=isolated_home / "db.sqlite3",
                                     model_dir=reference_model, checkpoint_interval=0.0))  # fmt: skip
    gateway: Gateway = app.state.gateway

    async def scenario() -> list[ChoiceOutcome]:
        run = _Run(gateway=gateway, token_id="test", reserved=0)
        prompt = [int(i) for i in gateway.engine().generator.tokenizer("The os module")["input_ids"]]
        run.start([prompt], SamplingOptions(max_tokens=200, ignore_eos=True), 1)
        stream = _stream(run, _Shape(chat=False, model="m", id="cmpl-test"), 1, include_usage=False)
        for _ in range(3):
            assert (await stream.__anext__()).startswith(b"data: {")
        await stream.aclose()  # the client went away
        await asyncio.gather(*gateway.tasks)
        leftovers = []
        while not run.outbox.empty():
            leftovers.append(run.outbox.get_nowait())
        return [item for item in leftovers if isinstance(item, ChoiceOutcome)]

    try:
        (outcome,) = asyncio.run(scenario())
        assert outcome.finish_reason == "cancelled"
        assert 3 <= len(outcome.token_ids) < 200
        assert gateway.context.log.size() == 1
        record = gateway.context.log.record(0)
        assert record.content_sha256 == hashlib.sha256(outcome.text.encode()).hexdigest()
    finally:
        gateway.close()
        gateway.context.log.close()


def test_a_full_queue_answers_503_overloaded_and_logs_nothing(build: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEMARK_GATEWAY_MAX_WAITING", "0")
    client = build()
    body = {"model": _model(client), "prompt": "The", "max_tokens": 4}
    response = client.post("/v1/completions", json=body, headers=_auth())
    error = _error(response, 503)
    assert (error["type"], error["code"]) == ("server_error", "overloaded")
    assert response.headers["retry-after"] == "1"
    assert _log_size(client) == 0
