"""Deployer labelling: a visible badge or disclosure line, and the machine-readable marks survive it."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.unit.comply.conftest import EXAMPLES
from tracemark._json import JSONObject
from tracemark.cli._main import main
from tracemark.comply import LabelledImage, disclosure, label_image, label_text
from tracemark.comply._label import MODEL_ASSERTION
from tracemark.errors import ComplianceError
from tracemark.keys import Keyring, ensure_media_certificate
from tracemark.media import mark_image, media_key, read_credentials, signer_for
from tracemark.media._credentials import DIGITAL_SOURCE_TYPE, sign_asset
from tracemark.text import TextTokenizer, new_text_key


@pytest.fixture
def marked(isolated_home: Path) -> tuple[bytes, str]:
    keyring = Keyring()
    keyring.create()
    certificate = ensure_media_certificate(keyring)
    signer = signer_for(certificate.chain_pem, certificate.private_key_pem)
    image = mark_image(
        (EXAMPLES / "images" / "hills.jpg").read_bytes(),
        key=media_key(keyring),
        signer=signer,
        model_id="example/image-model",
    )
    return image.data, image.manifest_id


def test_the_badge_is_visible_and_the_marks_remain(marked: tuple[bytes, str]) -> None:
    data, manifest_id = marked
    keyring = Keyring()
    certificate = ensure_media_certificate(keyring)
    result = label_image(
        data,
        label="KI-generiert",
        corner="top-left",
        keys=[media_key(keyring)],
        signer=signer_for(certificate.chain_pem, certificate.private_key_pem),
        trust_anchors_pem=certificate.root_pem,
    )
    assert result.watermark_found
    assert result.outcome == "trusted"
    assert result.parent_manifest_id == manifest_id
    before = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
    after = np.asarray(Image.open(io.BytesIO(result.data)).convert("RGB"), dtype=np.int16)
    changed = np.abs(after - before).max(axis=-1) > 40
    height, width = changed.shape
    assert changed[: height // 4, : width // 3].mean() > 0.02  # the badge, in the top-left corner
    assert changed[height // 2 :, width // 2 :].mean() < 0.001  # and nowhere else
    reading = read_credentials(result.data, "image/png", trust_anchors_pem=certificate.root_pem)
    assert reading is not None
    assert reading.manifest is not None
    ingredients = reading.manifest.get("ingredients")
    assert isinstance(ingredients, tuple | list)
    parent = ingredients[0]
    assert isinstance(parent, dict | type(reading.manifest))
    assert parent.get("relationship") == "parentOf"
    assert parent.get("active_manifest") == manifest_id
    actions = [a for t in reading.digital_source_types() for a in [t]]
    assert any(t.endswith("/trainedAlgorithmicMedia") for t in actions)


def test_label_cli_for_images_and_text(
    marked: tuple[bytes, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "marked.jpg"
    source.write_bytes(marked[0])
    out = tmp_path / "labelled.png"
    assert main(["comply", "label", str(source), str(out), "--language", "fr", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["label"] == "Généré par IA"
    assert payload["watermark_found"] is True
    assert payload["model_id"] == "example/image-model"  # from the original's manifest
    assert payload["model_not_recorded"] is None
    assert main(["comply", "label", str(source), str(out), "--model-id", "other/model"]) == 14  # ComplianceError
    assert "not 'other/model'" in capsys.readouterr().err
    assert main(["comply", "label", str(source), str(tmp_path / "labelled.jpg")]) == 2
    unsigned = tmp_path / "unsigned.png"
    assert main(["comply", "label", str(EXAMPLES / "images" / "hills.jpg"), str(unsigned), "--model-id", "org/m"]) == 1
    assert "--model-id NOT recorded: the original carries no C2PA manifest" in capsys.readouterr().out
    assert main(["keys", "init"]) == 0
    capsys.readouterr()
    plain = tmp_path / "plain.txt"
    plain.write_text("A text nobody marked, written by hand for this test. " * 20)
    assert main(["comply", "label", "--text", str(plain), str(tmp_path / "plain.labelled.txt"), "--json",
                 "--model-id", "org/chat@3"]) == 1  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["model_id"] == "org/chat@3"
    assert 'data-ai-model="org/chat@3"' in (tmp_path / "plain.labelled.txt.html").read_text()
    assert result["still_marked"] is False  # an unmarked text is not reported as marked because it was labelled
    assert (tmp_path / "plain.labelled.txt").read_text().startswith("[AI-generated]\n")
    assert 'role="note"' in (tmp_path / "plain.labelled.txt.html").read_text()


def test_disclosure_languages() -> None:
    assert disclosure("de") == "KI-generiert"
    assert disclosure("xx", "Synthetic") == "Synthetic"
    with pytest.raises(ComplianceError, match="no default disclosure"):
        disclosure("xx")


def _label_with_keyring(data: bytes, model_id: str | None = None) -> tuple[LabelledImage, list[dict[str, object]]]:
    """Label ``data`` with the test keyring; returns the result and the label manifest's model assertions."""
    keyring = Keyring()
    certificate = ensure_media_certificate(keyring)
    result = label_image(
        data,
        label="AI-generated",
        keys=[media_key(keyring)],
        signer=signer_for(certificate.chain_pem, certificate.private_key_pem),
        trust_anchors_pem=certificate.root_pem,
        model_id=model_id,
    )
    reading = read_credentials(result.data, "image/png", trust_anchors_pem=certificate.root_pem)
    assert reading is not None
    assert reading.manifest is not None
    assertions = reading.manifest.get("assertions")
    assert isinstance(assertions, tuple | list)
    found = [dict(a["data"]) for a in assertions if isinstance(a, Mapping) and a.get("label") == MODEL_ASSERTION]
    return result, found


