"""Fixtures for the media tests: deterministic synthetic images, a media key, certificate chains."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from tracemark.keys import Keyring, MediaCertificate, ensure_log_key, ensure_media_certificate
from tracemark.keys._media_cert import make_certificate_chain
from tracemark.media import ContentSigner, MediaKey, SoftBindingRepository, media_key, signer_for


def textured_image(seed: int, height: int = 512, width: int = 512, channels: int = 3) -> npt.NDArray[np.uint8]:
    """A synthetic 'photo': smooth waves, a few solid discs and mild noise (texture for the masking)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.zeros((height, width, channels))
    for channel in range(channels):
        phase = rng.uniform(0, 6)
        image[..., channel] = 128 + 60 * np.sin(2 * np.pi * (x * rng.uniform(1, 4) + y * rng.uniform(1, 4)) + phase)
    for _ in range(12):
        cx, cy, radius = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.2)
        image[(x - cx) ** 2 + (y - cy) ** 2 < radius**2] = rng.uniform(0, 255, channels)
    image += rng.normal(0, 4, image.shape)
    pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return pixels[..., 0] if channels == 1 else pixels


def encode(pixels: npt.NDArray[np.uint8], image_format: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, image_format, **options)
    return out.getvalue()


@pytest.fixture
def key() -> MediaKey:
    return MediaKey.from_secret(bytes(range(32)))


@pytest.fixture
def keyring(isolated_home: Path) -> Keyring:
    ring = Keyring()
    ring.create()
    return ring


@pytest.fixture
def keyring_key(keyring: Keyring) -> MediaKey:
    return media_key(keyring)


@pytest.fixture
def certificate(keyring: Keyring) -> MediaCertificate:
    return ensure_media_certificate(keyring)


@pytest.fixture
def initialised(keyring: Keyring) -> Keyring:
    """The keyring ``media mark`` needs: a log key and a media certificate beside the master key."""
    ensure_log_key(keyring)
    ensure_media_certificate(keyring)
    return keyring


@pytest.fixture
def signer(certificate: MediaCertificate) -> ContentSigner:
    return signer_for(certificate.chain_pem, certificate.private_key_pem)


@pytest.fixture(scope="session")
def foreign_chain() -> MediaCertificate:
    """A chain from another root: a valid signer nobody here trusts."""
    return make_certificate_chain(root_name="someone else's root")


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[SoftBindingRepository]:
    with SoftBindingRepository(tmp_path / "bindings.sqlite3") as repo:
        yield repo


@pytest.fixture(scope="session")
def photo_png() -> bytes:
    return encode(textured_image(7))
