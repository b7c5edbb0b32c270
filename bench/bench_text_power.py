"""Detection power of every text scheme on the reference model, clean and under attack.

Generates marked text with the bundled reference model for each scheme, then reports
the true-positive rate at a false-positive rate of 1e-6 (``p_value <= 1e-6``; the
p-values are exact, so this is the operating point) against the number of tokens, for:
clean text; 10/20/30 % random token substitution, insertion and deletion; 50 % of the
letters swapped for homoglyphs; zero-width characters after 50 % of the characters;
and a 200-token marked passage inside 2,000 tokens of human prose.

    .venv/bin/python bench/bench_text_power.py [--texts 32]
    .venv/bin/python bench/bench_text_power.py --schemes native-w2 native-w1 native-dual --name text_power_keys

The last form is the key-choice comparison of #22 (item 4): the native key at context width 2 and 1,
and ``native-dual``, a width-2 provenance key with a width-1 theft key carried by the same generation
(both biases added, ``carrying``), whose table is the provenance key's with the theft key's beside it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from typing import Any

import numpy as np

from _common import REPO, text_bench_setup, write_result
from tracemark.keys import TextKey
from tracemark.text import (
    Generation,
    TextTokenizer,
    WatermarkedGenerator,
    detect_watermark,
    load_scheme,
    logits_processor,
    new_text_key,
)
from tracemark.text._canonical import _CONFUSABLES

sys.path.insert(0, str(REPO))

ALPHA = 1e-6
LENGTHS = (25, 50, 100, 200, 400)
SCHEMES: dict[str, dict[str, Any]] = {
    "native": {},
    "native-w2": {"context_width": 2},
    "native-w1": {"context_width": 1},
    "native-dual": {"context_width": 2},
    "kgw": {"seeding_scheme": "lefthash", "context_width": 1},
    "kgw-selfhash-4": {"seeding_scheme": "selfhash", "context_width": 4},
    "synthid": {},
}
#: a second key the generation carries beside the scheme's own (option (b) of #22 item 4)
CARRIED: dict[str, dict[str, Any]] = {"native-dual": {"context_width": 1}}
HOMOGLYPH = {ascii_letter: other for other, ascii_letter in _CONFUSABLES.items() if ascii_letter.isalpha()}

Table = dict[str, dict[int, float]]
#: per key id: the clean 200-token texts' ``tokens_needed`` (median, 90th percentile), filled by ``evaluate``
NEEDED: dict[str, dict[str, Any]] = {}
Attack = Callable[[list[int], np.random.Generator, np.ndarray], list[int]]


def substitute(rate: float) -> Attack:
    def attack(ids: list[int], rng: np.random.Generator, pool: np.ndarray) -> list[int]:
        out = list(ids)
        for index in rng.choice(len(out), int(rate * len(out)), replace=False):
            out[int(index)] = int(rng.choice(pool))
        return out

    return attack


def insert(rate: float) -> Attack:
    def attack(ids: list[int], rng: np.random.Generator, pool: np.ndarray) -> list[int]:
        out = list(ids)
        for _ in range(int(rate * len(ids))):
            out.insert(int(rng.integers(0, len(out) + 1)), int(rng.choice(pool)))
        return out

    return attack


def delete(rate: float) -> Attack:
    def attack(ids: list[int], rng: np.random.Generator, pool: np.ndarray) -> list[int]:
        drop = set(rng.choice(len(ids), int(rate * len(ids)), replace=False).tolist())
        return [t for i, t in enumerate(ids) if i not in drop]

    return attack


TOKEN_ATTACKS: dict[str, Attack] = {
    **{f"substitute-{int(r * 100)}%": substitute(r) for r in (0.1, 0.2, 0.3)},
    **{f"insert-{int(r * 100)}%": insert(r) for r in (0.1, 0.2, 0.3)},
    **{f"delete-{int(r * 100)}%": delete(r) for r in (0.1, 0.2, 0.3)},
}


class _Stacked:
    """A logits processor applying several in turn: each key adds its own bias."""

    def __init__(self, processors: list[Any]) -> None:
        self.processors = processors

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        for processor in self.processors:
            scores = processor(input_ids, scores)
        return scores


@contextmanager
def carrying(extra: TextKey) -> Iterator[None]:
    """While active, every ``WatermarkedGenerator`` also biases its samples under ``extra``.

    The product marks with one key per generation; this is the measurement of option (b) of #22
    item 4 (a theft-oriented key carried beside the provenance key), not a product feature.
    """
    from unittest import mock

    second = load_scheme(extra)

    def stacked(scheme: Any) -> Any:
        return _Stacked([logits_processor(scheme), logits_processor(second)])

    with mock.patch("tracemark.text._generate.logits_processor", stacked):
        yield


def homoglyphs(text: str, rng: np.random.Generator) -> str:
    return "".join(HOMOGLYPH[c] if c in HOMOGLYPH and rng.random() < 0.5 else c for c in text)


def zero_width(text: str, rng: np.random.Generator) -> str:
    return "".join(c + "\u200b" if rng.random() < 0.5 else c for c in text)


def generate_long(generator: WatermarkedGenerator, prompts: list[str], tokens: int, seed: int) -> list[Generation]:
    """Generate ``tokens`` marked tokens per prompt, continuing in chunks past the model's 256-token context."""
    chunk, overlap = 200, 48
    first = generator.generate(prompts, max_new_tokens=min(chunk, tokens), seed=seed)
    ids = [list(g.token_ids) for g in first]
    while len(ids[0]) < tokens:
        tails = [str(generator.tokenizer.decode(row[-overlap:])) for row in ids]
        more = generator.generate(tails, max_new_tokens=min(chunk, tokens - len(ids[0])), seed=seed + len(ids[0]))
        ids = [row + list(g.token_ids) for row, g in zip(ids, more, strict=True)]
    return [
        replace(g, token_ids=tuple(row), text=str(generator.tokenizer.decode(row)))
        for g, row in zip(first, ids, strict=True)
    ]


