"""Sign and verify model folders with OpenSSF model signing, under a stricter verification policy.

Signatures are ordinary ``model-signing`` 1.1 bundles (a Sigstore bundle holding a DSSE
envelope over an in-toto statement whose predicate lists every file's digest), so the
``model_signing`` CLI verifies what we sign and the other way round.  Verification adds
three rules that the library leaves to the caller:

1. **Coverage**: every file in the folder must be listed in the signed manifest.  The
   library ignores ``.git*`` paths by default and can be told to ignore unsigned files;
   a file that the signature does not cover is refused here, whatever its name.
2. **Exclusions hide nothing**: the manifest's ``ignore_paths`` (``.git*`` by the library's
   default) are accepted only because rule 1 still applies to them: a file present under an
   ignored path is uncovered, and refused.
3. **A pinned signer**: in key mode the public key is the pin; in certificate mode the
   leaf certificate must match an expected identity (subject or SAN) or SHA-256
   fingerprint, besides chaining to the given CA.

The bundle is read once; the library verifies a private copy of those exact bytes and the
coverage check reads the same bytes, so the file cannot change in between.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tracemark._json import JSONObject, JSONValue
from tracemark.errors import InvalidInputError, MissingExtraError, ModelSignatureError

#: Largest signature bundle read (bytes); real bundles are a few KiB plus one line per file.
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
PREDICATE_TYPE = "https://model_signing/signature/v1.0"


@dataclass(frozen=True)
class SignedFile:
    """One file the signature covers."""

    name: str
    algorithm: str
    digest: str


@dataclass(frozen=True)
class VerifiedModel:
    """A model folder whose every file is covered by a valid signature from the pinned signer."""

    model: str
    files: tuple[SignedFile, ...]
    #: ``key:<sha256 of the public key DER>`` or ``certificate:<sha256 of the leaf DER>``.
    signer: str
    #: The leaf certificate's subject and SAN values (certificate mode only).
    identities: tuple[str, ...] = ()


def _require_model_signing() -> None:
    """Raise :class:`MissingExtraError` unless ``model_signing`` (the ``supply`` extra) imports.

    Callers then import it themselves, so that mypy checks their calls against the package's
    own annotations (it ships ``py.typed``) rather than against ``Any``.
    """
    try:
        import model_signing  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise MissingExtraError("model signing", "supply") from exc


def _ignored_relative(model: Path, signature: Path) -> list[str]:
    """The signature's own path, relative to the model, when it lives inside the model folder."""
    try:
        return [signature.resolve().relative_to(model.resolve()).as_posix()]
    except ValueError:
        return []


def sign_model(
    model: str | Path,
    signature: str | Path,
    *,
    private_key: str | Path,
    certificate: str | Path | None = None,
    certificate_chain: Sequence[str | Path] = (),
    password: str | None = None,
) -> Path:
    """Sign every file of ``model`` (``.git`` included) and write the bundle to ``signature``.

    Key mode with ``private_key`` alone (an EC private key in PEM); certificate mode when
    ``certificate`` (the leaf, PEM) and optionally ``certificate_chain`` are given.
    """
    _require_model_signing()
    import model_signing as ms

    model_path, signature_path = Path(model), Path(signature)
    _require_folder(model_path)
    _require_file(Path(private_key), "private key")
    for path in (certificate, *certificate_chain):
        if path is not None:
            _require_file(Path(path), "certificate")
    # model_signing's Config constructors lack a return annotation; the rest of its API is typed.
    hashing = ms.hashing.Config().set_ignored_paths(  # type: ignore[no-untyped-call]
        paths=_ignored_relative(model_path, signature_path), ignore_git_paths=False
    )
    config = ms.signing.Config().set_hashing_config(hashing)  # type: ignore[no-untyped-call]
    try:
        if certificate is not None and not certificate_chain:
            raise ModelSignatureError("certificate mode needs the issuing certificate chain (PEM)")
        if certificate is None:
            config.use_elliptic_key_signer(private_key=Path(private_key), password=password)
        else:
            config.use_certificate_signer(
                private_key=Path(private_key),
                signing_certificate=Path(certificate),
                certificate_chain=[Path(c) for c in certificate_chain],
            )
        config.sign(model_path, signature_path)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelSignatureError(f"signing failed: {_reason(exc)}") from None
    return signature_path


