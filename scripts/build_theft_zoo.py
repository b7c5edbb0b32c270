#!/usr/bin/env python3
"""Build the model zoo the theft benchmarks measure against, reproducibly and offline.

Every model is a small GPT-2 (``GPT2LMHeadModel``, dropout off) that uses the bundled reference
model's tokenizer (vocabulary 8192), trained on the CPU with one thread, seeded, in a fixed order,
from text the running interpreter carries: Python's reference topics and standard-library
docstrings, then the docstrings of the installed packages (``site-packages``, parsed with ``ast``,
exact duplicates dropped).  The steps:

1. the corpus is split by document into A (the teacher's data), B (the attacker's data) and
   C (held out: ``heldout.json`` keeps it for the benchmarks' prompts and open-mode reading);
2. ``teacher`` trains on A; ``base`` (independent: other seed, other data) on B;
3. derived variants of the teacher: ``teacher-finetuned`` (more steps on B),
   ``teacher-permuted`` (MLP neurons and attention heads relabelled: the same function),
   ``teacher-int8`` (weights rounded to int8 per tensor and back), ``teacher-pruned``
   (the smallest-magnitude 30 % of every block matrix zeroed);
4. a native watermark key per context width (1 and 2) goes into a keyring under the zoo;
5. the teacher answers prompts (16-token windows of B) twice: watermarked with each key, and
   unmarked (``prompts`` marked and ``prompts`` other, clean ones);
6. students start from ``base`` and fine-tune on prompt + answer streams in which 0, 5, 10 or
   100 % of the answers are watermarked (the rest unmarked answers to other prompts), for one
   epoch (``-1ep``: as many random windows as the stream holds tokens); every cell continues, with
   the same optimiser state, to three epochs (``-3ep``);
7. ``student-w1-100pct-arch3x96-1ep``: another architecture (3 layers, width 96) pre-trained on B,
   then distilled for one epoch on the 100 % width-1 stream;
8. ``independent-a``, ``-b`` (other seeds, the teacher's own data A, fewer steps) and ``-c``
   (data B): independent models besides ``base``, held-out negatives for weight provenance;
9. ``manifest.json`` lists every model with its role, data, loss and key id; it is rewritten
   after each model, so a build stopped early still leaves a usable (partial) zoo.

``--scale smoke`` builds the whole zoo in about 20 seconds (tiny steps: for checking the script,
useless for measurements).  ``--scale small`` is what ``make bench`` builds: every model of the full
zoo, narrower (width 64) and trained on about a third of the text and a quarter of the answers (a
4.5 M-character corpus, 384 watermarked answers per key, batches of 16), so that its students still
learn the watermark and the zoo benchmarks give real, if weaker, figures; results on it record
``zoo_scale: small`` and never replace the full zoo's.  ``--scale full`` is the measured
configuration.  On this project's
2-core machine, one thread (``OMP_NUM_THREADS=1``), the other core busy with other work, training
runs at 2,500-3,300 tokens/s (1.25-1.6 s per 4,096-token step: the 8,192-word output layer
dominates, sdpa attention is no faster than eager) and the teacher answers at ~1,000 (watermarked)
to ~1,600 (unmarked) tokens/s.  Measured on 27 Nov 2026: corpus 132 s, teacher 798 s, base 295 s,
fine-tune 163 s, answers 110 + 177 + 215 s, each one-epoch student 74-85 s, each three-epoch
continuation ~155 s, the 3-layer student 208 s: 3,045 s (51 min) up to and including the 3-layer
student, where that run was stopped for a deadline.  ``--resume`` completed it (the remaining
three-epoch cells and the independent models, with the answers regenerated and the one-epoch
students it retrained identical to the first build's, byte for byte).

The zoo goes to ``--out``, by default where the benchmarks look for it: ``$TRACEMARK_ZOO``, else
``bench/.zoo`` (gitignored).

    OMP_NUM_THREADS=1 python scripts/build_theft_zoo.py [--out DIR] --scale smoke|small|full [--resume]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "models" / "reference"
#: Where the benchmarks read the zoo from (``bench/bench_theft_zoo.py``): $TRACEMARK_ZOO, else bench/.zoo.
DEFAULT_OUT = Path(os.environ.get("TRACEMARK_ZOO") or Path(__file__).resolve().parents[1] / "bench" / ".zoo")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
WATERMARK_SHARES = (0.0, 0.05, 0.10, 1.0)
CONTEXT_WIDTHS = (1, 2)
#: (width, share) cells that continue to three epochs, most important first (the first three come
#: before the 3-layer student, the rest after it).
LONG_CELLS = ((1, 1.0), (2, 1.0), (1, 0.0), (1, 0.10), (2, 0.0), (1, 0.05), (2, 0.10), (2, 0.05))
#: Independent models besides ``base``: (name, data split, seed offset).  Same tokenizer, never
#: derived from the teacher: the held-out negatives for weight provenance.
INDEPENDENTS = (("independent-a", "A", 3), ("independent-b", "A", 4), ("independent-c", "B", 5))
PRUNE_FRACTION = 0.30


@dataclass(frozen=True)
class Scale:
    """How much of everything: corpus, steps, prompts, tokens."""

    corpus_chars: int
    teacher_steps: int
    base_steps: int
    independent_steps: int
    finetune_steps: int
    arch_base_steps: int
    prompts: int
    prompt_tokens: int
    answer_tokens: int
    batch: int
    window: int
    width: int
    layers: int
    heldout_chars: int


SCALES = {
    "smoke": Scale(400_000, 3, 3, 2, 2, 2, 32, 8, 16, 4, 64, 64, 1, 100_000),
    "small": Scale(4_500_000, 300, 150, 60, 50, 50, 384, 16, 112, 16, 128, 64, 2, 1_500_000),
    "full": Scale(15_000_000, 400, 200, 80, 100, 100, 1536, 16, 112, 32, 128, 128, 2, 3_000_000),
}


def _docstrings(root: Path) -> Iterator[str]:
    sys.path.insert(0, str(REPO))  # the corpora live with the tests (tests/support/corpora.py)
    from tests.support.corpora import docstrings

    skip = {"test", "tests", "__pycache__"}
    for path in sorted(root.rglob("*.py")):
        if not skip.intersection(path.relative_to(root).parts):
            yield from docstrings(path, longer_than=300)


def corpus(limit_chars: int) -> list[str]:
    """Python prose (stdlib), then installed packages' docstrings; exact duplicates dropped, fixed order."""
    sys.path.insert(0, str(REPO))  # the corpora live with the tests (tests/support/corpora.py)
    from tests.support.corpora import python_prose

    def sources() -> Iterator[str]:
        yield from python_prose()
        yield from _docstrings(Path(sysconfig.get_paths()["purelib"]))

    seen: set[bytes] = set()
    documents: list[str] = []
    total = 0
    for doc in sources():
        if len(doc) <= 300:
            continue
        digest = hashlib.sha256(doc.encode()).digest()
        if digest in seen:
            continue
        seen.add(digest)
        documents.append(doc)
        total += len(doc)
        if total >= limit_chars:
            break
    return documents


