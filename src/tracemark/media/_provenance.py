"""Marking and verifying images end to end: watermark, C2PA manifest, repository and log, under one policy.

``mark_image`` watermarks the pixels, signs a manifest whose soft binding is the watermark's value,
records the signed file in the transparency log (when one is given) and stores the manifest in the
soft-binding repository.  ``verify_image`` returns one of six outcomes:

* ``trusted``: an embedded manifest validates and its signer chains to a trust anchor;
* ``valid-untrusted``: it validates, but the signer is not anchored;
* ``invalid``: a manifest is present (embedded or recovered) and some check failed; ``codes`` says which;
* ``recovered-via-soft-binding``: no manifest in the file, the watermark was found, the repository held a
  manifest with that binding, and its claim signature and trust validate (only the hard binding, broken
  by re-encoding, fails);
* ``watermark-only``: our watermark was found, but no manifest is known for it;
* ``unmarked``: neither a manifest nor our watermark.

Each verdict carries an EU AI Act Article 50 layer report: which layers were found and what each proves.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from tracemark._json import FrozenDict, FrozenJSONObject, JSONObject, JSONValue, freeze, thaw_object
from tracemark.errors import ContentCredentialError, ImageInputError, SoftBindingRepositoryError
from tracemark.media._credentials import (
    ContentSigner,
    CredentialReading,
    manifest_definition,
    read_credentials,
    sign_asset,
)
from tracemark.media._image_io import (
    DETECT_SIDE,
    MAX_IMAGE_BYTES,
    MIN_MARK_SIDE,
    DecodedImage,
    decode_image,
    encode_image,
    truncation,
)
from tracemark.media._repository import BindingMatch, SoftBindingRepository
from tracemark.media._watermark import (
    ALGORITHM,
    RECORD_ID_BYTES,
    MediaKey,
    WatermarkDetection,
    detect_watermark,
    embed_watermark,
)

#: Largest picture the watermark is computed on directly (pixels); above it, on a reduced copy whose change is
#: scaled back up (``_embed_within_budget``).  12 MP: the largest photos the benchmark marks natively.
MARK_WORK_PIXELS = 12_000_000
_BAND_ROWS = 256

#: Codes that only say the hard binding no longer matches the pixels (expected after re-encoding).
HARD_BINDING_CODES = frozenset(
    {"assertion.dataHash.mismatch", "assertion.boxesHash.mismatch", "assertion.bmffHash.mismatch"}
)
UNTRUSTED = "signingCredential.untrusted"
#: The verdict's JSON format (``media verify --json``, ``POST /v1/media/verify``); documented in docs/ai-act.md.
VERDICT_FORMAT = "tracemark.media.verdict/v1"


class Outcome(StrEnum):
    """The policy outcome of verifying one image."""

    TRUSTED = "trusted"
    VALID_UNTRUSTED = "valid-untrusted"
    INVALID = "invalid"
    RECOVERED = "recovered-via-soft-binding"
    WATERMARK_ONLY = "watermark-only"
    UNMARKED = "unmarked"


#: Records a signed image in the transparency log; returns the entry's index.
LogRecorder = Callable[[bytes, str, str], int]
#: Confirms a log entry: (index, content SHA-256, manifest id) -> True when the entry records exactly that.
LogChecker = Callable[[int, str, str], bool]


class ImageWriter(Protocol):
    """Where :func:`mark_image` writes the signed image before anything is recorded (see its steps)."""

    def publish(self, data: bytes) -> None:
        """Write ``data`` durably and atomically (readers see the whole image or none); raise on failure."""

    def unpublish(self) -> None:
        """Remove what :meth:`publish` wrote (a later step failed)."""


@dataclass(frozen=True)
class MarkedImage:
    """A marked and signed image and where it was recorded."""

    data: bytes
    mime_type: str
    key_id: str
    record_id: str
    binding_value: str
    manifest_id: str
    content_sha256: str
    log_index: int | None

    def to_json(self) -> JSONObject:
        return {
            "mime_type": self.mime_type,
            "key_id": self.key_id,
            "record_id": self.record_id,
            "soft_binding": {"alg": ALGORITHM, "value": self.binding_value},
            "manifest_id": self.manifest_id,
            "content_sha256": self.content_sha256,
            "log_index": self.log_index,
            "bytes": len(self.data),
        }


def mark_image(
    data: bytes,
    *,
    key: MediaKey,
    signer: ContentSigner,
    model_id: str,
    output_format: str | None = None,
    title: str = "image",
    repository: SoftBindingRepository | None = None,
    record: LogRecorder | None = None,
    writer: ImageWriter | None = None,
) -> MarkedImage:
    """Watermark, sign, write, store and log one image; ``output_format`` defaults to the input's format.

    Nothing is recorded for an image that was never written.  The steps run in this order, and a
    failure undoes the ones before it (``writer``, ``repository`` and ``record`` are each optional):

    1. ``writer.publish(signed bytes)`` writes the image where it goes (the CLI: a temporary file in the target
       directory, fsynced, renamed over the output); if it raises, nothing has been recorded;
    2. the repository row is stored (without a log index yet); if that fails, ``writer.unpublish()``
       removes the image;
    3. ``record`` appends the log entry, the one step that cannot be undone, so it comes last; if it
       fails, the row is removed and ``writer.unpublish()`` called;
    4. the row gets the entry's index.
    """
    source = decode_image(data, min_side=MIN_MARK_SIDE)
    record_id = os.urandom(RECORD_ID_BYTES)
    marked = DecodedImage(pixels=_embed_within_budget(source.pixels, key, record_id), alpha=source.alpha,
                          format=source.format)  # fmt: skip
    image_format = output_format or source.format
    encoded = encode_image(marked, image_format)
    binding_value = key.tag.hex() + record_id.hex()
    definition = manifest_definition(title=title, algorithm=ALGORITHM, binding_value=binding_value, model_id=model_id)
    mime_type = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[image_format]
    signed = sign_asset(encoded, mime_type, definition, signer)
    if len(signed.data) > MAX_IMAGE_BYTES:  # verify_image would refuse the very file marked here
        raise ImageInputError(
            f"the marked {image_format} would be {len(signed.data)} bytes, over the {MAX_IMAGE_BYTES} an image "
            "may have to be verified: write it as .jpg or .webp"
        )
    digest = hashlib.sha256(signed.data).hexdigest()
    if writer is not None:
        writer.publish(signed.data)
    stored = False
    try:
        if repository is not None:
            repository.add(alg=ALGORITHM, value=binding_value, manifest_id=signed.manifest_id,
                           manifest=signed.manifest_store, content_sha256=digest, log_index=None)  # fmt: skip
            stored = True
        log_index = record(signed.data, signed.manifest_id, key.key_id) if record is not None else None
    except BaseException:
        _roll_back(repository if stored else None, signed.manifest_id, writer)
        raise
    if repository is not None and log_index is not None:
        repository.set_log_index(signed.manifest_id, log_index)
    return MarkedImage(
        data=signed.data,
        mime_type=mime_type,
        key_id=key.key_id,
        record_id=record_id.hex(),
        binding_value=binding_value,
        manifest_id=signed.manifest_id,
        content_sha256=digest,
        log_index=log_index,
    )


def _embed_within_budget(pixels: npt.NDArray[np.uint8], key: MediaKey, record_id: bytes) -> npt.NDArray[np.uint8]:
    """The marked pixels, computing the mark on at most :data:`MARK_WORK_PIXELS` pixels.

    The embedder holds several float copies of the picture (about 50 bytes per pixel), so a 49 MP image
    took 2.5 GB.  A larger picture is marked on a copy reduced (box filter) to the budget; the change
    that marking made there is scaled back up (bicubic) and added to the full picture band by band, in
    place.  The watermark lives on a 256 x 256 grid of the whole picture, which the reduced copy covers
    the same way, so the detector sees the same mark.
    """
    height, width = pixels.shape[:2]
    if height * width <= MARK_WORK_PIXELS:
        return embed_watermark(pixels, key, record_id)
    from PIL import Image

    scale = (MARK_WORK_PIXELS / (height * width)) ** 0.5
    small_size = (max(MIN_MARK_SIDE, round(width * scale)), max(MIN_MARK_SIDE, round(height * scale)))
    small = np.asarray(Image.fromarray(pixels).resize(small_size, Image.Resampling.BOX))
    change = embed_watermark(small, key, record_id).astype(np.float32) - small.astype(np.float32)
    del small
    planes = [change] if change.ndim == 2 else [change[:, :, channel] for channel in range(change.shape[2])]
    sources = [Image.fromarray(np.ascontiguousarray(plane), mode="F") for plane in planes]
    rows_per_small_row = height / small_size[1]
    for top in range(0, height, _BAND_ROWS):
        bottom = min(height, top + _BAND_ROWS)
        box = (0.0, top / rows_per_small_row, float(small_size[0]), bottom / rows_per_small_row)
        band = pixels[top:bottom]  # a view: the decoded copy is marked in place
        for channel, plane in enumerate(sources):
            up = np.asarray(plane.resize((width, bottom - top), Image.Resampling.BICUBIC, box=box), dtype=np.float32)
            target = band if band.ndim == 2 else band[:, :, channel]
            target[...] = np.clip(np.rint(target.astype(np.float32) + up), 0, 255).astype(np.uint8)
    return pixels


def _roll_back(repository: SoftBindingRepository | None, manifest_id: str, writer: ImageWriter | None) -> None:
    """Undo a marking's repository row and written image; the error that caused it is the one raised."""
    if repository is not None:
        with contextlib.suppress(SoftBindingRepositoryError):
            repository.remove(manifest_id)
    if writer is not None:
        with contextlib.suppress(OSError):
            writer.unpublish()


