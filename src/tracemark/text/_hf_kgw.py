"""Hugging Face ``generate()`` integration of the ``kgw`` scheme (imports torch).

:class:`KGWLogitsProcessor` biases exactly the logits that transformers'
``WatermarkLogitsProcessor`` biases, so the two are interchangeable in ``generate()``:

* ``lefthash``: the green list after each row's last token, read from the scheme's
  bitset cache (built with ``torch.randperm`` on a CPU generator on a miss);
* ``selfhash``: transformers' rejection rule: of the 40 best-scoring candidates, those
  that are green under the seed of their own window (the last ``context_width - 1``
  tokens plus the candidate) get the bias.  transformers takes the candidates from a
  full descending sort; ``topk`` gives the same set unless scores tie across the 40th
  place, in which case the row falls back to the same full sort.

The biased logits equal transformers' value for value (``torch.equal``); for float32 and
float64 logits the bias is added as ``x + 0/1 * bias``, so the only bit that can differ is
the sign of a logit that is exactly zero.

Green lists follow torch's CPU ``randperm`` even when the model runs on a GPU (transformers
then uses the GPU's ``randperm``, a different algorithm: such text is not detectable with
CPU lists, by transformers' own detector on CPU either).  Rows with no green candidate get
no bias (transformers raises an ``IndexError`` there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import NDArray
from transformers import LogitsProcessor

from tracemark.text._schemes.kgw import lefthash_seed, selfhash_seeds

if TYPE_CHECKING:
    from tracemark.text._schemes.kgw import KGWScheme

#: Candidates transformers' selfhash rejection sampling examines per step.
SELFHASH_CANDIDATES = 40


class KGWLogitsProcessor(LogitsProcessor):
    """Adds ``bias`` to the logits of green tokens under a ``kgw`` key (transformers-identical)."""

    def __init__(self, scheme: KGWScheme) -> None:
        self.scheme = scheme
        self._generator = torch.Generator(device="cpu")

    def _torch_bitsets(self, seeds: NDArray[np.uint32]) -> NDArray[np.uint8]:
        """Green bitsets straight from ``torch.randperm``: cheaper than numpy for a handful of seeds."""
        vocab, size = self.scheme.vocab_size, self.scheme.greenlist_size
        rows = np.zeros((seeds.shape[0], vocab), dtype=np.bool_)
        for row, seed in enumerate(seeds.tolist()):
            self._generator.manual_seed(seed)
            rows[row, torch.randperm(vocab, generator=self._generator)[:size].numpy()] = True
        return np.packbits(rows, axis=1, bitorder="little")

    def _lefthash_mask(self, ids: NDArray[np.int64]) -> NDArray[np.bool_]:
        key = self.scheme.hashing_key
        seeds = np.array([lefthash_seed(key, int(token)) for token in ids[:, -1].tolist()], dtype=np.uint32)
        bits = self.scheme.green_cache.bitsets(seeds, compute=self._torch_bitsets)
        return np.unpackbits(bits, axis=1, count=self.scheme.vocab_size, bitorder="little").view(np.bool_)

    def _candidates(self, scores: torch.Tensor) -> NDArray[np.int64]:
        """Per row, the token ids at the first 40 places of transformers' descending sort."""
        width = scores.shape[-1]
        count = min(SELFHASH_CANDIDATES, width)
        values, indices = torch.topk(scores, min(count + 1, width), dim=-1)
        candidates = indices[:, :count].cpu().numpy().astype(np.int64)
        if width > count:
            boundary = values[:, count - 1]
            tied = (boundary == values[:, count]) & torch.isfinite(boundary)
            for row in torch.nonzero(tied).flatten().tolist():
                order = scores[row].sort(dim=-1, descending=True)[1]
                candidates[row] = order[:count].cpu().numpy()
        return candidates

    def _selfhash_mask(self, ids: NDArray[np.int64], scores: torch.Tensor) -> NDArray[np.bool_]:
        scheme = self.scheme
        rows, width = scores.shape[0], scores.shape[-1]
        candidates = self._candidates(scores)
        count = candidates.shape[1]
        context = ids[:, ids.shape[1] - (scheme.hf_context_width - 1) :]
        windows = np.concatenate(
            [np.broadcast_to(context[:, None, :], (rows, count, context.shape[1])), candidates[:, :, None]], axis=2
        ).reshape(rows * count, scheme.hf_context_width)
        flat = candidates.ravel()
        green = np.zeros(flat.shape[0], dtype=np.bool_)
        valid = flat < scheme.vocab_size  # logits past the vocabulary are never green
        seeds, _ = selfhash_seeds(scheme.hashing_key, windows[valid])
        green[valid] = scheme.green_cache.contains(seeds, flat[valid])
        mask = np.zeros((rows, width), dtype=np.bool_)
        row_index = np.repeat(np.arange(rows), count)
        mask[row_index[green], flat[green]] = True
        return mask

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[-1] < self.scheme.hf_context_width:
            return scores  # transformers skips seeding until context_width tokens exist
        ids = input_ids.detach().cpu().numpy().astype(np.int64)
        width = scores.shape[-1]
        if self.scheme.selfhash:
            mask = self._selfhash_mask(ids, scores)
        else:
            mask = self._lefthash_mask(ids)
            if width != mask.shape[1]:  # logits narrower or wider than the vocabulary
                padded = np.zeros((ids.shape[0], width), dtype=np.bool_)
                padded[:, : min(width, mask.shape[1])] = mask[:, :width]
                mask = padded
        if scores.dtype in (torch.float32, torch.float64):
            # x + 1 * bias is transformers' x + bias, and x + 0 * bias is x (a -0.0 logit becomes +0.0);
            # one add of a 0/1 array is several times faster than torch.where on the CPU
            ones = mask.astype(np.float32 if scores.dtype == torch.float32 else np.float64)
            biased = torch.add(scores, torch.from_numpy(ones).to(scores.device), alpha=self.scheme.bias)
            return biased  # type: ignore[return-value]
        where = torch.from_numpy(mask).to(scores.device)
        return torch.where(where, scores + self.scheme.bias, scores)  # type: ignore[return-value]
