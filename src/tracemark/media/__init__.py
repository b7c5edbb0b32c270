"""Media provenance: keyed invisible image watermarks, signed C2PA content credentials, manifest recovery.

Mark an image (watermark + signed manifest + log entry + repository row) with :func:`mark_image`;
verify any image with :func:`verify_image`, which returns a :class:`MediaVerdict` with one
:class:`Outcome` and an EU AI Act Article 50 layer report.  The watermark primitives
(:func:`embed_watermark`, :func:`detect_watermark`) work on numpy arrays.  Needs the ``media`` extra.
"""

from tracemark.media._credentials import ContentSigner, CredentialReading, read_credentials
from tracemark.media._image_io import (
    MAX_IMAGE_BYTES,
    MAX_PIXELS,
    DecodedImage,
    decode_image,
    encode_image,
    format_for_path,
)
from tracemark.media._keys import media_key
from tracemark.media._provenance import (
    Layer,
    LogChecker,
    LogRecorder,
    MarkedImage,
    MediaVerdict,
    Outcome,
    mark_image,
    signer_for,
    verify_image,
)
from tracemark.media._repository import BindingMatch, SoftBindingRepository
from tracemark.media._scan import MediaScanRow, MediaScanSummary, MediaScanSummaryJSON, scan_image, scan_images
from tracemark.media._watermark import ALGORITHM, MediaKey, WatermarkDetection, detect_watermark, embed_watermark

__all__ = [
    "ALGORITHM",
    "MAX_IMAGE_BYTES",
    "MAX_PIXELS",
    "BindingMatch",
    "ContentSigner",
    "CredentialReading",
    "DecodedImage",
    "Layer",
    "LogChecker",
    "LogRecorder",
    "MarkedImage",
    "MediaKey",
    "MediaScanRow",
    "MediaScanSummary",
    "MediaScanSummaryJSON",
    "MediaVerdict",
    "Outcome",
    "SoftBindingRepository",
    "WatermarkDetection",
    "decode_image",
    "detect_watermark",
    "embed_watermark",
    "encode_image",
    "format_for_path",
    "mark_image",
    "media_key",
    "read_credentials",
    "scan_image",
    "scan_images",
    "signer_for",
    "verify_image",
]
