"""SynthID-Text tournament sampling as a Hugging Face ``LogitsProcessor`` (imports torch).

transformers' ``SynthIDTextWatermarkLogitsProcessor`` hashes every vocabulary entry at
every step (about 50 ms per token per sequence at V = 32,000 on one core).  Only the
candidates that can be sampled matter, so this processor does what synthid-text's own
mixin does: temperature, then top-k, then g-values for the ``top_k`` candidates only,
with the same hashing code as detection (:class:`SynthIDScheme`), so the g-values are
identical to transformers' for every candidate it scores.

Tournament (2 leaves per match, non-distortionary; transformers ``update_scores``): with
``p`` the softmax of the top-k scores, for each layer ``l`` in key order
``p <- p * (1 + g_l - sum(g_l * p))``.  Given the same scores and context, the output
distribution equals transformers' processor applied after ``TemperatureLogitsWarper``
and ``TopKLogitsWarper`` (the tests check this).  Positions whose context (the last
``ngram_len - 1`` tokens) already occurred at one of the previous
``context_history_size`` generation steps of the same sequence are left unwatermarked,
as in transformers; unlike transformers, contexts are read from ``input_ids`` rather
than from a buffer that starts as zeros, so the first ``ngram_len - 1`` generated tokens
are watermarked for the context the detector will see.  A call whose rows are not the
previous call's rows plus one token (a new ``generate()`` call, beam reordering) starts a
new history.

``generate()``'s ``temperature``, ``top_k`` and ``top_p`` reach this processor through
:meth:`SynthIDLogitsProcessor.sample_with` (``WatermarkedGenerator`` passes them): they replace the
key's temperature and top-k, and top-p trims the top-k candidates before the tournament.

Placement (huggingface/transformers#34630, fixed by #34849: the watermark must come
after every warper): ``generate(logits_processor=[...])`` runs user processors *before*
its own temperature/top-k/top-p warpers, so this processor performs temperature and
top-k itself and ``SynthIDScheme.generation_kwargs()`` sets ``temperature=1``,
``top_k=0`` and ``top_p=1`` to make the later warpers no-ops.  Any other warper placed
after it (a temperature other than 1, top-p) would change the sampled distribution,
though not the g-values.  Ties at the k-th score are cut by ``torch.topk`` (exactly k
candidates), whereas ``TopKLogitsWarper`` keeps every tied candidate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import NDArray
from transformers import LogitsProcessor

if TYPE_CHECKING:
    from tracemark.text._schemes.synthid import SynthIDScheme


class SynthIDLogitsProcessor(LogitsProcessor):
    """Temperature, top-k and SynthID tournament sampling over the top-k candidates (see module docstring)."""

    def __init__(self, scheme: SynthIDScheme) -> None:
        self.scheme = scheme
        self._previous: NDArray[np.int64] | None = None
        self._prompt_length = 0
        self.temperature = scheme.temperature
        self.top_k = scheme.top_k
        self.top_p = 1.0

    def sample_with(self, *, temperature: float | None, top_k: int | None, top_p: float | None) -> None:
        """``generate()``'s sampling settings, applied here (before the tournament) since its warpers are off.

        ``None`` (and ``top_k`` 0) keeps the key's setting; ``top_p`` keeps the smallest set of the
        top-k candidates holding that much probability after temperature.
        """
        if temperature is not None:
            self.temperature = temperature
        if top_k:
            self.top_k = top_k
        if top_p is not None:
            self.top_p = top_p

    def nucleus(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Top-p over candidates sorted by score (``torch.topk``'s order): the rest get -inf."""
        if self.top_p >= 1.0:
            return values
        shifted = np.exp(values - values[:, :1])
        cumulative = np.cumsum(shifted, axis=1) / shifted.sum(axis=1, keepdims=True)
        # keep candidate i while the mass before it is below top_p (the first always stays)
        before = np.concatenate([np.zeros((values.shape[0], 1)), cumulative[:, :-1]], axis=1)
        return np.where(before < self.top_p, values, -np.inf)

    def reset(self) -> None:
        """Forget the current generation (the next call starts a new one)."""
        self._previous = None
        self._prompt_length = 0

    def _track(self, ids: NDArray[np.int64]) -> None:
        """Recognise a continuation of the previous call (same rows plus one token) or a new generation."""
        previous = self._previous
        continues = (
            previous is not None
            and ids.shape[0] == previous.shape[0]
            and ids.shape[1] == previous.shape[1] + 1
            and np.array_equal(ids[:, :-1], previous)
        )
        if not continues:
            self._prompt_length = ids.shape[1]
        self._previous = ids

    def repeated_contexts(self, ids: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Rows whose current context occurred at one of the previous ``context_history_size`` generation steps."""
        width = self.scheme.ngram_len - 1
        length = ids.shape[1]
        first_step = max(self._prompt_length, length - self.scheme.context_history_size, width)
        if first_step >= length:
            return np.zeros(ids.shape[0], dtype=np.bool_)
        # the step that generated token T used the context ids[T - width : T]
        windows = np.lib.stride_tricks.sliding_window_view(ids[:, first_step - width : length - 1], width, axis=1)
        current = ids[:, length - width :]
        return np.asarray((windows == current[:, None, :]).all(axis=2).any(axis=1), dtype=np.bool_)

    def tournament(self, log_probs: NDArray[np.float64], g_values: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Probabilities after the 2-leaf tournament over ``depth`` layers (transformers' ``update_scores``)."""
        shifted = log_probs - log_probs.max(axis=1, keepdims=True)
        probs: NDArray[np.float64] = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        layers = np.ascontiguousarray(np.moveaxis(g_values, 2, 0), dtype=np.float64)
        for g_layer in layers:
            mass = np.einsum("bk,bk->b", g_layer, probs)[:, None]
            probs *= g_layer - mass + 1.0
        # 1 - mass can round below zero when all mass sits on g = 1; such candidates have probability 0
        np.maximum(probs, 0.0, out=probs)
        return probs

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.FloatTensor:
        scheme = self.scheme
        k = min(self.top_k, scores.shape[-1])
        # dividing by a positive temperature keeps the order: select first, then scale the k survivors
        values, indices = torch.topk(scores, k, dim=-1)
        ids = input_ids.detach().cpu().numpy().astype(np.int64, copy=False)
        self._track(ids)
        top_values = self.nucleus(values.detach().to(torch.float64).cpu().numpy() / self.temperature)
        width = scheme.ngram_len - 1
        if ids.shape[1] >= width:
            g = scheme.candidate_g_values(ids[:, ids.shape[1] - width :], indices.detach().cpu().numpy())
            with np.errstate(divide="ignore"):
                marked = np.log(self.tournament(top_values, g))
            unmarked = self.repeated_contexts(ids)
            top_values = np.where(unmarked[:, None], top_values, marked)
        out = torch.full_like(scores, -torch.inf)
        new_values = torch.from_numpy(top_values).to(device=scores.device, dtype=scores.dtype)
        return out.scatter(-1, indices, new_values)  # type: ignore[return-value]
