"""The service's text side: the model's tokenizer, keys and generators, loaded once and reused.

Detection is the hot path (the goal is 500 requests per second on two cores), so everything
that does not depend on the request is cached: the tokenizer and the key records (re-read only
when the keyring directory or its defaults change).  Responses are :meth:`Verdict.to_json`
itself, which builds the object without deep copies.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

from tracemark.keys import Keyring, TextKey
from tracemark.service._errors import NotConfiguredError
from tracemark.text import TextTokenizer, WatermarkedGenerator, select_text_key

#: Files whose bytes name a model version in its provenance records.
_MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_MAX_CACHED_KEYS = 64


def model_id_for(model_dir: Path) -> str:
    """``<folder name>@sha256:<16 hex>``: the folder's name and a hash of its config, weights and tokenizer."""
    digest = hashlib.sha256()
    for name in _MODEL_FILES:
        path = model_dir / name
        if not path.is_file():
            continue
        digest.update(name.encode() + b"\n")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    # The folder's name within the provenance record's model id charset (printable ASCII, no spaces).
    name = re.sub(r"[^A-Za-z0-9._:/+=@-]+", "-", model_dir.resolve().name)[:200] or "model"
    return f"{name}@sha256:{digest.hexdigest()[:16]}"


class TextService:
    """Tokenizer, keys and generators of the service's model directory."""

    def __init__(self, keyring: Keyring, model_dir: Path | None, model_id: str | None = None) -> None:
        self.keyring = keyring
        self.model_dir = model_dir
        self._model_id = model_id
        self._tokenizer: TextTokenizer | None = None
        self._keys: dict[str | None, tuple[tuple[int, int], TextKey]] = {}
        self._generators: dict[str, WatermarkedGenerator] = {}
        self._load_lock = threading.Lock()
        #: Generation runs one request at a time: torch's sampling seed is global to the process.
        self.generation_lock = threading.Lock()

    def _require_model(self) -> Path:
        if self.model_dir is None:
            raise NotConfiguredError("the service has no model directory configured (tracemark service run --model)")
        return self.model_dir

    def tokenizer(self) -> TextTokenizer:
        """The model's tokenizer, loaded on first use."""
        tokenizer = self._tokenizer
        if tokenizer is None:
            with self._load_lock:
                if self._tokenizer is None:
                    self._tokenizer = TextTokenizer(self._require_model())
                tokenizer = self._tokenizer
        return tokenizer

    def _keyring_stamp(self) -> tuple[int, int] | None:
        try:
            directory = os.stat(self.keyring.directory).st_mtime_ns
        except OSError:
            return None
        try:
            defaults = os.stat(self.keyring.directory / "defaults.json").st_mtime_ns
        except OSError:
            defaults = 0
        return directory, defaults

    def key(self, key_id: str | None = None) -> TextKey:
        """The key ``key_id``, or the default text key for this model; cached until the keyring changes."""
        stamp = self._keyring_stamp()
        cached = self._keys.get(key_id)
        if cached is not None and stamp is not None and cached[0] == stamp:
            return cached[1]
        key = select_text_key(self.keyring, self.tokenizer(), key_id=key_id)
        if stamp is not None:
            if len(self._keys) >= _MAX_CACHED_KEYS:
                self._keys.clear()
            self._keys[key_id] = (stamp, key)
        return key

    def model_id(self) -> str:
        """The model id the service records in provenance records."""
        if self._model_id is None:
            self._model_id = model_id_for(self._require_model())
        return self._model_id

    def warm_up(self) -> None:
        """Load the tokenizer, the default key and the generator now (raises what a request would)."""
        key = self.key()
        with self.generation_lock:
            self.generator(key)

    def generator(self, key: TextKey) -> WatermarkedGenerator:
        """The model loaded for marking with ``key`` (loaded once per key); call under :attr:`generation_lock`."""
        generator = self._generators.get(key.key_id)
        if generator is None:
            generator = WatermarkedGenerator(self._require_model(), key)
            self._generators[key.key_id] = generator
        return generator
