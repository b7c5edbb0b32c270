"""Creating and choosing text-watermark keys for a model directory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tracemark.errors import KeyringError, UnknownKeyError
from tracemark.keys import Keyring, TextKey
from tracemark.text._schemes import DEFAULT_SCHEME, scheme_class
from tracemark.text._tokenizer import TextTokenizer


def new_text_key(
    keyring: Keyring,
    scheme: str,
    model_dir: Path | str,
    *,
    params: Mapping[str, object] | None = None,
    label: str = "",
    make_default: bool = False,
    version: str | None = None,
) -> TextKey:
    """Create, store and return a key of ``scheme`` bound to the tokenizer and vocabulary of ``model_dir``.

    ``version`` picks one of the scheme's versions (default: its first, e.g. SynthID ``0.2.1``).
    """
    tokenizer = TextTokenizer(model_dir)
    key = scheme_class(scheme).new_key(
        secret_source=keyring.derive_secret,
        vocab_size=tokenizer.vocab_size,
        tokenizer_sha256=tokenizer.sha256,
        params=params,
        label=label,
        scheme_version=version,
    )
    keyring.add(key, default_for="text" if make_default else None)
    return key


def select_text_key(
    keyring: Keyring, tokenizer: TextTokenizer, *, key_id: str | None = None, scheme: str | None = None
) -> TextKey:
    """The key to use: ``key_id`` if given; else the default text key when it fits the model and
    scheme; else the newest key of ``scheme`` (default: native) made for this tokenizer."""
    if not keyring.exists():
        raise KeyringError(f"no keyring at {keyring.home}: run 'tracemark keys init'")
    if key_id:
        return keyring.get(key_id)
    wanted = scheme or DEFAULT_SCHEME
    default_id = keyring.defaults().get("text")
    if default_id is not None:
        default = keyring.get(default_id)
        if default.scheme == wanted and default.tokenizer_sha256 == tokenizer.sha256:
            return default
    fitting = [k for k in keyring.list() if k.scheme == wanted and k.tokenizer_sha256 == tokenizer.sha256]
    if not fitting:
        raise UnknownKeyError(
            f"no {wanted} key for the tokenizer of {tokenizer.model_dir} in {keyring.home}: "
            f"run 'tracemark keys new --scheme {wanted} --model {tokenizer.model_dir}'"
        )
    return fitting[-1]