@dataclass(frozen=True)
class Layer:
    """One Article 50 marking layer: found or not, what it proves, and its details (a deep read-only copy)."""

    name: str
    found: bool
    proves: str
    details: FrozenJSONObject = field(default_factory=FrozenDict)
    #: What "not found" means for this layer (empty when it was found): absence is not proof of human origin.
    absent_means: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", freeze(self.details))
        if not self.found and not self.proves and self.absent_means:
            object.__setattr__(self, "proves", f"nothing: {self.absent_means}")

    def to_json(self) -> JSONObject:
        return {
            "layer": self.name,
            "found": self.found,
            "proves": self.proves,
            "absent_means": self.absent_means,
            "details": thaw_object(self.details),
        }


@dataclass(frozen=True)
class MediaVerdict:
    """The outcome, the failing codes (for ``invalid``), the manifest shown to the user and the layer report.

    ``manifest`` is the image's own C2PA manifest as a deep read-only copy.
    """

    outcome: Outcome
    codes: tuple[str, ...]
    manifest_id: str | None
    manifest: FrozenJSONObject | None
    watermark: WatermarkDetection | None
    layers: tuple[Layer, ...]
    content_sha256: str
    #: Layers that disagree with each other, one sentence each (empty when they agree).
    contradictions: tuple[str, ...] = ()
    #: The embedded claim and the watermark's own manifest side by side, when a different manifest was signed
    #: over a marked image (``embedded``, ``recovered``, ``watermark``, ``disagreements``); None otherwise.
    conflict: FrozenJSONObject | None = None

    def __post_init__(self) -> None:
        if self.manifest is not None:
            object.__setattr__(self, "manifest", freeze(self.manifest))
        if self.conflict is not None:
            object.__setattr__(self, "conflict", freeze(self.conflict))

    @property
    def machine_readable_ai_marking(self) -> bool:
        """Art. 50(2): a found layer says, machine-readably, that the image is AI-generated: our watermark, or
        signed metadata that states an AI source type (a valid manifest without one marks nothing as AI)."""
        for layer in self.layers:
            if layer.found and layer.name == "watermark":
                return True
            if layer.found and layer.name == "signed-metadata" and layer.details.get("digital_source_type_ai"):
                return True
        return False

    def to_json(self) -> JSONObject:
        return {
            "format": VERDICT_FORMAT,
            "outcome": self.outcome.value,
            "codes": list(self.codes),
            "manifest_id": self.manifest_id,
            "manifest": thaw_object(self.manifest) if self.manifest is not None else None,
            "watermark": self.watermark.to_json() if self.watermark is not None else None,
            "content_sha256": self.content_sha256,
            "conflict": thaw_object(self.conflict) if self.conflict is not None else None,
            "article_50": {
                "machine_readable_ai_marking": self.machine_readable_ai_marking,
                "layers": [layer.to_json() for layer in self.layers],
                "contradictions": list(self.contradictions),
            },
        }


