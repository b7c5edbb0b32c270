"""From evidence to rows: each obligation's status, the facts behind it and the layers it misses.

A layer the deployment switched off, or one the samples show missing, makes its row fail and is
named in ``missing_layers``; a figure tracemark cannot obtain makes the row ``not-assessed``,
never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tracemark.comply import _obligations as ob
from tracemark.comply._article12 import LogBundle
from tracemark.comply._deployment import CODE_TEXT_FLOOR_TOKENS, MIN_RETENTION_DAYS, Deployment
from tracemark.comply._detection import DetectionProbe
from tracemark.comply._report import Evidence, Fact, Row, Status
from tracemark.comply._robustness import ROBUST_RATE, ImageRobustness, TextRobustness
from tracemark.comply._samples import ImageSample, TextSample


@dataclass(frozen=True)
class ReceiptCheck:
    """A logged output's receipt, verified offline against the log key."""

    output: str
    log_index: int
    verified: bool
    detail: str
    evidence: Evidence | None


@dataclass(frozen=True)
class LabelCheck:
    """A labelled output and whether its machine-readable marks still verify."""

    output: str
    still_marked: bool
    detail: str
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True)
class Findings:
    """Everything the check gathered, for :func:`assess`."""

    deployment: Deployment
    texts: tuple[TextSample, ...]
    images: tuple[ImageSample, ...]
    receipts: tuple[ReceiptCheck, ...]
    text_robustness: TextRobustness | None
    image_robustness: ImageRobustness | None
    detection: DetectionProbe | None
    bundle: LogBundle
    labels: tuple[LabelCheck, ...]


def _fact(name: str, value: object) -> Fact:
    return Fact(name, str(value))


def _p(value: float) -> str:
    return f"{value:.3g}"


def _text_marked(f: Findings) -> Row:
    settings, obligation = f.deployment.text, ob.TEXT_MARKED
    if "text" not in f.deployment.modalities:
        return Row(obligation, Status.NOT_APPLICABLE, "the deployment outputs no text")
    if not settings.watermark:
        return Row(
            obligation,
            Status.FAIL,
            "the text watermark is switched off: text output is not marked",
            ("text watermark",),
        )
    evidence = tuple(e for s in f.texts for e in s.evidence)
    facts = [_fact("samples", len(f.texts)), _fact("alpha (false-positive level)", _p(settings.alpha))]
    facts += [
        _fact(
            s.name,
            f"{s.tokens_generated} tokens, {s.tokens_scored} scored, p = {_p(s.p_value)}, "
            f"{'marked' if s.marked else 'NOT detected'} (key {s.key_id}, {s.scheme})",
        )
        for s in f.texts
    ]
    missed = [s.name for s in f.texts if not s.marked]
    if not f.texts:
        return Row(obligation, Status.NOT_ASSESSED, "no text sample was made", (), tuple(facts), evidence)
    if missed:
        return Row(
            obligation,
            Status.FAIL,
            f"{len(missed)} of {len(f.texts)} samples at the floor "
            f"({settings.min_tokens} tokens) were not detected at alpha {_p(settings.alpha)}",
            ("detectable text watermark",),
            tuple(facts),
            evidence,
        )
    worst = max(s.p_value for s in f.texts)
    return Row(
        obligation,
        Status.PASS,
        f"all {len(f.texts)} samples of {settings.min_tokens} tokens detected; largest p-value {_p(worst)}",
        (),
        tuple(facts),
        evidence,
    )