def evaluate(key: TextKey, generations: list[Generation], tokenizer: TextTokenizer, human: list[int]) -> Table:
    """True-positive rates at alpha for every attack and length."""

    def tpr(make_text: Callable[[list[int], np.random.Generator], str], length: int) -> float:
        hits = 0
        for index, generation in enumerate(generations):
            local = np.random.default_rng(1000 * length + index)
            text = make_text(list(generation.token_ids[:length]), local)
            hits += detect_watermark(text, key, tokenizer, alpha=ALPHA).marked
        return hits / len(generations)

    # random replacement tokens are drawn from tokens that decode to printable text (no stray control bytes)
    pool = np.array([i for i in range(key.vocab_size) if tokenizer.decode([i]).isprintable()])
    table: Table = {}
    table["clean"] = {n: tpr(lambda ids, r: tokenizer.decode(ids), n) for n in LENGTHS}
    # the verdict's tokens_needed on the clean 200-token texts: how many distinct scored tokens their hit
    # rate needs at alpha (median and the 90th percentile over texts)
    needed = [
        detect_watermark(tokenizer.decode(list(g.token_ids[:200])), key, tokenizer, alpha=ALPHA).tokens_needed
        for g in generations
    ]
    known = np.array([n for n in needed if n is not None], dtype=np.float64)
    NEEDED[key.key_id] = {
        "texts": len(needed),
        "undecidable": len(needed) - int(known.size),  # rate at or below the null's: no length decides
        "median": float(np.median(known)) if known.size else None,
        "p90": float(np.percentile(known, 90)) if known.size else None,
    }
    for name, attack in TOKEN_ATTACKS.items():

        def attacked(ids: list[int], rng: np.random.Generator, attack: Attack = attack) -> str:
            return tokenizer.decode(attack(ids, rng, pool))

        table[name] = {n: tpr(attacked, n) for n in LENGTHS}
    table["homoglyph-50%"] = {n: tpr(lambda ids, r: homoglyphs(tokenizer.decode(ids), r), n) for n in LENGTHS}
    table["zero-width-50%"] = {n: tpr(lambda ids, r: zero_width(tokenizer.decode(ids), r), n) for n in LENGTHS}
    span_hits = 0
    for index, generation in enumerate(generations):
        offset = (index * 997) % (len(human) - 2000)
        before, after = human[offset : offset + 1000], human[offset + 1000 : offset + 2000]
        marked = tokenizer.decode(list(generation.token_ids[:200]))
        text = f"{tokenizer.decode(before)} {marked} {tokenizer.decode(after)}"
        span_hits += detect_watermark(text, key, tokenizer, alpha=ALPHA).marked
    table["span-200-in-2000"] = {200: span_hits / len(generations)}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=32, help="marked texts per scheme")
    parser.add_argument(
        "--schemes", nargs="*", default=["native", "kgw", "kgw-selfhash-4", "synthid"], choices=list(SCHEMES)
    )
    parser.add_argument("--name", default="text_power", help="results file name (without .json)")
    args = parser.parse_args()
    keyring, model, tokenizer, prose, prompts = text_bench_setup(args.texts, seed=50)
    human = tokenizer.encode(" ".join(prose[:400])).ids.tolist()
    results: dict[str, Any] = {"alpha": ALPHA, "texts": args.texts, "lengths": LENGTHS, "schemes": {}}
    for scheme in args.schemes:
        key = new_text_key(keyring, scheme.split("-")[0], model, params=SCHEMES[scheme])
        extra = new_text_key(keyring, "native", model, params=CARRIED[scheme]) if scheme in CARRIED else None
        generator = WatermarkedGenerator(model, key)
        started = time.process_time()
        generations = []
        context: AbstractContextManager[None] = carrying(extra) if extra is not None else nullcontext()
        with context:
            for start in range(0, len(prompts), 16):
                generations += generate_long(generator, prompts[start : start + 16], max(LENGTHS), seed=start)
        generation_seconds = time.process_time() - started

        table = evaluate(key, generations, tokenizer, human)
        results["schemes"][scheme] = {
            "key": key.public_record(),
            "generation_cpu_seconds": round(generation_seconds, 1),
            "tpr_at_fpr_1e-6": table,
            "tokens_needed_at_200": NEEDED[key.key_id],
            "sample": generations[0].text[:600],
        }
        print(scheme)
        for name, row in table.items():
            print(f"  {name:<18}" + " ".join(f"{n}:{v:.2f}" for n, v in row.items()))
        if extra is not None:
            carried = evaluate(extra, generations, tokenizer, human)
            results["schemes"][scheme] |= {
                "carried_key": extra.public_record(),
                "carried_tpr_at_fpr_1e-6": carried,
                "carried_tokens_needed_at_200": NEEDED[extra.key_id],
            }
            print(f"{scheme}, carried key")
            for name, row in carried.items():
                print(f"  {name:<18}" + " ".join(f"{n}:{v:.2f}" for n, v in row.items()))
        write_result(args.name, {**results, "complete": False})  # a stopped run keeps what it measured
    print(write_result(args.name, {**results, "complete": True}))


if __name__ == "__main__":
    main()
