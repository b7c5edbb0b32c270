"""The generation layer's registry: a Hugging Face ``LogitsProcessor`` for each text-watermark scheme.

Schemes are numpy only and know nothing of torch; each processor module (``_hf_<scheme>.py``)
imports torch and its scheme, never the reverse.  Processor modules are imported on first use,
so detection never loads torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from tracemark.errors import KeyMismatchError
from tracemark.text._schemes import WatermarkScheme

if TYPE_CHECKING:
    from transformers import LogitsProcessor

#: Scheme name -> (module, class) of its processor; the class takes the scheme instance.
_PROCESSORS: dict[str, tuple[str, str]] = {
    "native": ("tracemark.text._hf_native", "NativeLogitsProcessor"),
    "kgw": ("tracemark.text._hf_kgw", "KGWLogitsProcessor"),
    "synthid": ("tracemark.text._hf_synthid", "SynthIDLogitsProcessor"),
}


def logits_processor(scheme: WatermarkScheme) -> LogitsProcessor:
    """A ``LogitsProcessor`` that marks what ``model.generate(logits_processor=[...])`` samples under ``scheme``'s key.

    Pass ``scheme.generation_kwargs()`` to ``generate()`` as well.  Needs the ``text`` extra (torch).
    """
    try:
        module_name, class_name = _PROCESSORS[scheme.name]
    except KeyError:
        raise KeyMismatchError(f"scheme {scheme.name!r} has no generation processor") from None
    processor: LogitsProcessor = getattr(importlib.import_module(module_name), class_name)(scheme)
    return processor
