"""Weight provenance on the model zoo: are derived variants separated from independent models?

The reference is the zoo's teacher.  Derived: ``teacher-finetuned`` (+100 steps on other data),
``teacher-pruned`` (30 % smallest weights of every block matrix zeroed), ``teacher-permuted``
(neurons and heads relabelled) and ``teacher-int8``.  Independent: ``base`` (other seed, other
data), ``independent-a``/``-b`` (other seeds, the teacher's own data), ``independent-c`` (other
seed, data B), and every student (all trained from ``base``: a distilled student is *not* derived
from the teacher's weights, and the weight test must say so).  ``weight_provenance`` runs with its
defaults (128 probe tokens, 999 token permutations, alpha 0.01, similarity lines 0.3 and 0.8).  The
goal (issue #4): AUROC >= 0.99 between the two groups on the score, with the permutation p-values
reported.  The 0.8 ``evidence`` line was set after measuring the 16 models in ``SEEN_FOR_LINE``;
every other model is reported apart as held out from that choice.

    .venv/bin/python bench/bench_theft_weights.py [--zoo DIR]

``--memory`` measures instead what reading costs (issue #22: 2.37 GB peak for a 229 MB model): two
LLaMA-style float16 checkpoints of about 270 MB each (grouped-query attention, sharded with an index)
are written, the second a rotated, head- and neuron-permuted copy of the first, and the weight test
runs in a fresh process per mode, whose peak RSS is read from ``/proc/self/status`` (VmHWM).  Anchor in the same
run: the same test on whole state dicts loaded with ``safetensors.numpy.load_file``, and an empty
process that only imported tracemark.  Results go to ``theft_weights_memory.json``.

    .venv/bin/python bench/bench_theft_weights.py --memory

``--trained`` checks the similarity lines where the zoo is absent: tiny GPT-2 and LLaMA-style (grouped-
query) models built from their transformers configs are trained briefly on token streams from one
seeded synthetic bigram language (a teacher; two independent models, one on the teacher's own stream
and one on another stream of the same language; the teacher fine-tuned on the other stream for 100
steps at a tenth of the training rate, as the zoo does, then 100 more at the full rate), and the
weight test reads each against the teacher.  Results go to ``theft_weights_trained.json``.

    .venv/bin/python bench/bench_theft_weights.py --trained
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_result
from bench_theft_zoo import add_zoo_argument, load_zoo
from tracemark.theft import WeightConfig, load_weights, weight_provenance

DERIVED = ("teacher-finetuned", "teacher-pruned", "teacher-permuted", "teacher-int8")
GOAL_AUROC = 0.99
#: The models measured when the 0.8 evidence line was chosen (every other zoo model is held out).
SEEN_FOR_LINE = frozenset(("base", "student-w1-0pct-1ep", "student-w1-100pct-1ep", "student-w1-100pct-3ep",
                           "student-w1-100pct-arch3x96-1ep", "student-w1-10pct-1ep", "student-w1-5pct-1ep",
                           "student-w2-0pct-1ep", "student-w2-100pct-1ep", "student-w2-100pct-3ep",
                           "student-w2-10pct-1ep", "student-w2-5pct-1ep", "teacher-finetuned", "teacher-int8",
                           "teacher-permuted", "teacher-pruned"))  # fmt: skip


def auroc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a derived model scores above an independent one (ties count half)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


#: The memory benchmark's checkpoint: LLaMA-style, grouped-query attention, float16, two shards.
MEMORY_MODEL = {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 6, "num_attention_heads": 16,
                "num_key_value_heads": 4, "vocab_size": 32000, "model_type": "llama"}  # fmt: skip

_MEASURE = """
import json, sys, time
from tracemark.theft import WeightConfig, load_weights, weight_provenance
mode, suspect, reference = sys.argv[1:4]
began = time.perf_counter()
result = {}
if mode != "empty":
    if mode == "whole":
        from safetensors.numpy import load_file
        from tracemark.theft._tensors import WeightSource
        def whole(path):
            source = load_weights(path)
            arrays = {}
            for file in sorted({info.file for info in source._tensors.values()}):
                arrays.update(load_file(str(file)))
            return WeightSource.from_arrays(arrays, source.config)
        suspect_weights, reference_weights = whole(suspect), whole(reference)
    else:
        suspect_weights, reference_weights = load_weights(suspect), load_weights(reference)
    verdict = weight_provenance(suspect_weights, reference_weights, WeightConfig())
    result = {"decision": verdict.decision, "score": verdict.statistic["value"], "p_value": verdict.p_value}
