"""Model identity on the bundled reference model: false-positive rate on the same model, power on variants.

The endpoint is the reference model itself sampled with other seeds (the false-positive case), the
same weights served at temperature 1.3, or its weights rounded to int8 per tensor and back; the
reference is the reference model at temperature 1.0.  Each repetition draws fresh samples for both
sides and runs ``identify`` (MMD with a Hamming kernel over reference-tokenizer tokens, permutation
p-value).  The goal (with the zoo's fine-tuned and independent models too) is FPR <= 0.05 on the
same model and power >= 0.8 on every variant at <= 100 prompts x 16 samples; this run uses a smaller
budget (``--prompts`` x ``--samples``) to stay light on a shared CPU, so its power is a lower bound.

    .venv/bin/python bench/bench_theft_identity.py [--reps 20] [--prompts 20] [--samples 8]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from typing import Any

from _common import REPO, reference_model, write_result
from tracemark.text import TextTokenizer
from tracemark.theft import IdentityConfig, identify

sys.path.insert(0, str(REPO))
from tests.support.corpora import python_prose


class BatchedSampler:
    """A ``TextModel`` that draws all samples of a prompt in one ``generate`` call (seeded by the first query)."""

    def __init__(self, model: Any, tokenizer: Any, temperature: float, name: str, per_prompt: int) -> None:
        self.model, self.tokenizer, self.temperature = model, tokenizer, temperature
        self._name, self.per_prompt = name, per_prompt
        self._pending: dict[str, list[str]] = {}

    @property
    def name(self) -> str:
        return self._name

    def complete(self, prompt: str, *, max_new_tokens: int, seed: int) -> str:
        import torch

        if not self._pending.get(prompt):
            torch.manual_seed(seed)
            ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=0,
                    temperature=self.temperature, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                    num_return_sequences=self.per_prompt, pad_token_id=0,
                )  # fmt: skip
            self._pending[prompt] = [
                str(self.tokenizer.decode(row[ids.shape[1] :].tolist(), skip_special_tokens=True)) for row in out
            ]
        return self._pending[prompt].pop()


def int8_round_trip(model: Any) -> Any:
    import torch

    clone = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in clone.parameters():
            if parameter.ndim == 2:
                scale = parameter.abs().max() / 127.0
                parameter.copy_(torch.round(parameter / scale).clamp(-127, 127) * scale)
    return clone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    model_dir = reference_model()
    hf_tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    model.eval()  # type: ignore[no-untyped-call]
    quantised = int8_round_trip(model)
    tokenizer = TextTokenizer(model_dir)
    prompts = [" ".join(doc.split()[:12]) for doc in python_prose() if len(doc.split()) > 12][: args.prompts]

    def tokenize(text: str) -> list[int]:
        return [int(t) for t in tokenizer.encode(text).ids]

    conditions = {"same-model-other-seed": (model, 1.0), "temperature-1.3": (model, 1.3), "int8": (quantised, 1.0)}
    results: dict[str, Any] = {}
    for name, (endpoint_model, temperature) in conditions.items():
        p_values = []
        began = time.perf_counter()
        for rep in range(args.reps):
            config = IdentityConfig(
                samples_per_prompt=args.samples, completion_tokens=args.tokens, max_new_tokens=args.tokens,
                permutations=199, alpha=0.05, seed=1000 * rep + 17,
            )  # fmt: skip
            endpoint = BatchedSampler(endpoint_model, hf_tokenizer, temperature, name, args.samples)
            reference = BatchedSampler(model, hf_tokenizer, 1.0, "reference", args.samples)
            verdict = identify(endpoint, {"reference": reference}, prompts, config, tokenize=tokenize)
            p_values.append(verdict.p_value)
        rejected = sum(1 for p in p_values if p is not None and p <= 0.05)
        results[name] = {
            "repetitions": args.reps,
            "rejected_at_0.05": rejected,
            "rate": rejected / args.reps,
            "p_values": p_values,
            "seconds": round(time.perf_counter() - began, 1),
        }
        print(name, results[name]["rate"], flush=True)
    path = write_result(
        "theft_identity",
        {
            "description": __doc__.split("\n\n")[0],
            "prompts": args.prompts,
            "samples_per_prompt": args.samples,
            "completion_tokens": args.tokens,
            "permutations": 199,
            "conditions": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
