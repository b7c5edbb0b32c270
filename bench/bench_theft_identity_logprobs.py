"""Model identity from log-probabilities on the zoo's teacher, and the ceiling of any samples-only test.

Pre-registered before the first zoo run of this script (fixed here, not chosen afterwards):

* ``identify_logprobs`` with its defaults (top-20 log-probabilities per position, the
  reference's 5 likeliest tokens compared, tolerance 1e-3 nats, outlier rate 0.01, alpha 0.05);
  the reference is the teacher read by the product's ``HFModel``;
* 5 repetitions, each reading 100 distinct held-out 16-token prompts (500 prompts in all,
  disjoint across repetitions): at most 100 prompts and no samples per repetition;
* the same model served another way must be consistent (goal: rejection rate <= 0.05):
  the teacher evaluated in float64, in left-padded batches of 4 requests, with the eager
  attention kernel instead of the default one, and the zoo's permuted copy (hidden units
  relabelled: the same function computed in another order);
* every changed model must be rejected (goal: power >= 0.8): the zoo's per-tensor int8 copy,
  per-channel int8 weights, per-channel int8 weights with per-token int8 activations (W8A8),
  the 100-step fine-tune, the teacher at temperature 1.3 and the independent base;
* reported without a goal: the teacher served in bfloat16 (not int8, but a change of the same
  size; the default tolerance treats it as another model by design).

The samples-only ceiling: for the zoo's int8 copy, the Neyman-Pearson test that knows the int8
model exactly (the likelihood ratio over 100 prompts x 16 completions) is the most powerful
test any samples-only method could run.  Its power at alpha 0.05 is computed from 1,600
completions of each model: the mean log-likelihood ratio from the exact per-position KL along
each sampled path, its spread from the sampled ratios, and a normal approximation of the sum.

    .venv/bin/python bench/bench_theft_identity_logprobs.py [--zoo DIR]
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from _common import write_result
from bench_theft_zoo import Zoo, add_zoo_argument, load_zoo, single_thread
from tracemark.theft import HFModel, LogprobIdentityConfig, NextTokenModel, identify_logprobs

REPETITIONS = 5
PROMPTS = 100
SAMPLES = 16
ALPHA = 0.05
GOAL_FPR = 0.05
GOAL_POWER = 0.8
ORACLE_TOKENS = (8, 32)


class TorchReader:
    """``top_tokens`` of an in-memory model, computed as ``HFModel`` does, optionally inside a padded batch."""

    def __init__(self, label: str, model: Any, *, batch_with: list[list[int]] | None = None) -> None:
        self.label, self.model, self.batch_with = label, model, batch_with

    @property
    def name(self) -> str:
        return self.label

    def top_tokens(self, token_ids: NDArray[np.int64], k: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        import torch

        rows = [list(map(int, token_ids))] + (self.batch_with or [])
        width = max(len(r) for r in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):  # left padding, as a batching server does
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        with torch.no_grad():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[0]
        probs = torch.softmax(logits[width - len(token_ids) :].float(), dim=-1)
        values, indices = torch.topk(probs, k=k, dim=-1)
        return indices.numpy().astype(np.int64), values.double().numpy()


def load(directory: Path, **options: Any) -> Any:
    """A zoo model in inference mode."""
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, **options)
    model.eval()
    return model


def per_channel_int8(model: Any) -> Any:
    """Every weight matrix rounded to symmetric int8 with one scale per output channel."""
    import torch

    clone = copy.deepcopy(model)
    with torch.no_grad():
        for name, parameter in clone.named_parameters():
            if parameter.ndim == 2:  # GPT-2 Conv1D stores (in, out); embeddings store (token, dim)
                axis = 1 if name.endswith(("wte.weight", "wpe.weight")) else 0
                scale = parameter.abs().amax(dim=axis, keepdim=True).clamp_min(1e-12) / 127.0
                parameter.copy_(torch.round(parameter / scale).clamp(-127, 127) * scale)
    return clone


def w8a8(model: Any) -> Any:
    """Per-channel int8 weights and per-token dynamic int8 activations into every projection."""
    import torch
    from transformers.pytorch_utils import Conv1D

    clone = per_channel_int8(model)

    def quantize_input(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        scale = x.abs().amax(dim=-1, keepdim=True).clamp_min(1e-8) / 127.0
        return (torch.round(x / scale).clamp(-127, 127) * scale,)

    for module in clone.modules():
        if isinstance(module, Conv1D):
            module.register_forward_pre_hook(quantize_input)
    return clone


def endpoints(zoo: Zoo, others: list[list[int]]) -> dict[str, tuple[str, NextTokenModel]]:
    """Condition -> (kind, reader): ``same`` must be consistent, ``changed`` rejected, ``report`` is reported."""
    import torch

    teacher: Any = load(zoo.model_dir("teacher"))
    eager: Any = load(zoo.model_dir("teacher"), attn_implementation="eager")
    return {
        "same-model-float64": ("same", TorchReader("teacher-float64", copy.deepcopy(teacher).double())),
        "same-model-batched-padded": ("same", TorchReader("teacher-batched", teacher, batch_with=others)),
        "same-model-eager-attention": ("same", TorchReader("teacher-eager", eager)),
        "same-function-permuted": ("same", HFModel(zoo.model_dir("teacher-permuted"))),
        "int8-per-tensor": ("changed", HFModel(zoo.model_dir("teacher-int8"))),
        "int8-per-channel": ("changed", TorchReader("teacher-int8-per-channel", per_channel_int8(teacher))),
        "w8a8-dynamic": ("changed", TorchReader("teacher-w8a8", w8a8(teacher))),
        "finetuned-100-steps": ("changed", HFModel(zoo.model_dir("teacher-finetuned"))),
        "temperature-1.3": ("changed", HFModel(zoo.model_dir("teacher"), temperature=1.3)),
        "independent": ("changed", HFModel(zoo.model_dir("base"))),
        "bfloat16": ("report", TorchReader("teacher-bf16", copy.deepcopy(teacher).to(torch.bfloat16))),
    }


def logprob_conditions(zoo: Zoo, prompt_sets: list[list[str]]) -> dict[str, Any]:
    reference = HFModel(zoo.model_dir("teacher"))
    others = [
        list(map(int, zoo.tokenizer.encode(p).ids))[:n] for p, n in zip(prompt_sets[0][:3], (9, 16, 12), strict=True)
    ]

    def tokenize(text: str) -> list[int]:
        return [int(t) for t in zoo.tokenizer.encode(text).ids]

    config = LogprobIdentityConfig(alpha=ALPHA)
    results: dict[str, Any] = {}
    for condition, (kind, reader) in endpoints(zoo, others).items():
        began = time.perf_counter()
        verdicts = [
            identify_logprobs(reader, {"teacher": reference}, prompts, tokenize, config) for prompts in prompt_sets
        ]
        rejected = sum(1 for v in verdicts if v.decision == "evidence")
        rows = [v.details[0] for v in verdicts]
        row: dict[str, Any] = {
            "kind": kind,
            "endpoint": reader.name,
            "decisions": [v.decision for v in verdicts],
            "log10_p_values": [v.log10_p_value for v in verdicts],
            "rejected": rejected,
            "rate": rejected / len(verdicts),
            "reads_deviating": [r["reads_deviating"] for r in rows],
            "reads_scored": [r["reads_scored"] for r in rows],
            "positions_scored": sum(r["positions_scored"] for r in rows),
            "median_abs_logprob_gap": float(np.median([r["median_abs_logprob_gap"] for r in rows])),
            "q99_abs_logprob_gap": float(np.max([r["q99_abs_logprob_gap"] for r in rows])),
            "seconds": round(time.perf_counter() - began, 1),
        }
        if kind == "same":
            row["goal"], row["goal_met"] = f"rate <= {GOAL_FPR}", row["rate"] <= GOAL_FPR
        elif kind == "changed":
            row["goal"], row["goal_met"] = f"power >= {GOAL_POWER}", row["rate"] >= GOAL_POWER
        results[condition] = row
        print(f"{condition:28s} rejected {rejected}/{len(verdicts)}  median gap {row['median_abs_logprob_gap']:.2e}"
              f"  q99 {row['q99_abs_logprob_gap']:.2e}", flush=True)  # fmt: skip
    return results


def oracle_power(zoo: Zoo, prompts: list[str]) -> dict[str, Any]:
    """Power of the likelihood-ratio test of teacher (H0) against the known int8 copy, samples only."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(zoo.model_dir("teacher"), local_files_only=True)
    tokenizer.padding_side = "left"
    p_model: Any = load(zoo.model_dir("teacher"))
    q_model: Any = load(zoo.model_dir("teacher-int8"))
    longest = max(ORACLE_TOKENS)

    def paths(sampler: Any, forward: str, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per completion and length: the sampled log ratio log q/p and the exact expected one (KL along the path)."""
        ratios, expected = [], []
        for start in range(0, len(prompts), 4):
            encoded = tokenizer(prompts[start : start + 4], return_tensors="pt", padding=True, add_special_tokens=False)
            torch.manual_seed(seed + start)
            with torch.no_grad():
                out = sampler.generate(
                    **encoded, do_sample=True, top_k=0, top_p=1.0, max_new_tokens=longest,
                    min_new_tokens=longest, num_return_sequences=SAMPLES, pad_token_id=0,
                )  # fmt: skip
                width = encoded["input_ids"].shape[1]
                mask = torch.cat([encoded["attention_mask"].repeat_interleave(SAMPLES, 0),
                                  torch.ones(out.shape[0], longest, dtype=torch.long)], dim=1)  # fmt: skip
                positions = (mask.cumsum(-1) - 1).clamp_min(0)
                lp = torch.log_softmax(p_model(input_ids=out, attention_mask=mask, position_ids=positions).logits, -1)
                lq = torch.log_softmax(q_model(input_ids=out, attention_mask=mask, position_ids=positions).logits, -1)
            lp, lq = lp[:, width - 1 : -1].double(), lq[:, width - 1 : -1].double()
            target = out[:, width:, None]
            ratio = (lq.gather(-1, target) - lp.gather(-1, target))[..., 0]
            # E[log q/p] at each position under the sampling model: -KL(p || q) on p's paths, KL(q || p) on q's
            mean = ((lp if forward == "p" else lq).exp() * (lq - lp)).sum(-1)
            ratios.append(torch.stack([ratio[:, :n].sum(1) for n in ORACLE_TOKENS], 1).numpy())
            expected.append(torch.stack([mean[:, :n].sum(1) for n in ORACLE_TOKENS], 1).numpy())
        return np.concatenate(ratios), np.concatenate(expected)

    began = time.perf_counter()
    p_ratio, p_mean = paths(p_model, "p", 31_000_000)
    q_ratio, q_mean = paths(q_model, "q", 32_000_000)
    n = len(prompts) * SAMPLES
    out: dict[str, Any] = {"completions_per_model": n, "seconds": round(time.perf_counter() - began, 1)}
    for column, length in enumerate(ORACLE_TOKENS):
        mu0, mu1 = float(p_mean[:, column].mean()), float(q_mean[:, column].mean())
        sd0, sd1 = float(p_ratio[:, column].std()), float(q_ratio[:, column].std())
        critical = n * mu0 + stats.norm.ppf(1 - ALPHA) * np.sqrt(n) * sd0
        power = float(stats.norm.sf((critical - n * mu1) / (np.sqrt(n) * sd1)))
        out[f"{length}_tokens"] = {
            "mean_log_ratio_h0": mu0,
            "mean_log_ratio_int8": mu1,
            "sd_log_ratio_h0": sd0,
            "sd_log_ratio_int8": sd1,
            "power_at_alpha_0.05": power,
        }
        print(f"oracle likelihood-ratio test, {length} tokens: power {power:.3f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_zoo_argument(parser)
    parser.add_argument("--no-oracle", action="store_true", help="skip the samples-only ceiling (about 2 minutes)")
    args = parser.parse_args()
    single_thread()
    zoo = load_zoo(args.zoo)
    distinct = list(dict.fromkeys(zoo.prompts(4 * REPETITIONS * PROMPTS)))
    if len(distinct) < REPETITIONS * PROMPTS:
        raise SystemExit(f"the zoo holds only {len(distinct)} distinct prompts")
    prompt_sets = [distinct[r * PROMPTS : (r + 1) * PROMPTS] for r in range(REPETITIONS)]
    results = {"conditions": logprob_conditions(zoo, prompt_sets)}
    if not args.no_oracle:
        results["samples_only_ceiling_int8"] = oracle_power(zoo, prompt_sets[0])
    path = write_result(
        "theft_identity_logprobs",
        {
            "description": __doc__.split("\n\n")[0],
            "preregistered": {
                "repetitions": REPETITIONS,
                "prompts_per_repetition": PROMPTS,
                "config": asdict(LogprobIdentityConfig()),
                "alpha": ALPHA,
            },
            **results,
        },
        zoo_scale=zoo.scale,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