def verify_model(
    model: str | Path,
    signature: str | Path,
    *,
    public_key: str | Path | None = None,
    certificate_chain: Sequence[str | Path] = (),
    signer_identity: str | None = None,
    signer_fingerprint: str | None = None,
) -> VerifiedModel:
    """Verify ``model`` against ``signature``; raises :class:`ModelSignatureError` on any failure.

    Give ``public_key`` (key mode) or ``certificate_chain`` plus at least one of
    ``signer_identity`` / ``signer_fingerprint`` (certificate mode).
    """
    _require_model_signing()
    import model_signing as ms

    model_path, signature_path = Path(model), Path(signature)
    _require_folder(model_path)
    _require_file(signature_path, "signature")
    if (public_key is None) == (not certificate_chain):
        raise ModelSignatureError("give either a public key or a certificate chain")
    if certificate_chain and not (signer_identity or signer_fingerprint):
        raise ModelSignatureError("certificate mode needs a pinned signer: an identity or a certificate fingerprint")
    bundle_bytes = _read_bundle(signature_path)
    bundle = _parse_bundle(bundle_bytes)
    statement = _statement(bundle)
    leaf = _leaf_certificate(bundle) if certificate_chain else None
    for path in (public_key, *certificate_chain):
        if path is not None:
            _require_file(Path(path), "key or certificate")
    config = ms.verifying.Config()  # type: ignore[no-untyped-call]
    if public_key is not None:
        config.use_elliptic_key_verifier(public_key=Path(public_key))
    else:
        config.use_certificate_verifier(certificate_chain=[Path(c) for c in certificate_chain])
    with tempfile.TemporaryDirectory(prefix="tracemark-verify-") as scratch:
        private_copy = Path(scratch) / "bundle.sig"
        private_copy.write_bytes(bundle_bytes)
        try:
            config.verify(model_path, private_copy)
        except Exception as exc:  # the library raises ValueError, KeyError, cryptography and OpenSSL errors
            changed = _changed_files(model_path, signature_path, statement)
            raise ModelSignatureError(f"signature does not verify: {changed or _reason(exc)}") from None
    files = _check_coverage(model_path, signature_path, statement)
    if leaf is None:  # key mode: the signer is the public key
        signer = "key:" + _public_key_fingerprint(Path(public_key or ""))
        return VerifiedModel(str(model_path), files, signer)
    identities = _pin_certificate(leaf, signer_identity, signer_fingerprint)
    return VerifiedModel(str(model_path), files, "certificate:" + hashlib.sha256(leaf).hexdigest(), identities)


def _require_folder(path: Path) -> None:
    """A missing input is bad input (exit 2); an existing path that is not a folder cannot be signed."""
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file or directory")
    if not path.is_dir():
        raise ModelSignatureError(f"{path} is not a folder")


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InvalidInputError(f"{path}: no such {what} file")


def _changed_files(model: Path, signature: Path, statement: JSONObject) -> str | None:
    """Which files differ from what was signed, in words (the library prints raw digest bytes)."""
    predicate = _object(statement.get("predicate"))
    signed: dict[str, str] = {}
    for resource in _array(predicate.get("resources")):
        if isinstance(resource, dict) and resource.get("algorithm") == "sha256":
            signed[str(resource.get("name"))] = str(resource.get("digest"))
    if not signed:
        return None
    ignored = set(_ignored_relative(model, signature))
    changed, missing = [], []
    for name, digest in sorted(signed.items()):
        path = model / name
        if not path.is_file():
            missing.append(name)
            continue
        actual = _file_sha256(path)
        if actual != digest:
            changed.append(f"{name} (signed sha256 {digest[:16]}..., now {actual[:16]}...)")
    added = sorted(
        p.relative_to(model).as_posix()
        for p in model.rglob("*")
        if p.is_file()
        and p.relative_to(model).as_posix() not in signed
        and p.relative_to(model).as_posix() not in ignored
    )
    parts = []
    if changed:
        parts.append(f"{len(changed)} file(s) changed since signing: " + ", ".join(changed[:5]))
    if missing:
        parts.append(f"{len(missing)} signed file(s) missing: " + ", ".join(missing[:5]))
    if added:
        parts.append(f"{len(added)} file(s) added: " + ", ".join(added[:5]))
    return "; ".join(parts) or None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500] if text else f"{type(exc).__name__} (the signature or envelope was altered)"


