"""The provider gateway through the official ``openai`` client, against ``tracemark service run``.

The done-when test of the gateway: a streamed chat completion whose final chunk carries a
receipt that verifies offline (with only the log's public key) and whose text carries the mark;
bad requests get OpenAI error objects and leave the log as it was; a stream the client cuts
is still logged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningService
from tracemark.keys import Keyring
from tracemark.text import TextTokenizer, detect_watermark, select_text_key
from tracemark.tlog import NoteVerifier, verify_receipt

openai = pytest.importorskip("openai", reason="the gateway's client tests need the test group's openai package")


def _client(service: RunningService, api_key: str | None = None) -> Any:
    return openai.OpenAI(base_url=service.url + "/v1", api_key=api_key or service.token, max_retries=0, timeout=120)


def _log_size(service: RunningService) -> int:
    with httpx.Client(timeout=30) as http:
        size: int = http.get(service.url + "/v1/log/entries", params={"start": 0, "limit": 1}).json()["tree_size"]
    return size


def _verifier(service: RunningService) -> NoteVerifier:
    """The log's public key, fetched once: everything after this is checked offline."""
    with httpx.Client(timeout=30) as http:
        return NoteVerifier.from_vkey(http.get(service.url + "/v1/log/key").json()["log_key"])


def _model_id(service: RunningService) -> str:
    models = _client(service).models.list()
    (model,) = models.data
    return str(model.id)


def test_openai_client_streams_a_marked_chat_completion_with_a_receipt_that_verifies_offline(
    service: RunningService, e2e_model: Path
) -> None:
    client = _client(service)
    model = _model_id(service)
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Explain what the logging module does."}],
        stream=True,
        max_tokens=120,
        seed=5,
        extra_body={"min_tokens": 120},
    )
    pieces: list[str] = []
    tracemark: dict[str, Any] | None = None
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
        extra = chunk.model_extra or {}
        if extra.get("tracemark"):
            tracemark = extra["tracemark"]
    text = "".join(pieces)
    assert finish == "length"
    assert tracemark is not None, "the final chunk carries the receipt"
    (entry,) = tracemark["receipts"]

    verified = verify_receipt(entry["receipt"], _verifier(service))
    assert verified.index == entry["index"]
    assert verified.record is not None
    assert verified.record.matches_content(text.encode("utf-8"))
    assert verified.record.content_sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert (verified.record.key_id, verified.record.model_id) == (tracemark["key_id"], model)

    tokenizer = TextTokenizer(e2e_model)
    key = select_text_key(Keyring(service.home), tokenizer, key_id=tracemark["key_id"])
    verdict = detect_watermark(text, key, tokenizer)
    assert verdict.marked, verdict.p_value
    assert verdict.p_value < 1e-6


def test_non_streamed_completion_has_receipts_in_body_and_headers(service: RunningService) -> None:
    client = _client(service)
    model = _model_id(service)
    raw = client.completions.with_raw_response.create(
        model=model, prompt="The json module", max_tokens=24, n=2, seed=3, logprobs=2
    )
    completion = raw.parse()
    assert [choice.index for choice in completion.choices] == [0, 1]
    assert all(choice.logprobs is not None and len(choice.logprobs.tokens) >= 1 for choice in completion.choices)
    receipts = (completion.model_extra or {})["tracemark"]["receipts"]
    assert [item["choice"] for item in receipts] == [0, 1]
    headers = raw.headers
    assert headers["x-tracemark-log-index"] == ",".join(str(item["index"]) for item in receipts)
    decoded = [base64.b64decode(part).decode() for part in headers["x-tracemark-receipt"].split(",")]
    assert decoded == [item["receipt"] for item in receipts]
    verifier = _verifier(service)
    for choice, item in zip(completion.choices, receipts, strict=True):
        verified = verify_receipt(item["receipt"], verifier)
        assert verified.record is not None
        assert verified.record.matches_content(choice.text.encode())
    assert completion.usage is not None
    assert completion.usage.completion_tokens == sum(
        len(choice.logprobs.tokens) for choice in completion.choices if choice.logprobs is not None
    )


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return error


def test_bad_requests_get_openai_error_objects_and_log_nothing(service: RunningService) -> None:
    model = _model_id(service)
    before = _log_size(service)
    client = _client(service)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=100_000)
    assert too_many.value.param == "max_tokens"
    with pytest.raises(openai.AuthenticationError):
        _client(service, api_key="not-a-token").chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )

    url = service.url + "/v1/chat/completions"
    auth = {"Authorization": f"Bearer {service.token}", "Content-Type": "application/json"}
    with httpx.Client(timeout=60) as http:
        bad_json = http.post(url, content=b'{"model": "x", "messages": [', headers=auth)
        assert bad_json.status_code == 400
        assert _error(bad_json)["type"] == "invalid_request_error"
        no_token = http.post(url, json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
        assert no_token.status_code == 401
        assert _error(no_token)["code"] == "invalid_api_key"
        bad_field = http.post(url, json={"model": model, "messages": [], "max_tokens": 5}, headers=auth)
        assert bad_field.status_code == 400
        assert _error(bad_field)["param"] == "messages"
        long_prompt = {"model": model, "messages": [{"role": "user", "content": "word " * 400}], "max_tokens": 10}
        overflow = http.post(url, json=long_prompt, headers=auth)
        assert overflow.status_code == 400
        assert _error(overflow)["code"] == "context_length_exceeded"
    assert _log_size(service) == before


def test_a_stream_cut_by_the_client_is_still_logged(service: RunningService) -> None:
    model = _model_id(service)
    before = _log_size(service)
    body = {"model": model, "prompt": "The socket module", "max_tokens": 200, "stream": True, "ignore_eos": True}
    received: list[str] = []
    headers = {"Authorization": f"Bearer {service.token}"}
    with (
        httpx.Client(timeout=120) as http,
        http.stream("POST", service.url + "/v1/completions", json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                received.append(json.loads(line[6:])["choices"][0]["text"])
            if len(received) >= 3:
                break  # leaving the block closes the connection mid-stream
    deadline = time.monotonic() + 60
    while _log_size(service) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _log_size(service) == before + 1
    with httpx.Client(timeout=30) as http:
        entry = http.get(f"{service.url}/v1/log/entries/{before}").json()
    assert entry["record"]["model_id"] == model
    assert entry["record"]["kind"] == "text"


def test_red_team_and_theft_clients_point_at_the_gateway(
    service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracemark.redteam import load_target
    from tracemark.theft import OpenAICompatibleEndpoint

    before = _log_size(service)
    monkeypatch.setenv("OPENAI_API_KEY", service.token)
    reply = load_target(f"service:{service.url}", model="default", timeout=120).chat("Be brief.", "Hello", 8)
    assert reply.text
    assert reply.finish_reason in ("stop", "length")
    monkeypatch.setenv("TRACEMARK_GATEWAY_TEST_KEY", service.token)
    for api in ("completions", "chat"):
        endpoint = OpenAICompatibleEndpoint(service.url, "default", api=api, api_key_env="TRACEMARK_GATEWAY_TEST_KEY")
        assert isinstance(endpoint.complete("The json module", max_new_tokens=8, seed=1), str)
    deadline = time.monotonic() + 30
    while _log_size(service) < before + 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _log_size(service) == before + 3, "every answer the clients got is in the log"