def corpus_splits(limit_chars: int) -> tuple[list[str], list[str], list[str]]:
    """Documents split A / B / C by position (every third document), in a fixed order."""
    documents = corpus(limit_chars)
    return documents[0::3], documents[1::3], documents[2::3]


def token_stream(texts: list[str], eos: int) -> NDArray[np.int64]:
    from tracemark.text import TextTokenizer

    tokenizer = TextTokenizer(REFERENCE)
    parts = [np.append(tokenizer.encode(t).ids, eos) for t in texts]
    return np.concatenate(parts).astype(np.int64)


def new_model(scale: Scale, seed: int, *, layers: int | None = None, width: int | None = None) -> Any:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=8192, n_positions=scale.window, n_embd=width or scale.width, n_layer=layers or scale.layers,
        n_head=4, bos_token_id=0, eos_token_id=0, pad_token_id=0, tie_word_embeddings=True,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


class Trainer:
    """AdamW on random windows of a token stream; ``run`` can be called again to continue (same optimiser)."""

    def __init__(self, model: Any, stream: NDArray[np.int64], scale: Scale, seed: int, lr: float = 1e-3) -> None:
        import torch

        self.model, self.stream, self.scale = model, stream, scale
        self.rng = np.random.default_rng(seed)
        self.optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        self.steps = 0

    def epoch_steps(self) -> int:
        """Steps whose windows hold as many tokens as the stream (one epoch, sampled with replacement)."""
        return max(1, math.ceil(len(self.stream) / (self.scale.batch * self.scale.window)))

    def run(self, steps: int) -> float:
        """Train ``steps`` more steps; returns the last loss."""
        import torch

        scale = self.scale
        self.model.train()
        loss_value = float("nan")
        for _ in range(steps):
            starts = self.rng.integers(0, len(self.stream) - scale.window - 1, scale.batch)
            batch = torch.from_numpy(np.stack([self.stream[s : s + scale.window] for s in starts]))
            loss = self.model(input_ids=batch, labels=batch).loss
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
            loss_value = float(loss.detach())
        self.steps += steps
        self.model.eval()
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


