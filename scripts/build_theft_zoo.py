#!/usr/bin/env python3
"""Build the model zoo the theft benchmarks measure against, reproducibly and offline.

Every model is a small GPT-2 (``GPT2LMHeadModel``) that uses the bundled reference model's
tokenizer (vocabulary 8192), trained on the CPU from text every Python installation carries
(Python's reference topics and standard-library docstrings), seeded, in a fixed order:

1. the corpus is split by document into A (the teacher's data), B (the attacker's data) and
   C (held out, for prompts and open-mode reading);
2. ``teacher`` trains on A; ``base`` (an independent model: other seed, other data) on B;
3. a native watermark key per context width (1 and 2) goes into a keyring under the zoo;
4. the teacher answers prompts drawn from B twice: watermarked with each key, and unmarked;
5. students start from ``base`` and fine-tune on prompt + answer streams in which 0, 5, 10 or
   100 % of the answers are watermarked (the rest unmarked answers to other prompts);
6. derived variants of the teacher: ``teacher-finetuned`` (more steps on B),
   ``teacher-permuted`` (MLP neurons and attention heads relabelled: the same function),
   ``teacher-int8`` (weights rounded to int8 per tensor and back);
7. ``manifest.json`` lists every model with its role, its data and the key ids.

``--scale smoke`` builds the whole zoo in about a minute (tiny steps: for checking the script,
useless for measurements); ``--scale full`` follows the research protocol (tens of minutes on
two cores).

    python scripts/build_theft_zoo.py --out /tmp/theft-zoo --scale smoke
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

REFERENCE = Path(__file__).resolve().parents[1] / "models" / "reference"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
WATERMARK_SHARES = (0.0, 0.05, 0.10, 1.0)
CONTEXT_WIDTHS = (1, 2)


@dataclass(frozen=True)
class Scale:
    """How much of everything: steps, prompts, tokens."""

    teacher_steps: int
    base_steps: int
    student_steps: int
    finetune_steps: int
    prompts: int
    prompt_tokens: int
    answer_tokens: int
    batch: int
    window: int
    width: int
    layers: int


SCALES = {
    "smoke": Scale(3, 3, 2, 2, 8, 8, 16, 4, 64, 64, 1),
    "full": Scale(600, 450, 330, 100, 3584, 16, 112, 32, 128, 128, 2),
}


def corpus_splits(limit_chars: int) -> tuple[list[str], list[str], list[str]]:
    """Documents split A / B / C by position (every third document), in a fixed order."""
    from tracemark.text._corpora import python_prose

    documents = [d for d in python_prose(limit_chars) if len(d) > 300]
    return documents[0::3], documents[1::3], documents[2::3]


def token_stream(texts: list[str], eos: int) -> NDArray[np.int64]:
    from tracemark.text import TextTokenizer

    tokenizer = TextTokenizer(REFERENCE)
    parts = [np.append(tokenizer.encode(t).ids, eos) for t in texts]
    return np.concatenate(parts).astype(np.int64)


def new_model(scale: Scale, seed: int) -> Any:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=8192, n_positions=scale.window, n_embd=scale.width, n_layer=scale.layers, n_head=4,
        bos_token_id=0, eos_token_id=0, pad_token_id=0, tie_word_embeddings=True,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def train(model: Any, stream: NDArray[np.int64], steps: int, scale: Scale, seed: int, lr: float = 1e-3) -> float:
    """AdamW on random windows of ``stream``; returns the last loss."""
    import torch

    rng = np.random.default_rng(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    loss_value = float("nan")
    for _ in range(steps):
        starts = rng.integers(0, len(stream) - scale.window - 1, scale.batch)
        batch = torch.from_numpy(np.stack([stream[s : s + scale.window] for s in starts]))
        loss = model(input_ids=batch, labels=batch).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        loss_value = float(loss.detach())
    model.eval()
    return loss_value


def save(model: Any, directory: Path, card: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    for name in TOKENIZER_FILES:
        shutil.copy(REFERENCE / name, directory / name)
    (directory / "zoo.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return directory


def answers(model_dir: Path, prompts: list[str], key: Any | None, scale: Scale, seed: int) -> list[list[int]]:
    """Teacher completions (token ids), watermarked with ``key`` or unmarked."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if key is not None:
        from tracemark.text import WatermarkedGenerator

        generator = WatermarkedGenerator(model_dir, key)
        out: list[list[int]] = []
        for start in range(0, len(prompts), 64):
            batch = generator.generate(
                prompts[start : start + 64], max_new_tokens=scale.answer_tokens, seed=seed + start
            )
            out += [list(g.token_ids) for g in batch]
        return out
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    out = []
    for start in range(0, len(prompts), 64):
        torch.manual_seed(seed + start)
        batch = tokenizer(prompts[start : start + 64], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            generated = model.generate(**batch, do_sample=True, top_k=0, max_new_tokens=scale.answer_tokens,
                                       min_new_tokens=scale.answer_tokens, pad_token_id=0)  # fmt: skip
        out += [[int(t) for t in row[batch["input_ids"].shape[1] :]] for row in generated]
    return out


def permuted_copy(model: Any, seed: int) -> Any:
    """The same function with every MLP's hidden neurons and every attention block's heads relabelled."""
    import copy

    import torch

    clone = copy.deepcopy(model)
    rng = np.random.default_rng(seed)
    width = clone.config.n_embd
    head = width // clone.config.n_head
    with torch.no_grad():
        for block in clone.transformer.h:
            order = torch.from_numpy(rng.permutation(block.mlp.c_fc.weight.shape[1]))
            block.mlp.c_fc.weight.copy_(block.mlp.c_fc.weight[:, order])
            block.mlp.c_fc.bias.copy_(block.mlp.c_fc.bias[order])
            block.mlp.c_proj.weight.copy_(block.mlp.c_proj.weight[order])
            heads = rng.permutation(clone.config.n_head)
            columns = torch.from_numpy(np.concatenate([np.arange(h * head, (h + 1) * head) for h in heads]))
            all_columns = torch.cat([columns, columns + width, columns + 2 * width])
            block.attn.c_attn.weight.copy_(block.attn.c_attn.weight[:, all_columns])
            block.attn.c_attn.bias.copy_(block.attn.c_attn.bias[all_columns])
            block.attn.c_proj.weight.copy_(block.attn.c_proj.weight[columns])
    return clone


def int8_copy(model: Any) -> Any:
    """Every weight matrix rounded to symmetric per-tensor int8 and back (what an int8 deployment serves)."""
    import copy

    import torch

    clone = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in clone.parameters():
            if parameter.ndim == 2:
                scale = parameter.abs().max() / 127.0
                parameter.copy_(torch.round(parameter / scale).clamp(-127, 127) * scale)
    return clone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scale", choices=sorted(SCALES), default="smoke")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scale = SCALES[args.scale]
    os.environ["TRACEMARK_HOME"] = str(args.out / "keyring")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from tracemark.keys import Keyring
    from tracemark.text import TextTokenizer, new_text_key

    torch.set_num_threads(1)
    began = time.perf_counter()
    limit = 400_000 if args.scale == "smoke" else 17_000_000
    data_a, data_b, data_c = corpus_splits(limit)
    stream_a, stream_b = token_stream(data_a, 0), token_stream(data_b, 0)
    manifest: dict[str, Any] = {"scale": asdict(scale), "seed": args.seed, "models": {}}

    def record(name: str, directory: Path, **card: Any) -> None:
        manifest["models"][name] = {"path": str(directory.relative_to(args.out)), **card}
        print(f"{time.perf_counter() - began:7.1f}s  {name}", flush=True)

    teacher = new_model(scale, args.seed)
    loss = train(teacher, stream_a, scale.teacher_steps, scale, args.seed)
    teacher_dir = save(teacher, args.out / "teacher", {"role": "teacher", "data": "A", "loss": loss})
    record("teacher", teacher_dir, role="teacher", data="A", loss=loss)
    base = new_model(scale, args.seed + 1)
    loss = train(base, stream_b, scale.base_steps, scale, args.seed + 1)
    base_dir = save(base, args.out / "base", {"role": "independent", "data": "B", "loss": loss})
    record("base", base_dir, role="independent", data="B", loss=loss)

    finetuned = new_model(scale, args.seed)
    finetuned.load_state_dict(teacher.state_dict())
    loss = train(finetuned, stream_b, scale.finetune_steps, scale, args.seed + 2, lr=3e-4)
    record("teacher-finetuned", save(finetuned, args.out / "teacher-finetuned", {"role": "derived"}),
           role="derived", change=f"+{scale.finetune_steps} steps on B", loss=loss)  # fmt: skip
    record("teacher-permuted", save(permuted_copy(teacher, args.seed), args.out / "teacher-permuted",
           {"role": "derived"}), role="derived", change="neurons and heads permuted")  # fmt: skip
    record("teacher-int8", save(int8_copy(teacher), args.out / "teacher-int8", {"role": "derived"}),
           role="derived", change="int8 round trip per tensor")  # fmt: skip

    keyring = Keyring(args.out / "keyring")
    keyring.create()
    tokenizer = TextTokenizer(REFERENCE)
    rng = np.random.default_rng(args.seed)
    prompt_ids = [tokenizer.encode(d).ids[: scale.prompt_tokens] for d in data_b]
    prompt_ids = [p for p in prompt_ids if len(p) == scale.prompt_tokens]
    chosen = rng.choice(len(prompt_ids), size=min(2 * scale.prompts, len(prompt_ids)), replace=False)
    prompts = [tokenizer.decode([int(t) for t in prompt_ids[i]]) for i in chosen]
    marked_prompts, clean_prompts = prompts[: len(prompts) // 2], prompts[len(prompts) // 2 :]
    clean = answers(teacher_dir, clean_prompts, None, scale, args.seed + 10)
    manifest["prompts"] = {"held_out_documents": len(data_c), "training_prompts": len(prompts)}
    for width in CONTEXT_WIDTHS:
        key = new_text_key(keyring, "native", teacher_dir, params={"context_width": width}, label=f"zoo-w{width}")
        marked = answers(teacher_dir, marked_prompts, key, scale, args.seed + 20 + width)
        manifest.setdefault("keys", {})[f"w{width}"] = key.key_id
        for share in WATERMARK_SHARES:
            count = round(share * len(marked))
            pairs = [*zip(marked_prompts[:count], marked[:count], strict=True)]
            pairs += zip(clean_prompts[count:], clean[count:], strict=True)
            rows = [tokenizer.encode(p).ids.tolist() + a for p, a in pairs]
            stream = np.concatenate([np.append(np.asarray(r, np.int64), 0) for r in rows])
            student = new_model(scale, args.seed + 1)
            student.load_state_dict(base.state_dict())
            loss = train(student, stream, scale.student_steps, scale, args.seed + 30 + width, lr=1e-3)
            name = f"student-w{width}-{round(share * 100)}pct"
            directory = save(student, args.out / name, {"role": "student", "watermarked_share": share})
            record(name, directory, role="student", key_id=key.key_id, watermarked_share=share, loss=loss)
    manifest["seconds"] = round(time.perf_counter() - began, 1)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out / 'manifest.json'}")


if __name__ == "__main__":
    main()
