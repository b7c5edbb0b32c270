"""A tiny GPT-2 model folder for service tests: a byte-level BPE tokenizer trained here and random weights.

The bundled reference model may not be there (it is trained separately); generation tests only need
*a* causal LM that ``AutoModelForCausalLM.from_pretrained`` loads, and building this one takes no torch.
Random weights give an almost uniform next-token distribution, so the watermark is strong and 200
tokens are always detected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[3]
END_OF_TEXT = "<|endoftext|>"


def _corpus() -> list[str]:
    texts = [path.read_text(encoding="utf-8") for path in sorted((_REPO / "docs").glob("*.md"))]
    texts.append((_REPO / "README.md").read_text(encoding="utf-8"))
    # ASCII lines only: every token then decodes to printable text, so generations read as (odd) words.
    return [line for text in texts for line in text.splitlines() if line.strip() and line.isascii()]


def write_tokenizer(directory: Path, vocab_size: int = 1024) -> Path:
    """Train a byte-level BPE tokenizer on the repository's documentation; write tokenizer files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False)
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT,
              "unk_token": END_OF_TEXT, "pad_token": END_OF_TEXT, "model_max_length": 1024}  # fmt: skip
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return directory


def write_tiny_gpt2(directory: Path, vocab_size: int = 1024, *, seed: int = 0) -> Path:
    """A model folder with the tokenizer above and a one-layer GPT-2 with random weights.

    The weights are drawn with numpy (GPT-2's initialisation: normal with standard deviation 0.02,
    layer norms at one) and written with safetensors, so building the folder does not import torch.
    """
    import numpy as np
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer

    write_tokenizer(directory, vocab_size)
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    vocab, width, positions = tokenizer.get_vocab_size(), 32, 1024
    eos = tokenizer.token_to_id(END_OF_TEXT)
    rng = np.random.default_rng(seed)

    def normal(*shape: int, std: float = 0.02) -> np.ndarray[Any, np.dtype[np.float32]]:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    layer = "transformer.h.0."
    tensors = {
        "transformer.wte.weight": normal(vocab, width),
        "transformer.wpe.weight": normal(positions, width),
        layer + "attn.c_attn.weight": normal(width, 3 * width),
        layer + "attn.c_attn.bias": np.zeros(3 * width, np.float32),
        layer + "attn.c_proj.weight": normal(width, width, std=0.02 / 2**0.5),
        layer + "attn.c_proj.bias": np.zeros(width, np.float32),
        layer + "mlp.c_fc.weight": normal(width, 4 * width),
        layer + "mlp.c_fc.bias": np.zeros(4 * width, np.float32),
        layer + "mlp.c_proj.weight": normal(4 * width, width, std=0.02 / 2**0.5),
        layer + "mlp.c_proj.bias": np.zeros(width, np.float32),
    }
    for norm in (layer + "ln_1", layer + "ln_2", "transformer.ln_f"):
        tensors[norm + ".weight"] = np.ones(width, np.float32)
        tensors[norm + ".bias"] = np.zeros(width, np.float32)
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": vocab, "n_positions": positions,
              "n_embd": width, "n_layer": 1, "n_head": 2, "activation_function": "gelu_new", "bos_token_id": eos,
              "eos_token_id": eos, "tie_word_embeddings": True, "layer_norm_epsilon": 1e-5}  # fmt: skip
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


def write_detection_only_model(directory: Path) -> Path:
    """A folder with the tokenizer and a ``config.json`` but no weights: enough to detect, not to generate."""
    write_tokenizer(directory)
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(directory / "tokenizer.json")).get_vocab_size()
    (directory / "config.json").write_text(json.dumps({"vocab_size": vocab, "model_type": "gpt2"}))
    return directory
