"""Adapters: an OpenAI-compatible endpoint (a stub server on 127.0.0.1), callables, and the failure paths."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tests.unit.theft.conftest import (
    StubServer,
    assert_clean,
    biased_completion,
    next_token_probabilities,
    prompts,
    read_texts,
)
from tracemark.errors import InvalidInputError, SuspectQueryError
from tracemark.keys import TextKey
from tracemark.text import TextTokenizer
from tracemark.theft import (
    CallableNextTokenModel,
    CallableTextModel,
    EndpointNextTokens,
    OpenAICompatibleEndpoint,
    RadioactivityConfig,
    radioactivity,
    radioactivity_open,
)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_endpoint_returns_the_completion(stub: StubServer, api: str) -> None:
    endpoint = OpenAICompatibleEndpoint(stub.url, "suspect-1", api=api)
    text = endpoint.complete("w1 w2", max_new_tokens=5, seed=3)
    assert text == stub.backend("w1 w2", 5, 3)
    assert stub.requests[-1]["model"] == "suspect-1"
    assert stub.requests[-1]["seed"] == 3


def test_api_key_comes_from_the_environment_and_stays_out_of_names(
    stub: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = OpenAICompatibleEndpoint(stub.url, "m", api_key_env="SUSPECT_KEY")
    with pytest.raises(SuspectQueryError, match="SUSPECT_KEY"):
        endpoint.complete("w1", max_new_tokens=2, seed=0)
    monkeypatch.setenv("SUSPECT_KEY", "sk-secret-value")
    endpoint.complete("w1", max_new_tokens=2, seed=0)
    assert stub.authorizations[-1] == "Bearer sk-secret-value"
    assert "sk-secret" not in endpoint.name


FAILURES = [("FAIL", "HTTP 500"), ("NOTJSON", "JSON"), ("HUGE", "more than"), ("REDIRECT", "redirect")]


@pytest.mark.parametrize(("prompt", "message"), FAILURES)
def test_endpoint_failures_are_typed(stub: StubServer, prompt: str, message: str) -> None:
    with pytest.raises(SuspectQueryError, match=message):
        OpenAICompatibleEndpoint(stub.url, "m").complete(prompt, max_new_tokens=2, seed=0)


def test_unreachable_endpoint_and_bad_urls() -> None:
    with pytest.raises(SuspectQueryError, match="unreachable"):
        OpenAICompatibleEndpoint("http://127.0.0.1:9", "m", timeout=2).complete("x", max_new_tokens=1, seed=0)
    for url in ("file:///etc/passwd", "127.0.0.1:80", "ftp://host"):
        with pytest.raises(InvalidInputError):
            OpenAICompatibleEndpoint(url, "m")


def test_radioactivity_through_the_endpoint(
    stub: StubServer, make_key: Callable[..., TextKey], tokenizer: TextTokenizer
) -> None:
    key = make_key()
    stub.backend = biased_completion(key, 0.1)
    config = RadioactivityConfig(budget_tokens=2000, min_tuples=500, null_keys=20)
    verdict, transcript = radioactivity(
        OpenAICompatibleEndpoint(stub.url, "m"), [key], prompts(40), tokenizer, config, max_new_tokens=64
    )
    assert verdict.decision == "evidence"
    assert verdict.evidence["suspect"] == f"{stub.url} (m)"
    assert len(transcript.exchanges) == len(stub.requests)


def test_callables_turn_any_exception_into_a_failed_query() -> None:
    def broken(prompt: str, max_new_tokens: int, seed: int) -> str:
        raise RuntimeError("boom")

    with pytest.raises(SuspectQueryError, match="boom"):
        CallableTextModel(broken).complete("x", max_new_tokens=1, seed=0)
    with pytest.raises(SuspectQueryError, match="not text"):
        CallableTextModel(lambda p, n, s: 3).complete("x", max_new_tokens=1, seed=0)  # type: ignore[arg-type,return-value]
    model = CallableNextTokenModel(lambda ids: np.ones((len(ids), 5)) / 5)
    ids, probs = model.top_tokens(np.arange(3), 2)
    assert ids.shape == probs.shape == (3, 2)
    with pytest.raises(SuspectQueryError):
        CallableNextTokenModel(lambda ids: np.ones((1, 5))).top_tokens(np.arange(3), 2)


def test_open_mode_through_echoed_logprobs(
    stub: StubServer, make_key: Callable[..., TextKey], tokenizer: TextTokenizer
) -> None:
    key = make_key()
    config = RadioactivityConfig(budget_tokens=1500, min_tuples=200, null_keys=30, top_k=8)
    reader = EndpointNextTokens(OpenAICompatibleEndpoint(stub.url, "m"), tokenizer)
    texts = read_texts(30, 50)
    stub.next_token = next_token_probabilities(key, 1.0)
    radioactive = radioactivity_open(reader, [key], texts, tokenizer, config)
    assert radioactive.decision == "evidence"
    assert stub.requests[-1]["echo"] is True
    stub.next_token = next_token_probabilities(key, 0.0)
    clean = radioactivity_open(reader, [key], texts, tokenizer, config)
    assert_clean(clean.decision, clean.p_value, clean.alpha, clean.reasons)
    stub.shift_tokens = True  # an endpoint whose tokenizer splits the text differently
    misread = radioactivity_open(reader, [key], texts, tokenizer, config)
    assert misread.decision == "inconclusive"
    assert any("reads failed" in r for r in misread.reasons)
