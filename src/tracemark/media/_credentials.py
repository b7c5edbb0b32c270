"""Signing and reading C2PA content credentials with ``c2pa-python``, never touching the network.

The manifest tracemark signs for a generated image holds:

* ``c2pa.actions``: ``c2pa.created`` with digitalSourceType ``trainedAlgorithmicMedia`` (IPTC), and
  ``c2pa.watermarked.bound`` (C2PA 2.x: the asset carries a watermark that is bound to this manifest);
* ``c2pa.soft-binding``: ``{"alg": "io.tracemark.qim.v2", "blocks": [{"scope": {}, "value": <hex>}]}``,
  the watermark's algorithm id and payload, so a stripped copy can find the manifest again;
* claim generator info naming tracemark and its version.

Every read runs with ``verify.remote_manifest_fetch`` and ``ocsp_fetch`` off, and trusts only the anchors
the caller gives.  Signing uses a certificate chain and either a private key (development chain from
``tracemark keys init``) or a callback that signs bytes elsewhere (a KMS or HSM).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tracemark import __version__
from tracemark.errors import ContentCredentialError, MissingExtraError

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
SOFT_BINDING_LABEL = "c2pa.soft-binding"
#: Largest manifest store tracemark reads back from its repository (bytes).
MAX_MANIFEST_BYTES = 1024 * 1024


def _c2pa() -> Any:
    try:
        import c2pa
    except ImportError:
        raise MissingExtraError("C2PA content credentials", "media") from None
    return c2pa


@dataclass(frozen=True)
class ContentSigner:
    """How manifests get signed: a PEM chain (leaf first) and a PEM key or a ``sign(bytes) -> bytes`` callback.

    The callback form keeps the key in a KMS or HSM: it receives the exact bytes to sign and returns
    the signature in the algorithm's C2PA (COSE) encoding (for ES256, the raw 64-byte r||s).
    """

    chain_pem: bytes
    private_key_pem: bytes | None = field(default=None, repr=False)
    callback: Callable[[bytes], bytes] | None = field(default=None, repr=False)
    algorithm: str = "ES256"
    timestamp_url: str | None = None

    def __post_init__(self) -> None:
        if (self.private_key_pem is None) == (self.callback is None):
            raise ContentCredentialError("a content signer needs exactly one of a private key or a signing callback")

    def native(self) -> Any:
        c2pa = _c2pa()
        try:
            algorithm = getattr(c2pa.C2paSigningAlg, self.algorithm)
        except AttributeError:
            raise ContentCredentialError(f"unknown C2PA signing algorithm {self.algorithm!r}") from None
        try:
            if self.callback is not None:
                return c2pa.Signer.from_callback(self.callback, algorithm, self.chain_pem.decode(), self.timestamp_url)
            info = c2pa.C2paSignerInfo(algorithm, self.chain_pem, self.private_key_pem, self.timestamp_url)
            return c2pa.Signer.from_info(info)
        except c2pa.C2paError as exc:
            raise ContentCredentialError(f"cannot create the C2PA signer: {exc}") from None


def settings(trust_anchors_pem: bytes | None) -> dict[str, Any]:
    """c2pa-rs settings: offline (no remote manifests, no OCSP), no thumbnail, and only these anchors."""
    config: dict[str, Any] = {
        "verify": {"verify_trust": True, "remote_manifest_fetch": False, "ocsp_fetch": False},
        "builder": {"thumbnail": {"enabled": False}},
    }
    if trust_anchors_pem:
        config["trust"] = {"trust_anchors": trust_anchors_pem.decode("ascii", errors="replace")}
    return config


def _context(trust_anchors_pem: bytes | None) -> Any:
    c2pa = _c2pa()
    return c2pa.Context(c2pa.Settings.from_dict(settings(trust_anchors_pem)))


def manifest_definition(*, title: str, algorithm: str, binding_value: str, model_id: str) -> dict[str, Any]:
    """The manifest definition tracemark signs for a generated, watermarked image."""
    return {
        "claim_generator_info": [{"name": "tracemark", "version": __version__}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": DIGITAL_SOURCE_TYPE,
                            "softwareAgent": {"name": model_id},
                        },
                        {
                            "action": "c2pa.watermarked.bound",
                            "softwareAgent": {"name": "tracemark", "version": __version__},
                        },
                    ]
                },
            },
            {
                "label": SOFT_BINDING_LABEL,
                "data": {"alg": algorithm, "blocks": [{"scope": {}, "value": binding_value}]},
            },
        ],
    }


@dataclass(frozen=True)
class SignedAsset:
    """The signed file, the manifest store (JUMBF) on its own, and the active manifest's id."""

    data: bytes
    manifest_store: bytes
    manifest_id: str


