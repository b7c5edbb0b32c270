"""The theft model zoo as the benchmarks see it, and its inventory.

Helpers the ``bench_theft_*`` zoo benchmarks share: the zoo's manifest and keys, held-out
prompts and read text (``heldout.json``: documents the zoo never trained on), a batched suspect
that samples many prompts per ``generate`` call (the same distribution as ``HFModel``, several
times faster on one core), a token-substitution attacker, and transcripts cached under the zoo.

Every zoo benchmark reads the zoo from ``--zoo DIR``, which defaults to ``$TRACEMARK_ZOO`` and
else to ``bench/.zoo`` (gitignored; ``make bench`` builds a ``small`` zoo there when it is absent,
``make bench-full`` a ``full`` one).  Results record the zoo's scale, never its path, and only a
``full`` zoo writes into ``bench/results/`` itself (see ``_common.results_dir``).

Run on its own it prints the zoo's inventory and build time and records them in
``bench/results/theft_zoo.json``:

    .venv/bin/python bench/bench_theft_zoo.py [--zoo DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from _common import REPO, write_result
from tracemark.theft import Transcript

#: Where the zoo benchmarks look for the zoo when ``--zoo`` is not given and ``$TRACEMARK_ZOO`` is unset.
DEFAULT_ZOO = REPO / "bench" / ".zoo"
ZOO_ENV = "TRACEMARK_ZOO"
BUILD_SCRIPT = REPO / "scripts" / "build_theft_zoo.py"

#: Held-out documents are split: the first ones give closed-mode prompts, the rest open-mode read text.
PROMPT_DOCUMENTS = 0.5
PROMPT_TOKENS = 16


def default_zoo() -> Path:
    """``$TRACEMARK_ZOO``, else ``bench/.zoo``."""
    return Path(os.environ.get(ZOO_ENV) or DEFAULT_ZOO)


def add_zoo_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--zoo`` option every zoo benchmark takes, with its one documented default."""
    parser.add_argument(
        "--zoo",
        type=Path,
        default=default_zoo(),
        help=f"the zoo built by scripts/build_theft_zoo.py (default: ${ZOO_ENV}, else bench/.zoo: {default_zoo()})",
    )


