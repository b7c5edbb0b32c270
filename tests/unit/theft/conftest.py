"""Synthetic suspects for the theft tests: word-level text whose tuples lean (or not) toward a key's green list."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.conftest import write_word_level_model_dir
from tests.support.cli import run_cli_json
from tracemark.keys import Keyring, TextKey
from tracemark.text import TextTokenizer, load_scheme, new_text_key
from tracemark.text._schemes.native import NativeScheme

VOCAB_WORDS = 2000


@pytest.fixture
def word_dir(tmp_path: Path) -> Path:
    """A model directory with a 2,000-word whitespace tokenizer (ids 1..2000 are ``w0``..``w1999``)."""
    return write_word_level_model_dir(tmp_path / "words", [f"w{i}" for i in range(VOCAB_WORDS)])


@pytest.fixture
def tokenizer(word_dir: Path) -> TextTokenizer:
    return TextTokenizer(word_dir)


@pytest.fixture
def make_key(word_dir: Path, isolated_home: Path) -> Callable[..., TextKey]:
    keyring = Keyring(isolated_home)
    keyring.create()

    def make(scheme: str = "native", **params: object) -> TextKey:
        return new_text_key(keyring, scheme, word_dir, params=params or {"context_width": 1})

    return make


def words(ids: list[int]) -> str:
    return " ".join(f"w{t - 1}" for t in ids)


def zipf_weights(size: int = VOCAB_WORDS) -> NDArray[np.float64]:
    ranks = np.arange(1, size + 1, dtype=np.float64)
    weights = 1.0 / (ranks + 5.0)
    result: NDArray[np.float64] = weights / weights.sum()
    return result


def biased_completion(key: TextKey | None, strength: float) -> Callable[[str, int, int], str]:
    """A suspect writing Zipf-distributed words; with probability ``strength`` it prefers a candidate whose
    (previous word, word) tuple is green under ``key`` (a student that learned part of the bias)."""
    scheme = load_scheme(key) if key is not None else None
    assert scheme is None or isinstance(scheme, NativeScheme)
    weights = zipf_weights()

    def complete(prompt: str, max_new_tokens: int, seed: int) -> str:
        rng = np.random.default_rng(seed)
        previous = int(prompt.split()[-1][1:]) + 1
        out: list[int] = []
        for _ in range(max_new_tokens):
            candidates = rng.choice(VOCAB_WORDS, size=8, p=weights) + 1
            pick = int(candidates[0])
            if scheme is not None and rng.random() < strength:
                units = np.stack([np.full(8, previous), candidates], axis=1)
                green = scheme.green(units)
                if green.any():
                    pick = int(candidates[int(np.argmax(green))])
            out.append(pick)
            previous = pick
        return words(out)

    return complete


def prompts(count: int, seed: int = 0, length: int = 6) -> list[str]:
    rng = np.random.default_rng(seed)
    return [words([int(t) for t in rng.integers(1, VOCAB_WORDS + 1, length)]) for _ in range(count)]


def next_token_probabilities(key: TextKey, delta: float) -> Callable[[NDArray[np.int64]], NDArray[np.float64]]:
    """An open-mode suspect over the word vocabulary: Zipf-shaped next-token distributions, each context
    reshuffled a little, with ``delta`` added to the logits of tokens green after the current token."""
    scheme = load_scheme(key)
    assert isinstance(scheme, NativeScheme)
    vocab = key.vocab_size
    base = np.log(np.concatenate([[1e-9], zipf_weights()]))

    noise = np.random.default_rng(0).normal(0.0, 1.0, (512, vocab))  # context t reshuffled by row t mod 512

    def probabilities(ids: NDArray[np.int64]) -> NDArray[np.float64]:
        logits = base + noise[ids % 512]
        if delta:
            units = np.stack([np.repeat(ids, vocab), np.tile(np.arange(vocab), ids.shape[0])], axis=1)
            logits += delta * scheme.green(units).reshape(ids.shape[0], vocab)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        result: NDArray[np.float64] = probs / probs.sum(axis=1, keepdims=True)
        return result

    return probabilities


def read_texts(count: int, length: int, seed: int = 5) -> list[str]:
    rng = np.random.default_rng(seed)
    return [words([int(t) for t in rng.choice(VOCAB_WORDS, size=length, p=zipf_weights()) + 1]) for _ in range(count)]


Backend = Callable[[str, int, int], str]


class StubServer:
    """A minimal OpenAI-compatible server: completions and chat, plus prompts that trigger failures."""

    def __init__(self) -> None:
        self.backend: Backend = biased_completion(None, 0.0)
        self.next_token: Callable[[NDArray[np.int64]], NDArray[np.float64]] | None = None
        self.shift_tokens = False
        self.authorizations: list[str | None] = []
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                stub.authorizations.append(self.headers.get("Authorization"))
                prompt = body["prompt"] if self.path == "/v1/completions" else body["messages"][-1]["content"]
                if self.path not in ("/v1/completions", "/v1/chat/completions") or prompt == "FAIL":
                    self._send(500, b'{"error": "boom"}')
                    return
                if prompt == "REDIRECT":
                    self.send_response(307)
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if prompt == "NOTJSON":
                    self._send(200, b"<html>")
                    return
                if prompt == "HUGE":
                    self._send(200, b" " * (2 << 20))
                    return
                if body.get("echo") and int(body["max_tokens"]) == 0 and stub.next_token is not None:
                    self._send(
                        200, json.dumps({"choices": [{"logprobs": stub.echo(prompt, int(body["logprobs"]))}]}).encode()
                    )
                    return
                text = stub.backend(prompt, int(body["max_tokens"]), int(body["seed"]))
                choice = {"text": text} if self.path == "/v1/completions" else {"message": {"content": text}}
                self._send(200, json.dumps({"choices": [choice]}).encode())

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def echo(self, prompt: str, k: int) -> dict[str, Any]:
        """Echoed log-probabilities in the legacy OpenAI shape (``shift_tokens`` mimics another tokenizer)."""
        assert self.next_token is not None
        tokens = prompt.split()
        ids = np.array([int(t[1:]) + 1 for t in tokens], dtype=np.int64)
        probs = self.next_token(ids)
        top: list[dict[str, float] | None] = [None]
        for row in probs[:-1]:
            best = np.argsort(-row)[:k]
            top.append({f"w{int(i) - 1}": float(np.log(row[i])) for i in best if i > 0})
        if self.shift_tokens:
            tokens = [f"w{(int(t[1:]) + 1) % 2000}" for t in tokens]
        return {"tokens": tokens, "top_logprobs": top}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer()
    yield server
    server.close()


def assert_clean(decision: str, p_value: float | None, alpha: float, reasons: Sequence[str]) -> None:
    """A clean suspect is never accused: ``no-evidence``, or ``inconclusive`` for a suggestive p in (alpha, 0.05].

    Keys are random per test run, so a clean p-value lands in the suggestive band about one run in twenty.
    """
    assert p_value is not None
    assert p_value > alpha
    if p_value > 0.05:
        assert decision == "no-evidence", reasons
    else:
        assert decision == "inconclusive", reasons
        assert any("suggestive" in reason for reason in reasons), reasons


def write_prompts(path: Path, count: int, seed: int = 0) -> Path:
    """``count`` prompts of the word vocabulary, one a line, written to ``path``."""
    path.write_text("\n".join(prompts(count, seed)) + "\n")
    return path


def run_theft(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    """``tracemark theft ARGV --json``: the exit status, the verdict (``{}`` when none was printed), stderr."""
    return run_cli_json(capsys, "theft", *argv)


@dataclass(frozen=True)
class BiasedSuspect:
    """A fresh key, the stub endpoint answering with a bias toward it, and a prompt file for it."""

    key: TextKey
    url: str
    prompts: Path
    #: The radioactivity options naming the model and the key, with 20 null keys.
    options: tuple[str, ...]


@pytest.fixture
def biased_suspect(
    stub: StubServer, make_key: Callable[..., TextKey], word_dir: Path, tmp_path: Path
) -> Callable[[float, int], BiasedSuspect]:
    """``make(strength, prompt_count)``: the stub now prefers the new key's green tuples with that strength."""

    def make(strength: float, prompt_count: int) -> BiasedSuspect:
        key = make_key()
        stub.backend = biased_completion(key, strength)
        path = write_prompts(tmp_path / "prompts.txt", prompt_count)
        options = ("--model", str(word_dir), "--key", key.key_id, "--null-keys", "20")
        return BiasedSuspect(key, stub.url, path, options)

    return make
