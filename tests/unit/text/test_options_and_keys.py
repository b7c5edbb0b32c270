"""Generation and key options are validated with one-line errors; transformers configs import and export (#23)."""

from __future__ import annotations

import argparse
import json
import stat
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REFERENCE_MODEL
from tracemark.cli import main
from tracemark.keys import Keyring
from tracemark.text import TextTokenizer, bulk_scheme, detect_batch, detect_tokens, load_scheme


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--temperature", "0"], "temperature"),
        (["--temperature", "-1"], "temperature"),
        (["--temperature", "nan"], "temperature"),
        (["--top-p", "2"], "top_p"),
        (["--top-p", "0"], "top_p"),
        (["--top-k", "-3"], "top_k"),
        (["--max-new-tokens", "0"], "max_new_tokens"),
        (["--seed", "-1"], "seed"),
    ],
)
def test_bad_generation_options_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], option: list[str], message: str
) -> None:
    # before #23, --temperature 0, negative values and --top-p 2 gave tracebacks or were accepted
    assert main(["text", "generate", "--prompt", "Hello", *option]) == 2
    assert message in _error_line(capsys)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "context_width=2.5"], "whole number"),
        (["--param", "gamma=abc"], "numbers"),
        (["--scheme", "synthid", "--param", "depth=2.5"], "whole numbers"),
        (["--scheme", "kgw", "--param", "context_width=2.5"], "context_width"),
    ],
)
def test_bad_key_parameters_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["keys", "init"]) == 0
    capsys.readouterr()
    assert main(["keys", "new", *args]) != 0
    assert message in _error_line(capsys)


@pytest.mark.parametrize("args", [["--alpha", "0"], ["--alpha", "1.5"], ["--max-bytes", "0"]])
def test_bad_detection_options_are_one_line_errors(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    assert main(["text", "detect", *args]) == 2
    _error_line(capsys)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_every_text_and_keys_option_has_help() -> None:
    from tracemark.cli._main import build_parser

    parser = build_parser()
    missing = []
    for capability in ("text", "keys"):
        verbs = _subcommands(_subcommands(parser)[capability])
        for verb, sub in verbs.items():
            for action in sub._actions:
                if action.help is None and action.dest != "help":
                    missing.append(f"{capability} {verb} {action.dest}")
    assert missing == []


def test_synthid_generation_follows_the_sampling_options() -> None:
    from tracemark.text import WatermarkedGenerator, new_text_key

    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "synthid", REFERENCE_MODEL)
    generator = WatermarkedGenerator(REFERENCE_MODEL, key)
    # before #23 SynthID ignored --top-k: with one candidate every seed gives the same text
    one = [generator.generate(["The module"], max_new_tokens=8, top_k=1, seed=s)[0].text for s in (1, 2)]
    assert one[0] == one[1]
    wide = [generator.generate(["The module"], max_new_tokens=8, seed=s)[0].text for s in (1, 2)]
    assert wide[0] != wide[1]
    # a tiny top-p keeps only the likeliest candidate as well
    assert generator.generate(["The module"], max_new_tokens=8, top_p=1e-6, seed=2)[0].text == one[0]


def _write(path: Path, payload: Mapping[str, object]) -> Path:
    path.write_text(json.dumps(payload))
    return path


def test_transformers_configs_import_export_and_list_labels(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["keys", "init"]) == 0
    kgw = {"greenlist_ratio": 0.25, "bias": 2.0, "hashing_key": 15485863, "seeding_scheme": "lefthash",
           "context_width": 1}  # fmt: skip
    synthid = {"ngram_len": 5, "keys": list(range(100, 130)), "sampling_table_size": 65536,
               "sampling_table_seed": 0, "context_history_size": 1024, "skip_first_ngram_calls": False,
               "debug_mode": False}  # fmt: skip
    capsys.readouterr()
    made = {}
    for name, config in (("kgw", kgw), ("synthid", {"watermarking_config": synthid})):
        path = _write(tmp_path / f"{name}.json", config)
        assert main(["keys", "import", "--from-transformers", str(path), "--label", f"from HF {name}", "--json"]) == 0
        made[name] = json.loads(capsys.readouterr().out)
    assert made["kgw"]["scheme"] == "kgw"
    assert made["kgw"]["params"]["bos_token_id"] == 0  # the reference model's BOS, as WatermarkDetector reads it
    assert made["synthid"]["scheme"] == "synthid"
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "from HF kgw" in listing
    assert "from HF synthid" in listing
    out = tmp_path / "exported.json"
    assert main(["keys", "export", made["kgw"]["key_id"], "--to-transformers", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == kgw
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    capsys.readouterr()
    assert main(["keys", "export", made["synthid"]["key_id"], "--to-transformers"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported == {k: v for k, v in synthid.items() if k not in ("skip_first_ngram_calls", "debug_mode")}
    native = Keyring().default().key_id
    assert main(["keys", "export", native, "--to-transformers"]) != 0
    assert "no such watermark" in _error_line(capsys)
    bad = _write(tmp_path / "bad.json", {"temperature": 0.7})
    assert main(["keys", "import", "--from-transformers", str(bad)]) != 0
    assert "neither" in _error_line(capsys)


def test_imported_kgw_keys_with_a_bos_keep_the_bulk_path() -> None:
    from tracemark.text import key_from_transformers_config

    tokenizer = TextTokenizer(REFERENCE_MODEL)
    key = key_from_transformers_config({"hashing_key": 15485863}, tokenizer)
    assert key.params["bos_token_id"] == 0
    # before #23 a BOS id sent these keys to the per-text path (0.66 M vs 6.26 M tokens/s)
    assert bulk_scheme(load_scheme(key)) is not None
    rng = np.random.default_rng(2)
    sequences = [rng.integers(0, tokenizer.vocab_size, int(n)) for n in rng.integers(2, 300, 40)]
    sequences[0][0] = 0  # a leading BOS is skipped, as transformers' WatermarkDetector does
    sequences[1][:3] = 0
    batch = detect_batch(sequences, key)
    for row, ids in enumerate(sequences):
        single = detect_tokens(ids, key, scan_windows=False, explain=True)  # explain: the general path
        assert (batch[row].hits, batch[row].tokens_scored, batch[row].tokens_unscorable) == (
            single.hits, single.tokens_scored, single.tokens_unscorable)  # fmt: skip
        fast = detect_tokens(ids, key, scan_windows=False)
        assert (fast.hits, fast.tokens_scored, fast.tokens_unscorable) == (single.hits, single.tokens_scored,
                                                                          single.tokens_unscorable)  # fmt: skip
