"""Fixtures for the comply tests: deployment files written next to copies of the example images."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REFERENCE_MODEL, REPO

EXAMPLES = REPO / "examples"
BENCH_RESULTS = REPO / "bench" / "results"

#: Writes a deployment file from TOML sections (text after the header) into a fresh folder; returns its path.
WriteDeployment = Callable[..., Path]


@pytest.fixture
def write_deployment(tmp_path: Path) -> WriteDeployment:
    """A deployment with one image (``images/hills.jpg``), the bundled model for text and this version's
    benchmark results; the keyword arguments override whole sections."""

    def write(
        *,
        models: str = '[[models]]\nid = "example/image-model"\nmodalities = ["image"]\n',
        text: str = "",
        image: str = 'watermark = true\nc2pa = true\ninputs = ["images/hills.jpg"]\n',
        log: str = "record_outputs = true\nwitness = true\nretention_days = 190\n",
        detection: str = 'endpoint = ""\n',
    ) -> Path:
        folder = tmp_path / "deployment"
        (folder / "images").mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / "images" / "hills.jpg", folder / "images" / "hills.jpg")
        results = ", ".join(f'"{BENCH_RESULTS / name}"' for name in ("text_power.json", "media.json"))
        document = (
            '[deployment]\nname = "test deployment"\nprovider = "tests"\n\n'
            f"{models}\n[text]\n{text}\n[image]\n{image}\n[log]\n{log}\n[detection]\n{detection}\n"
            f"[robustness]\nresults = [{results}]\n"
        )
        path = folder / "deployment.toml"
        path.write_text(document, encoding="utf-8")
        return path

    return write


def text_model_section(modalities: str = '["text"]') -> str:
    """A [[models]] table for the bundled reference model."""
    return f'[[models]]\nid = "tracemark/reference"\npath = "{REFERENCE_MODEL}"\nmodalities = {modalities}\n'
