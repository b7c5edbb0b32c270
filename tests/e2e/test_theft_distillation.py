"""End to end: the bundled reference model writes watermarked text, a student learns from it, radioactivity finds it.

The student is the simplest distillation there is: a bigram model counted from the teacher's marked
answers, queried through the callable adapter like any endpoint.  A width-1 key marks (previous
token, token) pairs, which is exactly what a bigram model copies, so a few thousand teacher tokens
make it radioactive; the same student counted from human text is the clean control.  Everything is
real: the reference model, the native watermark, the product's closed-mode test and its wrong-key null.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter, defaultdict
from itertools import pairwise

import numpy as np
import pytest

from tests.conftest import REFERENCE_MODEL
from tests.support.corpora import python_prose
from tests.unit.theft.conftest import assert_clean
from tracemark._json import as_float, as_mapping
from tracemark.keys import Keyring, TextKey
from tracemark.text import TextTokenizer, WatermarkedGenerator, new_text_key
from tracemark.theft import CallableTextModel, RadioactivityConfig, TheftVerdict, radioactivity

BUDGET = 6_000


class BigramStudent:
    """Samples each next token from the counts of what followed the previous one in its training text."""

    def __init__(self, streams: list[list[int]], tokenizer: TextTokenizer) -> None:
        self.tokenizer = tokenizer
        self.following: dict[int, Counter[int]] = defaultdict(Counter)
        self.unigram: Counter[int] = Counter()
        for ids in streams:
            self.unigram.update(ids)
            for previous, token in pairwise(ids):
                self.following[previous][token] += 1

    def complete(self, prompt: str, max_new_tokens: int, seed: int) -> str:
        rng = np.random.default_rng(seed)
        ids = self.tokenizer.encode(prompt).ids.tolist() or [next(iter(self.unigram))]
        out: list[int] = []
        for _ in range(max_new_tokens):
            counts = self.following.get(ids[-1]) or self.unigram
            tokens, weights = zip(*counts.items(), strict=True)
            probabilities = np.asarray(weights, dtype=np.float64) / sum(weights)
            ids.append(int(tokens[int(rng.choice(len(tokens), p=probabilities))]))
            out.append(ids[-1])
        return self.tokenizer.decode(out)


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> tuple[TextKey, TextTokenizer, list[str], list[str]]:
    keyring = Keyring(tmp_path_factory.mktemp("home"))
    # A module fixture runs before the per-test secret seeding (tests/conftest.py), so it seeds its
    # own: with a fresh random key each run, the wrong-key null check failed now and then.
    rng = random.Random("test_theft_distillation")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(secrets, "token_bytes", lambda nbytes=32: rng.randbytes(nbytes))
        patch.setattr(secrets, "token_hex", lambda nbytes=32: rng.randbytes(nbytes).hex())
        keyring.create()
        key = new_text_key(keyring, "native", REFERENCE_MODEL, params={"context_width": 1})
    documents = [d for d in python_prose(600_000) if len(d) > 400]
    training_prompts = [d[:80] for d in documents[:48]]
    held_out = [d[:80] for d in documents[48:160]]
    return key, TextTokenizer(REFERENCE_MODEL), training_prompts, held_out


def _query(student: BigramStudent, key: TextKey, tokenizer: TextTokenizer, prompts: list[str]) -> TheftVerdict:
    config = RadioactivityConfig(budget_tokens=BUDGET, statistic="weighted", null_keys=200, min_tuples=300)
    verdict, _ = radioactivity(CallableTextModel(student.complete, name="bigram student"), [key], prompts, tokenizer,
                               config, max_new_tokens=64, seed=7)  # fmt: skip
    return verdict


def test_a_student_of_watermarked_answers_is_radioactive(
    setting: tuple[TextKey, TextTokenizer, list[str], list[str]],
) -> None:
    key, tokenizer, training_prompts, held_out = setting
    answers = WatermarkedGenerator(REFERENCE_MODEL, key).generate(training_prompts, max_new_tokens=128, seed=3)
    student = BigramStudent([list(a.token_ids) for a in answers], tokenizer)
    verdict = _query(student, key, tokenizer, held_out)
    assert verdict.decision == "evidence", verdict.reasons
    assert verdict.p_value is not None
    assert verdict.p_value < 1e-10
    assert as_float(verdict.counts["response_tokens"]) <= BUDGET
    assert as_float(verdict.counts["distinct_tuples"]) >= 300
    # The wrong-key null on the same transcript stays near its nominal rate.
    assert verdict.null_check is not None
    level = as_mapping(as_mapping(verdict.null_check["levels"])["0.01"])
    assert as_float(level["flagged"]) <= as_float(level["upper_limit"])


def test_the_same_student_of_human_text_is_not(setting: tuple[TextKey, TextTokenizer, list[str], list[str]]) -> None:
    key, tokenizer, _, held_out = setting
    human = [tokenizer.encode(d).ids.tolist() for d in python_prose(120_000)]
    verdict = _query(BigramStudent(human, tokenizer), key, tokenizer, held_out)
    assert_clean(verdict.decision, verdict.p_value, verdict.alpha, verdict.reasons)
    assert verdict.p_value is not None
    assert verdict.p_value > 1e-3
