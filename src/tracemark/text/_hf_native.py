"""Hugging Face ``generate()`` integration of the ``native`` scheme (imports torch and transformers).

Only generation needs torch; detection never imports this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import LogitsProcessor

if TYPE_CHECKING:
    from tracemark.text._schemes.native import NativeScheme

# Candidates further than this many nats below the best logit are not hashed: after
# the bias their probability is below exp(-40), so leaving them unbiased is invisible.
_NEGLIGIBLE_NATS = 40.0


class NativeLogitsProcessor(LogitsProcessor):
    """Adds ``delta`` to the logits of green candidates under the native scheme's key."""

    def __init__(self, scheme: NativeScheme) -> None:
        self.scheme = scheme

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        width = self.scheme.context_width
        if input_ids.shape[-1] < width:
            return scores  # no full context yet: these positions are never scored either
        logits = scores.detach().to(torch.float32).cpu().numpy()
        vocab = min(logits.shape[-1], self.scheme.vocab_size)
        logits = logits[:, :vocab]
        floor = logits.max(axis=1, keepdims=True) - (self.scheme.delta + _NEGLIGIBLE_NATS)
        rows, cols = np.nonzero(logits >= floor)
        context = input_ids[:, -width:].cpu().numpy().astype(np.int64)
        units = np.concatenate([context[rows], cols[:, None].astype(np.int64)], axis=1)
        green = self.scheme.green(units)
        bias = torch.zeros_like(scores)
        bias[torch.from_numpy(rows[green]), torch.from_numpy(cols[green])] = self.scheme.delta
        return scores + bias  # type: ignore[return-value]
