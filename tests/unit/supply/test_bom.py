"""The CycloneDX 1.6 ML-BOM: schema-valid offline, digests right, model card from the folder."""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from pathlib import Path

import pytest

from tracemark.cli import main
from tracemark.errors import BomValidationError
from tracemark.supply import Dependency, build_ml_bom, validate_bom


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-gpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    (folder / "model.safetensors").write_bytes(b"\x00" * 100)
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref")
    return folder


def test_bom_is_valid_and_complete(model: Path) -> None:
    deps = [Dependency("PyPI", "Torch_Vision", "0.20.0", "r.txt"), Dependency("npm", "@scope/pkg", "1.0.0", "l")]
    bom = build_ml_bom(model, task="text-generation", datasets=["wikitext"], dependencies=deps, version="1.0")
    validate_bom(bom)
    subject = bom["metadata"]["component"]
    assert subject["type"] == "machine-learning-model"
    assert subject["modelCard"]["modelParameters"] == {
        "task": "text-generation",
        "architectureFamily": "gpt2",
        "modelArchitecture": "GPT2LMHeadModel",
        "datasets": [
            {"type": "dataset", "name": "wikitext", "bom-ref": "dataset:wikitext", "classification": "training"}
        ],
    }
    digests = {c["name"]: c["hashes"][0]["content"] for c in subject["components"]}
    assert digests == {
        "config.json": hashlib.sha256((model / "config.json").read_bytes()).hexdigest(),
        "model.safetensors": hashlib.sha256(b"\x00" * 100).hexdigest(),
    }
    purls = sorted(c["purl"] for c in bom["components"])
    assert purls == ["pkg:npm/%40scope/pkg@1.0.0", "pkg:pypi/torch-vision@0.20.0"]
    assert bom["dependencies"][0]["dependsOn"] == purls


def test_bom_is_reproducible_with_fixed_time_and_serial(model: Path) -> None:
    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    serial = uuid.UUID(int=1)
    first = build_ml_bom(model, timestamp=when, serial=serial)
    assert first == build_ml_bom(model, timestamp=when, serial=serial)
    assert first["metadata"]["timestamp"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b["metadata"]["component"].update(unknown=1),
        lambda b: b["metadata"]["component"]["modelCard"].update(modelParameters={"task": 7}),
        lambda b: b.update(bomFormat="SPDX"),
        lambda b: b["metadata"]["component"]["components"][0]["hashes"][0].update(alg="MD7"),
    ],
)
def test_invalid_boms_are_refused(model: Path, mutate: object) -> None:
    bom = build_ml_bom(model)
    mutate(bom)  # type: ignore[operator]
    with pytest.raises(BomValidationError):
        validate_bom(bom)


def test_cli_bom(model: Path, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.0.0\n")
    out = tmp_path / "bom.json"
    assert (
        main(
            [
                "supply",
                "bom",
                str(model),
                "-o",
                str(out),
                "--task",
                "text-generation",
                "--dependencies",
                str(requirements),
            ]
        )
        == 0
    )
    bom = json.loads(out.read_text())
    validate_bom(bom)
    assert bom["components"][0]["purl"] == "pkg:pypi/numpy@2.0.0"


MODEL_CARD = """---
license: apache-2.0
datasets:
  - wikitext
  - "openwebtext"
pipeline_tag: text-generation
base_model: [gpt2]
tags:
- tiny
---

# A model

The body of the card: `license: mit` here is prose, not metadata.
"""


def test_the_model_card_front_matter_fills_the_bom(model: Path) -> None:
    (model / "README.md").write_text(MODEL_CARD)
    bom = build_ml_bom(model, datasets=["wikitext", "in-house"])
    component = bom["metadata"]["component"]
    assert component["licenses"] == [{"license": {"name": "apache-2.0"}}]
    parameters = component["modelCard"]["modelParameters"]
    assert parameters["task"] == "text-generation"
    assert [d["name"] for d in parameters["datasets"]] == ["wikitext", "in-house", "openwebtext"]
    assert {"name": "huggingface:base_model", "value": "gpt2"} in component["properties"]
    # The caller's --task wins over the card's pipeline_tag.
    assert build_ml_bom(model, task="fill-mask")["metadata"]["component"]["modelCard"]["modelParameters"]["task"] == (
        "fill-mask"
    )


def test_a_readme_without_front_matter_adds_nothing(model: Path) -> None:
    (model / "README.md").write_text("# Title\n\nlicense: mit\n")
    component = build_ml_bom(model)["metadata"]["component"]
    assert "licenses" not in component
    (model / "README.md").write_text("---\nlicense: mit\n")  # never closed: not front matter
    assert "licenses" not in build_ml_bom(model)["metadata"]["component"]


def test_depends_on_is_omitted_when_empty_and_dev_packages_are_not_runtime(model: Path) -> None:
    bare = build_ml_bom(model)
    assert bare["dependencies"] == [{"ref": f"model:{model.name}"}]
    dependencies = [
        Dependency("PyPI", "torch", "2.5.0", "requirements.txt"),
        Dependency("PyPI", "pytest", "8.0.0", "requirements-dev.txt", development=True),
        # Declared for development in one file and for run time in another: run time wins.
        Dependency("PyPI", "numpy", "2.0.0", "requirements-dev.txt", development=True),
        Dependency("PyPI", "numpy", "2.0.0", "requirements.txt"),
    ]
    bom = build_ml_bom(model, dependencies=dependencies)
    scopes = {c["name"]: c["scope"] for c in bom["components"]}
    assert scopes == {"torch": "required", "pytest": "excluded", "numpy": "required"}
    assert bom["dependencies"][0]["dependsOn"] == ["pkg:pypi/numpy@2.0.0", "pkg:pypi/torch@2.5.0"]


def test_development_dependencies_are_recognised(tmp_path: Path) -> None:
    from tracemark.supply import read_dependencies

    (tmp_path / "requirements-dev.txt").write_text("pytest==8.0.0\n")
    (tmp_path / "requirements.txt").write_text("torch==2.5.0\n")
    lock = {
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "app"},
            "node_modules/electron": {"version": "30.0.0", "dev": True},
            "node_modules/left-pad": {"version": "1.3.0"},
        },
    }
    (tmp_path / "package-lock.json").write_text(json.dumps(lock))
    assert [d.development for d in read_dependencies(tmp_path / "requirements-dev.txt")] == [True]
    assert [d.development for d in read_dependencies(tmp_path / "requirements.txt")] == [False]
    flags = {d.name: d.development for d in read_dependencies(tmp_path / "package-lock.json")}
    assert flags == {"electron": True, "left-pad": False}
