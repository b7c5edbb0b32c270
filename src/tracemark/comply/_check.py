"""The provider check: run the deployment's real layers on real samples and write the signed report.

Order of work (each step's files land in the output folder):

1. the keyring (development keys are made when there is none) and the deployment's log; a first
   checkpoint, cosigned by the local witness, opens the period;
2. text samples from the model at the floor length, image samples through the switched-on layers,
   each recorded in the log when the deployment logs outputs;
3. a receipt per logged output, verified offline; the detection interface asked about one sample of each;
4. a closing checkpoint (cosigned), the Article 12 bundle under ``log/``;
5. the rows, ``report.json`` and ``report.html``, signed by the log key and appended to the log.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tracemark import __version__
from tracemark.comply._article12 import LogBundle, cosign_latest, export_log_bundle
from tracemark.comply._assess import Findings, LabelCheck, ReceiptCheck, assess, benchmark_copy
from tracemark.comply._deployment import Deployment, ModelEntry
from tracemark.comply._detection import DetectionProbe, probe_detection
from tracemark.comply._evidence import EvidenceFolder
from tracemark.comply._html import render_html
from tracemark.comply._label import disclosure, label_image, label_text
from tracemark.comply._report import ComplianceReport, DeploymentInfo, Plot, Point, Series
from tracemark.comply._robustness import ROBUST_RATE, image_robustness, text_robustness
from tracemark.comply._samples import ImageSample, TextSample, make_image_samples, make_text_samples
from tracemark.comply._signing import SignedReport, sign_and_log
from tracemark.errors import ComplianceError, MissingExtraError, TlogError
from tracemark.keys import (
    Keyring,
    TextKey,
    default_database_path,
    ensure_log_key,
    ensure_media_certificate,
    tracemark_home,
)
from tracemark.tlog import NoteVerifier, ProvenanceRecord, TransparencyLog, verify_receipt

LIMITS = (
    "Text shorter than the deployment's floor is not claimed to be marked: a watermark there is not reliably "
    "detectable, so such text gets no detectability evidence here.",
    "Audio and video are not marked or detected by tracemark yet; a deployment that outputs them gets a "
    "not-assessed row, never a pass.",
    "Robustness figures are cited from this version's recorded benchmark runs (files and SHA-256 given), not "
    "re-measured during the check.",
    "The witness that cosigns the checkpoints is the local development witness unless the deployment uses "
    "independent witnesses (tracemark tlog cosign); a local witness does not prove the log showed everyone the "
    "same history.",
    "Whether detection is free of charge for authorities, fact-checkers and researchers, and the deployer's "
    "labelling in the field, cannot be checked by software: those rows say what was declared or sampled.",
    "This report is evidence for a provider's own assessment; it is not legal advice and does not replace "
    "the conformity steps the Regulation sets out.",
)


@dataclass(frozen=True)
class CheckResult:
    """The report, where it was written, and where it was logged."""

    report: ComplianceReport
    folder: Path
    signed: SignedReport


def _keyring(model_dir: Path | None) -> Keyring:
    keyring = Keyring()
    keyring.create()
    ensure_log_key(keyring)
    ensure_media_certificate(keyring)
    return keyring


def _text_key(keyring: Keyring, model_dir: Path, key_id: str | None) -> TextKey:
    from tracemark.text import DEFAULT_SCHEME, TextTokenizer, new_text_key, select_text_key

    tokenizer = TextTokenizer(model_dir)
    if key_id is None and not any(k.tokenizer_sha256 == tokenizer.sha256 for k in keyring.list()):
        new_text_key(keyring, DEFAULT_SCHEME, model_dir, label="development key", make_default=not keyring.list())
    return select_text_key(keyring, tokenizer, key_id=key_id)


def _model_for(deployment: Deployment, modality: str) -> ModelEntry | None:
    return next((m for m in deployment.models if modality in m.modalities), None)


def _model_dir(model: ModelEntry) -> Path:
    from tracemark.text import reference_model_dir

    return model.path if model.path is not None else reference_model_dir()


def _verify_receipts(
    log: TransparencyLog, outputs: list[tuple[str, int | None, str]], evidence: EvidenceFolder
) -> tuple[ReceiptCheck, ...]:
    """A receipt per logged output, written out and verified as its holder would (offline, log key only)."""
    verifier = log.verifier
    checks = []
    for name, index, content_sha256 in outputs:
        if index is None:
            continue
        receipt = log.receipt(index, sign=True).to_text()
        file = evidence.write_text(f"receipts/{name}.tlog-proof", receipt, f"tlog-proof@v1 receipt for {name}")
        try:
            if verifier is None:
                raise TlogError("the log has no verifier key")
            verified = verify_receipt(receipt, verifier)
            record = verified.record
            if record is None or record.content_sha256 != content_sha256:
                raise TlogError("the entry does not record this output's SHA-256")
            detail = (
                f"receipt verifies in tree {verified.tree_size}; records {record.kind.value} {content_sha256[:16]}…"
            )
            checks.append(ReceiptCheck(name, index, True, detail, file))
        except TlogError as exc:
            checks.append(ReceiptCheck(name, index, False, f"receipt does not verify: {exc}", file))
    return tuple(checks)


def _detection(
    deployment: Deployment,
    database: Path,
    text_model: Path | None,
    texts: tuple[TextSample, ...],
    images: tuple[ImageSample, ...],
    evidence: EvidenceFolder,
) -> DetectionProbe | None:
    endpoint = deployment.detection.endpoint
    if endpoint is None:
        return None
    text = (evidence.root / texts[0].evidence[0].path).read_text(encoding="utf-8") if texts else None
    image = (evidence.root / images[0].evidence[0].path).read_bytes() if images else None
    try:
        return probe_detection(
            endpoint,
            home=tracemark_home(),
            database=database,
            model_dir=text_model,
            text_sample=text,
            image_sample=image,
            evidence=evidence,
        )
    except MissingExtraError as exc:
        return DetectionProbe(endpoint, (), (), unavailable=exc.diagnostics())


def _labels(
    keyring: Keyring,
    text_key: TextKey | None,
    text_model: Path | None,
    texts: tuple[TextSample, ...],
    images: tuple[ImageSample, ...],
    evidence: EvidenceFolder,
    alpha: float,
) -> tuple[LabelCheck, ...]:
    """Label one text and one image sample as a deployer would and test the marks again."""
    checks = []
    label = disclosure("en")
    if texts and text_key is not None and text_model is not None:
        from tracemark.text import TextTokenizer

        original = (evidence.root / texts[0].evidence[0].path).read_text(encoding="utf-8")
        labelled = label_text(original, label=label, key=text_key, tokenizer=TextTokenizer(text_model), alpha=alpha)
        files = (
            evidence.write_text("labels/text-0.labelled.txt", labelled.text, "text-0 with a disclosure line"),
            evidence.write_text("labels/text-0.labelled.html", labelled.html, "text-0 as an HTML snippet"),
        )
        checks.append(
            LabelCheck(
                "text-0",
                labelled.still_marked,
                f"disclosure line added; watermark "
                f"{'still detected' if labelled.still_marked else 'LOST'} (p = "
                f"{labelled.p_value:.3g})",
                files,
            )
        )
    if images:
        from tracemark.keys import load_media_certificate
        from tracemark.media import media_key, signer_for

        certificate = load_media_certificate(keyring)
        data = (evidence.root / images[0].evidence[0].path).read_bytes()
        result = label_image(
            data,
            label=label,
            keys=[media_key(keyring)],
            signer=signer_for(certificate.chain_pem, certificate.private_key_pem),
            trust_anchors_pem=certificate.root_pem,
        )
        file = evidence.write("labels/image-0.labelled.png", result.data, "image-0 with a visible disclosure badge")
        kept = result.watermark_found and (result.parent_manifest_id is None or result.outcome == "trusted")
        checks.append(
            LabelCheck(
                "image-0",
                kept,
                f"badge added ({result.corner}); outcome {result.outcome}, "
                f"watermark {'found' if result.watermark_found else 'NOT found'}, parent manifest "
                f"{result.parent_manifest_id or '-'} kept as ingredient of {result.manifest_id or '-'}",
                (file,),
            )
        )
    return tuple(checks)


def _plots(findings: Findings) -> tuple[Plot, ...]:
    plots = []
    alpha = findings.deployment.text.alpha
    if findings.texts:
        series = tuple(Series(s.name, s.prefixes) for s in findings.texts)
        plots.append(
            Plot(
                "length",
                "Text: detectability vs length (this check's samples)",
                "tokens",
                "-log10 p-value",
                series,
                reference=-math.log10(alpha),
                reference_label=f"alpha {alpha:g}",
                source="text/*.txt, prefixes tested here",
            )
        )
    text = findings.text_robustness
    if text is not None:
        bars = tuple(Point(float(i), p.y, p.label) for i, p in enumerate(text.rates))
        plots.append(
            Plot(
                "text-attacks",
                f"Text: detection rate per attack at {text.length} tokens ({text.scheme}, FPR 1e-6)",
                "attack",
                "detection rate",
                (Series("text", bars),),
                kind="bar",
                reference=ROBUST_RATE,
                source=f"{text.source.path} ({text.source.recorded_at})",
            )
        )
    image = findings.image_robustness
    if image is not None:
        bars = tuple(Point(float(i), p.y, p.label) for i, p in enumerate(image.rates))
        plots.append(
            Plot(
                "image-attacks",
                f"Images: exact decode rate per attack ({image.method})",
                "attack",
                "decode rate",
                (Series("image", bars),),
                kind="bar",
                reference=ROBUST_RATE,
                source=f"{image.source.path} ({image.source.recorded_at})",
            )
        )
    return tuple(plots)


def _deployment_info(deployment: Deployment) -> DeploymentInfo:
    return DeploymentInfo(
        name=deployment.name,
        provider=deployment.provider,
        file=str(deployment.source),
        file_sha256=hashlib.sha256(deployment.source.read_bytes()).hexdigest(),
        models=tuple(m.model_id for m in deployment.models),
        modalities=deployment.modalities,
    )


@dataclass(frozen=True)
class _Outputs:
    texts: tuple[TextSample, ...]
    images: tuple[ImageSample, ...]
    text_key: TextKey | None
    text_model: Path | None


def _make_outputs(
    deployment: Deployment, keyring: Keyring, log: TransparencyLog, database: Path, evidence: EvidenceFolder
) -> _Outputs:
    def record(entry: ProvenanceRecord) -> int:
        return log.append(entry).index

    recorder = record if deployment.log.record_outputs else None
    texts: tuple[TextSample, ...] = ()
    text_key, text_model = None, None
    model = _model_for(deployment, "text")
    if model is not None:
        text_model = _model_dir(model)
        text_key = _text_key(keyring, text_model, deployment.text.key_id)
        if deployment.text.watermark:
            texts = make_text_samples(deployment, text_model, model.model_id, text_key, evidence, recorder)
    images: tuple[ImageSample, ...] = ()
    image_model = _model_for(deployment, "image")
    if image_model is not None:
        images = make_image_samples(deployment, image_model.model_id, keyring, database, evidence, recorder)
    return _Outputs(texts, images, text_key, text_model)


def run_check(deployment: Deployment, folder: Path) -> CheckResult:
    """Run the check and write the report, its evidence, its signature and its receipt under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    evidence = EvidenceFolder(folder)
    keyring = _keyring(None)
    signer = ensure_log_key(keyring)
    database = deployment.log.database or default_database_path()
    database.parent.mkdir(parents=True, exist_ok=True)
    with TransparencyLog.open(database, signer=signer) as log:
        witness = cosign_latest(log, keyring) if deployment.log.witness else None
        if witness is None:
            log.checkpoint()  # the checkpoint that opens the period, uncosigned
        outputs = _make_outputs(deployment, keyring, log, database, evidence)
        logged = [(s.name, s.log_index, s.content_sha256) for s in outputs.texts]
        logged += [(s.name, s.log_index, s.content_sha256) for s in outputs.images]
        receipts = _verify_receipts(log, logged, evidence)
        if deployment.log.witness:
            cosign_latest(log, keyring)
        else:
            log.checkpoint()
        bundle: LogBundle = export_log_bundle(log, evidence, witness)
    detection = _detection(deployment, database, outputs.text_model, outputs.texts, outputs.images, evidence)
    labels = _labels(
        keyring, outputs.text_key, outputs.text_model, outputs.texts, outputs.images, evidence, deployment.text.alpha
    )
    text_model = _model_for(deployment, "text")
    scheme = outputs.text_key.scheme if outputs.text_key is not None else "native"
    findings = Findings(
        deployment=deployment,
        texts=outputs.texts,
        images=outputs.images,
        receipts=receipts,
        text_robustness=text_robustness(deployment.robustness_results, scheme, deployment.text.min_tokens)
        if text_model is not None
        else None,
        image_robustness=image_robustness(deployment.robustness_results),
        detection=detection,
        bundle=bundle,
        labels=labels,
    )
    for robust in (findings.text_robustness, findings.image_robustness):
        if robust is not None:  # the cited results travel with the report
            evidence.write(
                benchmark_copy(robust.source.path),
                robust.source.path.read_bytes(),
                f"benchmark results {robust.source.benchmark}",
            )
    generated_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = ComplianceReport(
        generated_at, __version__, _deployment_info(deployment), assess(findings), _plots(findings), LIMITS
    )
    evidence.write_json("report.json", report.to_json(), "the report (tracemark.comply.report/v1)")
    evidence.write_text("report.html", render_html(report), "the report as a page")
    with TransparencyLog.open(database, signer=signer) as log:
        signed = sign_and_log(folder, log, signer, generated_at)
        if deployment.log.witness:
            cosign_latest(log, keyring)
    return CheckResult(report, folder, signed)


def log_verifier() -> NoteVerifier:
    """The local log's verifier key (for :func:`~tracemark.comply.verify_report` without ``--log-key``)."""
    keyring = Keyring()
    if not keyring.exists():
        raise ComplianceError("no local keyring: pass the log's verifier key (--log-key)")
    from tracemark.keys import load_log_key

    return load_log_key(keyring).verifier
