"""The provider's known-output index (the spoofing defence): forged texts flagged, genuine texts attributed.

The outputs here are simulated marked generations over the 2,000-word test vocabulary: at each step the
generator prefers a green word under the key (as a watermarked model does), so every unit of an output
is marked.  The forgery is watermark stealing at its most favourable: a walk over the units the
attacker saw in the outputs (each next word one that followed the current context in some output,
switching output as often as it can), so the text is green almost everywhere and every unit is known.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tests.unit.service.conftest import ClientFactory, make_client, tiny_model  # noqa: F401 (the service fixtures)
from tracemark.cli import main
from tracemark.errors import KnownOutputIndexError
from tracemark.keys import Keyring, TextKey
from tracemark.text import (
    ASSEMBLED,
    ATTRIBUTED,
    NOT_CHECKED,
    KnownOutputIndex,
    TextTokenizer,
    attribute,
    bulk_scheme,
    detect_watermark,
    load_scheme,
    new_text_key,
)

ALPHA = 1e-6


def _key(model: Path, width: int) -> TextKey:
    ring = Keyring()
    if not ring.exists():
        ring.create()
    return new_text_key(ring, "native", model, params={"context_width": width}, make_default=True)


def _marked_outputs(key: TextKey, count: int, length: int, seed: int) -> list[list[int]]:
    """``count`` marked outputs: at each step the first green word among 6 drawn (a strong watermark)."""
    width = load_scheme(key).context_width
    scheme = bulk_scheme(load_scheme(key))
    assert scheme is not None
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, key.vocab_size, (count, width))
    while ids.shape[1] < length:
        drawn = rng.integers(1, key.vocab_size, (count, 6))
        contexts = np.repeat(ids[:, -width:][:, None, :], 6, axis=1)
        green = scheme.unit_hits(np.concatenate([contexts, drawn[:, :, None]], axis=2))
        pick = np.where(green.any(axis=1), green.argmax(axis=1), 0)
        ids = np.concatenate([ids, drawn[np.arange(count), pick][:, None]], axis=1)
    return [[int(t) for t in row] for row in ids]


def _stolen_walk(outputs: list[list[int]], width: int, length: int, seed: int) -> list[int]:
    """A forgery from stolen units: each next word followed the current context in a marked output,
    taken from another output than the last word whenever one has it; a context nobody continued
    restarts from a random known context (the attacker's only other option is its own, unmarked, word), and
    no output gives more than 8 words in a row (a longer copy is that output, republished)."""
    rng = np.random.default_rng(seed)
    followers: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    for number, ids in enumerate(outputs):
        for t in range(width, len(ids)):
            followers.setdefault(tuple(ids[t - width : t]), []).append((ids[t], number))
    source = 0
    run = 0
    walk = list(outputs[0][:width])
    while len(walk) < length:
        options = followers.get(tuple(walk[-width:]), [])
        others = [option for option in options if option[1] != source]
        pool = others or (options if run < 8 else [])  # at most 8 words in a row from one output
        if pool:
            token, number = pool[int(rng.integers(len(pool)))]
            run = run + 1 if number == source else 1
            source = number
            walk.append(token)
            continue
        run = 0
        source = int(rng.integers(len(outputs)))
        start = int(rng.integers(len(outputs[source]) - width))
        walk.extend(outputs[source][start : start + width])
    return walk[:length]


def _text(ids: list[int]) -> str:
    return " ".join(f"w{t - 1}" for t in ids)


def _delete_words(ids: list[int], share: float, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [t for t in ids if rng.random() >= share]


@pytest.fixture(params=[2, 1], ids=["width2", "width1"])
def world(request: pytest.FixtureRequest, word_model: Path, tmp_path: Path) -> tuple[TextKey, list[list[int]], Path]:
    key = _key(word_model, request.param)
    outputs = _marked_outputs(key, 60, 150, seed=7)
    database = tmp_path / "outputs.sqlite3"
    with KnownOutputIndex.open(database, key, create=True) as index:
        index.add_token_ids(outputs[:50], log_indices=range(50))
    return key, outputs, database


def test_a_forgery_from_stolen_units_is_flagged_and_genuine_texts_are_attributed(
    world: tuple[TextKey, list[list[int]], Path], word_model: Path
) -> None:
    key, outputs, database = world
    width = load_scheme(key).context_width
    tokenizer = TextTokenizer(word_model)
    forged = _text(_stolen_walk(outputs[:50], width, 150, seed=11))
    verdict = detect_watermark(forged, key, tokenizer, alpha=ALPHA)
    assert verdict.marked, "the forgery must fool the detector, or the test shows nothing"
    with KnownOutputIndex.open(database, key) as index:
        spoof = attribute(verdict.marked, None, forged, tokenizer, index, alpha=ALPHA)
        assert spoof.status == ASSEMBLED
        assert not spoof.ours
        assert spoof.check is not None
        assert spoof.check.known_elsewhere > spoof.check.units // 2

        logged_edited = _text(_delete_words(outputs[3], 0.10, seed=5))  # in the index, 10 % of words deleted
        unlogged = _text(outputs[55])  # a marked output the index never saw
        for text in (logged_edited, unlogged):
            genuine = detect_watermark(text, key, tokenizer, alpha=ALPHA)
            assert genuine.marked
            result = attribute(genuine.marked, None, text, tokenizer, index, alpha=ALPHA)
            assert result.status == ATTRIBUTED, result.reason
            assert result.ours
        assert result.check is not None
        logged = attribute(True, None, logged_edited, tokenizer, index, alpha=ALPHA).check
        assert logged is not None
        assert logged.best_output == 3
        assert logged.best_output_log_index == 3

        unmarked = attribute(False, None, _text(outputs[1]), tokenizer, index, alpha=ALPHA)
        assert unmarked.status == NOT_CHECKED
        assert not unmarked.ours
    assert attribute(True, None, forged, tokenizer, None, alpha=ALPHA).status == NOT_CHECKED


def test_the_cli_flags_the_forgery_and_attributes_an_edited_genuine_text(
    word_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "init", "--model", str(word_model)]) == 0
    key = _key(word_model, 2)
    outputs = _marked_outputs(key, 40, 150, seed=3)
    batch = tmp_path / "outputs.jsonl"
    batch.write_text("".join(json.dumps({"text": _text(ids)}) + "\n" for ids in outputs[:39]))
    single = tmp_path / "last.txt"
    single.write_text(_text(outputs[39]))
    database = tmp_path / "index.sqlite3"
    common = ["--model", str(word_model), "--key", key.key_id]
    capsys.readouterr()
    assert main(["text", "index", "add", str(batch), str(single), "--db", str(database), *common, "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["added"] == 40
    assert added["index"]["outputs"] == 40
    assert 0 < added["index"]["bytes_per_output"] < 1024

    def detect(text: str, *extra: str) -> tuple[int, dict[str, object]]:
        path = tmp_path / "input.txt"
        path.write_text(text)
        status = main(["text", "detect", str(path), *common, "--json", *extra])
        out = capsys.readouterr().out
        return status, json.loads(out) if out.strip() else {}

    forged = _text(_stolen_walk(outputs, 2, 150, seed=4))
    status, plain = detect(forged)
    assert status == 0
    assert plain["marked"] is True
    assert "attribution" not in plain
    status, checked = detect(forged, "--known-outputs", str(database))
    attribution = checked["attribution"]
    assert status == 0
    assert checked["marked"] is True
    assert isinstance(attribution, dict)
    assert attribution["status"] == ASSEMBLED
    assert attribution["ours"] is False
    status, genuine = detect(_text(_delete_words(outputs[20], 0.10, seed=9)), "--known-outputs", str(database))
    attribution = genuine["attribution"]
    assert status == 0
    assert isinstance(attribution, dict)
    assert attribution["status"] == ATTRIBUTED
    assert attribution["ours"] is True
    assert isinstance(attribution["check"], dict)
    assert attribution["check"]["best_output"] == 20


def test_a_missing_or_corrupt_index_is_a_typed_error_with_a_non_zero_exit(
    word_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _key(word_model, 2)
    outputs = _marked_outputs(key, 6, 80, seed=1)
    text_file = tmp_path / "t.txt"
    text_file.write_text(_text(outputs[0]))
    common = [str(text_file), "--model", str(word_model), "--key", key.key_id, "--known-outputs"]
    assert main(["text", "detect", *common, str(tmp_path / "absent.sqlite3")]) == 4
    assert "no known-output index" in capsys.readouterr().err
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database" * 100)
    assert main(["text", "detect", *common, str(garbage)]) == 4
    assert "corrupt" in capsys.readouterr().err

    database = tmp_path / "index.sqlite3"
    with KnownOutputIndex.open(database, key, create=True) as index:
        index.add_token_ids(outputs)
    other = _key(word_model, 1)  # an index holds no outputs of another key
    with pytest.raises(KnownOutputIndexError, match="no known outputs for key"):
        KnownOutputIndex.open(database, other)
    with sqlite3.connect(database) as db:
        db.execute("UPDATE known_output_filter SET bits = x'00'")
    with KnownOutputIndex.open(database, key) as index, pytest.raises(KnownOutputIndexError, match="corrupt"):
        index.check(outputs[0], alpha=ALPHA)
    with sqlite3.connect(database) as db:
        db.execute("UPDATE known_output_indexes SET state = '{\"format\": 1'")
    with pytest.raises(KnownOutputIndexError, match="corrupt"):
        KnownOutputIndex.open(database, key)
    assert main(["text", "detect", *common, str(database)]) == 4


def test_the_stated_false_positive_rates_hold(word_model: Path, tmp_path: Path) -> None:
    """Membership: the measured rate is near the estimate the index reports; coded sets: at most 2**-9 per query."""
    key = _key(word_model, 2)
    rng = np.random.default_rng(0)
    outputs = [rng.integers(1, key.vocab_size, 200) for _ in range(120)]
    with KnownOutputIndex.open(tmp_path / "fp.sqlite3", key, create=True) as index:
        index.add_token_ids(outputs)
        described = index.describe()
        probes = rng.integers(0, 2**63, 40_000).astype(np.uint64)
        member = index._db._run(lambda db: index._members(db, probes), "read")
        rate = described["membership_false_positive_rate"]
        assert 0.0 < rate < 0.05
        assert float(member.mean()) < rate * 1.5 + 0.003

    from tracemark.text._known_outputs import _RICE_BITS, _rice_decode, _rice_encode

    values = np.sort(rng.integers(0, 200 << _RICE_BITS, 200).astype(np.uint64))
    stored = _rice_decode(_rice_encode(values), 200)
    assert np.array_equal(stored, values)
    queries = rng.integers(0, 200 << _RICE_BITS, 200_000).astype(np.uint64)
    assert float(np.isin(queries, stored).mean()) <= 2.0**-_RICE_BITS * 1.2


def test_the_service_indexes_what_it_generates_and_flags_the_forgery_on_detect(
    make_client: ClientFactory,  # noqa: F811 (the fixture imported above)
    tiny_model: Path,  # noqa: F811
    word_model: Path,
    isolated_home: Path,
) -> None:
    """Generation adds the output to the index in the log's database; detection reports the attribution."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tracemark.keys import mint_api_token

    client = make_client(tiny_model, model_id="tiny-gpt2@test")
    auth = {"Authorization": f"Bearer {mint_api_token(Keyring())}"}
    response = client.post("/v1/text/generate", json={"prompt": "The documentation explains how",
                                                      "max_new_tokens": 120, "seed": 3}, headers=auth)  # fmt: skip
    assert response.status_code == 200, response.text
    generated = response.json()["generation"]["text"]
    key = Keyring().default("text")
    with KnownOutputIndex.open(isolated_home / "db.sqlite3", key) as index:
        assert index.outputs == 1
    verdict = client.post("/v1/text/detect", json={"text": generated}).json()
    assert verdict["marked"] is True
    assert verdict["attribution"]["status"] == ATTRIBUTED
    assert verdict["attribution"]["ours"] is True
    assert verdict["attribution"]["check"]["best_output_log_index"] == 0

    # A second service over the word vocabulary: its outputs indexed as generation would, then a forgery.
    words = make_client(word_model, database=isolated_home / "words.sqlite3")
    word_key = Keyring().default("text")
    outputs = _marked_outputs(word_key, 40, 150, seed=2)
    with KnownOutputIndex.open(isolated_home / "words.sqlite3", word_key, create=True) as index:
        index.add_texts([_text(ids) for ids in outputs], TextTokenizer(word_model))
    width = load_scheme(word_key).context_width
    forged = words.post("/v1/text/detect", json={"text": _text(_stolen_walk(outputs, width, 150, seed=6))}).json()
    assert forged["marked"] is True
    assert forged["attribution"]["status"] == ASSEMBLED
    assert forged["attribution"]["ours"] is False
    genuine = words.post("/v1/text/detect", json={"text": _text(_delete_words(outputs[9], 0.1, seed=1))}).json()
    assert genuine["attribution"]["status"] == ATTRIBUTED, genuine["attribution"]["check"]
    assert genuine["attribution"]["check"]["best_output"] == 9


@pytest.mark.postgres
def test_the_index_in_a_postgresql_log_database(postgres_url: str, word_model: Path) -> None:
    """The same index in PostgreSQL (the log's database and schema when the log is shared by instances)."""
    key = _key(word_model, 2)
    tokenizer = TextTokenizer(word_model)
    outputs = _marked_outputs(key, 40, 150, seed=13)
    with KnownOutputIndex.open(postgres_url, key, create=True) as index:
        assert index.add_token_ids(outputs[:20], log_indices=range(20)) == list(range(20))
    with KnownOutputIndex.open(postgres_url, key, create=True) as index:  # a second instance adds more
        assert index.add_texts([_text(ids) for ids in outputs[20:]], tokenizer) == list(range(20, 40))
    with KnownOutputIndex.open(postgres_url, key) as index:
        assert index.outputs == 40
        forged = _text(_stolen_walk(outputs, 2, 150, seed=8))
        assert detect_watermark(forged, key, tokenizer, alpha=ALPHA).marked
        assert attribute(True, None, forged, tokenizer, index, alpha=ALPHA).status == ASSEMBLED
        genuine = attribute(True, None, _text(_delete_words(outputs[30], 0.1, seed=2)), tokenizer, index, alpha=ALPHA)
        assert genuine.status == ATTRIBUTED
        assert genuine.check is not None
        assert genuine.check.best_output == 30
        described = index.describe()
        assert described["outputs"] == 40
        assert described["bytes"] is not None
    with pytest.raises(KnownOutputIndexError, match="no known outputs for key"):
        KnownOutputIndex.open(postgres_url, _key(word_model, 1))
