"""Case and formatting robustness of text detection: true-positive rate at alpha 1e-6 after edits that keep
the words (#23).

Generates marked text with the bundled reference model for each scheme and measures, at 100 and 200
tokens, the share of marked texts still found after: ALL CAPS, Title Case (every word capitalised),
re-wrapping at 60 columns, Markdown wrapping (a heading, the text as a block quote wrapped at 70
columns), HTML wrapping (``<p>`` paragraphs in a page), smart quotes, and (since #12's typos variant) the
red team's typo attack on 30 % of the words.  "after" is detection as
shipped (case and line-wrap variants, Bonferroni over the variants tested); "before" is the same
detector with variants off (``variants=False``), as tracemark detected before #23.  A last row gives the
false-positive count of the variant test on human prose put through the same edits.

    .venv/bin/python bench/bench_text_robustness.py [--texts 32] [--schemes native kgw synthid] [--tag _reduced]
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np

from _common import REPO, text_bench_setup, write_result
from bench_text_power import generate_long
from tracemark.keys import TextKey
from tracemark.redteam import TEXT_ATTACKS
from tracemark.text import TextTokenizer, WatermarkedGenerator, detect_watermark, new_text_key

sys.path.insert(0, str(REPO))

ALPHA = 1e-6
LENGTHS = (100, 200)
SCHEMES = ("native", "kgw", "synthid")


def title_case(text: str) -> str:
    return " ".join(word[:1].upper() + word[1:] for word in text.split(" "))


def markdown(text: str) -> str:
    quoted = textwrap.fill(text, 70).replace("\n", "\n> ")
    return f"## From the assistant\n\n> {quoted}\n\n*generated answer*\n"


def html(text: str) -> str:
    paragraphs = "".join(f"<p>{p}</p>\n" for p in text.split("\n\n"))
    return f"<html><body><article>\n{paragraphs}</article></body></html>"


def smart_quotes(text: str) -> str:
    out, double = [], False
    for ch in text:
        if ch == '"':
            out.append("\u201d" if double else "\u201c")
            double = not double
        else:
            out.append("\u2019" if ch == "'" else ch)
    return "".join(out)


EDITS: dict[str, Callable[[str], str]] = {
    "clean": lambda t: t,
    "ALL CAPS": str.upper,
    "Title Case": title_case,
    "re-wrapped 60 columns": lambda t: textwrap.fill(t, 60),
    "Markdown quote + heading": markdown,
    "HTML paragraphs": html,
    "smart quotes": smart_quotes,
    # the red team's typo attack on 30 % of the words (#12's typos variant), seeded by the text
    "typos 30 % of words": lambda t: TEXT_ATTACKS["typo"].apply(t, 0.3, np.random.default_rng(len(t))),
}


def table(key: TextKey, tokenizer: TextTokenizer, texts: list[list[int]]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, edit in EDITS.items():
        out[name] = {}
        for length in LENGTHS:
            edited = [edit(tokenizer.decode(ids[:length])) for ids in texts]
            after = np.mean([detect_watermark(t, key, tokenizer, alpha=ALPHA).marked for t in edited])
            before = np.mean([detect_watermark(t, key, tokenizer, alpha=ALPHA, variants=False).marked for t in edited])
            out[name][str(length)] = {"after": round(float(after), 3), "before": round(float(before), 3)}
    return out


def false_positives(key: TextKey, tokenizer: TextTokenizer, prose: list[str]) -> dict[str, int]:
    """Human prose windows flagged at 0.01 (a level where false positives are visible) under every edit."""
    counts: dict[str, int] = {}
    for name, edit in EDITS.items():
        counts[name] = sum(detect_watermark(edit(doc[:1500]), key, tokenizer, alpha=0.01).marked for doc in prose)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=32, help="marked texts per scheme")
    parser.add_argument("--human", type=int, default=200, help="human prose documents for the false-positive row")
    parser.add_argument("--schemes", nargs="*", default=list(SCHEMES))
    parser.add_argument("--tag", default="", help="suffix of the result file (a reduced run beside the full one)")
    args = parser.parse_args()
    keyring, model, tokenizer, prose, prompts = text_bench_setup(args.texts, seed=52)
    rng = np.random.default_rng(52)
    rng.choice(len(prose), args.texts, replace=False)  # the prompts' draw (text_bench_setup): same human set as before
    human = [prose[int(i)] for i in rng.choice(len(prose), args.human, replace=False)]
    results: dict[str, Any] = {"alpha": ALPHA, "texts": args.texts, "human": args.human, "schemes": {}}
    for scheme in args.schemes:
        key = new_text_key(keyring, scheme, model)
        generator = WatermarkedGenerator(model, key)
        texts: list[list[int]] = []
        for start in range(0, len(prompts), 16):
            texts += [list(g.token_ids) for g in generate_long(generator, prompts[start : start + 16], 200, start)]
        rates = table(key, tokenizer, texts)
        flagged = false_positives(key, tokenizer, human)
        results["schemes"][scheme] = {"tpr_at_fpr_1e-6": rates, "human_flagged_at_0.01": flagged}
        print(scheme)
        for name, row in rates.items():
            print(f"  {name:<26}" + "  ".join(f"{n}: {v['before']:.2f} -> {v['after']:.2f}" for n, v in row.items()))
        print("  human flagged at 0.01:", flagged)
    print(write_result(f"text_robustness{args.tag}", results))


if __name__ == "__main__":
    main()
