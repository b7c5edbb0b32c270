"""vLLM and llama.cpp adapters: the same tokens, hence the same p-value, as tracemark's own processor.

vLLM is not installed here (it needs a CUDA GPU): the adapter is driven through a stand-in of
vLLM's documented V1 logits-processor interface (``update_state`` with a ``BatchUpdate`` of
removed / added / moved requests, then ``apply`` on the batch's logits), which checks the
adapter's bookkeeping and its output, not vLLM itself.  The test against real vLLM runs only where
vLLM and a GPU exist.  llama.cpp's hook is a plain callable on numpy arrays, driven directly.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from tests.conftest import REFERENCE_MODEL
from tests.unit.gateway.conftest import GeneratorFactory
from tracemark.text import TextTokenizer, WatermarkedGenerator, detect_watermark, logits_processor
from tracemark.text._llamacpp import LlamaCppWatermark
from tracemark.text._vllm import VLLMWatermarkLogitsProcessor, vllm_processor_class

torch = pytest.importorskip("torch")

SCHEMES = ["native", "kgw", "synthid"]
STEPS = 60


class MoveDirectionality(enum.Enum):
    """vLLM's ``MoveDirectionality``."""

    UNIDIRECTIONAL = 0
    SWAP = 1


@dataclass(frozen=True)
class BatchUpdate:
    """vLLM's ``BatchUpdate``: ``added`` is (index, params, prompt ids, live output ids)."""

    batch_size: int
    removed: list[int] = field(default_factory=list)
    added: list[tuple[int, Any, list[int], list[int]]] = field(default_factory=list)
    moved: list[tuple[int, int, MoveDirectionality]] = field(default_factory=list)


@dataclass(frozen=True)
class SamplingParams:
    """The part of vLLM's ``SamplingParams`` the adapter reads."""

    extra_args: dict[str, object] | None = None


def _next_logits(generator: WatermarkedGenerator, ids: list[int]) -> Any:
    with torch.inference_mode():
        return generator.model(input_ids=torch.tensor([ids])).logits[:, -1, :].float()


def _draw(scores: Any, sampler: Any) -> int:
    probs = torch.softmax(scores, dim=-1).reshape(-1)
    cumulative = probs.cumsum(-1)
    draw = torch.rand(1, generator=sampler, dtype=cumulative.dtype) * cumulative[-1]
    return int(torch.searchsorted(cumulative, draw).clamp(max=probs.shape[-1] - 1))


def _own_processor_tokens(generator: WatermarkedGenerator, prompt: list[int], seed: int) -> list[int]:
    """Tokens sampled with tracemark's Hugging Face processor, one draw per step from ``seed``."""
    processor = logits_processor(generator.scheme)
    sampler = torch.Generator().manual_seed(seed)
    output: list[int] = []
    for _ in range(STEPS):
        ids = [*prompt, *output]
        output.append(_draw(processor(torch.tensor([ids]), _next_logits(generator, ids)), sampler))
    return output


def _encode(generator: WatermarkedGenerator, text: str) -> list[int]:
    return [int(i) for i in generator.tokenizer(text, add_special_tokens=False)["input_ids"]]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_vllm_adapter_samples_what_our_processor_samples(reference_generator: GeneratorFactory, scheme: str) -> None:
    generator = reference_generator(scheme)
    prompts = [_encode(generator, "The json module"), _encode(generator, "A list is")]
    unmarked_prompt = _encode(generator, "Plain text")
    expected = [_own_processor_tokens(generator, prompt, seed) for seed, prompt in enumerate(prompts)]

    adapter = vllm_processor_class(generator.key)(vllm_config=None, device="cpu", is_pin_memory=False)
    outputs: list[list[int]] = [[], []]
    unmarked: list[int] = []
    samplers = [torch.Generator().manual_seed(seed) for seed in range(2)]
    adapter.update_state(BatchUpdate(2, added=[(0, SamplingParams(), prompts[0], outputs[0]),
                                               (1, SamplingParams(), prompts[1], outputs[1])]))  # fmt: skip
    order = [0, 1]  # request at each batch index
    for step in range(STEPS):
        update = None
        if step == STEPS // 3:  # vLLM condenses its batch: the two requests swap places
            update = BatchUpdate(2, moved=[(0, 1, MoveDirectionality.SWAP)])
            order.reverse()
        elif step == STEPS // 2:  # a request that opts out joins at index 2
            update = BatchUpdate(3, added=[(2, SamplingParams({"tracemark_watermark": False}), unmarked_prompt,
                                            unmarked)])  # fmt: skip
        adapter.update_state(update)
        sequences = [[*prompts[r], *outputs[r]] for r in order]
        raw = [_next_logits(generator, ids) for ids in sequences]
        if step >= STEPS // 2:
            raw.append(_next_logits(generator, [*unmarked_prompt, *unmarked]))
        logits = torch.cat(raw)
        marked = adapter.apply(logits)
        for place, request in enumerate(order):
            outputs[request].append(_draw(marked[place : place + 1], samplers[request]))
        if step >= STEPS // 2:
            assert torch.equal(marked[2], logits[2]), "an opted-out request is left as it was"
            unmarked.append(int(logits[2].argmax()))
    adapter.update_state(BatchUpdate(1, removed=[0, 2]))
    assert sorted(adapter.requests) == [1]

    assert outputs == expected
    tokenizer = TextTokenizer(generator.model_dir)
    for ours, theirs in zip(expected, outputs, strict=True):
        p_ours = detect_watermark(generator.tokenizer.decode(ours), generator.key, tokenizer).p_value
        p_theirs = detect_watermark(generator.tokenizer.decode(theirs), generator.key, tokenizer).p_value
        assert p_ours == p_theirs


