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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Required, TypedDict

from tracemark import __version__
from tracemark._json import FrozenDict, FrozenJSON, FrozenJSONObject, JSONObject, JSONValue, freeze
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


class C2paVerifySettings(TypedDict):
    """c2pa-rs ``verify`` settings."""

    verify_trust: bool
    remote_manifest_fetch: bool
    ocsp_fetch: bool


class C2paThumbnailSettings(TypedDict):
    """c2pa-rs ``builder.thumbnail`` settings."""

    enabled: bool


class C2paBuilderSettings(TypedDict):
    """c2pa-rs ``builder`` settings."""

    thumbnail: C2paThumbnailSettings


class C2paTrustSettings(TypedDict):
    """c2pa-rs ``trust`` settings: the PEM trust anchors."""

    trust_anchors: str


class C2paSettings(TypedDict, total=False):
    """The c2pa-rs settings tracemark reads and signs with; ``trust`` only when anchors are given."""

    verify: Required[C2paVerifySettings]
    builder: Required[C2paBuilderSettings]
    trust: C2paTrustSettings


def settings(trust_anchors_pem: bytes | None) -> C2paSettings:
    """c2pa-rs settings: offline (no remote manifests, no OCSP), no thumbnail, and only these anchors."""
    config: C2paSettings = {
        "verify": {"verify_trust": True, "remote_manifest_fetch": False, "ocsp_fetch": False},
        "builder": {"thumbnail": {"enabled": False}},
    }
    if trust_anchors_pem:
        config["trust"] = {"trust_anchors": trust_anchors_pem.decode("ascii", errors="replace")}
    return config


def _context(trust_anchors_pem: bytes | None) -> Any:
    c2pa = _c2pa()
    return c2pa.Context(c2pa.Settings.from_dict(settings(trust_anchors_pem)))


def manifest_definition(*, title: str, algorithm: str, binding_value: str, model_id: str) -> JSONObject:
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


def sign_asset(data: bytes, mime_type: str, definition: JSONObject, signer: ContentSigner) -> SignedAsset:
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
    """What c2pa-rs reported: its state, the status codes by kind, and the active manifest.

    ``manifest`` is the file's own (hostile) JSON, kept as a deep read-only copy; its members are
    checked for their type wherever they are read.
    """

    state: str
    success: tuple[str, ...]
    informational: tuple[str, ...]
    failure: tuple[str, ...]
    manifest: FrozenJSONObject | None
    manifest_id: str | None

    def __post_init__(self) -> None:
        if self.manifest is not None:
            object.__setattr__(self, "manifest", freeze(self.manifest))

    def soft_bindings(self) -> list[tuple[str, str]]:
        """(alg, value) pairs of the active manifest's soft-binding assertions."""
        found: list[tuple[str, str]] = []
        for assertion in _array(_object(self.manifest).get("assertions")):
            if not isinstance(assertion, Mapping) or assertion.get("label") != SOFT_BINDING_LABEL:
                continue
            data = _object(assertion.get("data"))
            for block in _array(data.get("blocks")):
                value = block.get("value") if isinstance(block, Mapping) else None
                if isinstance(value, str):
                    found.append((str(data.get("alg")), value))
        return found

    def digital_source_types(self) -> list[str]:
        types: list[str] = []
        for assertion in _array(_object(self.manifest).get("assertions")):
            if isinstance(assertion, Mapping) and str(assertion.get("label", "")).startswith("c2pa.actions"):
                for action in _array(_object(assertion.get("data")).get("actions")):
                    source = action.get("digitalSourceType") if isinstance(action, Mapping) else None
                    if isinstance(source, str):
                        types.append(source)
        return types


def _object(value: FrozenJSON | None) -> FrozenJSONObject:
    """A JSON object, or an empty one for anything else."""
    return value if isinstance(value, Mapping) else FrozenDict()


def _array(value: FrozenJSON | None) -> Sequence[FrozenJSON]:
    """A JSON array, or an empty one for anything else (strings included)."""
    return value if isinstance(value, list | tuple) else ()


def _codes(results: JSONValue, kind: str) -> tuple[str, ...]:
    """The status codes of one kind (``success``, ``failure``...) c2pa-rs gives for the active manifest."""
    active = results.get("activeManifest") if isinstance(results, dict) else None
    items = active.get(kind) if isinstance(active, dict) else None
    return tuple(str(item.get("code")) for item in _array(items) if isinstance(item, dict))


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
            store: JSONValue = json.loads(reader.json())
        except ValueError:
            store = {}
    manifest_id, manifest = _active_manifest(store)
    return CredentialReading(
        state=state,
        success=_codes(results, "success"),
        informational=_codes(results, "informational"),
        failure=_codes(results, "failure"),
        manifest=manifest,
        manifest_id=manifest_id,
    )


def _active_manifest(store: JSONValue) -> tuple[str | None, JSONObject | None]:
    """The active manifest's id and the manifest itself (``None`` where the store does not give them)."""
    if not isinstance(store, dict):
        return None, None
    active = store.get("active_manifest")
    manifests = store.get("manifests")
    manifest = manifests.get(active) if isinstance(active, str) and isinstance(manifests, dict) else None
    return (str(active) if active else None), (manifest if isinstance(manifest, dict) else None)
