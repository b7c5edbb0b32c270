"""Real samples through the real layers: marked text from the model, marked and signed images, log entries.

Each function makes outputs the way the deployment would (its switches decide which layers are
on), records them in the log when the deployment logs outputs, then tests them with the same
detectors a third party uses.  What it finds is written to the evidence folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tracemark.comply._deployment import Deployment
from tracemark.comply._evidence import EvidenceFolder
from tracemark.comply._report import Evidence, Point
from tracemark.errors import ComplianceError
from tracemark.keys import Keyring, TextKey, load_media_certificate
from tracemark.tlog import ProvenanceRecord, RecordKind

if TYPE_CHECKING:
    from tracemark.media import ContentSigner, MediaKey, SoftBindingRepository

#: Token counts at which each text sample's prefix is tested, for the detectability-vs-length plot.
PREFIX_LENGTHS = (25, 50, 100, 150, 200, 250)
#: Prompts used when the deployment lists none.
DEFAULT_PROMPTS = (
    "The documentation explains how",
    "In this module, the function",
    "To configure the logging handler,",
)

#: Appends one record to the deployment's log; returns its index.
Recorder = Callable[[ProvenanceRecord], int]


@dataclass(frozen=True)
class TextSample:
    """One generated text, its detection verdict and where it was logged."""

    name: str
    content_sha256: str
    tokens_generated: int
    marked: bool
    p_value: float
    log10_p_value: float
    tokens_scored: int
    key_id: str
    scheme: str
    log_index: int | None
    evidence: tuple[Evidence, ...]
    #: (tokens, -log10 p) of prefixes of this sample.
    prefixes: tuple[Point, ...]


@dataclass(frozen=True)
class ImageSample:
    """One marked image, its verification and what happened when its metadata was stripped."""

    name: str
    content_sha256: str
    outcome: str
    codes: tuple[str, ...]
    watermark_found: bool
    false_positive_bound: float | None
    manifest_id: str | None
    manifest_state: str | None
    digital_source_type_ai: bool
    signer: str | None
    stripped_outcome: str | None
    log_index: int | None
    evidence: tuple[Evidence, ...]
    #: Layers of the verdict that contradict each other (``media verify``'s flags).
    contradictions: tuple[str, ...] = ()


def model_capacity(model_dir: Path) -> int:
    """The model's context length (``n_positions`` or ``max_position_embeddings``), 1024 if unknown."""
    import json

    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 1024
    for name in ("n_positions", "max_position_embeddings"):
        value = config.get(name) if isinstance(config, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return 1024


def make_text_samples(
    deployment: Deployment,
    model_dir: Path,
    model_id: str,
    key: TextKey,
    evidence: EvidenceFolder,
    record: Recorder | None,
) -> tuple[TextSample, ...]:
    """Generate one marked text per prompt at the floor length, log it, and detect it (whole and prefixes)."""
    from tracemark.text import TextTokenizer, WatermarkedGenerator, detect_watermark

    settings = deployment.text
    prompts = settings.prompts or DEFAULT_PROMPTS
    tokenizer = TextTokenizer(model_dir)
    longest_prompt = max(len(tokenizer.encode(p).ids) for p in prompts)
    capacity = model_capacity(model_dir) - longest_prompt
    if capacity < 1:
        raise ComplianceError(f"the prompts fill the model's context ({model_capacity(model_dir)} tokens)")
    length = min(settings.min_tokens, capacity)
    _quiet_model_loading()
    generations = WatermarkedGenerator(model_dir, key).generate(
        list(prompts), max_new_tokens=length, seed=settings.seed
    )
    samples = []
    for number, generation in enumerate(generations):
        name = f"text-{number}"
        data = generation.text.encode("utf-8")
        files = [
            evidence.write(
                f"text/{name}.txt",
                data,
                f"generated text {number} ({len(generation.token_ids)} tokens, prompt {generation.prompt!r})",
            )
        ]
        log_index = None
        if record is not None:
            log_index = record(
                ProvenanceRecord.create(kind=RecordKind.TEXT, key_id=key.key_id, model_id=model_id, content=data)
            )
        verdict = detect_watermark(generation.text, key, tokenizer, alpha=settings.alpha)
        files.append(
            evidence.write_json(
                f"text/{name}.verdict.json", verdict.to_json(), f"tracemark text detect verdict for {name}"
            )
        )
        prefixes = []
        for tokens in PREFIX_LENGTHS:
            if tokens > len(generation.token_ids):
                break
            prefix = tokenizer.decode(list(generation.token_ids[:tokens]))
            partial = detect_watermark(prefix, key, tokenizer, alpha=settings.alpha, scan_windows=False)
            prefixes.append(Point(float(tokens), -partial.log10_p_value, name))
        samples.append(
            TextSample(
                name=name,
                content_sha256=hashlib.sha256(data).hexdigest(),
                tokens_generated=len(generation.token_ids),
                marked=verdict.marked,
                p_value=verdict.p_value,
                log10_p_value=verdict.log10_p_value,
                tokens_scored=verdict.tokens_scored,
                key_id=key.key_id,
                scheme=f"{verdict.scheme}/{verdict.scheme_version}",
                log_index=log_index,
                evidence=tuple(files),
                prefixes=tuple(prefixes),
            )
        )
    return tuple(samples)


def _quiet_model_loading() -> None:
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def make_image_samples(
    deployment: Deployment,
    model_id: str,
    keyring: Keyring,
    database: Path,
    evidence: EvidenceFolder,
    record: Recorder | None,
) -> tuple[ImageSample, ...]:
    """Mark each input image with the layers switched on, log it, verify it, then strip it and verify again."""
    from tracemark.media import MAX_IMAGE_BYTES, SoftBindingRepository, media_key, signer_for
    from tracemark.tlog import image_log_checker

    settings = deployment.image
    key = media_key(keyring)
    certificate = load_media_certificate(keyring)
    signer = signer_for(certificate.chain_pem, certificate.private_key_pem)
    samples = []
    with SoftBindingRepository(database) as repository:

        def read_record(index: int) -> ProvenanceRecord:
            from tracemark.tlog import TransparencyLog

            with TransparencyLog.open(database) as log:
                return log.record(index)

        check_log = image_log_checker(read_record)
        for number, source in enumerate(settings.inputs):
            try:
                if source.stat().st_size > MAX_IMAGE_BYTES:
                    raise ComplianceError(f"{source} is larger than {MAX_IMAGE_BYTES} bytes")
                original = source.read_bytes()
            except OSError as exc:
                raise ComplianceError(f"cannot read image {source}: {exc.strerror}") from None
            context = _ImageContext(key, signer, certificate.root_pem, repository, check_log, model_id, record)
            samples.append(_image_sample(f"image-{number}", source, original, deployment, context, evidence))
    return tuple(samples)


class _ImageContext:
    """What marking and verifying one image needs (the media objects are imported with the media extra)."""

    def __init__(
        self,
        key: MediaKey,
        signer: ContentSigner,
        anchors: bytes,
        repository: SoftBindingRepository,
        check_log: Callable[[int, str, str], bool],
        model_id: str,
        record: Recorder | None,
    ) -> None:
        self.key, self.signer, self.anchors, self.repository = key, signer, anchors, repository
        self.check_log, self.model_id, self.record = check_log, model_id, record


def _produce(name: str, original: bytes, deployment: Deployment, context: _ImageContext) -> tuple[bytes, int | None]:
    """The image as the deployment outputs it, and its log index."""
    from tracemark.media import decode_image, encode_image, mark_image
    from tracemark.tlog import image_recorder

    settings = deployment.image
    if not settings.watermark:
        return original, None
    if settings.c2pa:
        recorder = image_recorder(context.record, context.model_id) if context.record is not None else None
        marked = mark_image(
            original,
            key=context.key,
            signer=context.signer,
            model_id=context.model_id,
            title=name,
            repository=context.repository,
            record=recorder,
        )
        return marked.data, marked.log_index
    # The watermark alone: the marked pixels re-encoded without the manifest mark_image signed.
    marked = mark_image(original, key=context.key, signer=context.signer, model_id=context.model_id, title=name)
    decoded = decode_image(marked.data)
    return encode_image(decoded, decoded.format, quality=95), None


def _image_sample(
    name: str, source: Path, original: bytes, deployment: Deployment, context: _ImageContext, evidence: EvidenceFolder
) -> ImageSample:
    from tracemark.media import decode_image, encode_image, verify_image

    output, log_index = _produce(name, original, deployment, context)
    suffix = {b"\xff\xd8": ".jpg", b"\x89P": ".png"}.get(output[:2], ".webp")
    files = [evidence.write(f"images/{name}{suffix}", output, f"{source.name} as the deployment outputs it")]
    verdict = verify_image(
        output,
        keys=[context.key],
        trust_anchors_pem=context.anchors,
        repository=context.repository,
        check_log=context.check_log,
    )
    files.append(
        evidence.write_json(f"images/{name}.verify.json", verdict.to_json(), f"tracemark media verify of {name}")
    )
    stripped_outcome = None
    if deployment.image.watermark:
        decoded = decode_image(output)
        stripped = encode_image(decoded, "JPEG", quality=80)  # re-encoded: the metadata is gone
        stripped_verdict = verify_image(
            stripped,
            keys=[context.key],
            trust_anchors_pem=context.anchors,
            repository=context.repository,
            check_log=context.check_log,
        )
        stripped_outcome = stripped_verdict.outcome.value
        files.append(
            evidence.write(
                f"images/{name}.stripped.jpg",
                stripped,
                f"{name} with its metadata stripped (decoded and re-encoded as JPEG quality 80)",
            )
        )
        files.append(
            evidence.write_json(
                f"images/{name}.stripped.verify.json",
                stripped_verdict.to_json(),
                f"tracemark media verify of the stripped {name}",
            )
        )
    manifest = verdict.manifest
    mark = verdict.watermark
    metadata = next((layer for layer in verdict.layers if layer.name == "signed-metadata"), None)
    details = metadata.details if metadata is not None else {}
    return ImageSample(
        name=name,
        content_sha256=verdict.content_sha256,
        outcome=verdict.outcome.value,
        codes=verdict.codes,
        watermark_found=bool(mark is not None and mark.found),
        false_positive_bound=mark.false_positive_bound if mark is not None and mark.found else None,
        manifest_id=verdict.manifest_id,
        manifest_state=str(details.get("state")) if details.get("state") is not None else None,
        digital_source_type_ai=bool(details.get("digital_source_type_ai")),
        signer=_signer(manifest),
        stripped_outcome=stripped_outcome,
        log_index=log_index,
        evidence=tuple(files),
        contradictions=verdict.contradictions,
    )


def _signer(manifest: object) -> str | None:
    """The manifest's signature issuer and common name, as c2pa-rs reports them."""
    from collections.abc import Mapping

    if not isinstance(manifest, Mapping):
        return None
    info = manifest.get("signature_info")
    if not isinstance(info, Mapping):
        return None
    parts = [str(info.get(name)) for name in ("common_name", "issuer") if info.get(name)]
    return ", ".join(parts) or None