def test_vllm_adapter_contract(reference_generator: GeneratorFactory) -> None:
    cls = vllm_processor_class(reference_generator("native").key)
    adapter = cls(vllm_config=None, device="cpu", is_pin_memory=False)
    assert adapter.is_argmax_invariant() is False
    cls.validate_params(SamplingParams({"tracemark_watermark": False}))
    with pytest.raises(ValueError, match="tracemark_watermark"):
        cls.validate_params(SamplingParams({"tracemark_watermark": "no"}))
    logits = torch.randn(2, 8192)
    assert torch.equal(adapter.apply(logits), logits), "an empty batch is not touched"


def test_vllm_adapter_finds_its_key_in_the_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracemark.keys import Keyring
    from tracemark.text import new_text_key

    ring = Keyring()
    ring.create()
    key = new_text_key(ring, "kgw", REFERENCE_MODEL, make_default=True)

    @dataclass(frozen=True)
    class ModelConfig:
        model: str

    @dataclass(frozen=True)
    class VllmConfig:
        model_config: ModelConfig

    adapter = VLLMWatermarkLogitsProcessor(VllmConfig(ModelConfig(str(REFERENCE_MODEL))), "cpu", False)
    assert adapter.key.key_id == key.key_id


@pytest.mark.parametrize("scheme", SCHEMES)
def test_llamacpp_hook_samples_what_our_processor_samples(reference_generator: GeneratorFactory, scheme: str) -> None:
    generator = reference_generator(scheme)
    prompt = _encode(generator, "The json module")
    expected = _own_processor_tokens(generator, prompt, seed=7)
    hook: Callable[[Any, Any], Any] = LlamaCppWatermark(generator.key)
    sampler = torch.Generator().manual_seed(7)
    output: list[int] = []
    for _ in range(STEPS):
        ids = np.asarray([*prompt, *output], dtype=np.intc)
        scores = _next_logits(generator, ids.tolist()).reshape(-1).numpy().astype(np.single)
        marked = hook(ids, scores)
        assert marked.dtype == np.single
        assert marked.shape == scores.shape
        output.append(_draw(torch.from_numpy(marked)[None, :], sampler))
    assert output == expected


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None or not torch.cuda.is_available(),
    reason="vLLM needs its package and a CUDA GPU; run this where both exist (not installed in CI)",
)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_real_vllm_output_is_detected(reference_generator: GeneratorFactory, scheme: str) -> None:  # pragma: no cover
    vllm = importlib.import_module("vllm")  # not a dependency: no stubs to type-check against
    llm_class, params_class = vllm.LLM, vllm.SamplingParams
    generator = reference_generator(scheme)
    llm = llm_class(model=str(REFERENCE_MODEL), logits_processors=[vllm_processor_class(generator.key)],
              gpu_memory_utilization=0.2, enforce_eager=True)  # fmt: skip
    neutral = {"temperature": 1.0, "top_k": -1, "top_p": 1.0}
    params = params_class(max_tokens=150, seed=1, ignore_eos=True, **neutral)
    (result,) = llm.generate(["The documentation explains"], params)
    verdict = detect_watermark(result.outputs[0].text, generator.key, TextTokenizer(REFERENCE_MODEL))
    assert verdict.p_value < 1e-4
