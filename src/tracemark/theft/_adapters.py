"""How the theft tests reach a suspect model: a local Hugging Face directory, a Python callable, or an
OpenAI-compatible HTTP endpoint.

Two small protocols cover every test:

* :class:`TextModel` writes a completion for a prompt (closed-mode radioactivity, model identity);
* :class:`NextTokenModel` gives next-token probabilities over the defender's own tokenizer
  (open-mode radioactivity; needs a suspect that shares that tokenizer).

Adapters raise :class:`~tracemark.errors.SuspectQueryError` when one query fails; the
collectors count such failures and turn too many of them into an ``inconclusive`` verdict
instead of a silent "clean".
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from tracemark._hf import load_causal_lm
from tracemark._json import JSONObject, JSONValue
from tracemark.errors import InvalidInputError, SuspectQueryError

if TYPE_CHECKING:
    from tracemark.text import TextTokenizer

#: Largest HTTP response body an endpoint adapter reads (bytes).
MAX_RESPONSE_BYTES = 1 << 20


@runtime_checkable
class TextModel(Protocol):
    """A model that completes prompts (all a closed-mode test or an identity test needs)."""

    @property
    def name(self) -> str:
        """A label for reports (never a secret)."""
        ...

    def complete(self, prompt: str, *, max_new_tokens: int, seed: int) -> str:
        """One sampled completion of ``prompt`` (raise :class:`SuspectQueryError` on failure)."""
        ...


@runtime_checkable
class NextTokenModel(Protocol):
    """A model that exposes next-token probabilities over the defender's tokenizer (open mode)."""

    @property
    def name(self) -> str:
        """A label for reports."""
        ...

    def top_tokens(self, token_ids: NDArray[np.int64], k: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """For every prefix ``token_ids[: t + 1]``: the ``k`` likeliest next tokens and their probabilities.

        Returns two ``(len(token_ids), k)`` arrays (ids, probabilities).
        """
        ...


class CallableTextModel:
    """Wraps ``fn(prompt, max_new_tokens, seed) -> str``; any exception becomes a failed query."""

    def __init__(self, fn: Callable[[str, int, int], str], name: str = "callable") -> None:
        self._fn = fn
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def complete(self, prompt: str, *, max_new_tokens: int, seed: int) -> str:
        try:
            text = self._fn(prompt, max_new_tokens, seed)
        except SuspectQueryError:
            raise
        except Exception as exc:
            raise SuspectQueryError(f"{self._name} failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(text, str):
            raise SuspectQueryError(f"{self._name} returned {type(text).__name__}, not text")
        return text


def top_k_of(probabilities: NDArray[np.float64], k: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The ``k`` largest entries of each row (ids sorted by decreasing probability)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    k = min(k, probs.shape[1])
    part = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(probs, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64), np.take_along_axis(values, order, axis=1)


class CallableNextTokenModel:
    """Wraps ``fn(token_ids) -> (len, vocab) probabilities`` (rows: the next token after each prefix)."""

    def __init__(self, fn: Callable[[NDArray[np.int64]], NDArray[np.float64]], name: str = "callable") -> None:
        self._fn = fn
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def top_tokens(self, token_ids: NDArray[np.int64], k: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        try:
            probs = np.asarray(self._fn(token_ids), dtype=np.float64)
        except SuspectQueryError:
            raise
        except Exception as exc:
            raise SuspectQueryError(f"{self._name} failed: {type(exc).__name__}: {exc}") from None
        if probs.ndim != 2 or probs.shape[0] != len(token_ids) or not np.all(np.isfinite(probs)) or probs.min() < 0:
            raise SuspectQueryError(f"{self._name} returned no valid ({len(token_ids)}, vocab) probability array")
        return top_k_of(probs, k)


class HFModel:
    """A local Hugging Face causal-LM directory (loaded offline; needs the ``text`` extra)."""

    def __init__(self, model_dir: Path | str, *, temperature: float = 1.0) -> None:
        self.model_dir = Path(model_dir)
        if not temperature > 0.0:
            raise InvalidInputError("temperature must be positive")
        self.temperature = temperature
        self._torch, self.tokenizer, self.model = load_causal_lm(self.model_dir, "querying a local model")
        window = getattr(self.model.config, "n_positions", None) or getattr(
            self.model.config, "max_position_embeddings", None
        )
        self.context_window = int(window) if isinstance(window, int) else 1024

    @property
    def name(self) -> str:
        return f"hf:{self.model_dir.name}"

    def complete(self, prompt: str, *, max_new_tokens: int, seed: int) -> str:
        torch = self._torch
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        room = self.context_window - int(ids.shape[1])
        if room < 1:
            raise SuspectQueryError(f"the prompt fills the context of {self.context_window} tokens")
        torch.manual_seed(seed)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=self.temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=min(max_new_tokens, room),
                pad_token_id=pad,
            )
        return str(self.tokenizer.decode(out[0, ids.shape[1] :].tolist(), skip_special_tokens=True))

    def top_tokens(self, token_ids: NDArray[np.int64], k: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        torch = self._torch
        ids = np.asarray(token_ids, dtype=np.int64)
        out_ids = np.zeros((ids.shape[0], k), dtype=np.int64)
        out_probs = np.zeros((ids.shape[0], k), dtype=np.float64)
        # one forward pass per context-window chunk; each chunk restarts the context
        for start in range(0, ids.shape[0], self.context_window):
            chunk = torch.from_numpy(ids[start : start + self.context_window]).unsqueeze(0)
            with torch.no_grad():
                logits = self.model(input_ids=chunk).logits[0].float()
            probs = torch.softmax(logits / self.temperature, dim=-1)
            values, indices = torch.topk(probs, k=min(k, probs.shape[-1]), dim=-1)
            out_ids[start : start + chunk.shape[1], : indices.shape[1]] = indices.numpy()
            out_probs[start : start + chunk.shape[1], : values.shape[1]] = values.double().numpy()
        return out_ids, out_probs


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a suspect endpoint must answer itself, not send the API key elsewhere."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise SuspectQueryError(f"{req.full_url} redirected (HTTP {code}); redirects are not followed")


_OPENER = urllib.request.build_opener(_NoRedirect)


def _member(document: JSONValue, *path: str | int) -> JSONValue:
    """``document[path[0]][path[1]]...`` of an endpoint's answer; ``KeyError`` when a step is missing or mistyped."""
    value = document
    for step in path:
        if isinstance(step, str) and isinstance(value, dict) and step in value:
            value = value[step]
            continue
        if isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
            continue
        raise KeyError(step)
    return value


class OpenAICompatibleEndpoint:
    """An OpenAI-compatible ``/v1/completions`` or ``/v1/chat/completions`` endpoint (standard library HTTP).

    The API key is read from the environment variable named by ``api_key_env`` at call
    time and never stored in reports or error messages.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api: str = "completions",
        api_key_env: str | None = None,
        temperature: float = 1.0,
        timeout: float = 60.0,
    ) -> None:
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInputError(f"endpoint URL must be http(s)://host[:port][/prefix], not {base_url!r}")
        if api not in ("completions", "chat"):
            raise InvalidInputError("api must be 'completions' or 'chat'")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api = api
        self.api_key_env = api_key_env
        self.temperature = temperature
        self.timeout = timeout

    @property
    def name(self) -> str:
        return f"{self.base_url} ({self.model})"

    def _post(self, path: str, body: JSONObject) -> JSONObject:
        """POST ``body`` as JSON to ``path`` and return the JSON object answered (``SuspectQueryError`` otherwise)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key_env:
            token = os.environ.get(self.api_key_env)
            if not token:
                raise SuspectQueryError(f"environment variable {self.api_key_env} holding the API key is not set")
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                data = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise SuspectQueryError(f"{self.base_url}{path} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SuspectQueryError(f"{self.base_url}{path} unreachable: {reason}") from None
        if len(data) > MAX_RESPONSE_BYTES:
            raise SuspectQueryError(f"{self.base_url}{path} sent more than {MAX_RESPONSE_BYTES} bytes")
        try:
            document: JSONValue = json.loads(data)
        except ValueError:
            raise SuspectQueryError(f"{self.base_url}{path} did not answer JSON") from None
        if not isinstance(document, dict):
            raise SuspectQueryError(f"{self.base_url}{path} answered JSON that is not an object")
        return document

    def complete(self, prompt: str, *, max_new_tokens: int, seed: int) -> str:
        common: JSONObject = {
            "model": self.model,
            "max_tokens": max_new_tokens,
            "temperature": self.temperature,
            "seed": seed,
        }
        try:
            if self.api == "chat":
                document = self._post(
                    "/v1/chat/completions", {**common, "messages": [{"role": "user", "content": prompt}]}
                )
                text = _member(document, "choices", 0, "message", "content")
            else:
                document = self._post("/v1/completions", {**common, "prompt": prompt})
                text = _member(document, "choices", 0, "text")
        except KeyError:
            raise SuspectQueryError(f"{self.base_url} answered without choices[0] text") from None
        if not isinstance(text, str):
            raise SuspectQueryError(f"{self.base_url} answered a non-text completion")
        return text


class EndpointNextTokens:
    """Open mode over an OpenAI-compatible ``/v1/completions`` endpoint that echoes prompt log-probabilities.

    Sends the decoded read text with ``echo: true, max_tokens: 0, logprobs: k`` (vLLM and the
    legacy OpenAI API answer this), checks that the endpoint split the text into exactly our
    token ids (a suspect with another tokenizer is refused per read, never silently misread) and
    maps each returned top-k token string back to our id.  Token strings our vocabulary cannot
    map uniquely are dropped from the distribution (their mass is not scored).
    """

    def __init__(self, endpoint: OpenAICompatibleEndpoint, tokenizer: TextTokenizer) -> None:
        self.endpoint = endpoint
        self.tokenizer = tokenizer
        lookup: dict[str, int] = {}
        ambiguous: set[str] = set()
        for token_id in range(tokenizer.vocab_size):
            text = tokenizer.decode([token_id])
            if text in lookup:
                ambiguous.add(text)
            lookup[text] = token_id
        self._lookup = {text: token_id for text, token_id in lookup.items() if text and text not in ambiguous}

    @property
    def name(self) -> str:
        return self.endpoint.name

    def top_tokens(self, token_ids: NDArray[np.int64], k: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        ids = [int(t) for t in token_ids]
        body: JSONObject = {
            "model": self.endpoint.model,
            "prompt": self.tokenizer.decode(ids),
            "max_tokens": 0,
            "echo": True,
            "logprobs": k,
            "temperature": self.endpoint.temperature,
        }
        document = self.endpoint._post("/v1/completions", body)
        try:
            logprobs = _member(document, "choices", 0, "logprobs")
            tokens, top = _member(logprobs, "tokens"), _member(logprobs, "top_logprobs")
        except KeyError:
            raise SuspectQueryError(f"{self.endpoint.base_url} answered without echoed logprobs") from None
        if not isinstance(tokens, list) or not isinstance(top, list) or len(top) != len(tokens):
            raise SuspectQueryError(f"{self.endpoint.base_url} answered malformed logprobs")
        if [self._lookup.get(t) if isinstance(t, str) else None for t in tokens] != ids:
            raise SuspectQueryError(f"{self.endpoint.base_url} splits the text into other tokens than the key's")
        out_ids = np.zeros((len(ids), k), dtype=np.int64)
        out_probs = np.zeros((len(ids), k), dtype=np.float64)
        for position in range(len(ids) - 1):  # top[t + 1]: the distribution after the prefix ids[: t + 1]
            entries = top[position + 1]
            if not isinstance(entries, dict):
                raise SuspectQueryError(f"{self.endpoint.base_url} answered malformed top_logprobs")
            mapped = []
            for text, logprob in entries.items():
                token_id = self._lookup.get(text)
                if token_id is not None and isinstance(logprob, int | float) and logprob <= 0.0:
                    mapped.append((float(np.exp(logprob)), token_id))
            mapped.sort(reverse=True)
            for column, (probability, token_id) in enumerate(mapped[:k]):
                out_ids[position, column] = token_id
                out_probs[position, column] = probability
        return out_ids, out_probs
