"""The text watermark inside vLLM: a batch-level logits processor for the native, kgw and synthid schemes.

vLLM (V1 engine) loads custom logits processors as classes implementing
``vllm.v1.sample.logits_processor.LogitsProcessor``: ``__init__(vllm_config, device,
is_pin_memory)``, ``update_state(batch_update)`` called before each step with the requests
added to, removed from and moved within the persistent batch, ``apply(logits)`` over the
``(num_requests, vocab_size)`` logits, ``is_argmax_invariant()`` and ``validate_params()``.
:class:`VLLMWatermarkLogitsProcessor` is that class: each row of the batch is marked by exactly
the Hugging Face processor tracemark uses in ``generate()`` (:func:`~tracemark.text.logits_processor`),
fed the row's prompt and output tokens, so that a sequence vLLM samples from the same logits
with the same random draws is the same sequence, and detection gives it the same p-value.

Where its key comes from: vLLM builds the class itself, so the class finds the key in the
keyring (``TRACEMARK_HOME``): ``TRACEMARK_VLLM_KEY_ID`` names it (default: the keyring's
default text key for the served model's tokenizer; the model folder is vLLM's
``model_config.model``, or ``TRACEMARK_VLLM_MODEL_DIR``).  In code, :func:`vllm_processor_class`
returns a subclass bound to a key you already hold::

    from vllm import LLM, SamplingParams
    llm = LLM(model=model_dir, logits_processors=[vllm_processor_class(key, model_dir)])

On the command line: ``vllm serve MODEL --logits-processors tracemark.text._vllm:VLLMWatermarkLogitsProcessor``.

Every request is marked unless its ``SamplingParams.extra_args`` has ``{"tracemark_watermark": False}``.
SynthID applies its own temperature and top-k: requests must leave vLLM's neutral
(``temperature=1``, ``top_k=-1``, ``top_p=1``), as ``SynthIDScheme.generation_kwargs()`` says for
``generate()``.  vLLM is not a dependency: without it the class still imports (its base is then
``object``), so that the adapter's logic is tested against a stand-in of the interface.  This
targets the V1 model runner's interface; vLLM's Model Runner V2 (``VLLM_USE_V2_MODEL_RUNNER``)
has a different one, not covered here.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracemark.errors import KeyMismatchError
from tracemark.keys import Keyring, TextKey
from tracemark.text._keys import select_text_key
from tracemark.text._processors import logits_processor
from tracemark.text._schemes import WatermarkScheme, load_scheme
from tracemark.text._tokenizer import TextTokenizer

if TYPE_CHECKING:
    import torch


def _vllm_base() -> Any:
    """vLLM's ``LogitsProcessor`` base class, or ``object`` when vLLM is not installed (it is optional and needs
    a GPU; the adapter's logic is then tested against a stand-in of the interface)."""
    try:
        return importlib.import_module("vllm.v1.sample.logits_processor").LogitsProcessor
    except ImportError:
        return object


_VLLMBase: Any = _vllm_base()

#: Environment variables the class reads when vLLM constructs it.
KEY_ID_ENV = "TRACEMARK_VLLM_KEY_ID"
MODEL_DIR_ENV = "TRACEMARK_VLLM_MODEL_DIR"
#: ``SamplingParams.extra_args`` entry that turns the mark off for one request.
OPT_OUT_ARG = "tracemark_watermark"


@dataclass
class _Request:
    """A request in the persistent batch: its prompt, its live output list, and its processor."""

    prompt: list[int]
    output: list[int]  # vLLM's own list: it grows as the request decodes
    marked: bool
    processor: Any = field(default=None)


def _direction_is_swap(direction: object) -> bool:
    return getattr(direction, "name", str(direction)).upper().endswith("SWAP")


def _extra_args(params: object) -> dict[str, object]:
    extra = getattr(params, "extra_args", None)
    return extra if isinstance(extra, dict) else {}


