"""Text watermarking: mark LLM output during generation, detect it with exact p-values.

Three schemes share one interface (:class:`WatermarkScheme`): ``native`` (the
recommended default), ``kgw`` (bit-exact with transformers' green-list watermark) and
``synthid`` (g-values identical to transformers / synthid-text).  Detection needs only
the text, the key and the model's tokenizer; generation needs the ``text`` extra.
"""

from tracemark.text._batch import VerdictBatch, detect_batch
from tracemark.text._canonical import CanonicalText, canonicalize
from tracemark.text._detect import DEFAULT_ALPHA, DetectOptions, check_key_fits, detect_tokens, detect_watermark
from tracemark.text._generate import (
    Generation,
    GenerationJSON,
    WatermarkedGenerator,
    check_sampling,
    reference_model_dir,
)
from tracemark.text._interop import export_transformers_config, import_transformers_config, key_from_transformers_config
from tracemark.text._keys import new_text_key, select_text_key
from tracemark.text._known_outputs import (
    ASSEMBLED,
    ATTRIBUTED,
    KNOWN_OUTPUTS_FORMAT,
    NOT_CHECKED,
    AttributedVerdictJSON,
    Attribution,
    AttributionJSON,
    KnownOutputCheck,
    KnownOutputCheckJSON,
    KnownOutputIndex,
    KnownOutputIndexJSON,
    attribute,
    iter_known_output_texts,
    not_checked,
    verifier_ids,
)
from tracemark.text._processors import logits_processor
from tracemark.text._scan import (
    Document,
    ScanOptions,
    ScanProgress,
    ScanRow,
    ScanSummary,
    ScanSummaryJSON,
    read_documents,
    scan_corpus,
    scan_documents,
)
from tracemark.text._schemes import DEFAULT_SCHEME, SCHEME_NAMES, WatermarkScheme, load_scheme, scheme_class
from tracemark.text._schemes._base import BulkScoringScheme
from tracemark.text._stream import detect_watermark_stream
from tracemark.text._tokenizer import TextTokenizer, tokenizer_fingerprint
from tracemark.text._units import bulk_scheme
from tracemark.text._variants import TextVariant, text_variants
from tracemark.text._verdict import VERDICT_FORMAT, Span, Statistic, TokenMark, Verdict, VerdictJSON

__all__ = [
    "ASSEMBLED",
    "ATTRIBUTED",
    "DEFAULT_ALPHA",
    "DEFAULT_SCHEME",
    "KNOWN_OUTPUTS_FORMAT",
    "NOT_CHECKED",
    "SCHEME_NAMES",
    "VERDICT_FORMAT",
    "AttributedVerdictJSON",
    "Attribution",
    "AttributionJSON",
    "BulkScoringScheme",
    "CanonicalText",
    "DetectOptions",
    "Document",
    "Generation",
    "GenerationJSON",
    "KnownOutputCheck",
    "KnownOutputCheckJSON",
    "KnownOutputIndex",
    "KnownOutputIndexJSON",
    "ScanOptions",
    "ScanProgress",
    "ScanRow",
    "ScanSummary",
    "ScanSummaryJSON",
    "Span",
    "Statistic",
    "TextTokenizer",
    "TextVariant",
    "TokenMark",
    "Verdict",
    "VerdictBatch",
    "VerdictJSON",
    "WatermarkScheme",
    "WatermarkedGenerator",
    "attribute",
    "bulk_scheme",
    "canonicalize",
    "check_key_fits",
    "check_sampling",
    "detect_batch",
    "detect_tokens",
    "detect_watermark",
    "detect_watermark_stream",
    "export_transformers_config",
    "import_transformers_config",
    "iter_known_output_texts",
    "key_from_transformers_config",
    "load_scheme",
    "logits_processor",
    "new_text_key",
    "not_checked",
    "read_documents",
    "reference_model_dir",
    "scan_corpus",
    "scan_documents",
    "scheme_class",
    "select_text_key",
    "text_variants",
    "tokenizer_fingerprint",
    "verifier_ids",
]