result["seconds"] = time.perf_counter() - began
# VmHWM belongs to this process image (ru_maxrss would count the parent's pages at fork time)
status = open("/proc/self/status").read().split("VmHWM:")[1].split()
result["peak_rss_bytes"] = int(status[0]) * 1024
print(json.dumps(result))
"""


def _write_checkpoint(directory: Path, state: dict[str, Any]) -> int:
    from safetensors.numpy import save_file

    directory.mkdir(parents=True)
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2 :]}  # fmt: skip
    for file, members in shards.items():
        save_file({n: np.ascontiguousarray(state[n], dtype=np.float16) for n in members}, str(directory / file))
    index = {"metadata": {}, "weight_map": {n: f for f, members in shards.items() for n in members}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    (directory / "config.json").write_text(json.dumps(MEMORY_MODEL))
    return sum((directory / f).stat().st_size for f in shards)


def _memory_models(seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A random LLaMA-style state dict and a copy with the same function (rotated, heads and neurons permuted)."""
    rng = np.random.default_rng(seed)

    def size(key: str) -> int:
        value = MEMORY_MODEL[key]
        assert isinstance(value, int), key
        return value

    d, hidden, heads, kv = (
        size("hidden_size"),
        size("intermediate_size"),
        size("num_attention_heads"),
        size("num_key_value_heads"),
    )
    vocab, layers = size("vocab_size"), size("num_hidden_layers")
    dh, group = d // heads, heads // kv

    def normal(*shape: int) -> Any:
        return rng.normal(0.0, 0.02, shape).astype(np.float32)

    state: dict[str, Any] = {"model.embed_tokens.weight": normal(vocab, d),
                             "lm_head.weight": normal(vocab, d),
                             "model.norm.weight": np.ones(d, np.float32)}  # fmt: skip
    for i in range(layers):
        b = f"model.layers.{i}."
        state |= {f"{b}self_attn.q_proj.weight": normal(d, d), f"{b}self_attn.k_proj.weight": normal(kv * dh, d),
                  f"{b}self_attn.v_proj.weight": normal(kv * dh, d), f"{b}self_attn.o_proj.weight": normal(d, d),
                  f"{b}mlp.gate_proj.weight": normal(hidden, d), f"{b}mlp.up_proj.weight": normal(hidden, d),
                  f"{b}mlp.down_proj.weight": normal(d, hidden),
                  f"{b}input_layernorm.weight": rng.uniform(0.5, 1.5, d).astype(np.float32),
                  f"{b}post_attention_layernorm.weight": rng.uniform(0.5, 1.5, d).astype(np.float32)}  # fmt: skip
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    q = q.astype(np.float32)
    copy = {"model.embed_tokens.weight": state["model.embed_tokens.weight"] @ q,
            "lm_head.weight": (state["lm_head.weight"] * state["model.norm.weight"]) @ q,
            "model.norm.weight": np.ones(d, np.float32)}  # fmt: skip
    for i in range(layers):
        b = f"model.layers.{i}."
        g1, g2 = state[f"{b}input_layernorm.weight"], state[f"{b}post_attention_layernorm.weight"]
        groups = rng.permutation(kv)
        order = np.concatenate([g * group + rng.permutation(group) for g in groups])
        neurons = rng.permutation(hidden)
        qw = (state[f"{b}self_attn.q_proj.weight"] * g1 @ q).reshape(heads, dh, d)[order].reshape(d, d)
        kw = (state[f"{b}self_attn.k_proj.weight"] * g1 @ q).reshape(kv, dh, d)[groups].reshape(-1, d)
        vw = (state[f"{b}self_attn.v_proj.weight"] * g1 @ q).reshape(kv, dh, d)[groups].reshape(-1, d)
        ow = (q.T @ state[f"{b}self_attn.o_proj.weight"]).reshape(d, heads, dh)[:, order].reshape(d, d)
        copy |= {f"{b}self_attn.q_proj.weight": qw, f"{b}self_attn.k_proj.weight": kw,
                 f"{b}self_attn.v_proj.weight": vw, f"{b}self_attn.o_proj.weight": ow,
                 f"{b}mlp.gate_proj.weight": (state[f"{b}mlp.gate_proj.weight"] * g2 @ q)[neurons],
                 f"{b}mlp.up_proj.weight": (state[f"{b}mlp.up_proj.weight"] * g2 @ q)[neurons],
                 f"{b}mlp.down_proj.weight": (q.T @ state[f"{b}mlp.down_proj.weight"])[:, neurons],
                 f"{b}input_layernorm.weight": np.ones(d, np.float32),
                 f"{b}post_attention_layernorm.weight": np.ones(d, np.float32)}  # fmt: skip
    return state, copy