def _policy(reading: CredentialReading) -> tuple[Outcome, tuple[str, ...]]:
    failures = tuple(code for code in reading.failure if code != UNTRUSTED)
    if failures or reading.state == "Invalid":
        return Outcome.INVALID, failures or reading.failure or ("manifest.invalid",)
    if reading.state == "Trusted" and UNTRUSTED not in reading.failure:
        return Outcome.TRUSTED, ()
    return Outcome.VALID_UNTRUSTED, (UNTRUSTED,) if UNTRUSTED in reading.failure else ()


def _recovered_policy(reading: CredentialReading, binding: str) -> tuple[Outcome, tuple[str, ...]]:
    failures = tuple(code for code in reading.failure if code not in HARD_BINDING_CODES)
    if failures:
        return Outcome.INVALID, failures
    if (ALGORITHM, binding) not in reading.soft_bindings():
        return Outcome.INVALID, ("softBinding.mismatch",)
    if "claimSignature.validated" not in reading.success:
        return Outcome.INVALID, ("claimSignature.missing",)
    if "signingCredential.trusted" not in reading.success:
        return Outcome.INVALID, (UNTRUSTED,)
    return Outcome.RECOVERED, ()


def verify_image(
    data: bytes,
    *,
    keys: list[MediaKey],
    trust_anchors_pem: bytes | None,
    repository: SoftBindingRepository | None = None,
    check_log: LogChecker | None = None,
    search: bool = True,
) -> MediaVerdict:
    """Verify one image under the policy above.  Never fetches anything remote.

    A truncated file (its container ends before its image data) is bad input, not broken provenance:
    it raises :class:`ImageInputError` whether or not it carries a manifest.  Pixels that are complete
    but do not decode (a corrupted scan) still leave the signed manifest to judge: its hard binding is
    a hash of the bytes, so a file with a manifest gets its verdict (with ``image.undecodable`` added
    to the codes and no watermark layer); one without a manifest raises the decoder's error.

    When the watermark's record is not the one the embedded manifest declares (another manifest was
    signed over a marked image), the repository's manifest for the watermark is validated too and the
    verdict's ``conflict`` sets both claims side by side.
    """
    digest = hashlib.sha256(data).hexdigest()
    try:
        image = decode_image(data, detect_side=DETECT_SIDE)  # only detection reads these pixels
    except ImageInputError:
        sniffed = _sniff_mime(data)
        if sniffed is None or len(data) > MAX_IMAGE_BYTES or truncation(data) is not None:
            raise
        undecodable = read_credentials(data, sniffed, trust_anchors_pem=trust_anchors_pem)
        if undecodable is None or _unparsed(undecodable):
            raise
        outcome, codes = _policy(undecodable)
        found = _LayerEvidence(undecodable, outcome, codes, None, None, None, False, _anchors(trust_anchors_pem))
        layers = _layers(found, check_log)
        return MediaVerdict(
            outcome=outcome,
            codes=(*codes, "image.undecodable"),
            manifest_id=undecodable.manifest_id,
            manifest=undecodable.manifest,
            watermark=None,
            layers=layers,
            content_sha256=digest,
            contradictions=_contradictions(found, layers),
        )
    embedded = read_credentials(data, image.mime_type, trust_anchors_pem=trust_anchors_pem)
    watermark = detect_watermark(image.pixels, keys, search=search) if keys else None
    binding = watermark.binding_value if watermark is not None else None

    reading: CredentialReading | None = embedded
    log_index: int | None = None
    stored_sha: str | None = None
    recovered = False
    conflict: JSONObject | None = None
    if embedded is not None:
        outcome, codes = _policy(embedded)
        bindings = embedded.soft_bindings()
        if outcome is not Outcome.INVALID and binding is not None and bindings and (ALGORITHM, binding) not in bindings:
            outcome, codes = Outcome.INVALID, ("softBinding.mismatch",)
        if binding is not None and watermark is not None:
            conflict = _conflict(data, image.mime_type, embedded, outcome, watermark, repository, trust_anchors_pem)
    elif binding is not None:
        outcome, codes = Outcome.WATERMARK_ONLY, ("softBinding.manifestNotFound",)
        candidate, match = _recover(data, image.mime_type, binding, repository, trust_anchors_pem)
        if candidate is not None and match is not None:
            outcome, codes = _recovered_policy(candidate, binding)
            reading, log_index, stored_sha, recovered = candidate, match.log_index, match.content_sha256, True
    else:
        outcome, codes = Outcome.UNMARKED, ()

    if embedded is not None and binding is not None and repository is not None:
        for found_match in repository.by_binding(ALGORITHM, binding):
            if found_match.manifest_id == embedded.manifest_id:
                log_index, stored_sha = found_match.log_index, found_match.content_sha256
    found = _LayerEvidence(
        reading, outcome, codes, watermark, log_index, stored_sha, recovered, _anchors(trust_anchors_pem)
    )
    layers = _layers(found, check_log)
    recovered_claim = conflict.get("recovered") if conflict is not None else None
    if isinstance(recovered_claim, dict):
        layers = tuple(
            _conflicting_recovery(recovered_claim) if layer.name == "recovered-manifest" else layer for layer in layers
        )
    disagreements = conflict.get("disagreements") if conflict is not None else None
    return MediaVerdict(
        outcome=outcome,
        codes=codes,
        manifest_id=reading.manifest_id if reading is not None else None,
        manifest=reading.manifest if reading is not None else None,
        watermark=watermark,
        layers=layers,
        content_sha256=digest,
        contradictions=_contradictions(found, layers)
        + tuple(str(line) for line in (disagreements if isinstance(disagreements, list) else [])),
        conflict=conflict,
    )


