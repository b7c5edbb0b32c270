"""The obligations a compliance report has one row for, each mapped to its article and Code measure.

The summaries paraphrase Regulation (EU) 2024/1689 and the Code of Practice on transparency of
AI-generated content (final text of 10 June 2026); they do not quote them.  ``code_measure``
names the Code's commitment in our own words, so a reader can find it in the Code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Obligation:
    """One checkable obligation: a stable id, a title, where it comes from and what it asks, in short."""

    id: str
    title: str
    article: str
    code_measure: str
    asks: str


TEXT_MARKED = Obligation(
    "art50.2-text-marked",
    "Text output over the length floor is marked and detectable",
    "Art. 50(2)",
    "Code: marking of text (imperceptible watermark) and its detection",
    "Generated text is marked in a machine-readable way so that it can be detected as AI-generated.",
)
TEXT_FLOOR = Obligation(
    "art50.2-text-floor",
    "The text length floor is within the Code's expectation",
    "Art. 50(2) (as far as technically feasible)",
    "Code: text watermarks expected for free-form text of about 200 tokens or more",
    "The length above which text is claimed to be marked is not set higher than where watermarks work.",
)
IMAGE_WATERMARK = Obligation(
    "art50.2-image-watermark",
    "Images carry an imperceptible watermark",
    "Art. 50(2)",
    "Code: multi-layer marking, imperceptible watermark layer",
    "Each image carries a mark in its pixels that a detector finds with a bounded false-positive rate.",
)
IMAGE_METADATA = Obligation(
    "art50.2-image-metadata",
    "Images carry digitally signed metadata stating they are AI-generated",
    "Art. 50(2)",
    "Code: multi-layer marking, digitally signed metadata layer (C2PA, digitalSourceType)",
    "Each image carries a signed C2PA manifest with digitalSourceType trainedAlgorithmicMedia that validates.",
)
IMAGE_SOFT_BINDING = Obligation(
    "art50.2-image-soft-binding",
    "The signed metadata can be recovered from the watermark",
    "Art. 50(2) (robust, reliable)",
    "Code: layers that back each other up when metadata is stripped",
    "After the metadata is stripped and the image re-encoded, the watermark leads back to the signed manifest.",
)
LOGGED = Obligation(
    "art50.2-logged",
    "Every output is recorded in the transparency log",
    "Art. 50(2); Art. 12",
    "Code: logging as a supporting measure",
    "Each output's hash is in an append-only log, and a receipt proves its inclusion offline.",
)
ROBUSTNESS = Obligation(
    "art50.2-robust",
    "Marks survive common processing",
    "Art. 50(2) (effective, robust, reliable)",
    "Code: robustness of marks against common transformations",
    "Detection rates under named edits and transformations, measured by this version's benchmarks.",
)
DETECTION = Obligation(
    "art50.2-detection-interface",
    "A detection interface answers for text and images",
    "Art. 50(2)",
    "Code: detection interface (API or software) available to the public",
    "Anyone can ask whether content carries the provider's marks and get an answer with evidence.",
)
DETECTION_ACCESS = Obligation(
    "art50.2-detection-access",
    "Detection is free of charge for authorities, fact-checkers and researchers",
    "Art. 50(2)",
    "Code: free detection access for authorities, fact-checkers and researchers",
    "Public-interest users get detection without payment, with limits that do not shut them out.",
)
OTHER_MODALITIES = Obligation(
    "art50.2-audio-video",
    "Audio and video output is marked",
    "Art. 50(2)",
    "Code: multi-layer marking for audio and video",
    "Generated audio and video are marked and detectable like images.",
)
LOG_INTEGRITY = Obligation(
    "art12-log-integrity",
    "The log's history is consistent and witnessed",
    "Art. 12(1)-(2)",
    "Code: logging; C2SP checkpoints, consistency proofs and cosignatures as the record",
    "Logs are recorded automatically and cannot be rewritten unnoticed: checkpoints over the period, "
    "consistency proofs between them and independent cosignatures, verifiable offline.",
)
LOG_RETENTION = Obligation(
    "art12-retention",
    "Logs are kept for at least six months",
    "Art. 12; Art. 19(1)",
    "Code: logging (retention)",
    "The automatically generated logs are retained for a period of at least six months.",
)
DEPLOYER_LABEL = Obligation(
    "art50.4-label",
    "Deployers label deep fakes and public-interest text visibly",
    "Art. 50(4)",
    "Code: common EU icon and disclosure for deployers",
    "A visible label or disclosure accompanies the content, and labelling keeps the machine-readable marks.",
)

#: Every obligation, in report order.
OBLIGATIONS = (
    TEXT_MARKED,
    TEXT_FLOOR,
    IMAGE_WATERMARK,
    IMAGE_METADATA,
    IMAGE_SOFT_BINDING,
    LOGGED,
    ROBUSTNESS,
    DETECTION,
    DETECTION_ACCESS,
    OTHER_MODALITIES,
    LOG_INTEGRITY,
    LOG_RETENTION,
    DEPLOYER_LABEL,
)
