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
from collections.abc import Callable
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", freeze(self.details))

    def to_json(self) -> JSONObject:
        return {"layer": self.name, "found": self.found, "proves": self.proves, "details": thaw_object(self.details)}


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

    def __post_init__(self) -> None:
        if self.manifest is not None:
            object.__setattr__(self, "manifest", freeze(self.manifest))

    @property
    def machine_readable_ai_marking(self) -> bool:
        """Art. 50(2): at least one found layer says, in a machine-readable way, that the image is AI-generated."""
        return any(layer.found for layer in self.layers if layer.name in ("signed-metadata", "watermark"))

    def to_json(self) -> JSONObject:
        return {
            "outcome": self.outcome.value,
            "codes": list(self.codes),
            "manifest_id": self.manifest_id,
            "manifest": thaw_object(self.manifest) if self.manifest is not None else None,
            "watermark": self.watermark.to_json() if self.watermark is not None else None,
            "content_sha256": self.content_sha256,
            "article_50": {
                "machine_readable_ai_marking": self.machine_readable_ai_marking,
                "layers": [layer.to_json() for layer in self.layers],
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
        layers = _layers(undecodable, outcome, None, None, None, check_log, False)
        return MediaVerdict(
            outcome=outcome,
            codes=(*codes, "image.undecodable"),
            manifest_id=undecodable.manifest_id,
            manifest=undecodable.manifest,
            watermark=None,
            layers=layers,
            content_sha256=digest,
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
    layers = _layers(reading, outcome, watermark, log_index, stored_sha, check_log, recovered)
    return MediaVerdict(
        outcome=outcome,
        codes=codes,
        manifest_id=reading.manifest_id if reading is not None else None,
        manifest=reading.manifest if reading is not None else None,
        watermark=watermark,
        layers=layers,
        content_sha256=digest,
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


def _layers(
    reading: CredentialReading | None,
    outcome: Outcome,
    watermark: WatermarkDetection | None,
    log_index: int | None,
    stored_sha: str | None,
    check_log: LogChecker | None,
    recovered: bool,
) -> tuple[Layer, ...]:
    metadata_ok = reading is not None and outcome in (Outcome.TRUSTED, Outcome.VALID_UNTRUSTED)
    ai_generated = reading is not None and any(
        t.endswith("/trainedAlgorithmicMedia") for t in reading.digital_source_types()
    )
    metadata = Layer(
        name="signed-metadata",
        found=metadata_ok and not recovered,
        proves="a C2PA manifest, signed by the certificate holder, states the image was created by a trained "
        "algorithm (digitalSourceType trainedAlgorithmicMedia) and binds that statement to these exact bytes",
        details={
            "embedded": reading is not None and not recovered,
            "state": reading.state if reading is not None else None,
            "trusted": outcome is Outcome.TRUSTED,
            "digital_source_type_ai": ai_generated,
        },
    )
    mark = Layer(
        name="watermark",
        found=watermark is not None and watermark.found,
        proves="an invisible keyed watermark in the pixels carries the key id and record id; it survives "
        "re-encoding, resizing and metadata stripping (false-positive bound reported)",
        details=watermark.to_json() if watermark is not None else {"checked": False},
    )
    recovery = Layer(
        name="recovered-manifest",
        found=outcome is Outcome.RECOVERED,
        proves="the watermark led to the original signed manifest in the soft-binding repository; its "
        "signature and trust verify, only the hard binding to the original bytes is broken by re-encoding",
        details={"manifest_id": reading.manifest_id if reading is not None and recovered else None},
    )
    confirmed = False
    if log_index is not None and check_log is not None and stored_sha is not None and reading is not None:
        confirmed = check_log(log_index, stored_sha, reading.manifest_id or "")
    log = Layer(
        name="log-entry",
        found=confirmed,
        proves="a transparency-log entry recorded the signed original (its SHA-256 and manifest id) at marking "
        "time; an inclusion proof (tracemark tlog prove) shows the log cannot have dropped or changed it",
        details={"log_index": log_index if confirmed else None, "original_sha256": stored_sha if confirmed else None},
    )
    return metadata, mark, recovery, log


def signer_for(chain_pem: bytes, private_key_pem: bytes) -> ContentSigner:
    """A signer from PEM files (the development chain, or a production certificate and key)."""
    if not chain_pem.strip() or not private_key_pem.strip():
        raise ContentCredentialError("the C2PA signer needs a certificate chain and a private key")
    return ContentSigner(chain_pem=chain_pem, private_key_pem=private_key_pem)
