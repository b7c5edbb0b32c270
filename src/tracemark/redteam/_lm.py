"""The red team's language model: marked and unmarked generation, local regeneration, perplexity, spoofing.

Everything here runs the reference model (or any local causal LM directory) on the CPU with torch,
which the ``text`` extra installs.  The watermark's own ``LogitsProcessor`` marks text exactly as a
provider's deployment would; the unmarked side is the same model and sampling without it, so the
two corpora differ only in the mark.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tracemark._hf import load_causal_lm
from tracemark.keys import TextKey
from tracemark.text import load_scheme, logits_processor

#: Prompts cycled over a corpus: short openings in the reference model's domain.
PROMPTS = (
    "The Python programming language",
    "In this chapter, we",
    "When the system starts,",
    "The package maintainer",
    "To install the software,",
    "The following example shows",
    "A Debian system",
    "The function returns",
)

Batch = list[list[int]]


class RedTeamModel:
    """A local causal LM loaded once; generation in left-padded batches."""

    def __init__(self, model_dir: Path, *, batch_size: int = 32, threads: int | None = None) -> None:
        self.model_dir = model_dir
        self._torch, self.tokenizer, self.model = load_causal_lm(model_dir, "the text watermark red team")
        self._torch.set_grad_enabled(False)
        if threads is not None:
            self._torch.set_num_threads(threads)
        self.batch_size = batch_size
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.vocab_size = int(self.model.config.vocab_size)

    def generate(
        self,
        count: int,
        tokens: int,
        *,
        seed: int,
        key: TextKey | None = None,
        extra_processor: Callable[[], Any] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Batch:
        """``count`` completions of ``tokens`` new tokens (marked under ``key`` when given), prompts cycled."""
        from transformers import LogitsProcessorList

        out: Batch = []
        kwargs: dict[str, object] = {}
        if key is not None:
            kwargs.update(load_scheme(key).generation_kwargs())
        for start in range(0, count, self.batch_size):
            size = min(self.batch_size, count - start)
            prompts = [PROMPTS[(start + i) % len(PROMPTS)] for i in range(size)]
            processors = LogitsProcessorList()
            if key is not None:
                processors.append(logits_processor(load_scheme(key)))
            if extra_processor is not None:
                processors.append(extra_processor())
            self._torch.manual_seed(seed + start)
            batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            width = batch["input_ids"].shape[1]
            generated = self.model.generate(
                **batch,
                logits_processor=processors,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                **kwargs,
            )
            out.extend([int(t) for t in row[width:].tolist()] for row in generated)
            if progress is not None:
                progress(size)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def _logits(self, batch: Batch) -> Any:
        """Next-token logits at every position of equal-length sequences, a BOS prepended."""
        torch = self._torch
        bos = int(self.tokenizer.bos_token_id or 0)
        ids = torch.tensor([[bos, *row] for row in batch], dtype=torch.long)
        return self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, :-1, :].float()

    def regenerate(self, batch: Batch, fraction: float, *, seed: int) -> Batch:
        """Resample ``fraction`` of the positions of each sequence from the unmarked model given the prefix.

        The local "paraphrase" anyone holding the (unmarked) model can run: each chosen token is
        replaced by a fresh sample from ``p(. | tokens before it)``.
        """
        torch = self._torch
        generator = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        out: Batch = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start : start + self.batch_size]
            probabilities = torch.softmax(self._logits(chunk), dim=-1)
            for row, ids in enumerate(chunk):
                positions = rng.choice(len(ids), size=round(fraction * len(ids)), replace=False)
                new = list(ids)
                if positions.size:
                    picks = torch.multinomial(probabilities[row, positions.tolist()], 1, generator=generator)
                    for position, token in zip(positions.tolist(), picks[:, 0].tolist(), strict=True):
                        new[position] = int(token)
                out.append(new)
        return out

    def perplexity(self, batch: Batch) -> list[float]:
        """Perplexity of each equal-length sequence under this model (BOS-conditioned)."""
        torch = self._torch
        values: list[float] = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start : start + self.batch_size]
            logits = self._logits(chunk)
            targets = torch.tensor(chunk, dtype=torch.long)
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(dim=1)
            values.extend(float(v) for v in torch.exp(nll).tolist())
        return values


def stealing_processor(
    learned: Mapping[tuple[int, ...], tuple[np.ndarray, np.ndarray]], width: int, boost: float
) -> Callable[[], Any]:
    """A factory of the spoofer's ``LogitsProcessor``: boost tokens the stolen statistics call green.

    ``learned`` maps a context (the ``width`` tokens before the scored token) to the tokens seen after
    it in marked text and their frequencies there.  A token is boosted by ``boost`` when its marked
    frequency exceeds the unmarked model's own probability of it in that context (it is
    over-represented in marked text, Jovanović et al. 2024).
    """
    from transformers import LogitsProcessor

    class _Stealing(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            import torch

            probabilities = torch.softmax(scores, dim=-1)
            for row in range(input_ids.shape[0]):
                context = tuple(int(t) for t in input_ids[row, -width:].tolist())
                seen = learned.get(context)
                if seen is None:
                    continue
                tokens, frequencies = seen
                over = frequencies > probabilities[row, tokens].numpy()
                if over.any():
                    scores[row, tokens[over]] += boost
            return scores

    return _Stealing


def emoji_processor(emoji_ids: Sequence[int], share: float, seed: int) -> Callable[[], Any]:
    """A factory of a ``LogitsProcessor`` that forces ``emoji_ids`` after a ``share`` of the generated tokens.

    The emoji attack (Kirchenbauer et al. 2023): the user asks the marked model to write an emoji
    after every word and deletes them afterwards, so every context the watermark seeded from
    contained an emoji that is gone from the published text.
    """
    from transformers import LogitsProcessor

    class _Emoji(LogitsProcessor):
        def __init__(self) -> None:
            self.pending: dict[int, list[int]] = {}
            self.rng = np.random.default_rng(seed)

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            for row in range(input_ids.shape[0]):
                queue = self.pending.get(row)
                if not queue and queue is not None:
                    del self.pending[row]  # the emoji just ended: the next token is the model's own
                    continue
                if queue is None:
                    if self.rng.random() >= share:
                        continue
                    queue = self.pending[row] = list(emoji_ids)
                forced = queue.pop(0)
                scores[row, :] = -float("inf")
                scores[row, forced] = 0.0
            return scores

    return _Emoji