class VLLMWatermarkLogitsProcessor(_VLLMBase):  # type: ignore[misc]
    """vLLM logits processor that marks each request with a tracemark text key (see the module docstring)."""

    #: Set by :func:`vllm_processor_class`; else the key is found in the keyring when vLLM builds the class.
    bound_key: TextKey | None = None
    bound_model_dir: Path | None = None

    def __init__(self, vllm_config: object, device: object, is_pin_memory: bool) -> None:
        self.device = device
        key = self.bound_key or self._key_from_keyring(vllm_config)
        self.key = key
        self.scheme: WatermarkScheme = load_scheme(key)
        #: SynthID keeps a history per sequence: one processor per request; the others are stateless.
        self.stateful = self.scheme.name == "synthid"
        self._shared = None if self.stateful else logits_processor(self.scheme)
        self.requests: dict[int, _Request] = {}

    @classmethod
    def _key_from_keyring(cls, vllm_config: object) -> TextKey:
        model_dir = os.environ.get(MODEL_DIR_ENV) or getattr(getattr(vllm_config, "model_config", None), "model", None)
        if not model_dir or not (Path(str(model_dir)) / "tokenizer.json").is_file():
            raise KeyMismatchError(
                f"the tracemark vLLM processor needs the model's folder with its tokenizer.json: set {MODEL_DIR_ENV}"
            )
        keyring = Keyring()
        key_id = os.environ.get(KEY_ID_ENV) or (keyring.defaults().get("text") if keyring.exists() else None)
        return select_text_key(keyring, TextTokenizer(Path(str(model_dir))), key_id=key_id)

    @classmethod
    def validate_params(cls, sampling_params: object) -> None:
        """Refuse a non-boolean ``extra_args["tracemark_watermark"]`` (vLLM raises it to the client)."""
        value = _extra_args(sampling_params).get(OPT_OUT_ARG, True)
        if not isinstance(value, bool):
            raise ValueError(f"extra_args[{OPT_OUT_ARG!r}] must be true or false")

    def is_argmax_invariant(self) -> bool:
        """False: the mark moves probability mass, so greedy decoding changes too."""
        return False

    def update_state(self, batch_update: object | None) -> None:
        """Apply vLLM's batch changes, in its order: removed, added, moved."""
        if batch_update is None:
            return
        for index in getattr(batch_update, "removed", ()):
            self.requests.pop(int(index), None)
        for added in getattr(batch_update, "added", ()):
            index, params, prompt, output = added[0], added[1], added[2], added[3]
            marked = _extra_args(params).get(OPT_OUT_ARG, True) is not False
            request = _Request(prompt=list(prompt or []), output=output, marked=marked)
            if marked and self.stateful:
                request.processor = logits_processor(self.scheme)
            self.requests[int(index)] = request
        for moved in getattr(batch_update, "moved", ()):
            self._move(int(moved[0]), int(moved[1]), _direction_is_swap(moved[2]))

    def _move(self, source: int, target: int, swap: bool) -> None:
        moving = self.requests.pop(source, None)
        if swap:
            other = self.requests.pop(target, None)
            if other is not None:
                self.requests[source] = other
        if moving is not None:
            self.requests[target] = moving

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """Mark every marked row of ``logits`` with the key's processor, given that row's tokens so far."""
        import torch

        rows = [index for index, request in sorted(self.requests.items()) if request.marked and index < logits.shape[0]]
        if not rows:
            return logits
        out = logits.clone()
        for index in rows:
            request = self.requests[index]
            ids = torch.tensor([[*request.prompt, *request.output]], dtype=torch.long)
            processor: Any = request.processor if self.stateful else self._shared
            out[index : index + 1] = processor(ids, logits[index : index + 1])
        return out


def vllm_processor_class(key: TextKey, model_dir: Path | str | None = None) -> type[VLLMWatermarkLogitsProcessor]:
    """A :class:`VLLMWatermarkLogitsProcessor` subclass marking with ``key``: for ``LLM(logits_processors=[...])``."""
    return type(
        "BoundVLLMWatermarkLogitsProcessor",
        (VLLMWatermarkLogitsProcessor,),
        {"bound_key": key, "bound_model_dir": None if model_dir is None else Path(model_dir)},
    )