def _text_floor(f: Findings) -> Row:
    settings, obligation = f.deployment.text, ob.TEXT_FLOOR
    if "text" not in f.deployment.modalities:
        return Row(obligation, Status.NOT_APPLICABLE, "the deployment outputs no text")
    floor = settings.min_tokens
    facts = [
        _fact("declared floor (tokens)", floor),
        _fact("the Code's working figure (tokens)", CODE_TEXT_FLOOR_TOKENS),
    ]
    robust = f.text_robustness
    clean = robust.clean_rate if robust is not None else None
    if robust is not None:
        facts.append(
            _fact(
                f"benchmark detection rate at {robust.length} tokens ({robust.scheme}, FPR 1e-6)",
                _p(clean) if clean is not None else "not measured",
            )
        )
    evidence = (_source_evidence(robust),) if robust is not None else ()
    if floor > CODE_TEXT_FLOOR_TOKENS:
        return Row(
            obligation,
            Status.FAIL,
            f"the floor of {floor} tokens leaves text of {CODE_TEXT_FLOOR_TOKENS} to {floor - 1} tokens unmarked",
            (f"text watermark between {CODE_TEXT_FLOOR_TOKENS} and {floor} tokens",),
            tuple(facts),
            evidence,
        )
    undetected = [s.name for s in f.texts if not s.marked]
    if clean is None or clean < ROBUST_RATE or undetected:
        why = (
            f"at {floor} tokens the watermark is not reliably detectable (benchmark rate "
            + (f"{_p(clean)} at {robust.length} tokens" if robust is not None and clean is not None else "not measured")
            + f", samples missed: {len(undetected)} of {len(f.texts)})"
        )
        return Row(
            obligation,
            Status.FAIL,
            why,
            (f"reliable text watermark at the declared floor ({floor} tokens)",),
            tuple(facts),
            evidence,
        )
    return Row(
        obligation,
        Status.PASS,
        f"text from {floor} tokens is detected (benchmark rate {_p(clean)} at "
        f"{robust.length if robust else floor} tokens)",
        (),
        tuple(facts),
        evidence,
    )


def _source_evidence(robust: TextRobustness | ImageRobustness) -> Evidence:
    source = robust.source
    return Evidence(
        benchmark_copy(source.path),
        source.sha256,
        f"benchmark {source.benchmark} (a copy of {source.path.name}), recorded {source.recorded_at}",
    )


def benchmark_copy(path: Path) -> str:
    """Where the check copies a cited benchmark result inside the report folder."""
    return f"benchmarks/{path.name}"


def _image_watermark(f: Findings) -> Row:
    obligation = ob.IMAGE_WATERMARK
    if "image" not in f.deployment.modalities:
        return Row(obligation, Status.NOT_APPLICABLE, "the deployment outputs no images")
    if not f.deployment.image.watermark:
        return Row(obligation, Status.FAIL, "the image watermark is switched off", ("image watermark",))
    facts = tuple(
        _fact(
            s.name,
            f"watermark {'found' if s.watermark_found else 'NOT found'}, false-positive bound "
            f"{_p(s.false_positive_bound) if s.false_positive_bound is not None else '-'}",
        )
        for s in f.images
    )
    evidence = tuple(e for s in f.images for e in s.evidence if e.path.endswith(".verify.json"))
    if not f.images:
        return Row(obligation, Status.NOT_ASSESSED, "no image sample was given (image.inputs)", (), facts)
    missed = [s.name for s in f.images if not s.watermark_found]
    if missed:
        return Row(
            obligation, Status.FAIL, f"no watermark found in {', '.join(missed)}", ("image watermark",), facts, evidence
        )
    return Row(obligation, Status.PASS, f"watermark found in all {len(f.images)} images", (), facts, evidence)


