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

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from tracemark._json import FrozenDict, FrozenJSONObject, JSONObject, freeze, thaw_object
from tracemark.errors import ContentCredentialError, ImageInputError
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
)
from tracemark.media._repository import SoftBindingRepository
from tracemark.media._watermark import (
    ALGORITHM,
    RECORD_ID_BYTES,
    MediaKey,
    WatermarkDetection,
    detect_watermark,
    embed_watermark,
)

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
) -> MarkedImage:
    """Watermark, sign, log and store one image; ``output_format`` defaults to the input's format."""
    source = decode_image(data, min_side=MIN_MARK_SIDE)
    record_id = os.urandom(RECORD_ID_BYTES)
    marked = DecodedImage(pixels=embed_watermark(source.pixels, key, record_id), alpha=source.alpha,
                          format=source.format)  # fmt: skip
    image_format = output_format or source.format
    encoded = encode_image(marked, image_format)
    binding_value = key.tag.hex() + record_id.hex()
    definition = manifest_definition(title=title, algorithm=ALGORITHM, binding_value=binding_value, model_id=model_id)
    mime_type = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[image_format]
    signed = sign_asset(encoded, mime_type, definition, signer)
    digest = hashlib.sha256(signed.data).hexdigest()
    log_index = record(signed.data, signed.manifest_id, key.key_id) if record is not None else None
    if repository is not None:
        repository.add(alg=ALGORITHM, value=binding_value, manifest_id=signed.manifest_id,
                       manifest=signed.manifest_store, content_sha256=digest, log_index=log_index)  # fmt: skip
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

    def __post_init__(self) -> None:
        if self.manifest is not None:
            object.__setattr__(self, "manifest", freeze(self.manifest))

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

    Pixels that do not decode (a corrupted scan) still leave the signed manifest to judge:
    its hard binding is a hash of the bytes, so a file with a manifest gets its verdict
    (with ``image.undecodable`` added to the codes and no watermark layer); one without a
    manifest raises the decoder's :class:`ImageInputError`.
    """
    digest = hashlib.sha256(data).hexdigest()
    try:
        image = decode_image(data, detect_side=DETECT_SIDE)  # only detection reads these pixels
    except ImageInputError:
        sniffed = _sniff_mime(data)
        if sniffed is None or len(data) > MAX_IMAGE_BYTES:
            raise
        undecodable = read_credentials(data, sniffed, trust_anchors_pem=trust_anchors_pem)
        if undecodable is None:
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
    if embedded is not None:
        outcome, codes = _policy(embedded)
        bindings = embedded.soft_bindings()
        if outcome is not Outcome.INVALID and binding is not None and bindings and (ALGORITHM, binding) not in bindings:
            outcome, codes = Outcome.INVALID, ("softBinding.mismatch",)
    elif binding is not None:
        outcome, codes = Outcome.WATERMARK_ONLY, ("softBinding.manifestNotFound",)
        matches = repository.by_binding(ALGORITHM, binding) if repository is not None else []
        for match in matches:
            store = repository.manifest(match.manifest_id) if repository is not None else None
            if store is None:
                continue
            candidate = read_credentials(data, image.mime_type, trust_anchors_pem=trust_anchors_pem,
                                         manifest_store=store)  # fmt: skip
            if candidate is None:
                continue
            outcome, codes = _recovered_policy(candidate, binding)
            reading, log_index, stored_sha, recovered = candidate, match.log_index, match.content_sha256, True
            if outcome is Outcome.RECOVERED:
                break
    else:
        outcome, codes = Outcome.UNMARKED, ()

    if embedded is not None and binding is not None and repository is not None:
        for match in repository.by_binding(ALGORITHM, binding):
            if match.manifest_id == embedded.manifest_id:
                log_index, stored_sha = match.log_index, match.content_sha256
    found = _LayerEvidence(
        reading, outcome, codes, watermark, log_index, stored_sha, recovered, _anchors(trust_anchors_pem)
    )
    layers = _layers(found, check_log)
    return MediaVerdict(
        outcome=outcome,
        codes=codes,
        manifest_id=reading.manifest_id if reading is not None else None,
        manifest=reading.manifest if reading is not None else None,
        watermark=watermark,
        layers=layers,
        content_sha256=digest,
        contradictions=_contradictions(found, layers),
    )


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