def _unparsed(reading: CredentialReading) -> bool:
    """c2pa-rs could not even parse the container: there is no claim to judge, only a damaged file."""
    return reading.manifest is None and all(code.startswith("manifest.unreadable") for code in reading.failure)


def _recover(
    data: bytes,
    mime_type: str,
    binding: str,
    repository: SoftBindingRepository | None,
    trust_anchors_pem: bytes | None,
) -> tuple[CredentialReading | None, BindingMatch | None]:
    """The repository's manifest for ``binding`` read against ``data``: the first that passes the recovered
    policy, else the last one that could be read (None, None when the repository holds none)."""
    chosen: tuple[CredentialReading | None, BindingMatch | None] = (None, None)
    for match in repository.by_binding(ALGORITHM, binding) if repository is not None else []:
        store = repository.manifest(match.manifest_id) if repository is not None else None
        if store is None:
            continue
        candidate = read_credentials(data, mime_type, trust_anchors_pem=trust_anchors_pem, manifest_store=store)
        if candidate is None:
            continue
        chosen = (candidate, match)
        if _recovered_policy(candidate, binding)[0] is Outcome.RECOVERED:
            break
    return chosen


def _claim(reading: CredentialReading, outcome: Outcome, codes: tuple[str, ...]) -> JSONObject:
    """What one manifest claims, for the side-by-side view of a conflict."""
    types = reading.digital_source_types()
    return {
        "manifest_id": reading.manifest_id,
        "outcome": outcome.value,
        "codes": list(codes),
        **_manifest_facts(reading),
        "digital_source_type": types[0] if types else None,
        "soft_bindings": [{"alg": alg, "value": value} for alg, value in reading.soft_bindings()],
    }


