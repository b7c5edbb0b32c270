"""New native keys are width 1 (#22 item 4); keys made before keep their stored width and keep working."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.keys import fixed_secret
from tracemark.cli import main
from tracemark.keys import Keyring, TextKey
from tracemark.keys._records import make_text_key
from tracemark.text import TextTokenizer, detect_tokens, load_scheme, new_text_key, select_text_key
from tracemark.text._schemes.native import DEFAULT_PARAMS, RECORD_DEFAULTS, NativeScheme


def marked_ids(key: TextKey, length: int, seed: int) -> list[int]:
    """Mimic generation under ``key``: among 8 candidates, a green one is picked with probability 0.8."""
    scheme = NativeScheme(key)
    width = scheme.context_width
    rng = np.random.default_rng(seed)
    ids = [int(t) for t in rng.integers(1, key.vocab_size, width)]
    for _ in range(length):
        candidates = rng.integers(1, key.vocab_size, 8)
        units = np.array([[*ids[len(ids) - width :], int(c)] for c in candidates])
        green = scheme.green(units)
        pick = candidates[int(np.argmax(green))] if green.any() and rng.random() < 0.8 else candidates[0]
        ids.append(int(pick))
    return ids


def test_a_new_native_key_is_width_one_and_records_every_parameter() -> None:
    key = NativeScheme.new_key(secret_source=fixed_secret, vocab_size=2001, tokenizer_sha256="a" * 64)
    assert dict(key.params) == {"gamma": 0.25, "delta": 2.0, "context_width": 1}
    assert DEFAULT_PARAMS["context_width"] == 1
    assert load_scheme(key).context_width == 1


def test_keys_new_and_keys_init_make_width_one_keys(word_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "init", "--model", str(word_model)]) == 0
    capsys.readouterr()
    keyring = Keyring()
    default = keyring.default("text")
    assert default is not None
    assert default.scheme == "native"
    assert default.params["context_width"] == 1
    assert main(["keys", "new", "--scheme", "native", "--model", str(word_model), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["params"]["context_width"] == 1
    assert main(["keys", "new", "--model", str(word_model), "--param", "context_width=2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"]["context_width"] == 2


def test_a_stored_width_two_key_keeps_its_width_and_its_marks(word_model: Path) -> None:
    # a keyring made before #22: its default key was created with width 2 and stored so
    keyring = Keyring()
    keyring.create()
    old = new_text_key(keyring, "native", word_model, params={"context_width": 2}, make_default=True)
    texts = [marked_ids(old, 60, seed) for seed in range(20)]
    # a new key made afterwards takes today's default, and does not displace the stored default
    new = new_text_key(keyring, "native", word_model)
    assert new.params["context_width"] == 1
    reloaded = Keyring().get(old.key_id)
    assert reloaded == old
    assert load_scheme(reloaded).context_width == 2
    assert select_text_key(keyring, TextTokenizer(word_model)) == old
    # the old key finds its marks; the width-1 key, a different secret, does not
    for ids in texts:
        found = detect_tokens(np.array(ids), reloaded, alpha=1e-6)
        assert found.marked, found.p_value
        assert found.params["context_width"] == 2
        assert not detect_tokens(np.array(ids), new, alpha=1e-4).marked


def test_a_record_without_a_width_is_read_as_width_two() -> None:
    # every record this package writes names its width; one written by hand before #22 meant 2
    assert RECORD_DEFAULTS["context_width"] == 2
    key = make_text_key(
        scheme="native",
        scheme_version="2",
        params={"gamma": 0.25, "delta": 2.0},
        vocab_size=2001,
        tokenizer_sha256="a" * 64,
        secret={"aes_key": fixed_secret("aes")[:16].hex()},
    )
    assert load_scheme(key).context_width == 2
    ids = marked_ids(key, 60, seed=3)
    assert detect_tokens(np.array(ids), key, alpha=1e-6).marked