def memory() -> None:
    """Peak RSS of the weight test, streamed versus whole state dicts, in fresh processes."""
    with tempfile.TemporaryDirectory(prefix="tracemark-weights-") as tmp:
        root = Path(tmp)
        reference, copy = _memory_models(0)
        size = _write_checkpoint(root / "reference", reference)
        _write_checkpoint(root / "copy", copy)
        del reference, copy
        independent, _ = _memory_models(1)
        _write_checkpoint(root / "independent", independent)
        del independent
        runs: dict[str, Any] = {}
        for label, mode, suspect in (("empty", "empty", "copy"), ("streamed-copy", "stream", "copy"),
                                     ("streamed-independent", "stream", "independent"),
                                     ("whole-state-dicts-copy", "whole", "copy")):  # fmt: skip
            done = subprocess.run(
                [sys.executable, "-c", _MEASURE, mode, str(root / suspect), str(root / "reference")],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            runs[label] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{label:24s} {json.dumps(runs[label])}", flush=True)
    empty = runs["empty"]["peak_rss_bytes"]
    stream = runs["streamed-copy"]["peak_rss_bytes"]
    whole = runs["whole-state-dicts-copy"]["peak_rss_bytes"]
    summary = {
        "checkpoint_bytes": size,
        "streamed_peak_over_checkpoint": stream / size,
        "streamed_above_import_over_checkpoint": (stream - empty) / size,
        "whole_peak_over_checkpoint": whole / size,
        "whole_over_streamed": whole / stream,
        "goal": "peak memory within about 2x the larger checkpoint",
        "goal_met": stream <= 2 * size,
    }
    print(json.dumps(summary, indent=1))
    path = write_result("theft_weights_memory", {"description": __doc__.split("\n\n")[1], "model": MEMORY_MODEL,
                                                  "runs": runs, **summary})  # fmt: skip
    print(f"wrote {path}")


def _language(seed: int, vocab: int, tokens: int, stream: int) -> Any:
    """``tokens`` ids from a seeded bigram language (Zipf-like rows); ``stream`` picks an independent sample."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (vocab, vocab)) - 0.5 * np.log1p(np.arange(vocab))[None, :]
    table = np.exp(logits - logits.max(axis=1, keepdims=True))
    table /= table.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(table, axis=1)
    draw = np.random.default_rng(seed * 1000 + stream + 1)
    out = np.empty(tokens, dtype=np.int64)
    out[0] = 0
    uniforms = draw.random(tokens)
    for i in range(1, tokens):
        out[i] = min(int(np.searchsorted(cumulative[out[i - 1]], uniforms[i])), vocab - 1)
    return out


def _train(model: Any, data: Any, steps: int, seed: int, lr: float = 3e-3) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    ids = torch.from_numpy(data)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(data) - 33, (16,), generator=generator)
        batch = torch.stack([ids[s : s + 32] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()


def trained() -> None:
    """Independent models trained on the teacher's own data versus its fine-tuned copy, per architecture."""
    import torch
    import transformers

    from tracemark.theft._tensors import WeightSource

    torch.set_num_threads(1)
    vocab = 256
    own, other = _language(7, vocab, 200_000, 0), _language(7, vocab, 200_000, 1)
    common: dict[str, Any] = {"vocab_size": vocab, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    families = {
        "gpt2": lambda: transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=64, **common),
        "llama-gqa": lambda: transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                      num_attention_heads=4, num_key_value_heads=2,
                                                      max_position_embeddings=64, **common),
    }  # fmt: skip
    results: dict[str, Any] = {}
    config = WeightConfig()
    for family, make in families.items():

        def build(seed: int, make: Any = make) -> Any:
            torch.manual_seed(seed)
            return transformers.AutoModelForCausalLM.from_config(make())  # type: ignore[no-untyped-call]  # transformers leaves from_config unannotated

        def source(model: Any) -> WeightSource:
            state = {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()}
            return WeightSource.from_arrays(state, model.config.to_dict())

        teacher = build(0)
        _train(teacher, own, 400, 0)
        reference = source(teacher)
        models: dict[str, tuple[str, Any]] = {}
        for name, seed, data in (("independent-same-data", 1, own), ("independent-other-data", 2, other)):
            model = build(seed)
            _train(model, data, 400, seed)
            models[name] = ("independent", source(model))
        # as the zoo does: a tenth of the training rate; then a heavy one at the full training rate
        _train(teacher, other, 100, 3, lr=3e-4)
        models["teacher-finetuned"] = ("derived", source(teacher))
        _train(teacher, other, 100, 4, lr=3e-3)
        models["teacher-finetuned-heavy"] = ("derived", source(teacher))
        rows = {}
        for name, (group, weights) in models.items():
            verdict = weight_provenance(weights, reference, config, suspect_name=name, reference_name="teacher")
            rows[name] = {"group": group, "score": verdict.statistic["value"], "p_value": verdict.p_value,
                          "decision": verdict.decision,
                          "correct": (verdict.decision == "evidence") == (group == "derived")}  # fmt: skip
            print(f"{family:10s} {name:24s} {group:12s} score {rows[name]['score']:+.4f} p={verdict.p_value:.3g} "
                  f"{verdict.decision}", flush=True)  # fmt: skip
        results[family] = rows
    payload = {"description": __doc__.split("\n\n")[3], "config": asdict(config),
               "steps": {"train": 400, "finetune": 100, "heavy_finetune": "+100 at the training rate"},
               "learning_rates": {"train": 3e-3, "finetune": 3e-4, "heavy_finetune": 3e-3},
               "models": results}  # fmt: skip
    path = write_result("theft_weights_trained", payload)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_zoo_argument(parser)
    parser.add_argument("--trained", action="store_true", help="briefly trained tiny models instead of the zoo")
    parser.add_argument("--memory", action="store_true", help="measure peak memory on synthetic checkpoints instead")
    args = parser.parse_args()
    if args.memory:
        memory()
        return
    if args.trained:
        trained()
        return
    zoo = load_zoo(args.zoo)
    reference = load_weights(zoo.model_dir("teacher"))
    config = WeightConfig()
    rows: dict[str, Any] = {}
    for name in zoo.names():
        if name == "teacher":
            continue
        group = "derived" if name in DERIVED else "independent"
        began = time.perf_counter()
        verdict = weight_provenance(load_weights(zoo.model_dir(name)), reference, config, suspect_name=name,
                                    reference_name="teacher")  # fmt: skip
        rows[name] = {
            "group": group,
            "score": verdict.statistic["value"],
            "p_value": verdict.p_value,
            "decision": verdict.decision,
            "null_q99": verdict.effect.get("null_q99"),
            "per_invariant": {d["invariant"]: d["cosine"] for d in verdict.details},
            "reasons": list(verdict.reasons),
            "seconds": round(time.perf_counter() - began, 2),
        }
        correct = (verdict.decision == "evidence") == (group == "derived")
        rows[name]["correct_decision"] = correct
        rows[name]["held_out_from_line"] = name not in SEEN_FOR_LINE
        print(f"{name:34s} {group:12s} score {rows[name]['score']:+.4f} p={verdict.p_value:.3g} "
              f"{verdict.decision:12s} {'ok' if correct else 'WRONG'}", flush=True)  # fmt: skip
    derived = [r["score"] for r in rows.values() if r["group"] == "derived"]
    independent = [r["score"] for r in rows.values() if r["group"] == "independent"]
    area = auroc(derived, independent)
    print(f"AUROC {area:.4f} (goal >= {GOAL_AUROC}) -> {'MET' if area >= GOAL_AUROC else 'MISSED'}; "
          f"lowest derived {min(derived):.4f}, highest independent {max(independent):.4f}")  # fmt: skip
    path = write_result(
        "theft_weights",
        {
            "description": __doc__.split("\n\n")[0],
            "config": asdict(config),
            "auroc": area,
            "goal_auroc": GOAL_AUROC,
            "goal_met": area >= GOAL_AUROC,
            "lowest_derived_score": min(derived),
            "highest_independent_score": max(independent),
            "decisions_correct": sum(r["correct_decision"] for r in rows.values()),
            "held_out": {
                "models": sorted(n for n, r in rows.items() if r["held_out_from_line"]),
                "decisions_correct": sum(r["correct_decision"] for r in rows.values() if r["held_out_from_line"]),
                "highest_independent_score": max(
                    (r["score"] for r in rows.values() if r["held_out_from_line"] and r["group"] == "independent"),
                    default=None,
                ),
            },
            "models": rows,
        },
        zoo_scale=zoo.scale,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