def _ingredient_manifests(reading: CredentialReading) -> set[str]:
    """Manifest ids the active manifest names as its ingredients' (an edit of a marked image names the original)."""
    manifest = reading.manifest
    found: set[str] = set()
    for ingredient in _sequence(manifest.get("ingredients") if manifest is not None else None):
        if isinstance(ingredient, Mapping) and isinstance(ingredient.get("active_manifest"), str):
            found.add(str(ingredient["active_manifest"]))
    return found


def _conflict(
    data: bytes,
    mime_type: str,
    embedded: CredentialReading,
    outcome: Outcome,
    watermark: WatermarkDetection,
    repository: SoftBindingRepository | None,
    trust_anchors_pem: bytes | None,
) -> JSONObject | None:
    """The embedded claim and the watermark's recovered manifest side by side, when they are not the same claim.

    None when the embedded manifest is the watermark's own (it declares the binding and the repository
    files no other manifest under it) or names the watermark's manifest as an ingredient (an edit).
    """
    binding = watermark.binding_value
    if binding is None:
        return None
    declared = (ALGORITHM, binding) in embedded.soft_bindings()
    on_file = [m.manifest_id for m in repository.by_binding(ALGORITHM, binding)] if repository is not None else []
    if declared and (not on_file or embedded.manifest_id in on_file):
        return None
    if on_file and set(on_file) & _ingredient_manifests(embedded):
        return None
    recovered, _match = _recover(data, mime_type, binding, repository, trust_anchors_pem)
    recovered_claim: JSONObject | None = None
    embedded_claim = _claim(embedded, outcome, tuple(c for c in embedded.failure if c != UNTRUSTED))
    lines: list[JSONValue] = []
    if declared:
        lines.append(
            f"the embedded manifest {embedded.manifest_id} declares this watermark's record, but the repository "
            f"files it under another manifest ({', '.join(on_file)}): the watermark's binding was copied"
        )
    else:
        lines.append(
            f"the pixels carry watermark record {watermark.record_id} (key {watermark.key_id}), which the embedded "
            f"manifest {embedded.manifest_id} does not declare: another manifest was signed over a marked image"
        )
    if recovered is not None:
        recovered_outcome, recovered_codes = _recovered_policy(recovered, binding)
        recovered_claim = _claim(recovered, recovered_outcome, recovered_codes)
        for name, label in (("digital_source_type", "source type"), ("signer", "signer"), ("model_id", "model")):
            if embedded_claim.get(name) != recovered_claim.get(name):
                lines.append(
                    f"{label}: the embedded manifest says {embedded_claim.get(name) or 'nothing'}, the watermark's "
                    f"manifest says {recovered_claim.get(name) or 'nothing'}"
                )
    else:
        lines.append("no manifest is on file for the watermark's record here, so only the watermark speaks for it")
    return {
        "embedded": embedded_claim,
        "recovered": recovered_claim,
        "watermark": {"key_id": watermark.key_id, "record_id": watermark.record_id, "binding_value": binding},
        "disagreements": lines,
    }


