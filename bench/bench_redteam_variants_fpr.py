"""False positives of the case, whitespace and typo variants (#12) on unmarked prose and source code, as texts.

``bench_text_fpr.py`` scores token windows (no variants); the variants act on text, so this bench cuts
Python's documentation prose and the standard library's source into texts of ``--chars`` characters,
each tested by ``detect_watermark`` under one of ``--keys`` fresh native keys (each key its own slice
of texts: windows of one key share units), as given and after the red team's whitespace and casing
and typo attacks at 50 %.  Per corpus and edit it reports how often the variants were tested at all, and the
share of texts at or below 1e-2 and 1e-3 with variants on and off (Wilson 95 % intervals): the
Bonferroni correction must keep both at or below the level.

It also measures the CPU cost of detection on the clean texts with the variants as they are against the
variants before the typo repair (``text_variants`` without the tokenizer), in the same process, in
alternating rounds (``time.process_time``): clean text must pay (almost) nothing for the repair.

    nice -n 10 .venv/bin/python bench/bench_redteam_variants_fpr.py [--keys 10 --texts-per-key 150]

Result: ``redteam_variants_fpr.json``.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from typing import Any

import numpy as np

from _common import REPO, reference_model, write_result

sys.path.insert(0, str(REPO))

from tests.support.corpora import python_prose, python_source

from tracemark.redteam import TEXT_ATTACKS
from tracemark.redteam._intervals import rate
from tracemark.redteam._results import rate_json
from tracemark.text import TextTokenizer, canonicalize, detect_watermark
from tracemark.text import _detect as detect_module
from tracemark.text._schemes.native import NativeScheme
from tracemark.text._typos import Lexicon, looks_typoed
from tracemark.text._variants import TextVariant, looks_respaced, looks_wrapped, recasing, text_variants

LEVELS = (1e-2, 1e-3)


def _texts(corpus: str, chars: int, count: int) -> list[str]:
    source = python_prose if corpus == "prose" else python_source
    joined = "\n\n".join(source(limit_chars=chars * count * 2))
    texts = [joined[i : i + chars] for i in range(0, len(joined) - chars, chars)]
    return [t for t in texts if t.strip()][:count]


def _before_typos(text: str, tokenizer: TextTokenizer | None = None) -> list[TextVariant]:
    """``text_variants`` as it was before the typo repair (no tokenizer: no ``typos`` variant, no trigger)."""
    del tokenizer
    return text_variants(text)


def _cpu_cost(texts: list[str], key: Any, tokenizer: TextTokenizer, rounds: int) -> dict[str, Any]:
    """CPU seconds of ``detect_watermark`` over ``texts``, variants now vs before the typo repair, alternating."""
    now: list[float] = []
    before: list[float] = []
    for _ in range(rounds):
        for label, patch in (("now", text_variants), ("before", _before_typos)):
            vars(detect_module)["text_variants"] = patch
            started = time.process_time()
            for text in texts:
                detect_watermark(text, key, tokenizer, scan_windows=False)
            (now if label == "now" else before).append(time.process_time() - started)
    vars(detect_module)["text_variants"] = text_variants
    return {"texts": len(texts), "rounds": rounds, "cpu_s_now": now, "cpu_s_before": before,
            "median_ratio_now_over_before": float(np.median(np.array(now) / np.array(before)))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--texts-per-key", type=int, default=150)
    parser.add_argument("--chars", type=int, default=800)
    parser.add_argument("--corpus", nargs="+", default=["prose", "code"], choices=["prose", "code"])
    parser.add_argument("--tag", default="", help="suffix of the result file")
    parser.add_argument("--cpu-rounds", type=int, default=5, help="rounds of the CPU-cost comparison (0: none)")
    args = parser.parse_args()
    model = reference_model()
    tokenizer = TextTokenizer(model)
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    cpu: dict[str, Any] = {}
    lexicon = Lexicon.of(tokenizer)
    for corpus in args.corpus:
        texts = _texts(corpus, args.chars, args.keys * args.texts_per_key)
        keys = [
            NativeScheme.new_key(secret_source=lambda _label: secrets.token_bytes(64), vocab_size=tokenizer.vocab_size,
                                 tokenizer_sha256=tokenizer.sha256)
            for _ in range(args.keys)
        ]  # fmt: skip
        if args.cpu_rounds:
            cpu[corpus] = _cpu_cost(texts, keys[0], tokenizer, args.cpu_rounds)
            print(corpus, "cpu", cpu[corpus], flush=True)
        for edit in ("none", "whitespace", "casing", "typo"):
            rng = np.random.default_rng(12)
            on: list[float] = []
            off: list[float] = []
            tested = new = 0
            for index, text in enumerate(texts):
                key = keys[index // args.texts_per_key]
                edited = text if edit == "none" else TEXT_ATTACKS[edit].apply(text, 0.5, rng)
                verdict = detect_watermark(edited, key, tokenizer, scan_windows=False)
                plain = detect_watermark(edited, key, tokenizer, scan_windows=False, variants=False)
                variants_tested = verdict.canonicalization.get("variants_tested", 1)
                assert isinstance(variants_tested, int)
                tested += variants_tested > 1
                body = canonicalize(edited).text  # did a trigger of #12 (mixed case, re-spaced) call for variants?
                new += (recasing(body) == "mixed" or (looks_respaced(body) and not looks_wrapped(body))
                        or looks_typoed(body, lexicon))  # fmt: skip
                on.append(verdict.p_value)
                off.append(plain.p_value)
            row: dict[str, Any] = {"corpus": corpus, "edit": edit, "texts": len(texts),
                                   "variants_tested": rate_json(rate(tested, len(texts))),
                                   "by_triggers_of_12": rate_json(rate(new, len(texts)))}  # fmt: skip
            for level in LEVELS:
                row[f"variants_on_at_{level:g}"] = rate_json(rate(sum(p <= level for p in on), len(on)))
                row[f"variants_off_at_{level:g}"] = rate_json(rate(sum(p <= level for p in off), len(off)))
            print(row, flush=True)
            rows.append(row)
    write_result(f"redteam_variants_fpr{args.tag}", {"settings": vars(args), "seconds": time.monotonic() - started,
                                          "rows": rows, "cpu": cpu})  # fmt: skip


if __name__ == "__main__":
    main()