def sign_asset(data: bytes, mime_type: str, definition: dict[str, Any], signer: ContentSigner) -> SignedAsset:
    """Embed a signed manifest in ``data``; returns the new file and its manifest store."""
    c2pa = _c2pa()
    native_signer = signer.native()
    try:
        with c2pa.Builder(definition, context=_context(None)) as builder:
            out = io.BytesIO()
            store = bytes(builder.sign(native_signer, mime_type, io.BytesIO(data), out))
    except c2pa.C2paError as exc:
        raise ContentCredentialError(f"C2PA signing failed: {exc}") from None
    finally:
        native_signer.close()
    signed = out.getvalue()
    read = read_credentials(signed, mime_type, trust_anchors_pem=None)
    if read is None or read.manifest_id is None:
        raise ContentCredentialError("the signed file holds no readable manifest")
    return SignedAsset(data=signed, manifest_store=store, manifest_id=read.manifest_id)


@dataclass(frozen=True)
class CredentialReading:
    """What c2pa-rs reported: its state, the status codes by kind, and the active manifest."""

    state: str
    success: tuple[str, ...]
    informational: tuple[str, ...]
    failure: tuple[str, ...]
    manifest: dict[str, Any] | None
    manifest_id: str | None

    def soft_bindings(self) -> list[tuple[str, str]]:
        """(alg, value) pairs of the active manifest's soft-binding assertions."""
        found: list[tuple[str, str]] = []
        for assertion in (self.manifest or {}).get("assertions", []):
            if not isinstance(assertion, dict) or assertion.get("label") != SOFT_BINDING_LABEL:
                continue
            data = assertion.get("data") or {}
            for block in data.get("blocks") or []:
                if isinstance(block, dict) and isinstance(block.get("value"), str):
                    found.append((str(data.get("alg")), block["value"]))
        return found

    def digital_source_types(self) -> list[str]:
        types: list[str] = []
        for assertion in (self.manifest or {}).get("assertions", []):
            if isinstance(assertion, dict) and str(assertion.get("label", "")).startswith("c2pa.actions"):
                for action in (assertion.get("data") or {}).get("actions") or []:
                    if isinstance(action, dict) and isinstance(action.get("digitalSourceType"), str):
                        types.append(action["digitalSourceType"])
        return types


def _codes(results: dict[str, Any] | None, kind: str) -> tuple[str, ...]:
    active = (results or {}).get("activeManifest") or {}
    return tuple(str(item.get("code")) for item in active.get(kind) or [] if isinstance(item, dict))


def read_credentials(
    data: bytes,
    mime_type: str,
    *,
    trust_anchors_pem: bytes | None,
    manifest_store: bytes | None = None,
) -> CredentialReading | None:
    """Validate the manifest embedded in ``data`` (or ``manifest_store`` against ``data``); None when absent."""
    c2pa = _c2pa()
    try:
        reader = c2pa.Reader.try_create(mime_type, io.BytesIO(data), manifest_store, _context(trust_anchors_pem))
    except c2pa.C2paError as exc:
        return CredentialReading(
            state="Invalid",
            success=(),
            informational=(),
            failure=(f"manifest.unreadable: {' '.join(str(exc).split())[:200]}",),
            manifest=None,
            manifest_id=None,
        )
    if reader is None:
        return None
    with reader:
        state = str(reader.get_validation_state() or "Invalid")
        results = reader.get_validation_results()
        try:
            store = json.loads(reader.json())
        except ValueError:
            store = {}
    manifest_id = store.get("active_manifest")
    manifest = (store.get("manifests") or {}).get(manifest_id) if manifest_id else None
    return CredentialReading(
        state=state,
        success=_codes(results, "success"),
        informational=_codes(results, "informational"),
        failure=_codes(results, "failure"),
        manifest=manifest,
        manifest_id=str(manifest_id) if manifest_id else None,
    )
