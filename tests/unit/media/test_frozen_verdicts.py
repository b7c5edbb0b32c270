"""Media results hold read-only copies of the manifest and layer details, and give plain JSON back.

The manifest comes from the image itself, so its members are read with type checks: a hostile
shape (an array where an object belongs, a string where an array belongs) finds nothing and
raises nothing.
"""

from __future__ import annotations

import json

import pytest

from tracemark._json import FrozenDict, JSONObject
from tracemark.media import CredentialReading, Layer, MediaVerdict, Outcome

ALG = "io.tracemark.qim.v2"
MANIFEST: JSONObject = {
    "claim_generator_info": [{"name": "tracemark"}],
    "assertions": [
        {
            "label": "c2pa.actions",
            "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": "x/trainedAlgorithmicMedia"}]},
        },
        {"label": "c2pa.soft-binding", "data": {"alg": ALG, "blocks": [{"scope": {}, "value": "ab12"}]}},
    ],
}


def _reading(manifest: JSONObject | None) -> CredentialReading:
    return CredentialReading("Valid", (), (), (), manifest, "urn:c2pa:1")


def test_a_reading_keeps_a_read_only_copy_of_the_manifest() -> None:
    given = json.loads(json.dumps(MANIFEST))
    reading = _reading(given)
    given["assertions"].clear()  # the caller's dict changing later does not change the reading
    assert isinstance(reading.manifest, FrozenDict)
    assert reading.soft_bindings() == [(ALG, "ab12")]
    assert reading.digital_source_types() == ["x/trainedAlgorithmicMedia"]
    with pytest.raises(TypeError):
        reading.manifest["title"] = "changed"  # type: ignore[index]


@pytest.mark.parametrize(
    "manifest",
    [
        {"assertions": {"label": "c2pa.soft-binding"}},
        {"assertions": "c2pa.soft-binding"},
        {"assertions": [{"label": "c2pa.soft-binding", "data": ["alg", ALG]}]},
        {"assertions": [{"label": "c2pa.soft-binding", "data": {"alg": ALG, "blocks": "ab12"}}]},
        {"assertions": [{"label": "c2pa.soft-binding", "data": {"alg": ALG, "blocks": [{"value": 7}]}}]},
        {"assertions": [{"label": "c2pa.actions", "data": {"actions": {"digitalSourceType": "x"}}}]},
        {"assertions": [{"label": "c2pa.actions", "data": {"actions": [{"digitalSourceType": ["x"]}]}}]},
        {"assertions": [{"label": "c2pa.actions", "data": "actions"}]},
    ],
)
def test_hostile_manifest_shapes_give_no_bindings_and_no_source_types(manifest: JSONObject) -> None:
    reading = _reading(manifest)
    assert reading.soft_bindings() == []
    assert reading.digital_source_types() == []


def test_no_manifest_gives_nothing() -> None:
    reading = _reading(None)
    assert reading.manifest is None
    assert (reading.soft_bindings(), reading.digital_source_types()) == ([], [])


def test_a_verdict_and_its_layers_are_read_only_and_serialise_to_the_same_json() -> None:
    details: JSONObject = {
        "embedded": True,
        "digital_source_type_ai": True,
        "codes": ["a", "b"],
        "nested": {"k": [1, 2.5, None]},
    }
    layer = Layer("signed-metadata", True, "proves", details)
    verdict = MediaVerdict(Outcome.TRUSTED, (), "urn:c2pa:1", MANIFEST, None, (layer,), "00" * 32)
    assert isinstance(layer.details, FrozenDict)
    assert isinstance(layer.details["codes"], tuple)
    assert isinstance(verdict.manifest, FrozenDict)
    with pytest.raises(TypeError):
        layer.details["embedded"] = False  # type: ignore[index]
    data = verdict.to_json()
    assert data["manifest"] == MANIFEST
    assert data["article_50"] == {
        "machine_readable_ai_marking": True,
        "layers": [
            {"layer": "signed-metadata", "found": True, "proves": "proves", "absent_means": "", "details": details}
        ],
        "contradictions": [],
    }
    # Plain JSON again: lists, not tuples, so it serialises exactly as the unfrozen dicts did.
    assert json.dumps(data["manifest"], sort_keys=True) == json.dumps(MANIFEST, sort_keys=True)
    assert Layer("watermark", False, "proves").to_json()["details"] == {}
