"""Deployer labelling (Art. 50(4)): a visible disclosure on images and text that keeps the machine-readable marks.

An image gets an icon-style badge in a corner (text and language configurable).  When it carries a
C2PA manifest, the labelled file gets a new signed manifest with the original as its ``parentOf``
ingredient (the original manifest travels inside it), a ``c2pa.edited`` action describing the label,
the AI source type, the model that produced the image (``tracemark.ai-model``: the caller's ``model_id``, or
the ``c2pa.created`` model the original's trusted manifest names) and the watermark's soft binding.  Text gets a
disclosure line or an HTML snippet (whose ``data-ai-model`` attribute names the model when the caller knows it).
:func:`label_image` and :func:`label_text` say whether the labelled output still verifies as marked.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from tracemark import __version__
from tracemark.errors import ComplianceError, MissingExtraError

if TYPE_CHECKING:
    from PIL import Image

    from tracemark.keys import TextKey
    from tracemark.media import ContentSigner, Layer, MediaKey
    from tracemark.text import TextTokenizer

#: What the disclosure says by default, per language (the deployer may pass any text).
DISCLOSURES = {
    "en": "AI-generated",
    "de": "KI-generiert",
    "fr": "Généré par IA",
    "es": "Generado por IA",
    "it": "Generato dall'IA",
    "nl": "AI-gegenereerd",
    "pl": "Wygenerowane przez AI",
}
CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
#: IPTC digital source type of AI output (C2PA ``digitalSourceType``).
AI_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
_SOFT_BINDING = "c2pa.soft-binding"  # C2PA 2.1 §A.4 soft-binding assertion label
_PARENT = "parent-1"  # the original's ingredient id, which the c2pa.opened action names
#: The label manifest's assertion naming the model that produced the image (an entity-specific C2PA label).
MODEL_ASSERTION = "tracemark.ai-model"


def disclosure(language: str, text: str | None = None) -> str:
    """The disclosure text: ``text`` if given, else the default for ``language``."""
    if text:
        return text
    try:
        return DISCLOSURES[language]
    except KeyError:
        raise ComplianceError(
            f"no default disclosure for language {language!r}: pass the text (known: {', '.join(sorted(DISCLOSURES))})"
        ) from None


@dataclass(frozen=True)
class LabelledImage:
    """The labelled file and what verifying it found."""

    data: bytes
    mime_type: str
    label: str
    corner: str
    manifest_id: str | None
    parent_manifest_id: str | None
    outcome: str
    watermark_found: bool
    model_id: str | None = None
    """The model the label manifest names (``None``: no manifest was signed, or no model was known)."""
    model_not_recorded: str | None = None
    """Why a ``model_id`` the caller gave is named nowhere (no manifest was signed), else ``None``."""


@dataclass(frozen=True)
class LabelledText:
    """The labelled text (plain or HTML) and whether the watermark is still detected in it."""

    text: str
    html: str
    label: str
    still_marked: bool
    p_value: float
    model_id: str | None = None


def _badge(source: Image.Image, label: str, corner: str) -> bytes:
    from PIL import ImageDraw, ImageFont

    picture = source.convert("RGB")
    width, height = picture.size
    size = max(12, min(width, height) // 24)
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(picture)
    left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
    pad, margin = size // 2, size // 2
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    x = margin if corner.endswith("left") else width - box_w - margin
    y = margin if corner.startswith("top") else height - box_h - margin
    draw.rounded_rectangle((x, y, x + box_w, y + box_h), radius=pad, fill=(20, 20, 20), outline=(255, 255, 255))
    draw.text((x + pad - left, y + pad - top), label, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def _manifest(
    label: str, binding_alg: str | None, binding_value: str | None, model: tuple[str, str] | None
) -> dict[str, object]:
    assertions: list[dict[str, object]] = [
        {
            "label": "c2pa.actions",
            "data": {
                "actions": [
                    {
                        "action": "c2pa.opened",
                        "digitalSourceType": AI_SOURCE_TYPE,
                        "parameters": {"ingredientIds": [_PARENT]},
                    },
                    {
                        "action": "c2pa.edited",
                        "description": f"visible AI disclosure added: {label}",
                        "softwareAgent": {"name": "tracemark comply label", "version": __version__},
                    },
                ]
            },
        }
    ]
    if model is not None:
        model_id, stated_by = model
        assertions.append({"label": MODEL_ASSERTION, "data": {"model_id": model_id, "stated_by": stated_by}})
    if binding_alg and binding_value:
        assertions.append(
            {"label": _SOFT_BINDING, "data": {"alg": binding_alg, "blocks": [{"scope": {}, "value": binding_value}]}}
        )
    return {
        "claim_generator_info": [{"name": "tracemark", "version": __version__}],
        "title": "labelled image",
        "assertions": assertions,
    }


def _sign_with_parent(
    labelled: bytes, original: bytes, original_mime: str, definition: dict[str, object], signer: ContentSigner
) -> bytes:
    try:
        import c2pa
    except ImportError:
        raise MissingExtraError("C2PA content credentials", "media") from None
    native = signer.native()
    try:
        with c2pa.Builder(definition) as builder:
            builder.add_ingredient(
                {"title": "original", "relationship": "parentOf", "label": _PARENT, "instance_id": _PARENT},
                original_mime,
                io.BytesIO(original),
            )
            out = io.BytesIO()
            builder.sign(native, "image/png", io.BytesIO(labelled), out)
    except c2pa.C2paError as exc:
        raise ComplianceError(f"signing the labelled image failed: {exc}") from None
    finally:
        native.close()
    return out.getvalue()


def label_image(
    data: bytes,
    *,
    label: str,
    corner: str = "bottom-right",
    keys: list[MediaKey],
    signer: ContentSigner | None,
    trust_anchors_pem: bytes | None,
    model_id: str | None = None,
) -> LabelledImage:
    """Add the badge; re-sign with the original as ingredient when it had a manifest; verify the result.

    The new manifest names the model that produced the image: ``model_id`` when the caller knows it, else the
    model in the original's valid manifest.  A ``model_id`` that contradicts that manifest is refused.
    """
    from PIL import Image

    from tracemark.media import decode_image, read_credentials, verify_image

    if corner not in CORNERS:
        raise ComplianceError(f"corner must be one of {', '.join(CORNERS)}")
    if model_id is not None and not model_id.strip():
        raise ComplianceError("model_id must not be empty: leave it out when the model is not known")
    media_keys = list(keys)
    source = decode_image(data)
    before = verify_image(data, keys=media_keys, trust_anchors_pem=trust_anchors_pem, search=False)
    picture = Image.open(io.BytesIO(data))
    picture.load()
    labelled = _badge(picture, label, corner)
    parent = before.manifest_id
    model: tuple[str, str] | None = None  # no manifest is signed without a parent: nothing names the model
    if parent is not None and signer is not None:
        mark = before.watermark
        binding = mark.binding_value if mark is not None and mark.found else None
        model = _model(model_id, _parent_model(before.layers))
        definition = _manifest(label, mark.algorithm if mark is not None else None, binding, model)
        mime = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}.get(source.format, "image/jpeg")
        labelled = _sign_with_parent(labelled, data, mime, definition, signer)
    unrecorded = None
    if model_id is not None and model is None:  # the caller named a model that no manifest will carry
        unrecorded = (
            "the original carries no C2PA manifest for the label's manifest to extend"
            if parent is None
            else "no signing certificate was given, so no manifest was signed"
        )
    after = verify_image(labelled, keys=media_keys, trust_anchors_pem=trust_anchors_pem, search=False)
    reading = read_credentials(labelled, "image/png", trust_anchors_pem=trust_anchors_pem)
    return LabelledImage(
        data=labelled,
        mime_type="image/png",
        label=label,
        corner=corner,
        manifest_id=reading.manifest_id if reading is not None else None,
        parent_manifest_id=parent,
        outcome=after.outcome.value,
        watermark_found=bool(after.watermark is not None and after.watermark.found),
        model_id=model[0] if model is not None else None,
        model_not_recorded=unrecorded,
    )


def _parent_model(layers: Sequence[Layer]) -> str | None:
    """The model the original's manifest names in its ``c2pa.created`` action, when that manifest validated."""
    for layer in layers:
        if layer.name == "signed-metadata" and layer.found:
            named = layer.details.get("model_id")
            return named if isinstance(named, str) and named else None
    return None