def pruned_copy(model: Any, fraction: float) -> Any:
    """Every block matrix with its ``fraction`` smallest-magnitude weights set to zero (embedding kept)."""
    import copy

    import torch

    clone = copy.deepcopy(model)
    with torch.no_grad():
        for name, parameter in clone.named_parameters():
            if parameter.ndim == 2 and ".h." in f".{name}":
                count = int(fraction * parameter.numel())
                threshold = parameter.abs().flatten().kthvalue(count).values
                parameter.masked_fill_(parameter.abs() <= threshold, 0.0)
    return clone


def training_prompts(tokenizer: Any, documents: list[str], scale: Scale) -> list[str]:
    """Prompt texts: ``prompt_tokens``-token windows every 128 tokens of every document."""
    out = []
    for document in documents:
        ids = tokenizer.encode(document).ids
        for start in range(0, len(ids) - scale.prompt_tokens, 128):
            out.append(tokenizer.decode([int(t) for t in ids[start : start + scale.prompt_tokens]]))
    # only windows that re-encode to exactly their length: prompt + answer then fit the context window
    return [p for p in out if p.strip() and len(tokenizer.encode(p).ids) == scale.prompt_tokens]


@dataclass(frozen=True)
class Corpus:
    """Step 1: the documents split A / B / C, A and B as token streams, and the part of C kept held out."""

    a: list[str]
    b: list[str]
    c: list[str]
    stream_a: NDArray[np.int64]
    stream_b: NDArray[np.int64]
    heldout: list[str]

    @classmethod
    def build(cls, scale: Scale) -> Corpus:
        data_a, data_b, data_c = corpus_splits(scale.corpus_chars)
        stream_a, stream_b = token_stream(data_a, 0), token_stream(data_b, 0)
        heldout, held_chars = [], 0
        for document in data_c:
            if held_chars >= scale.heldout_chars:
                break
            heldout.append(document)
            held_chars += len(document)
        return cls(data_a, data_b, data_c, stream_a, stream_b, heldout)


def student_name(width: int, share: float, epochs: int) -> str:
    return f"student-w{width}-{round(share * 100)}pct-{epochs}ep"


