"""Registry of text-watermark schemes; implementations are imported on first use."""

from __future__ import annotations

import importlib

from tracemark.errors import KeyMismatchError
from tracemark.keys import TextKey
from tracemark.text._schemes._base import ExtraStatistic, ScoredUnits, SecretSource, WatermarkScheme

_IMPLEMENTATIONS: dict[str, tuple[str, str]] = {
    "native": ("tracemark.text._schemes.native", "NativeScheme"),
    "kgw": ("tracemark.text._schemes.kgw", "KGWScheme"),
    "synthid": ("tracemark.text._schemes.synthid", "SynthIDScheme"),
}

#: Scheme names, the recommended default first.
SCHEME_NAMES: tuple[str, ...] = tuple(_IMPLEMENTATIONS)
DEFAULT_SCHEME = "native"


def scheme_class(name: str) -> type[WatermarkScheme]:
    """The implementation class of scheme ``name``."""
    try:
        module_name, class_name = _IMPLEMENTATIONS[name]
    except KeyError:
        raise KeyMismatchError(f"unknown scheme {name!r}; known: {', '.join(SCHEME_NAMES)}") from None
    cls: type[WatermarkScheme] = getattr(importlib.import_module(module_name), class_name)
    return cls


def load_scheme(key: TextKey) -> WatermarkScheme:
    """Instantiate the scheme a key record names (validating its parameters)."""
    return scheme_class(key.scheme)(key)


__all__ = [
    "DEFAULT_SCHEME",
    "SCHEME_NAMES",
    "ExtraStatistic",
    "ScoredUnits",
    "SecretSource",
    "WatermarkScheme",
    "load_scheme",
    "scheme_class",
]