def _sniff_mime(data: bytes) -> str | None:
    """The container type from the magic bytes (for files the decoder refused)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class _LayerEvidence:
    """What verification found, for the Article 50 layer report."""

    reading: CredentialReading | None
    outcome: Outcome
    codes: tuple[str, ...]
    watermark: WatermarkDetection | None
    log_index: int | None
    stored_sha: str | None
    recovered: bool
    anchors: tuple[FrozenJSONObject, ...]


def _anchors(trust_anchors_pem: bytes | None) -> tuple[FrozenJSONObject, ...]:
    """Subject and SHA-256 fingerprint of each trust anchor the verdict was judged against."""
    if not trust_anchors_pem:
        return ()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        certificates = x509.load_pem_x509_certificates(trust_anchors_pem)
    except ValueError:
        return (freeze({"subject": "(unreadable trust anchor PEM)", "sha256": None}),)
    return tuple(
        freeze({"subject": c.subject.rfc4514_string(), "sha256": c.fingerprint(hashes.SHA256()).hex()})
        for c in certificates
    )


def _manifest_facts(reading: CredentialReading | None) -> JSONObject:
    """Signer, model, claim generator and claim time as the manifest states them (``None`` when it does not)."""
    manifest = reading.manifest if reading is not None else None
    info = manifest.get("signature_info") if manifest is not None else None
    signer = None
    claim_time = None
    if isinstance(info, Mapping):
        signer = ", ".join(str(info[k]) for k in ("common_name", "issuer") if isinstance(info.get(k), str)) or None
        claim_time = str(info["time"]) if isinstance(info.get("time"), str) else None
    model_id = None
    for assertion in _sequence(manifest.get("assertions") if manifest is not None else None):
        if not isinstance(assertion, Mapping) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        data = assertion.get("data")
        for action in _sequence(data.get("actions") if isinstance(data, Mapping) else None):
            agent = action.get("softwareAgent") if isinstance(action, Mapping) else None
            if isinstance(action, Mapping) and action.get("action") == "c2pa.created" and isinstance(agent, Mapping):
                model_id = str(agent.get("name")) if agent.get("name") is not None else None
    return {"signer": signer, "model_id": model_id, "claim_time": claim_time}


def _sequence(value: object) -> tuple[object, ...]:
    return tuple(value) if isinstance(value, list | tuple) else ()


def _metadata_layer(found: _LayerEvidence) -> Layer:
    reading, outcome = found.reading, found.outcome
    valid = reading is not None and outcome in (Outcome.TRUSTED, Outcome.VALID_UNTRUSTED) and not found.recovered
    ai = reading is not None and any(t.endswith("/trainedAlgorithmicMedia") for t in reading.digital_source_types())
    trusted = outcome is Outcome.TRUSTED
    facts = _manifest_facts(reading) if valid else {"signer": None, "model_id": None, "claim_time": None}
    details: JSONObject = {
        "embedded": reading is not None and not found.recovered,
        "state": reading.state if reading is not None else None,
        "trusted": trusted,
        "digital_source_type_ai": ai,
        **facts,
        "trust_anchors": [thaw_object(anchor) for anchor in found.anchors],
    }
    if not valid:
        why = (
            "the file carries a manifest that failed validation (see codes)"
            if reading is not None and not (found.recovered)
            else "the file carries no embedded C2PA manifest"
        )
        return Layer(
            "signed-metadata",
            False,
            "",
            details,
            absent_means=f"{why}: metadata is often stripped by "
            "uploads and re-encoding, so absence does not show the image was made by a person",
        )
    who = (
        "a signer chaining to a configured trust anchor"
        if trusted
        else "a signer that does NOT chain to any "
        "configured trust anchor (the statement is intact, but nobody vouches for who made it)"
    )
    what = (
        "states the image was created by a trained algorithm (digitalSourceType trainedAlgorithmicMedia)"
        if ai
        else "does NOT state an AI source type, so it does not mark the image as AI-generated"
    )
    return Layer(
        "signed-metadata", True, f"a C2PA manifest signed by {who} {what}, bound to these exact bytes", details
    )


def _watermark_layer(found: _LayerEvidence) -> Layer:
    mark = found.watermark
    if mark is None:
        return Layer(
            "watermark",
            False,
            "",
            {"checked": False},
            absent_means="not checked: no watermark key was "
            "available (or the pixels did not decode), so nothing is known about a watermark",
        )
    if not mark.found:
        return Layer(
            "watermark",
            False,
            "",
            mark.to_json(),
            absent_means="no watermark of the keys checked: the "
            "image was not marked with them, or was altered beyond the detector's reach (large crops, "
            "regeneration); another provider's mark is not looked for",
        )
    return Layer(
        "watermark",
        True,
        f"an invisible watermark of key {mark.key_id} carries record {mark.record_id}; "
        f"an unmarked image shows this with probability at most {mark.false_positive_bound:.1e}",
        mark.to_json(),
    )


def _recovery_layer(found: _LayerEvidence) -> Layer:
    reading = found.reading
    details: JSONObject = {"manifest_id": reading.manifest_id if reading is not None and found.recovered else None}
    if found.outcome is Outcome.RECOVERED:
        return Layer(
            "recovered-manifest",
            True,
            "the watermark led to the original signed manifest in the soft-"
            "binding repository; its signature and trust verify, only the hard binding to the original "
            "bytes is broken by re-encoding",
            details,
        )
    if found.recovered:
        meaning = "a manifest was found for the watermark but it does not verify (see codes)"
    elif reading is not None:
        meaning = "not needed: the file carries its own manifest"
    else:
        meaning = "no manifest is known for this watermark here (no repository, or the image was not registered)"
    return Layer("recovered-manifest", False, "", details, absent_means=meaning)


def _conflicting_recovery(claim: JSONObject) -> Layer:
    """The recovered-manifest layer when the watermark leads to a manifest other than the embedded one."""
    details: JSONObject = {"manifest_id": claim.get("manifest_id"), "outcome": claim.get("outcome")}
    if claim.get("outcome") == Outcome.RECOVERED.value:
        return Layer(
            "recovered-manifest",
            True,
            f"the watermark leads to manifest {claim.get('manifest_id')} in the soft-binding repository (signed "
            f"by a trusted signer, model {claim.get('model_id') or '-'}), NOT the manifest embedded in this file: "
            "see the conflict",
            details,
        )
    return Layer("recovered-manifest", False, "", details, absent_means="the watermark's manifest on file does not "
                 f"verify ({', '.join(map(str, _sequence(claim.get('codes'))))}); see the conflict")  # fmt: skip


def _log_layer(found: _LayerEvidence, check_log: LogChecker | None) -> Layer:
    reading, index, stored = found.reading, found.log_index, found.stored_sha
    confirmed = False
    if index is not None and check_log is not None and stored is not None and reading is not None:
        confirmed = check_log(index, stored, reading.manifest_id or "")
    details: JSONObject = {"log_index": index if confirmed else None, "original_sha256": stored if confirmed else None}
    if confirmed:
        return Layer(
            "log-entry",
            True,
            f"log entry {index} recorded the signed original (SHA-256 {str(stored)[:16]}…"
            " and its manifest id) when it was marked; an inclusion proof (tracemark tlog prove) shows the "
            "log cannot have dropped or changed it",
            details,
        )
    if index is not None and check_log is not None:
        meaning = f"the repository names log entry {index}, but that entry does not record this manifest"
    elif check_log is None:
        meaning = "not checked: no log was available to this verifier"
    else:
        meaning = "no log entry is known for this image here (not logged, or logged by another log)"
    return Layer("log-entry", False, "", details, absent_means=meaning)


def _layers(found: _LayerEvidence, check_log: LogChecker | None) -> tuple[Layer, ...]:
    return _metadata_layer(found), _watermark_layer(found), _recovery_layer(found), _log_layer(found, check_log)


def _contradictions(found: _LayerEvidence, layers: tuple[Layer, ...]) -> tuple[str, ...]:
    """Sentences naming layers that disagree; each is evidence of tampering, damage or a mis-configured signer."""
    by_name = {layer.name: layer for layer in layers}
    metadata, mark = by_name["signed-metadata"], by_name["watermark"]
    out = []
    if metadata.found and mark.found and not metadata.details.get("digital_source_type_ai"):
        out.append("the watermark marks the image as AI-generated, the signed manifest does not state an AI source")
    if "softBinding.mismatch" in found.codes:
        out.append("the watermark's record differs from the soft binding the manifest declares")
    if found.reading is not None and not found.recovered and found.outcome is Outcome.INVALID and mark.found:
        out.append(
            "the watermark is present but the embedded manifest failed validation: the metadata was altered or damaged"
        )
    declared = found.reading.soft_bindings() if found.reading is not None else []
    if metadata.found and declared and found.watermark is not None and not mark.found:
        out.append("the manifest declares a watermark (soft binding) but none was found in the pixels")
    if (
        found.log_index is not None
        and not by_name["log-entry"].found
        and by_name["log-entry"].absent_means.startswith("the repository names")
    ):
        out.append("the repository and the log disagree about this image's entry")
    return tuple(out)


def signer_for(chain_pem: bytes, private_key_pem: bytes) -> ContentSigner:
    """A signer from PEM files (the development chain, or a production certificate and key)."""
    if not chain_pem.strip() or not private_key_pem.strip():
        raise ContentCredentialError("the C2PA signer needs a certificate chain and a private key")
    return ContentSigner(chain_pem=chain_pem, private_key_pem=private_key_pem)