class ZooBuild:
    """One run of the script: the steps after the corpus, each model recorded in the manifest as it is saved.

    With ``--resume``, ``previous`` is the manifest of the earlier run in the same folder: a model it
    saved (same scale and seed) is reused instead of trained again.
    """

    def __init__(self, out: Path, scale_name: str, seed: int, corpus: Corpus, began: float) -> None:
        import torch

        self.out, self.scale, self.seed, self.corpus = out, SCALES[scale_name], seed, corpus
        self.began = began
        self.manifest: dict[str, Any] = {
            "scale_name": scale_name,
            "scale": asdict(self.scale),
            "seed": seed,
            "torch_threads": torch.get_num_threads(),
            "corpus": {
                "documents": [len(corpus.a), len(corpus.b), len(corpus.c)],
                "tokens_a": len(corpus.stream_a),
                "tokens_b": len(corpus.stream_b),
                "heldout_documents": len(corpus.heldout),
                "sha256": hashlib.sha256("\n".join(corpus.a + corpus.b + corpus.c).encode()).hexdigest(),
            },
            "stages": {"corpus": round(time.perf_counter() - began, 1)},
            "models": {},
            "complete": False,
        }
        #: When the current stage began (a model's or an answer set's seconds are counted from it).
        self.stage = time.perf_counter()
        self.previous: dict[str, Any] = {}
        self.teacher_dir = out / "teacher"
        self.marked_prompts: list[str] = []
        self.clean_prompts: list[str] = []
        self.tokenizer: Any = None
        self._clean_answers: list[list[int]] | None = None
        #: Per (context width, watermarked share): the student's trainer (continued to three epochs) and its stream.
        self.trainers: dict[tuple[int, float], Trainer] = {}
        self.streams: dict[tuple[int, float], NDArray[np.int64]] = {}

    # -- the manifest ------------------------------------------------------------------------
    def write_manifest(self) -> None:
        manifest = self.manifest
        manifest["seconds"] = round(time.perf_counter() - self.began, 1)
        reused = sum(float(manifest["models"][n].get("seconds", 0.0)) for n in manifest.get("resumed", []))
        manifest["seconds_including_reused_models"] = round(manifest["seconds"] + reused, 1)
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def record(self, name: str, model: Any, **card: Any) -> Path:
        directory = save(model, self.out / name, card)
        now = time.perf_counter()
        self.manifest["models"][name] = {"path": name, "seconds": round(now - self.stage, 1), **card}
        self.stage = now
        self.write_manifest()
        print(f"{now - self.began:7.1f}s  {name}  {card.get('loss', '')}", flush=True)
        return directory

    def record_stage(self, stage: str) -> None:
        now = time.perf_counter()
        self.manifest["stages"][stage] = round(now - self.stage, 1)
        self.stage = now

    # -- what an earlier run left --------------------------------------------------------------
    def reuse(self, name: str, steps: int) -> Any | None:
        """A model an earlier run of the same scale and seed saved (its card and build seconds kept)."""
        card = self.previous.get("models", {}).get(name)
        if not card or card.get("steps") != steps or self.previous.get("seed") != self.seed:
            return None
        from transformers import GPT2LMHeadModel

        model: Any = GPT2LMHeadModel.from_pretrained(self.out / name, local_files_only=True)
        model.eval()
        self.manifest["models"][name] = {**card, "reused_from_earlier_run": True}
        self.manifest.setdefault("resumed", []).append(name)
        self.stage = time.perf_counter()
        print(f"reused {name} (built in {card.get('seconds')} s by an earlier run)", flush=True)
        return model

    def saved(self, name: str) -> bool:
        """Whether the earlier run (same seed) saved ``name``."""
        card = self.previous.get("models", {}).get(name)
        return bool(card) and self.previous.get("seed") == self.seed and (self.out / name / "config.json").exists()

    def done(self, name: str) -> bool:
        """``saved(name)``, and if so its card is carried over (the model is not loaded)."""
        if not self.saved(name):
            return False
        self.manifest["models"][name] = {**self.previous["models"][name], "reused_from_earlier_run": True}
        self.manifest.setdefault("resumed", []).append(name)
        return True

    def rebuilt(self, name: str, model: Any) -> dict[str, Any]:
        """For a model built again: whether it equals the earlier build bit for bit (it should: same seeds)."""
        if not self.saved(name):
            return {}
        from safetensors.torch import load_file

        earlier = load_file(str(self.out / name / "model.safetensors"))
        state = model.state_dict()
        same = all(k in state and bool((state[k] == v).all()) for k, v in earlier.items())
        return {"identical_to_earlier_build": same}

    # -- the steps -----------------------------------------------------------------------------
    def teacher_and_base(self) -> tuple[Any, Any]:
        """Step 2: ``teacher`` on A, ``base`` on B."""
        scale, seed = self.scale, self.seed
        teacher = self.reuse("teacher", scale.teacher_steps)
        if teacher is None:
            teacher = new_model(scale, seed)
            loss = Trainer(teacher, self.corpus.stream_a, scale, seed).run(scale.teacher_steps)
            self.record("teacher", teacher, role="teacher", data="A", steps=scale.teacher_steps, loss=loss)
        base = self.reuse("base", scale.base_steps)
        if base is None:
            base = new_model(scale, seed + 1)
            loss = Trainer(base, self.corpus.stream_b, scale, seed + 1).run(scale.base_steps)
            self.record("base", base, role="independent", data="B", steps=scale.base_steps, loss=loss)
        return teacher, base

    def derived(self, teacher: Any) -> None:
        """Step 3: the teacher fine-tuned, permuted, rounded to int8 and pruned."""
        scale, seed = self.scale, self.seed
        finetuned = self.reuse("teacher-finetuned", scale.finetune_steps)
        if finetuned is None:
            finetuned = new_model(scale, seed)
            finetuned.load_state_dict(teacher.state_dict())
            loss = Trainer(finetuned, self.corpus.stream_b, scale, seed + 2, lr=3e-4).run(scale.finetune_steps)
            self.record("teacher-finetuned", finetuned, role="derived", change=f"+{scale.finetune_steps} steps on B",
                        steps=scale.finetune_steps, loss=loss)  # fmt: skip
        self.record("teacher-permuted", permuted_copy(teacher, seed), role="derived",
                    change="neurons and heads permuted")  # fmt: skip
        self.record("teacher-int8", int8_copy(teacher), role="derived", change="int8 round trip per tensor")
        self.record("teacher-pruned", pruned_copy(teacher, PRUNE_FRACTION), role="derived",
                    change=f"{PRUNE_FRACTION:.0%} smallest-magnitude weights of every block matrix zeroed")  # fmt: skip

    def keys_and_prompts(self) -> tuple[Any, dict[str, str]]:
        """Step 4's keyring (new unless an earlier run's keys are kept) and those keys; step 5's prompts from B."""
        from tracemark.keys import Keyring
        from tracemark.text import TextTokenizer

        keyring = Keyring(self.out / "keyring")
        earlier_keys: dict[str, str] = self.previous.get("keys", {}) if self.previous.get("seed") == self.seed else {}
        if not earlier_keys:
            keyring.create()
        self.tokenizer = TextTokenizer(REFERENCE)
        rng = np.random.default_rng(self.seed)
        candidates = training_prompts(self.tokenizer, self.corpus.b, self.scale)
        chosen = rng.choice(len(candidates), size=min(2 * self.scale.prompts, len(candidates)), replace=False)
        prompts = [candidates[i] for i in chosen]
        self.marked_prompts, self.clean_prompts = prompts[: len(prompts) // 2], prompts[len(prompts) // 2 :]
        self.manifest["prompts"] = {
            "candidates_in_b": len(candidates),
            "marked": len(self.marked_prompts),
            "clean": len(self.clean_prompts),
        }
        return keyring, earlier_keys

    def clean_answers(self) -> list[list[int]]:
        """The teacher's unmarked answers to the clean prompts (generated once, on first use)."""
        if self._clean_answers is None:
            self._clean_answers = answers(self.teacher_dir, self.clean_prompts, None, self.scale, self.seed + 10)
            self.record_stage("clean_answers")
        return self._clean_answers

    def students(self, base: Any) -> None:
        """Steps 5 and 6 (one epoch): per context width, its key, the marked answers, and a student per share."""
        from tracemark.text import new_text_key

        keyring, earlier_keys = self.keys_and_prompts()
        for width in CONTEXT_WIDTHS:
            key_id = earlier_keys.get(f"w{width}")
            key = (
                keyring.get(key_id)
                if key_id
                else new_text_key(keyring, "native", self.teacher_dir, params={"context_width": width},
                                  label=f"zoo-w{width}")
            )  # fmt: skip
            self.manifest.setdefault("keys", {})[f"w{width}"] = key.key_id
            todo = self.cells_to_build(width)
            if todo:
                self.students_of_width(width, key, todo, base)

    def cells_to_build(self, width: int) -> list[float]:
        """The shares whose cell is built (again): its 1-epoch student or its 3-epoch continuation is missing."""
        arch_missing = not self.saved("student-w1-100pct-arch3x96-1ep")
        todo = [share for share in WATERMARK_SHARES
                if not self.saved(student_name(width, share, 1))
                or ((width, share) in LONG_CELLS and not self.saved(student_name(width, share, 3)))
                or ((width, share) == (1, 1.0) and arch_missing)]  # fmt: skip
        for share in WATERMARK_SHARES:
            if share not in todo:
                self.done(student_name(width, share, 1))
        return todo

    def students_of_width(self, width: int, key: Any, todo: list[float], base: Any) -> None:
        marked = answers(self.teacher_dir, self.marked_prompts, key, self.scale, self.seed + 20 + width)
        self.record_stage(f"marked_answers_w{width}")
        clean = self.clean_answers()
        for share in todo:
            count = round(share * len(marked))
            pairs = [*zip(self.marked_prompts[:count], marked[:count], strict=True)]
            pairs += zip(self.clean_prompts[count:], clean[count:], strict=True)
            rows = [self.tokenizer.encode(p).ids.tolist() + a for p, a in pairs]
            stream = np.concatenate([np.append(np.asarray(r, np.int64), 0) for r in rows])
            self.streams[(width, share)] = stream
            student = new_model(self.scale, self.seed + 1)
            student.load_state_dict(base.state_dict())
            trainer = Trainer(student, stream, self.scale, self.seed + 30 + width, lr=1e-3)
            self.trainers[(width, share)] = trainer
            loss = trainer.run(trainer.epoch_steps())
            name = student_name(width, share, 1)
            self.record(name, student, role="student", context_width=width, key_id=key.key_id,
                        watermarked_share=share, epochs=1, steps=trainer.steps, loss=loss,
                        **self.rebuilt(name, student))  # fmt: skip

    def long_students(self, cells: tuple[tuple[int, float], ...]) -> None:
        """Step 6 (three epochs): each cell's student continued, with the same optimiser state."""
        for width, share in cells:
            if self.done(student_name(width, share, 3)):
                continue
            trainer = self.trainers[(width, share)]
            loss = trainer.run(2 * trainer.epoch_steps())
            self.record(student_name(width, share, 3), trainer.model, role="student", context_width=width,
                        key_id=self.manifest["keys"][f"w{width}"], watermarked_share=share, epochs=3,
                        steps=trainer.steps, loss=loss)  # fmt: skip

    def other_architecture(self) -> None:
        """Step 7: a 3-layer, width-96 student pre-trained on B, then distilled on the 100 % width-1 stream."""
        if self.done("student-w1-100pct-arch3x96-1ep"):
            return
        scale, seed = self.scale, self.seed
        arch = new_model(scale, seed + 40, layers=3, width=96)
        Trainer(arch, self.corpus.stream_b, scale, seed + 40).run(scale.arch_base_steps)
        trainer = Trainer(arch, self.streams[(1, 1.0)], scale, seed + 41)
        loss = trainer.run(trainer.epoch_steps())
        self.record("student-w1-100pct-arch3x96-1ep", arch, role="student", context_width=1,
                    key_id=self.manifest["keys"]["w1"], watermarked_share=1.0, epochs=1,
                    architecture="3 layers, width 96",
                    steps=f"{scale.arch_base_steps} on B + {trainer.steps} distilling", loss=loss)  # fmt: skip

    def independents(self) -> None:
        """Step 8: independent models besides ``base``."""
        for name, split, offset in INDEPENDENTS:
            if self.done(name):
                continue
            independent = new_model(self.scale, self.seed + offset)
            stream = self.corpus.stream_a if split == "A" else self.corpus.stream_b
            loss = Trainer(independent, stream, self.scale, self.seed + offset).run(self.scale.independent_steps)
            data = "A (the teacher's data)" if split == "A" else "B"
            self.record(name, independent, role="independent", data=f"{data}, seed offset {offset}",
                        steps=self.scale.independent_steps, loss=loss)  # fmt: skip


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"the zoo folder (default: $TRACEMARK_ZOO, else {DEFAULT_OUT})"
    )
    parser.add_argument("--scale", choices=sorted(SCALES), required=True, help="smoke: checks the script only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="complete the zoo in --out (same scale and seed): reuse every model it holds, build the rest",
    )
    return parser.parse_args()


def main() -> None:
    args = arguments()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["TRACEMARK_HOME"] = str(args.out / "keyring")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    began = time.perf_counter()
    corpus = Corpus.build(SCALES[args.scale])
    (args.out / "heldout.json").write_text(json.dumps({"documents": corpus.heldout}) + "\n")
    build = ZooBuild(args.out, args.scale, args.seed, corpus, began)
    print(f"corpus: A {len(corpus.stream_a)} / B {len(corpus.stream_b)} tokens, "
          f"{len(corpus.heldout)} held-out documents", flush=True)  # fmt: skip
    build.stage = time.perf_counter()
    build.previous = json.loads((args.out / "manifest.json").read_text()) if args.resume else {}
    teacher, base = build.teacher_and_base()
    build.derived(teacher)
    build.students(base)
    build.long_students(LONG_CELLS[:3])
    build.other_architecture()
    build.long_students(LONG_CELLS[3:])
    build.independents()
    build.manifest["complete"] = True
    build.write_manifest()
    print(f"wrote {args.out / 'manifest.json'} after {build.manifest['seconds']} s")


if __name__ == "__main__":
    main()
