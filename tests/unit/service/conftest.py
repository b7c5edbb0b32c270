"""Fixtures for the service tests: a keyring with a text key, and a test client over a fresh log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.service._tiny_model import write_tiny_gpt2
from tracemark.keys import Keyring, mint_api_token
from tracemark.service import ServiceSettings, create_app
from tracemark.text import new_text_key

ClientFactory = Callable[..., TestClient]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer GPT-2 with random weights and a BPE tokenizer trained on the docs (built once)."""
    return write_tiny_gpt2(tmp_path_factory.mktemp("tiny-model") / "tiny-gpt2")


@pytest.fixture
def make_client(isolated_home: Path) -> Iterator[ClientFactory]:
    """Build clients over a keyring in the isolated home; each runs the app's start-up and shutdown."""
    opened: list[TestClient] = []

    def build(model: Path | None, *, keyring: bool = True, **overrides: object) -> TestClient:
        if keyring:
            ring = Keyring()
            ring.create()
            if model is not None:
                new_text_key(ring, "native", model, make_default=True)
        # TestClient sends "Host: testserver", which the Host allowlist must name.
        values: dict[str, object] = {"home": isolated_home, "database": isolated_home / "db.sqlite3",
                                     "model_dir": model, "max_body_bytes": 64 * 1024,
                                     "allowed_hosts": "testserver", **overrides}  # fmt: skip
        client = TestClient(create_app(ServiceSettings(**values)), raise_server_exceptions=False)  # type: ignore[arg-type]
        client.__enter__()
        opened.append(client)
        return client

    yield build
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory, word_model: Path) -> TestClient:
    """A client whose model is the 2,000-word tokenizer (detection only)."""
    return make_client(word_model)


@pytest.fixture
def token(client: TestClient) -> dict[str, str]:
    """Authorization header with a freshly minted API token."""
    return {"Authorization": f"Bearer {mint_api_token(Keyring(), label='test')}"}
