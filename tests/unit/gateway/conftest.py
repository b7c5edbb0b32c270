"""Fixtures for the gateway tests: the reference model loaded once per scheme under a fresh key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REFERENCE_MODEL

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tracemark.keys import Keyring
from tracemark.text import WatermarkedGenerator, new_text_key

GeneratorFactory = Callable[[str], WatermarkedGenerator]


@pytest.fixture(scope="session")
def reference_generator(tmp_path_factory: pytest.TempPathFactory) -> GeneratorFactory:
    """``factory(scheme)``: the reference model under a new key of that scheme (each loaded once)."""
    keyring = Keyring(tmp_path_factory.mktemp("gateway-keys"))
    keyring.create()
    loaded: dict[str, WatermarkedGenerator] = {}

    def factory(scheme: str) -> WatermarkedGenerator:
        if scheme not in loaded:
            loaded[scheme] = WatermarkedGenerator(REFERENCE_MODEL, new_text_key(keyring, scheme, REFERENCE_MODEL))
        return loaded[scheme]

    return factory


@pytest.fixture
def reference_model() -> Path:
    """The bundled reference model's folder."""
    return REFERENCE_MODEL


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Decode on one thread: on a machine whose cores are busy, torch's threads spin against each other
    (ten times slower here); the gateway's ``torch_threads`` setting does the same for a service."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