@pytest.mark.parametrize("given", [None, "example/image-model"])
def test_the_label_manifest_names_the_model_of_the_signed_original(
    marked: tuple[bytes, str], given: str | None
) -> None:
    result, found = _label_with_keyring(marked[0], model_id=given)
    assert result.model_id == "example/image-model"
    assert found == [{"model_id": "example/image-model", "stated_by": "parent manifest"}]


def test_a_model_contradicting_the_signed_original_is_refused(marked: tuple[bytes, str]) -> None:
    with pytest.raises(ComplianceError, match="'example/image-model' made this image, not 'other/model'"):
        _label_with_keyring(marked[0], model_id="other/model")
    with pytest.raises(ComplianceError, match="must not be empty"):
        _label_with_keyring(marked[0], model_id=" ")


def test_the_callers_model_is_named_when_the_original_manifest_names_none(isolated_home: Path) -> None:
    keyring = Keyring()
    keyring.create()
    certificate = ensure_media_certificate(keyring)
    opened: JSONObject = {
        "claim_generator_info": [{"name": "another tool", "version": "1"}],
        "title": "no model named",
        "assertions": [
            {"label": "c2pa.actions",
             "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE_TYPE}]}}
        ],
    }  # fmt: skip
    original = (EXAMPLES / "images" / "hills.jpg").read_bytes()
    signed = sign_asset(original, "image/jpeg", opened, signer_for(certificate.chain_pem, certificate.private_key_pem))
    result, found = _label_with_keyring(signed.data, model_id="org/generator@2")
    assert result.parent_manifest_id == signed.manifest_id
    assert result.model_id == "org/generator@2"
    assert found == [{"model_id": "org/generator@2", "stated_by": "caller"}]
    unnamed, none_found = _label_with_keyring(signed.data)
    assert unnamed.model_id is None
    assert none_found == []  # no model is made up


def test_an_image_without_a_manifest_gets_no_manifest_and_names_no_model(isolated_home: Path) -> None:
    keyring = Keyring()
    keyring.create()
    certificate = ensure_media_certificate(keyring)
    result = label_image(
        (EXAMPLES / "images" / "hills.jpg").read_bytes(),
        label="AI-generated",
        keys=[media_key(keyring)],
        signer=signer_for(certificate.chain_pem, certificate.private_key_pem),
        trust_anchors_pem=certificate.root_pem,
        model_id="org/generator@2",
    )
    assert result.parent_manifest_id is None
    assert result.manifest_id is None
    assert result.model_id is None  # no manifest carries it, so it is not reported as named
    assert result.model_not_recorded == "the original carries no C2PA manifest for the label's manifest to extend"


def test_a_model_given_without_a_signer_is_reported_as_not_recorded(marked: tuple[bytes, str]) -> None:
    result = label_image(marked[0], label="AI-generated", keys=[], signer=None, trust_anchors_pem=None,
                         model_id="example/image-model")  # fmt: skip
    assert result.manifest_id is None
    assert result.model_id is None
    assert result.model_not_recorded == "no signing certificate was given, so no manifest was signed"
    quiet = label_image(marked[0], label="AI-generated", keys=[], signer=None, trust_anchors_pem=None)
    assert quiet.model_not_recorded is None  # nothing asked, nothing to report


def test_the_text_snippet_names_the_model(word_model: Path, isolated_home: Path) -> None:
    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "native", word_model)
    tokenizer = TextTokenizer(word_model)
    text = " ".join(f"w{i}" for i in range(60))
    named = label_text(text, label="AI-generated", key=key, tokenizer=tokenizer,
                       model_id='org/"chat"<1>')  # fmt: skip
    assert named.model_id == 'org/"chat"<1>'
    assert 'data-ai-model="org/&quot;chat&quot;&lt;1&gt;"' in named.html  # escaped inside the attribute
    assert named.text == f"[AI-generated]\n{text}"  # the plain disclosure line is unchanged
    plain = label_text(text, label="AI-generated", key=key, tokenizer=tokenizer)
    assert plain.model_id is None
    assert "data-ai-model" not in plain.html