def _model(given: str | None, parent: str | None) -> tuple[str, str] | None:
    """The model to name and who stated it; a caller's model that contradicts the signed original is refused."""
    if given is not None and parent is not None and given != parent:
        raise ComplianceError(
            f"the original's manifest says model {parent!r} made this image, not {given!r}: "
            "a label must not name another model"
        )
    if parent is not None:
        return parent, "parent manifest"
    return (given, "caller") if given is not None else None


def label_text(
    text: str,
    *,
    label: str,
    key: TextKey,
    tokenizer: TextTokenizer,
    alpha: float = 1e-6,
    model_id: str | None = None,
) -> LabelledText:
    """The text with a disclosure line before it and as an HTML snippet; the labelled text is tested again.

    With ``model_id`` the snippet's disclosure names the model in a ``data-ai-model`` attribute.
    """
    from tracemark.text import detect_watermark

    labelled = f"[{label}]\n{text}"
    if model_id is not None and not model_id.strip():
        raise ComplianceError("model_id must not be empty: leave it out when the model is not known")
    model = f' data-ai-model="{escape(model_id)}"' if model_id is not None else ""
    snippet = (
        f'<aside class="ai-disclosure" role="note" aria-label="{escape(label)}"{model}><strong>{escape(label)}'
        f'</strong></aside>\n<div class="ai-generated">{escape(text)}</div>\n'
    )
    verdict = detect_watermark(labelled, key, tokenizer, alpha=alpha)
    return LabelledText(
        text=labelled,
        html=snippet,
        label=label,
        still_marked=verdict.marked,
        p_value=verdict.p_value,
        model_id=model_id,
    )