def build_scales() -> dict[str, dict[str, Any]]:
    """The build script's scales by name, as the manifest records them (``asdict(Scale)``)."""
    spec = importlib.util.spec_from_file_location("build_theft_zoo", BUILD_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from dataclasses import asdict

    return {name: asdict(scale) for name, scale in module.SCALES.items()}


def scale_of(manifest: dict[str, Any]) -> str:
    """The scale a zoo was built at: its recorded name, else the scale whose settings it records, else ``custom``."""
    if manifest.get("scale_name"):
        return str(manifest["scale_name"])
    matches = [name for name, settings in build_scales().items() if settings == manifest.get("scale")]
    return matches[0] if matches else "custom"


@dataclass
class Zoo:
    """A built zoo: its directory, manifest, keys by context width, tokenizer and scale (``small``, ``full``, ...)."""

    root: Path
    manifest: dict[str, Any]
    keys: dict[int, Any]
    tokenizer: Any
    scale: str

    def model_dir(self, name: str) -> Path:
        return self.root / str(self.manifest["models"][name]["path"])

    def names(self, role: str | None = None) -> list[str]:
        return [n for n, m in self.manifest["models"].items() if role is None or m.get("role") == role]

    def width_of(self, name: str) -> int | None:
        width = self.manifest["models"][name].get("context_width")
        return int(width) if width is not None else None

    def heldout(self) -> list[str]:
        documents: list[str] = json.loads((self.root / "heldout.json").read_text())["documents"]
        return documents

    def prompts(self, count: int) -> list[str]:
        """``count`` 16-token prompts, windows every 128 tokens of the held-out prompt documents (fixed order)."""
        documents = self.heldout()
        out: list[str] = []
        for document in documents[: int(len(documents) * PROMPT_DOCUMENTS)]:
            ids = self.tokenizer.encode(document).ids
            for start in range(0, len(ids) - PROMPT_TOKENS, 128):
                text = self.tokenizer.decode([int(t) for t in ids[start : start + PROMPT_TOKENS]])
                if text.strip():
                    out.append(text)
                if len(out) == count:
                    return out
        return out

    def read_texts(self) -> list[str]:
        """Held-out documents for open-mode reading (disjoint from the prompt documents)."""
        documents = self.heldout()
        return documents[int(len(documents) * PROMPT_DOCUMENTS) :]

    def transcript_path(self, label: str) -> Path:
        directory = self.root / "transcripts"
        directory.mkdir(exist_ok=True)
        return directory / f"{label}.jsonl"


def load_zoo(root: Path) -> Zoo:
    """Open a zoo built by ``scripts/build_theft_zoo.py`` (its keyring becomes ``TRACEMARK_HOME``)."""
    if not (root / "manifest.json").is_file():
        raise SystemExit(
            f"no model zoo at {root}: build one with `make bench-zoo` (or "
            f"`scripts/build_theft_zoo.py --out {root} --scale small|full`), or point --zoo or ${ZOO_ENV} at one"
        )
    os.environ["TRACEMARK_HOME"] = str(root / "keyring")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tracemark.keys import Keyring
    from tracemark.text import TextTokenizer

    manifest = json.loads((root / "manifest.json").read_text())
    if not manifest.get("complete"):
        print(f"warning: the zoo at {root} is partial (its build stopped before the end)", flush=True)
    keyring = Keyring(root / "keyring")
    keys = {int(name[1:]): keyring.get(key_id) for name, key_id in manifest.get("keys", {}).items()}
    zoo = Zoo(root, manifest, keys, TextTokenizer(root / "teacher"), scale_of(manifest))
    if zoo.scale != "full":
        print(f"zoo scale: {zoo.scale} (not the published full zoo; results are recorded as such)", flush=True)
    return zoo


def single_thread() -> None:
    import torch

    torch.set_num_threads(1)


class BatchedHFModel:
    """A ``TextModel`` over a local zoo model that samples ``batch`` upcoming prompts per ``generate`` call.

    It knows the prompt list in advance: asked for prompt ``i`` (with ``seed``), it samples prompts
    ``i .. i + batch - 1`` together (seeded with ``seed``) and serves the rest from that batch.  Plain
    ancestral sampling at ``temperature``, like ``HFModel.complete``.  The zoo's prompts are
    16-token windows; the few that re-encode to another length (4 of the first 2,100) are
    left-padded, with the attention mask.
    """

    def __init__(self, model_dir: Path, prompts: Sequence[str], *, temperature: float = 1.0, batch: int = 64) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.tokenizer.padding_side = "left"
        model: Any = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
        model.eval()
        self.model = model
        self.temperature, self.batch = temperature, batch
        self.prompts = list(prompts)
        self.index = {p: i for i, p in reversed(list(enumerate(self.prompts)))}
        self.cache: dict[int, str] = {}
        self.window = int(self.model.config.n_positions)
        self._torch = torch

    @property
    def name(self) -> str:
        return f"hf:{self.model_dir.name}@T{self.temperature}"

    def complete(self, prompt: str, *, max_new_tokens: int, seed: int) -> str:
        first = self.index[prompt]
        if first not in self.cache:
            torch = self._torch
            chunk = self.prompts[first : first + self.batch]
            encoded = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            room = self.window - int(encoded["input_ids"].shape[1])
            torch.manual_seed(seed)
            with torch.no_grad():
                out = self.model.generate(
                    **encoded, do_sample=True, temperature=self.temperature, top_k=0, top_p=1.0,
                    max_new_tokens=min(max_new_tokens, room), pad_token_id=0,
                )  # fmt: skip
            width = encoded["input_ids"].shape[1]
            for offset, row in enumerate(out):
                self.cache[first + offset] = str(self.tokenizer.decode(row[width:].tolist(), skip_special_tokens=True))
        return self.cache.pop(first)


def substitute(transcript: Transcript, tokenizer: Any, rate: float, seed: int) -> Transcript:
    """The attacker edits the suspect's outputs: each response token replaced by a uniform random token with
    probability ``rate`` (seeded)."""
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    exchanges = []
    for exchange in transcript.exchanges:
        ids = np.asarray(tokenizer.encode(exchange.response).ids, dtype=np.int64)
        swap = np.asarray(rng.random(ids.shape[0]) < rate)
        ids[swap] = rng.integers(1, tokenizer.vocab_size, int(np.count_nonzero(swap)))
        exchanges.append(replace(exchange, response=tokenizer.decode([int(t) for t in ids])))
    return replace(transcript, suspect=f"{transcript.suspect} + {rate:.0%} substitution", exchanges=tuple(exchanges))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_zoo_argument(parser)
    args = parser.parse_args()
    zoo = load_zoo(args.zoo)
    manifest = zoo.manifest
    for name, model in manifest["models"].items():
        print(f"{name:34s} {model.get('role', ''):12s} {model.get('seconds', '')!s:>7}s  loss {model.get('loss', '')}")
    print(f"complete: {manifest.get('complete')}; {manifest.get('seconds_including_reused_models')} s in all "
          f"(reused: {manifest.get('resumed', [])}); stages {manifest.get('stages')}")  # fmt: skip
    path = write_result(
        "theft_zoo",
        {
            "description": "the model zoo the theft benchmarks ran on: scale, corpus, build time per stage and model",
            "complete": manifest.get("complete"),
            "build_seconds_last_run": manifest.get("seconds"),
            "build_seconds_including_reused_models": manifest.get("seconds_including_reused_models"),
            "models_reused_from_earlier_runs": manifest.get("resumed", []),
            "torch_threads": manifest.get("torch_threads"),
            "scale": manifest.get("scale"),
            "corpus": manifest.get("corpus"),
            "prompts": manifest.get("prompts"),
            "stages": manifest.get("stages"),
            "models": manifest.get("models"),
        },
        zoo_scale=zoo.scale,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
