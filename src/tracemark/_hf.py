"""Loading a local Hugging Face causal language model, offline: shared by generation and theft's model queries."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from tracemark.errors import MissingExtraError, ModelLoadError


class LocalCausalLM(NamedTuple):
    """torch, and a model directory's tokenizer and model (in eval mode)."""

    torch: ModuleType
    tokenizer: Any  # transformers' tokenizer and model classes are not typed
    model: Any


def load_causal_lm(model_dir: Path, purpose: str) -> LocalCausalLM:
    """Load ``model_dir`` from local files only (nothing is downloaded).

    ``purpose`` names the capability in the :class:`MissingExtraError` raised without the ``text`` extra.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise MissingExtraError(purpose, "text") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load model from {model_dir}: {exc}") from None
    model.eval()  # type: ignore[no-untyped-call]
    return LocalCausalLM(torch, tokenizer, model)
