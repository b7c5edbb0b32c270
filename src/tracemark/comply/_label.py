"""Deployer labelling (Art. 50(4)): a visible disclosure on images and text that keeps the machine-readable marks.

An image gets an icon-style badge in a corner (text and language configurable).  When it carries a
C2PA manifest, the labelled file gets a new signed manifest with the original as its ``parentOf``
ingredient (the original manifest travels inside it), a ``c2pa.edited`` action describing the label,
the AI source type and the watermark's soft binding.  Text gets a disclosure line or an HTML snippet.
:func:`label_image` and :func:`label_text` say whether the labelled output still verifies as marked.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from tracemark import __version__
from tracemark.errors import ComplianceError, MissingExtraError

if TYPE_CHECKING:
    from PIL import Image

    from tracemark.keys import TextKey
    from tracemark.media import ContentSigner, MediaKey
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


@dataclass(frozen=True)
class LabelledText:
    """The labelled text (plain or HTML) and whether the watermark is still detected in it."""

    text: str
    html: str
    label: str
    still_marked: bool
    p_value: float


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


def _manifest(label: str, binding_alg: str | None, binding_value: str | None) -> dict[str, object]:
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
) -> LabelledImage:
    """Add the badge; re-sign with the original as ingredient when it had a manifest; verify the result."""
    from PIL import Image

    from tracemark.media import decode_image, read_credentials, verify_image

    if corner not in CORNERS:
        raise ComplianceError(f"corner must be one of {', '.join(CORNERS)}")
    media_keys = list(keys)
    source = decode_image(data)
    before = verify_image(data, keys=media_keys, trust_anchors_pem=trust_anchors_pem, search=False)
    picture = Image.open(io.BytesIO(data))
    picture.load()
    labelled = _badge(picture, label, corner)
    parent = before.manifest_id
    if parent is not None and signer is not None:
        mark = before.watermark
        binding = mark.binding_value if mark is not None and mark.found else None
        definition = _manifest(label, mark.algorithm if mark is not None else None, binding)
        mime = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}.get(source.format, "image/jpeg")
        labelled = _sign_with_parent(labelled, data, mime, definition, signer)
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
    )


def label_text(text: str, *, label: str, key: TextKey, tokenizer: TextTokenizer, alpha: float = 1e-6) -> LabelledText:
    """The text with a disclosure line before it and as an HTML snippet; the labelled text is tested again."""
    from tracemark.text import detect_watermark

    labelled = f"[{label}]\n{text}"
    snippet = (
        f'<aside class="ai-disclosure" role="note" aria-label="{escape(label)}"><strong>{escape(label)}'
        f'</strong></aside>\n<div class="ai-generated">{escape(text)}</div>\n'
    )
    verdict = detect_watermark(labelled, key, tokenizer, alpha=alpha)
    return LabelledText(text=labelled, html=snippet, label=label, still_marked=verdict.marked, p_value=verdict.p_value)