def _image_metadata(f: Findings) -> Row:
    obligation = ob.IMAGE_METADATA
    if "image" not in f.deployment.modalities:
        return Row(obligation, Status.NOT_APPLICABLE, "the deployment outputs no images")
    if not f.deployment.image.c2pa:
        return Row(
            obligation,
            Status.FAIL,
            "C2PA content credentials are switched off: images carry no signed metadata",
            ("C2PA signed metadata",),
        )
    facts = tuple(
        _fact(
            s.name,
            f"outcome {s.outcome}, manifest {s.manifest_id or '-'}, state {s.manifest_state or '-'}"
            f", digitalSourceType trainedAlgorithmicMedia: {'yes' if s.digital_source_type_ai else 'no'},"
            f" signer {s.signer or '-'}",
        )
        for s in f.images
    )
    evidence = tuple(e for s in f.images for e in s.evidence if not e.path.count(".stripped"))
    if not f.images:
        return Row(obligation, Status.NOT_ASSESSED, "no image sample was given (image.inputs)", (), facts)
    conflicting = [f"{s.name}: {c}" for s in f.images for c in s.contradictions]
    if conflicting:
        return Row(
            obligation,
            Status.FAIL,
            "layers contradict each other: " + "; ".join(conflicting),
            ("consistent marking layers",),
            facts,
            evidence,
        )
    bad = [s.name for s in f.images if s.outcome != "trusted" or not s.digital_source_type_ai]
    if bad:
        return Row(
            obligation,
            Status.FAIL,
            f"no valid, trusted AI-source manifest in {', '.join(bad)}",
            ("C2PA signed metadata",),
            facts,
            evidence,
        )
    return Row(
        obligation,
        Status.PASS,
        f"all {len(f.images)} images carry a trusted manifest stating trainedAlgorithmicMedia",
        (),
        facts,
        evidence,
    )


def _image_soft_binding(f: Findings) -> Row:
    obligation = ob.IMAGE_SOFT_BINDING
    if "image" not in f.deployment.modalities:
        return Row(obligation, Status.NOT_APPLICABLE, "the deployment outputs no images")
    if not (f.deployment.image.c2pa and f.deployment.image.watermark):
        return Row(
            obligation,
            Status.FAIL,
            "without both a signed manifest and a watermark there is nothing to recover once metadata is stripped",
            ("C2PA manifest bound to the watermark",),
        )
    facts = tuple(_fact(s.name, f"after stripping: {s.stripped_outcome}") for s in f.images)
    evidence = tuple(e for s in f.images for e in s.evidence if ".stripped" in e.path)
    missed = [s.name for s in f.images if s.stripped_outcome != "recovered-via-soft-binding"]
    if not f.images:
        return Row(obligation, Status.NOT_ASSESSED, "no image sample was given (image.inputs)")
    if missed:
        return Row(
            obligation,
            Status.FAIL,
            f"the manifest was not recovered for {', '.join(missed)}",
            ("soft binding",),
            facts,
            evidence,
        )
    return Row(obligation, Status.PASS, "every stripped image led back to its signed manifest", (), facts, evidence)


def _logged(f: Findings) -> Row:
    obligation = ob.LOGGED
    if not f.deployment.log.record_outputs:
        return Row(
            obligation, Status.FAIL, "outputs are not recorded: the log holds no entry for them", ("transparency log",)
        )
    outputs = [(s.name, s.log_index) for s in f.texts] + [(s.name, s.log_index) for s in f.images]
    if not outputs:
        return Row(obligation, Status.NOT_ASSESSED, "no output was made, so none could be logged")
    unlogged = [name for name, index in outputs if index is None]
    failed = [r.output for r in f.receipts if not r.verified]
    facts = tuple(_fact(r.output, f"entry {r.log_index}: {r.detail}") for r in f.receipts)
    facts += tuple(_fact(name, "not in the log") for name in unlogged)
    evidence = tuple(r.evidence for r in f.receipts if r.evidence is not None)
    if unlogged or failed:
        missing = ["log entry for " + ", ".join(unlogged)] if unlogged else []
        missing += ["verifiable receipt for " + ", ".join(failed)] if failed else []
        return Row(
            obligation,
            Status.FAIL,
            f"{len(unlogged) + len(failed)} of {len(outputs)} outputs lack a verified log entry",
            tuple(missing),
            facts,
            evidence,
        )
    return Row(
        obligation,
        Status.PASS,
        f"all {len(outputs)} outputs are in the log; every receipt verifies offline",
        (),
        facts,
        evidence,
    )


