"""Watermarked generation with a Hugging Face causal LM (needs the ``text`` extra)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from tracemark._hf import load_causal_lm
from tracemark.errors import InvalidInputError, ModelLoadError
from tracemark.keys import TextKey
from tracemark.text._detect import check_key_fits
from tracemark.text._processors import logits_processor
from tracemark.text._schemes import load_scheme
from tracemark.text._tokenizer import TextTokenizer

REFERENCE_MODEL_ENV = "TRACEMARK_REFERENCE_MODEL"


def reference_model_dir() -> Path:
    """The bundled reference model: ``$TRACEMARK_REFERENCE_MODEL`` or the repository's ``models/reference``."""
    configured = os.environ.get(REFERENCE_MODEL_ENV)
    if configured:
        if not (Path(configured) / "config.json").is_file():
            raise ModelLoadError(f"{REFERENCE_MODEL_ENV}={configured} is not a model folder (no config.json)")
        return Path(configured)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "models" / "reference"
        if (candidate / "config.json").is_file():
            return candidate
    raise ModelLoadError(
        "no model folder found (a wheel install carries no reference model): "
        f"pass --model DIR or set {REFERENCE_MODEL_ENV}"
    )


def check_sampling(
    *, max_new_tokens: int, temperature: float | None, top_k: int, top_p: float, seed: int | None
) -> None:
    """Refuse sampling settings ``generate()`` would reject with a traceback or silently misuse."""
    if isinstance(max_new_tokens, bool) or not 1 <= max_new_tokens <= 4096:
        raise InvalidInputError(f"max_new_tokens must lie in 1..4096, got {max_new_tokens}")
    if temperature is not None and not (math.isfinite(temperature) and 0.0 < temperature <= 100.0):
        raise InvalidInputError(f"temperature must be a number in (0, 100], got {temperature} (0 is not greedy here)")
    if top_k < 0:
        raise InvalidInputError(f"top_k must be 0 (off) or a positive number of candidates, got {top_k}")
    if not (math.isfinite(top_p) and 0.0 < top_p <= 1.0):
        raise InvalidInputError(f"top_p must lie in (0, 1], got {top_p}")
    if seed is not None and not 0 <= seed < 2**63:
        raise InvalidInputError(f"seed must lie in 0..2**63-1, got {seed}")


class GenerationJSON(TypedDict):
    """:meth:`Generation.to_json`'s object (``format`` ``tracemark.text.generation/v1``)."""

    format: str
    prompt: str
    text: str
    tokens: int
    token_ids: list[int]
    key_id: str
    scheme: str
    scheme_version: str
    model_dir: str


@dataclass(frozen=True)
class Generation:
    """One watermarked completion."""

    prompt: str
    text: str
    token_ids: tuple[int, ...]
    prompt_token_ids: tuple[int, ...]
    key_id: str
    scheme: str
    scheme_version: str
    model_dir: str

    def to_json(self) -> GenerationJSON:
        """JSON form (``tracemark.text.generation/v1``)."""
        return {
            "format": "tracemark.text.generation/v1",
            "prompt": self.prompt,
            "text": self.text,
            "tokens": len(self.token_ids),
            "token_ids": list(self.token_ids),
            "key_id": self.key_id,
            "scheme": self.scheme,
            "scheme_version": self.scheme_version,
            "model_dir": self.model_dir,
        }


class WatermarkedGenerator:
    """A model directory loaded once, generating marked text under one key."""

    def __init__(self, model_dir: Path | str, key: TextKey) -> None:
        self.model_dir = Path(model_dir)
        check_key_fits(key, TextTokenizer(self.model_dir))
        self.key = key
        self.scheme = load_scheme(key)
        self._torch, self.tokenizer, self.model = load_causal_lm(self.model_dir, "watermarked generation")

    def generate(
        self,
        prompts: list[str],
        *,
        max_new_tokens: int = 200,
        temperature: float | None = None,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop_at_eos: bool = False,
    ) -> list[Generation]:
        """Sample one marked completion per prompt (a batch, left-padded).

        ``temperature`` None means 1.0, or a synthid key's own temperature; SynthID applies
        ``temperature``, ``top_k`` and ``top_p`` inside its processor, before the tournament.
        """
        from transformers import LogitsProcessorList

        from tracemark.text._hf_synthid import SynthIDLogitsProcessor

        if not prompts or any(not p.strip() for p in prompts):
            raise InvalidInputError("every prompt must be non-empty")
        check_sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        torch = self._torch
        if seed is not None:
            torch.manual_seed(seed)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        prompt_width = batch["input_ids"].shape[1]
        window = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", None
        )
        if isinstance(window, int) and prompt_width + max_new_tokens > window:
            raise InvalidInputError(
                f"prompt ({prompt_width} tokens) plus {max_new_tokens} new tokens exceed the model's context of "
                f"{window} tokens"
            )
        kwargs: dict[str, object] = {
            "do_sample": True,
            "temperature": 1.0 if temperature is None else temperature,
            "top_k": top_k,
            "top_p": top_p,
            "max_new_tokens": max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            **self.scheme.generation_kwargs(),
        }
        if not stop_at_eos:
            kwargs["min_new_tokens"] = max_new_tokens
        processor = logits_processor(self.scheme)
        if isinstance(processor, SynthIDLogitsProcessor):
            # generate()'s warpers are neutralised for SynthID: the processor applies the user's settings
            processor.sample_with(temperature=temperature, top_k=top_k, top_p=top_p)
        processors = LogitsProcessorList([processor])
        with torch.no_grad():
            output = self.model.generate(**batch, logits_processor=processors, **kwargs)
        results = []
        for row, prompt in enumerate(prompts):
            new_ids = [int(t) for t in output[row, prompt_width:].tolist()]
            if stop_at_eos and self.tokenizer.eos_token_id in new_ids:
                new_ids = new_ids[: new_ids.index(self.tokenizer.eos_token_id)]
            prompt_ids = [
                int(t) for t, m in zip(batch["input_ids"][row], batch["attention_mask"][row], strict=False) if m
            ]
            results.append(
                Generation(
                    prompt=prompt,
                    text=str(self.tokenizer.decode(new_ids, skip_special_tokens=True)),
                    token_ids=tuple(new_ids),
                    prompt_token_ids=tuple(prompt_ids),
                    key_id=self.key.key_id,
                    scheme=self.key.scheme,
                    scheme_version=self.key.scheme_version,
                    model_dir=str(self.model_dir),
                )
            )
        return results
