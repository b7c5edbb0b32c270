"""Quality cost against detectability, per scheme and parameter: the curve the defaults are chosen from (#23).

For each setting (native and kgw at gamma 0.25 / 0.5 and delta 1, 2, 3; synthid at its default, which
is non-distortionary on average over keys; and unmarked sampling) it generates ``--texts`` completions
of ``--tokens`` tokens with the bundled reference model from prose prompts (same prompts and seeds for
every setting), then reports:

* the perplexity of the completions under the same model without the watermark (median over texts,
  and the ratio to unmarked sampling's);
* detectability: the share detected at p <= 1e-6 after 50 and 100 tokens, and the median log10 p.

    .venv/bin/python bench/bench_text_quality.py [--texts 16] [--tokens 100]
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import numpy as np

from _common import REPO, reference_model, temporary_home, write_result
from tracemark.keys import Keyring
from tracemark.text import WatermarkedGenerator, detect_tokens, new_text_key

sys.path.insert(0, str(REPO))
from tests.support.corpora import python_prose

ALPHA = 1e-6
SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    **{f"native g={g} d={d}": ("native", {"gamma": g, "delta": d}) for g in (0.25, 0.5) for d in (1.0, 2.0, 3.0)},
    **{f"kgw g={g} d={d}": ("kgw", {"greenlist_ratio": g, "bias": d}) for g in (0.25, 0.5) for d in (1.0, 2.0, 3.0)},
    "synthid default": ("synthid", {}),
    # a bias of 1e-6 nats changes no probability measurably: unmarked sampling through the same code path
    "unmarked": ("native", {"delta": 1e-6}),
    # synthid samples among its key's top_k (40) candidates: its quality is compared with this
    "unmarked top-k 40": ("native", {"delta": 1e-6}),
}
TOP_K = {"unmarked top-k 40": 40}


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
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS))
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
        generator = WatermarkedGenerator(model, key)
        generations = generator.generate(prompts, max_new_tokens=args.tokens, seed=7, top_k=TOP_K.get(name, 0))
        texts = [list(g.token_ids) for g in generations]
        prompt_ids = [list(g.prompt_token_ids) for g in generations]
        ppl = perplexities(generator, prompt_ids, texts)
        row: dict[str, Any] = {"median_perplexity": round(float(np.median(ppl)), 2)}
        if not name.startswith("unmarked"):
            for length in (50, args.tokens):
                verdicts = [detect_tokens(np.array(t[:length]), key, alpha=ALPHA) for t in texts]
                row[f"detected_at_{length}"] = round(float(np.mean([v.marked for v in verdicts])), 3)
                row[f"median_log10_p_at_{length}"] = round(float(np.median([v.log10_p_value for v in verdicts])), 1)
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
