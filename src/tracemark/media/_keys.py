"""The image watermark key of a keyring: HMAC-derived from the master secret, nothing else stored."""

from __future__ import annotations

from tracemark.keys import Keyring
from tracemark.media._watermark import MediaKey

_LABEL = "tracemark.media/qim/v1"


def media_key(keyring: Keyring) -> MediaKey:
    """The keyring's watermark key (256 secret bits); raises when ``keys init`` has not run."""
    return MediaKey.from_secret(keyring.derive_secret(_LABEL, 32))
