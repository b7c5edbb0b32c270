"""GGUF checkpoints (llama.cpp) for the weight test, read with the ``gguf`` package, tensor by tensor.

GGUF names tensors its own way (``token_embd``, ``blk.N.attn_q``, ``ffn_gate`` ...) and stores them
in GGML's types, most of them block-quantised.  :class:`GGUFSource` maps the names of LLaMA-family
models (``general.architecture`` llama, mistral, qwen2, qwen3) onto transformers' names, takes the
head counts from the metadata (``{arch}.attention.head_count`` and ``head_count_kv``), and
dequantises a tensor only when the weight test asks for it.  llama.cpp's converter reorders the rows
of Q and K inside every head for its RoPE layout; the same reordering on both sides leaves
``W_Q W_Kᵀ`` unchanged, so no undoing is needed.  Other GGUF architectures are refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from tracemark.errors import MissingExtraError, TheftError
from tracemark.theft._tensors import MAX_WEIGHT_BYTES, WeightSource

if TYPE_CHECKING:
    from gguf.gguf_reader import ReaderTensor  # type: ignore[import-not-found,unused-ignore]

#: GGUF architectures whose tensors follow the LLaMA layout.
LLAMA_LIKE = frozenset(("llama", "mistral", "qwen2", "qwen3"))

_BLOCK = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def _hf_name(name: str) -> str | None:
    match = re.fullmatch(r"blk\.(\d+)\.([a-z_]+)\.(weight|bias)", name)
    if match is not None:
        mapped = _BLOCK.get(match.group(2))
        return None if mapped is None else f"model.layers.{match.group(1)}.{mapped}.{match.group(3)}"
    stem, _, kind = name.rpartition(".")
    return f"{_TOP[stem]}.{kind}" if stem in _TOP else None


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None or not field.data:
        return None
    value = field.parts[field.data[0]]
    if field.types and field.types[0].name == "STRING":
        return bytes(value).decode("utf-8", errors="replace")
    return value.tolist()[0] if hasattr(value, "tolist") else value


class GGUFSource(WeightSource):
    """A GGUF file as a lazy ``transformers-name -> float array`` mapping with a LLaMA config."""

    def __init__(self, path: Path | str) -> None:
        try:
            import gguf  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise MissingExtraError("reading GGUF weights (the gguf package)", "text") from None
        source = Path(path)
        if source.stat().st_size > MAX_WEIGHT_BYTES:
            raise TheftError(f"{source} is larger than {MAX_WEIGHT_BYTES} bytes")
        try:
            reader = gguf.GGUFReader(str(source))
        except Exception as exc:  # the reader raises untyped errors on malformed files
            raise TheftError(f"cannot read {source} as GGUF: {exc}") from None
        architecture = _field(reader, "general.architecture")
        if architecture not in LLAMA_LIKE:
            raise TheftError(
                f"{source}: GGUF architecture {architecture!r} is not read; the weight test reads GGUF files of "
                f"{', '.join(sorted(LLAMA_LIKE))} (convert others to safetensors)"
            )
        self._dequantize = gguf.quants.dequantize
        self._gguf: dict[str, ReaderTensor] = {}
        for tensor in reader.tensors:
            name = _hf_name(tensor.name)
            if name is not None:
                self._gguf[name] = tensor
        config = {"model_type": architecture, "gguf_file": source.name}
        for key, target in (("attention.head_count", "num_attention_heads"),
                            ("attention.head_count_kv", "num_key_value_heads")):  # fmt: skip
            value = _field(reader, f"{architecture}.{key}")
            if isinstance(value, int) and value > 0:
                config[target] = value
        super().__init__(config=config)

    def __getitem__(self, name: str) -> NDArray[Any]:
        tensor = self._gguf[name]
        return self._widen(tensor, tensor.data)

    def __contains__(self, name: object) -> bool:
        return name in self._gguf

    def __iter__(self) -> Iterator[str]:
        return iter(self._gguf)

    def __len__(self) -> int:
        return len(self._gguf)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(n) for n in reversed(self._gguf[name].shape))  # GGUF lists the fastest dimension first

    def rows(self, name: str, indices: NDArray[np.int64]) -> NDArray[Any]:
        tensor = self._gguf[name]
        return self._widen(tensor, tensor.data[indices])  # quantised rows are whole blocks of bytes

    def nbytes_on_disk(self) -> int:
        return sum(int(t.n_bytes) for t in self._gguf.values())

    def _widen(self, tensor: Any, data: Any) -> NDArray[Any]:
        try:
            return np.asarray(self._dequantize(np.asarray(data), tensor.tensor_type), dtype=np.float32)
        except NotImplementedError:
            raise TheftError(f"GGUF tensor {tensor.name} has type {tensor.tensor_type.name}, not dequantised") from None
