"""The known-output spoof check: texts pieced together from logged outputs lose attribution, genuine ones keep it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.text.test_native import marked_sequence
from tracemark.errors import InvalidInputError
from tracemark.keys import Keyring, TextKey
from tracemark.redteam import KnownOutputIndex
from tracemark.text import TextTokenizer, detect_tokens
from tracemark.text._schemes.native import NativeScheme
from tracemark.text._schemes.synthid import SynthIDScheme

ALPHA = 1e-6


def _key(word_model: Path, cls: type[NativeScheme] | type[SynthIDScheme] = NativeScheme) -> TextKey:
    keyring = Keyring()
    keyring.create()
    tokenizer = TextTokenizer(word_model)
    return cls.new_key(
        secret_source=keyring.derive_secret,
        vocab_size=tokenizer.vocab_size,
        tokenizer_sha256=tokenizer.sha256,
        params={"context_width": 2} if cls is NativeScheme else None,  # written for trigram units (#22: new keys are 1)
    )


def _outputs(key: TextKey, count: int, seed: int) -> list[list[int]]:
    scheme = NativeScheme(key)
    return [marked_sequence(scheme, 200, np.random.default_rng([seed, i]), strength=0.9) for i in range(count)]


def test_genuine_marked_texts_stay_attributed_in_the_log_or_not(word_model: Path) -> None:
    key = _key(word_model)
    logged = _outputs(key, 60, seed=1)
    fresh = _outputs(key, 10, seed=2)
    index = KnownOutputIndex.build(key, logged)
    assert index.count == 60
    for number, ids in enumerate(logged[:10]):
        result = index.check(ids, alpha=ALPHA)
        assert not result.assembled
        assert result.best_output == number  # its own output explains it
        assert result.known_elsewhere <= result.units // 10
    for ids in fresh:  # outputs the index never saw: nearly every unit is novel
        assert detect_tokens(np.asarray(ids), key, alpha=ALPHA).marked
        result = index.check(ids, alpha=ALPHA)
        assert not result.assembled
        assert result.novel_units >= 0.9 * result.units
        assert result.to_json()["verdict"] == "attributed"


def test_a_text_assembled_from_many_logged_outputs_is_flagged(word_model: Path) -> None:
    key = _key(word_model)
    logged = _outputs(key, 60, seed=3)
    index = KnownOutputIndex.build(key, logged)
    rng = np.random.default_rng(4)
    for trial in range(5):
        pieces = []
        for source in rng.choice(len(logged), 25, replace=False):  # 25 pieces of 8 tokens from 25 outputs
            start = int(rng.integers(0, 190))
            pieces.extend(logged[int(source)][start : start + 8])
        # a few words of the attacker's own between the pieces would not help: they are unmarked
        assert detect_tokens(np.asarray(pieces), key, alpha=ALPHA).marked, trial
        result = index.check(pieces, alpha=ALPHA)
        assert result.assembled, result
        assert result.known_elsewhere > result.best_output_units
        assert result.to_json()["verdict"] == "assembled-from-known-output"


def test_only_one_trial_per_unit_schemes_and_a_valid_alpha(word_model: Path) -> None:
    with pytest.raises(InvalidInputError, match="one trial per unit"):
        KnownOutputIndex.build(_key(word_model, SynthIDScheme), [[1, 2, 3, 4]])
    key = _key(word_model)
    index = KnownOutputIndex.build(key, _outputs(key, 2, seed=5))
    with pytest.raises(InvalidInputError):
        index.check([1, 2, 3], alpha=0.0)
    empty = index.check([1, 2], alpha=ALPHA)  # no full context: nothing scored, nothing flagged
    assert empty.units == 0
    assert not empty.assembled


def test_the_red_team_scores_texts_as_the_product_does(word_model: Path) -> None:
    # the red team's batch scorer tests the same case and whitespace variants as detect_watermark, same Bonferroni
    from tracemark.redteam._text_redteam import _Detector
    from tracemark.text import detect_watermark

    key = _key(word_model)
    tokenizer = TextTokenizer(word_model)
    detector = _Detector(key, tokenizer, ALPHA)
    texts = []
    for i, ids in enumerate(_outputs(key, 4, seed=6)):
        words = [f"w{t}" for t in ids]
        if i % 2:
            texts.append(" ".join(words).upper())  # re-cased: three variants
        else:
            texts.append("".join(w + ("\t" if j % 3 == 0 else " ") for j, w in enumerate(words)))  # re-spaced
    ours = detector.log10_p(texts)
    product = [detect_watermark(t, key, tokenizer, scan_windows=False).log10_p_value for t in texts]
    assert ours == pytest.approx(product, rel=1e-9, abs=1e-9)
    assert _Detector(key, tokenizer, ALPHA, variants=False).log10_p(texts[1:2])[0] > ours[1]