def _robust(f: Findings) -> Row:
    obligation, facts, evidence, missing, unknown = ob.ROBUSTNESS, [], [], [], []
    modalities = f.deployment.modalities
    if "text" in modalities:
        text = f.text_robustness
        if text is None:
            unknown.append("text")
        else:
            evidence.append(_source_evidence(text))
            facts += [_fact(f"text, {p.label}, {text.length} tokens", f"detected {_p(p.y)}") for p in text.rates]
            if (text.clean_rate or 0.0) < ROBUST_RATE:
                missing.append(f"text watermark detectable at {text.length} tokens")
    if "image" in modalities:
        image = f.image_robustness
        if image is None:
            unknown.append("image")
        else:
            evidence.append(_source_evidence(image))
            facts += [_fact(f"image, {p.label}", f"decoded exactly {_p(p.y)}") for p in image.rates]
            # the documented rule, as for text: the row fails below 0.95 without attack; each attack's rate is
            # a fact of the row, and attacks under 0.5 are listed as weak
            if (image.clean_rate or 0.0) < ROBUST_RATE:
                missing.append("image watermark decoded without processing")
    if not {"text", "image"} & set(modalities):
        return Row(obligation, Status.NOT_APPLICABLE, "no text or image output")
    if missing:
        return Row(
            obligation,
            Status.FAIL,
            "marks do not survive: " + "; ".join(missing),
            tuple(missing),
            tuple(facts),
            tuple(evidence),
        )
    if unknown:
        return Row(
            obligation,
            Status.NOT_ASSESSED,
            f"no benchmark results for {', '.join(unknown)} (robustness.results)",
            (),
            tuple(facts),
            tuple(evidence),
        )
    weak = [fact.name for fact in facts if _rate(fact.value) < 0.5]
    summary = "detection survives the benchmarked processing at the rates listed"
    if weak:
        summary += f"; weak under {len(weak)} attacks (rate below 0.5), listed below"
    return Row(obligation, Status.PASS, summary, (), tuple(facts), tuple(evidence))


def _rate(value: str) -> float:
    try:
        return float(value.split()[-1])
    except ValueError:
        return math.nan


def _detection(f: Findings) -> Row:
    obligation = ob.DETECTION
    probe = f.detection
    if probe is None:
        return Row(obligation, Status.FAIL, "the deployment names no detection endpoint", ("detection interface",))
    if probe.unavailable is not None:
        return Row(obligation, Status.NOT_ASSESSED, f"{probe.endpoint} could not be asked here: {probe.unavailable}")
    facts = tuple(_fact(p.route, f"HTTP {p.status}: {p.detail}") for p in probe.probes)
    silent = [p.route for p in probe.probes if not p.answered or not p.agrees]
    if silent:
        return Row(
            obligation,
            Status.FAIL,
            f"{probe.endpoint} did not answer correctly: {', '.join(silent)}",
            ("detection interface",),
            facts,
            probe.evidence,
        )
    return Row(
        obligation,
        Status.PASS,
        f"{probe.endpoint} answered every probe and agreed with the local detectors",
        (),
        facts,
        probe.evidence,
    )


def _detection_access(f: Findings) -> Row:
    declared = f.deployment.detection.free_for_authorities
    return Row(
        ob.DETECTION_ACCESS,
        Status.NOT_ASSESSED,
        "access terms and prices cannot be checked by software; "
        f"the deployment declares free access for authorities: {'yes' if declared else 'no'}",
        (),
        (_fact("declared free_for_authorities", declared),),
    )


def _other_modalities(f: Findings) -> Row:
    other = [m for m in f.deployment.modalities if m in ("audio", "video")]
    if not other:
        return Row(ob.OTHER_MODALITIES, Status.NOT_APPLICABLE, "the deployment outputs no audio or video")
    return Row(
        ob.OTHER_MODALITIES,
        Status.NOT_ASSESSED,
        f"tracemark does not mark or detect {' or '.join(other)} yet: this output is not covered",
        tuple(f"{m} marking" for m in other),
        (_fact("declared modalities", ", ".join(other)),),
    )


