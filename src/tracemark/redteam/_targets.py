"""Targets a probe run talks to: an OpenAI-compatible URL, a local model folder, a Python callable, the service.

A target answers one chat (system + user message) with text and a finish reason, or raises
:class:`TargetUnavailable` with a reason (refused connection, timeout, an answer that is not the API's
JSON).  The runner retries, bounds concurrency and spends at most the request budget; whatever stays
unanswered is *inconclusive*, never counted as a pass.

Target specifications (``--target``):

* ``openai:http://127.0.0.1:8000/v1`` (``--target-model`` names the model; ``$OPENAI_API_KEY`` is sent
  as a bearer token when set);
* ``service:http://127.0.0.1:8080``: the tracemark service's OpenAI-compatible gateway at ``/v1``;
* ``hf:models/reference``: a local Hugging Face causal LM directory (the ``text`` extra);
* ``python:package.module:function``: a callable ``(system, prompt, max_tokens) -> str``.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tracemark.errors import InvalidInputError

#: The largest answer body read from a URL target (bytes).
MAX_RESPONSE_BYTES = 1 << 20


class TargetUnavailable(Exception):  # noqa: N818 - a condition the runner records, not a user-facing error
    """The target gave no usable answer; ``reason`` says why, ``retry`` whether another try may help."""

    def __init__(self, reason: str, *, retry: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


@dataclass(frozen=True)
class Reply:
    """An answer and why it ended (``length`` means the token cap cut it; empty when the target does not say)."""

    text: str
    finish_reason: str = ""


class Target(Protocol):
    """What the runner needs of a target."""

    description: str

    def chat(self, system: str, prompt: str, max_tokens: int) -> Reply: ...


class OpenAITarget:
    """``POST {base}/chat/completions`` with the OpenAI request shape, stdlib HTTP only."""

    def __init__(self, base_url: str, *, model: str = "default", timeout: float = 30.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInputError(f"target URL must start with http:// or https://, not {base_url!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout = timeout
        self.description = f"openai:{base_url}"

    def chat(self, system: str, prompt: str, max_tokens: int) -> Reply:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        body = json.dumps({"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0})
        headers = {"Content-Type": "application/json"}
        if os.environ.get("OPENAI_API_KEY"):
            headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"
        request = urllib.request.Request(self.url, data=body.encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise TargetUnavailable(
                f"HTTP {exc.code} from {self.url}", retry=exc.code >= 500 or exc.code == 429
            ) from None
        except urllib.error.URLError as exc:
            raise TargetUnavailable(f"cannot reach {self.url}: {exc.reason}") from None
        except TimeoutError:
            raise TargetUnavailable(f"no answer from {self.url} within {self.timeout:g} s") from None
        except (ConnectionError, OSError) as exc:
            raise TargetUnavailable(f"connection to {self.url} failed: {exc}") from None
        return _parse_chat(raw, self.url)


def _parse_chat(raw: bytes, url: str) -> Reply:
    if len(raw) > MAX_RESPONSE_BYTES:
        raise TargetUnavailable(f"answer from {url} is larger than {MAX_RESPONSE_BYTES} bytes", retry=False)
    try:
        document = json.loads(raw)
        choice = document["choices"][0]
        content = choice["message"]["content"]
        finish = choice.get("finish_reason") or ""
    except (ValueError, KeyError, IndexError, TypeError):
        raise TargetUnavailable(
            f"answer from {url} is not an OpenAI chat completion: {raw[:60]!r}", retry=False
        ) from None
    if not isinstance(content, str) or not isinstance(finish, str):
        raise TargetUnavailable(f"answer from {url} has no text content", retry=False)
    return Reply(content, finish)


class CallableTarget:
    """A Python function ``(system, prompt, max_tokens) -> str`` (or a :class:`Reply`)."""

    def __init__(self, function: Callable[[str, str, int], object], description: str = "python callable") -> None:
        self.function = function
        self.description = description

    def chat(self, system: str, prompt: str, max_tokens: int) -> Reply:
        try:
            answer = self.function(system, prompt, max_tokens)
        except Exception as exc:  # the callable is user code: any failure is an unanswered probe
            raise TargetUnavailable(f"{self.description} raised {type(exc).__name__}: {exc}") from None
        if isinstance(answer, Reply):
            return answer
        if not isinstance(answer, str):
            raise TargetUnavailable(f"{self.description} returned {type(answer).__name__}, not str", retry=False)
        return Reply(answer)


class LocalModelTarget:
    """A local Hugging Face causal LM folder; the chat is rendered as plain text (system, user, assistant)."""

    def __init__(self, model_dir: Path) -> None:
        from tracemark._hf import load_causal_lm

        self._torch, self.tokenizer, self.model = load_causal_lm(model_dir, "probing a local model")
        self._lock = threading.Lock()  # one generate() at a time: torch on the CPU is not re-entrant here
        self.description = f"hf:{model_dir}"

    def chat(self, system: str, prompt: str, max_tokens: int) -> Reply:
        text = (f"{system}\n\n" if system else "") + f"User: {prompt}\nAssistant:"
        with self._lock:
            ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
            window = int(getattr(self.model.config, "n_positions", 1024))
            ids = ids[:, -max(1, window - max_tokens) :]
            self._torch.manual_seed(0)
            out = self.model.generate(input_ids=ids, max_new_tokens=max_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.eos_token_id)  # fmt: skip
        new = out[0, ids.shape[1] :].tolist()
        finish = "length" if len(new) >= max_tokens else "stop"
        return Reply(str(self.tokenizer.decode(new, skip_special_tokens=True)), finish)


def load_target(spec: str, *, model: str = "default", timeout: float = 30.0) -> Target:
    """A target from its ``--target`` specification (see the module docstring)."""
    kind, _, rest = spec.partition(":")
    if kind == "openai" and rest:
        return OpenAITarget(rest, model=model, timeout=timeout)
    if kind == "service" and rest:
        target = OpenAITarget(rest.rstrip("/") + "/v1", model=model, timeout=timeout)
        target.description = f"service:{rest}"
        return target
    if kind == "hf" and rest:
        if not (Path(rest) / "config.json").is_file():
            raise InvalidInputError(f"{rest} is not a model folder (no config.json)")
        return LocalModelTarget(Path(rest))
    if kind == "python" and ":" in rest:
        module_name, _, attribute = rest.rpartition(":")
        try:
            function = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise InvalidInputError(f"cannot load {rest}: {exc}") from None
        return CallableTarget(function, f"python:{rest}")
    raise InvalidInputError(
        f"unknown target {spec!r}: expected openai:URL, service:URL, hf:MODEL_DIR or python:MODULE:FUNCTION"
    )