def _read_bundle(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_BUNDLE_BYTES:
            raise ModelSignatureError(f"{path} is larger than {MAX_BUNDLE_BYTES} bytes")
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelSignatureError(f"{path}: no such signature file") from None
    except OSError as exc:
        raise ModelSignatureError(f"{path}: unreadable ({exc.strerror})") from None


def _parse_bundle(data: bytes) -> JSONObject:
    """The bundle's JSON object; its members are the signer's (hostile) data, narrowed where read."""
    try:
        bundle: JSONValue = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ModelSignatureError("the signature is not a JSON Sigstore bundle") from None
    if not isinstance(bundle, dict):
        raise ModelSignatureError("the signature is not a JSON Sigstore bundle")
    return bundle


def _object(value: JSONValue) -> JSONObject:
    """A JSON object, or an empty one for anything else."""
    return value if isinstance(value, dict) else {}


def _array(value: JSONValue) -> list[JSONValue]:
    """A JSON array, or an empty one for anything else (strings included)."""
    return value if isinstance(value, list) else []


def _statement(bundle: JSONObject) -> JSONObject:
    unreadable = ModelSignatureError("the bundle holds no readable DSSE payload")
    encoded = _object(bundle.get("dsseEnvelope")).get("payload")
    if not isinstance(encoded, str):
        raise unreadable
    try:
        statement: JSONValue = json.loads(base64.b64decode(encoded, validate=True))
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise unreadable from None
    if not isinstance(statement, dict) or statement.get("predicateType") != PREDICATE_TYPE:
        raise ModelSignatureError("the bundle is not an OpenSSF model signature (predicate type)")
    return statement


def _check_coverage(model: Path, signature: Path, statement: JSONObject) -> tuple[SignedFile, ...]:
    predicate = _object(statement.get("predicate"))
    serialization = _object(predicate.get("serialization"))
    allowed_ignores = set(_ignored_relative(model, signature))
    # The signer's ignore_paths (the library ignores .git* by default) hide nothing as long as
    # every file present is covered, which is checked below; they only explain a refusal.
    ignored = {str(p).rstrip("/") for p in _array(serialization.get("ignore_paths"))}
    if serialization.get("method") != "files":
        raise ModelSignatureError("only per-file signatures are accepted (serialization method 'files')")
    resources = _array(predicate.get("resources"))
    files = tuple(
        SignedFile(str(r.get("name")), str(r.get("algorithm")), str(r.get("digest")))
        for r in resources
        if isinstance(r, dict)
    )
    covered = {f.name for f in files}
    present = set()
    for directory, dirnames, filenames in os.walk(model, followlinks=False):
        base = Path(directory)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            present.add((base / name).relative_to(model).as_posix())
    uncovered = sorted(present - covered - allowed_ignores)
    if uncovered:
        shown = ", ".join(uncovered[:10]) + (" ..." if len(uncovered) > 10 else "")
        excluded = [u for u in uncovered if any(u == i or u.startswith(i + "/") for i in ignored)]
        reason = " (excluded by the signer's ignore_paths)" if excluded else ""
        raise ModelSignatureError(f"{len(uncovered)} file(s) are not covered by the signature{reason}: {shown}")
    missing = sorted(covered - present)
    if missing:
        raise ModelSignatureError(f"signed files are missing: {', '.join(missing[:10])}")
    return files


def _leaf_certificate(bundle: JSONObject) -> bytes:
    """The leaf certificate's DER: ``certificate`` (bundle v0.3) or the chain's first entry (v0.1, v0.2)."""
    material = _object(bundle.get("verificationMaterial"))
    if "certificate" in material:
        holder = material["certificate"]
    else:
        holder = next(iter(_array(_object(material.get("x509CertificateChain")).get("certificates"))), None)
    raw = _object(holder).get("rawBytes")
    missing = ModelSignatureError("the bundle holds no signing certificate")
    if not isinstance(raw, str):
        raise missing
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:  # binascii.Error, and text that is not ASCII
        raise missing from None


def _pin_certificate(leaf: bytes, identity: str | None, fingerprint: str | None) -> tuple[str, ...]:
    from cryptography import x509

    try:
        certificate = x509.load_der_x509_certificate(leaf)
    except ValueError:
        raise ModelSignatureError("the signing certificate is not valid DER") from None
    identities = [certificate.subject.rfc4514_string()]
    identities += [a.value for a in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]  # type: ignore[misc]
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        identities += [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
        identities += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
        identities += [str(v) for v in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        pass
    if fingerprint is not None:
        wanted = fingerprint.lower().replace(":", "").removeprefix("sha256:")
        if hashlib.sha256(leaf).hexdigest() != wanted:
            raise ModelSignatureError("the signing certificate's fingerprint is not the pinned one")
    if identity is not None and identity not in identities:
        raise ModelSignatureError(f"signed by {identities[0]!r}, not by the pinned signer {identity!r}")
    return tuple(identities)


def _public_key_fingerprint(path: Path) -> str:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ModelSignatureError(f"{path}: not a PEM public key ({_reason(exc)})") from None
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()