def _log_integrity(f: Findings) -> Row:
    bundle, obligation = f.bundle, ob.LOG_INTEGRITY
    cosigned = [c for c in bundle.checkpoints if c.witnesses]
    facts = (
        _fact("log origin", bundle.origin),
        _fact("tree size", bundle.tree_size),
        _fact("checkpoints in the bundle", len(bundle.checkpoints)),
        _fact(
            "period",
            f"{bundle.checkpoints[0].signed_at} to {bundle.checkpoints[-1].signed_at}" if bundle.checkpoints else "-",
        ),
        _fact("consistency proofs verified", bundle.proofs_verified),
        _fact("cosigned checkpoints", f"{len(cosigned)} (witness {bundle.witness_vkey or 'none'})"),
        _fact("full recomputation of the tree", "passed" if bundle.integrity_checked else "FAILED"),
    )
    if bundle.problems:
        return Row(
            obligation, Status.FAIL, "; ".join(bundle.problems), ("consistent log history",), facts, bundle.evidence
        )
    if len(bundle.checkpoints) < 2:
        return Row(
            obligation,
            Status.FAIL,
            "fewer than two checkpoints: there is no history to prove consistent",
            ("checkpoints over the period",),
            facts,
            bundle.evidence,
        )
    if not f.deployment.log.witness or not cosigned:
        return Row(
            obligation,
            Status.FAIL,
            "no checkpoint is cosigned by a witness",
            ("witness cosignatures",),
            facts,
            bundle.evidence,
        )
    return Row(
        obligation,
        Status.PASS,
        f"{len(bundle.checkpoints)} checkpoints, {bundle.proofs_verified} consistency "
        f"proofs verified, {len(cosigned)} cosigned; audit offline with the commands in log/README.txt",
        (),
        facts,
        bundle.evidence,
    )


def _retention(f: Findings) -> Row:
    days, obligation = f.deployment.log.retention_days, ob.LOG_RETENTION
    facts = (_fact("declared retention (days)", days or "not declared"), _fact("required (days)", MIN_RETENTION_DAYS))
    if days == 0:
        return Row(
            obligation,
            Status.NOT_ASSESSED,
            "the deployment declares no retention period (log.retention_days)",
            (),
            facts,
        )
    if days < MIN_RETENTION_DAYS:
        return Row(
            obligation,
            Status.FAIL,
            f"logs are kept {days} days, less than six months",
            ("log retention of six months",),
            facts,
        )
    return Row(
        obligation,
        Status.PASS,
        f"declared retention {days} days; the log is append-only, so nothing in it "
        "can be dropped without breaking consistency with the bundled checkpoints",
        (),
        facts,
    )


def _label(f: Findings) -> Row:
    obligation = ob.DEPLOYER_LABEL
    if not f.labels:
        return Row(obligation, Status.NOT_ASSESSED, "no output was labelled in this check")
    facts = tuple(_fact(label.output, label.detail) for label in f.labels)
    evidence = tuple(e for label in f.labels for e in label.evidence)
    lost = [label.output for label in f.labels if not label.still_marked]
    if lost:
        return Row(
            obligation,
            Status.FAIL,
            f"labelling removed the marks of {', '.join(lost)}",
            ("machine-readable marks after labelling",),
            facts,
            evidence,
        )
    return Row(
        obligation,
        Status.PASS,
        "a visible label was added and every labelled output still verifies as marked",
        (),
        facts,
        evidence,
    )


def assess(findings: Findings) -> tuple[Row, ...]:
    """One row per obligation, in :data:`~tracemark.comply._obligations.OBLIGATIONS` order."""
    return (
        _text_marked(findings),
        _text_floor(findings),
        _image_watermark(findings),
        _image_metadata(findings),
        _image_soft_binding(findings),
        _logged(findings),
        _robust(findings),
        _detection(findings),
        _detection_access(findings),
        _other_modalities(findings),
        _log_integrity(findings),
        _retention(findings),
        _label(findings),
    )
