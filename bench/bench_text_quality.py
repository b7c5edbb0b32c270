"""Quality cost against detectability, per scheme and parameter: the curve the defaults are chosen from (#23).

For each setting (native and kgw at gamma 0.25 / 0.5 and delta 1, 2, 3; synthid at its default, which
is non-distortionary on average over keys; and unmarked sampling) it generates ``--texts`` completions
of ``--tokens`` tokens with the bundled reference model from prose prompts (same prompts and seeds for
every setting), then reports:

* the perplexity of the completions under the same model without the watermark (median over texts,
  and the ratio to unmarked sampling's);
* detectability: the share detected at p <= 1e-6 after 50 and 100 tokens, and the median log10 p.

    .venv/bin/python bench/bench_text_quality.py [--texts 16] [--tokens 100]

The key-choice comparison of #22 (item 4) names each native context width explicitly and adds option
(b), a width-1 theft key carried by the same generation beside a width-2 provenance key (both biases
added; ``bench_text_power.carrying``), at 2 + 2 and 1 + 1 nats; detection is reported for the
provenance key and, for those rows, for the carried key (``carried_*``):

    .venv/bin/python bench/bench_text_quality.py --name text_quality_keys --settings unmarked \
        "native w2 g=0.25 d=2.0" "native w1 g=0.25 d=2.0" "native w2+w1 d=2.0+2.0" "native w2+w1 d=1.0+1.0"
"""

from __future__ import annotations

import argparse
import math
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np

from _common import REPO, reference_model, temporary_home, write_result
from bench_text_power import carrying
from tracemark.keys import Keyring
from tracemark.text import WatermarkedGenerator, detect_tokens, new_text_key

sys.path.insert(0, str(REPO))
from tests.support.corpora import python_prose

ALPHA = 1e-6
SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    **{f"native g={g} d={d}": ("native", {"gamma": g, "delta": d}) for g in (0.25, 0.5) for d in (1.0, 2.0, 3.0)},
    **{f"kgw g={g} d={d}": ("kgw", {"greenlist_ratio": g, "bias": d}) for g in (0.25, 0.5) for d in (1.0, 2.0, 3.0)},
    **{f"native w{w} g=0.25 d={d}": ("native", {"delta": d, "context_width": w}) for w in (1, 2) for d in (2.0, 3.0)},
    **{f"native w2+w1 d={d}+{d}": ("native", {"delta": d, "context_width": 2}) for d in (1.0, 2.0)},
    "synthid default": ("synthid", {}),
    # a bias of 1e-6 nats changes no probability measurably: unmarked sampling through the same code path
    "unmarked": ("native", {"delta": 1e-6}),
    # synthid samples among its key's top_k (40) candidates: its quality is compared with this
    "unmarked top-k 40": ("native", {"delta": 1e-6}),
}
TOP_K = {"unmarked top-k 40": 40}
#: option (b) of #22 item 4: the setting's key plus a width-1 key carried by the same generation
CARRIED: dict[str, dict[str, Any]] = {f"native w2+w1 d={d}+{d}": {"delta": d, "context_width": 1} for d in (1.0, 2.0)}


def perplexities(generator: WatermarkedGenerator, prompts: list[list[int]], texts: list[list[int]]) -> list[float]:
    """Per-text perplexity of the completion under the unmarked model (prompt as context)."""
    torch = generator._torch
    out = []
    with torch.no_grad():
        for prompt, text in zip(prompts, texts, strict=True):
            ids = torch.tensor([prompt + text])
            logits = generator.model(ids).logits[0, :-1].double()
            targets = ids[0, 1:]
            losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")[len(prompt) - 1 :]
            out.append(math.exp(float(losses.mean())))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--name", default="text_quality", help="results file name (without .json)")
    args = parser.parse_args()
    temporary_home()
    keyring = Keyring()
    keyring.create()
    model = reference_model()
    prose = [doc for doc in python_prose() if len(doc) > 400]
    rng = np.random.default_rng(53)
    prompts = [" ".join(prose[int(i)].split()[:8]) for i in rng.choice(len(prose), args.texts, replace=False)]
    results: dict[str, Any] = {"alpha": ALPHA, "texts": args.texts, "tokens": args.tokens, "settings": {}}
    baseline = None
    for name in args.settings:
        scheme, params = SETTINGS[name]
        key = new_text_key(keyring, scheme, model, params=params)
        extra = new_text_key(keyring, "native", model, params=CARRIED[name]) if name in CARRIED else None
        generator = WatermarkedGenerator(model, key)
        context: AbstractContextManager[None] = carrying(extra) if extra is not None else nullcontext()
        with context:
            generations = generator.generate(prompts, max_new_tokens=args.tokens, seed=7, top_k=TOP_K.get(name, 0))
        texts = [list(g.token_ids) for g in generations]
        prompt_ids = [list(g.prompt_token_ids) for g in generations]
        ppl = perplexities(generator, prompt_ids, texts)
        row: dict[str, Any] = {"median_perplexity": round(float(np.median(ppl)), 2), "params": dict(key.params)}
        if not name.startswith("unmarked"):
            for prefix, scored in (("", key), ("carried_", extra)):
                if scored is None:
                    continue
                for length in (50, args.tokens):
                    verdicts = [detect_tokens(np.array(t[:length]), scored, alpha=ALPHA) for t in texts]
                    marked = float(np.mean([v.marked for v in verdicts]))
                    row[f"{prefix}detected_at_{length}"] = round(marked, 3)
                    median = float(np.median([v.log10_p_value for v in verdicts]))
                    row[f"{prefix}median_log10_p_at_{length}"] = round(median, 1)
        elif name == "unmarked":
            baseline = row["median_perplexity"]
        results["settings"][name] = row
        print(name, row, flush=True)
        write_result(args.name, {**results, "complete": False})  # a stopped run keeps what it measured
    results["complete"] = True
    if baseline:
        for row in results["settings"].values():
            row["perplexity_ratio_to_unmarked"] = round(row["median_perplexity"] / baseline, 3)
    print(write_result(args.name, results))


if __name__ == "__main__":
    main()
