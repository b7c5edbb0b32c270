"""API tokens for the service's write routes, stored hashed in the keyring.

A token is shown once, when it is minted; the keyring keeps only its SHA-256 so a
leaked keyring file does not leak working tokens.  Tokens look like ``tmk_<id>_<secret>``
so that a request names which token it uses without revealing the secret in logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime

from tracemark.errors import KeyringError
from tracemark.keys._files import check_private, keyring_lock, read_key_file, write_key_file
from tracemark.keys._keyring import Keyring

_FILE = "api-tokens.json"


class InvalidTokenError(KeyringError):
    """The API token is missing, malformed, unknown or revoked."""


def _load(keyring: Keyring) -> dict[str, dict[str, str]]:
    path = keyring.directory / _FILE
    try:
        data, mode = read_key_file(path, "API token file")
    except FileNotFoundError:
        return {}
    try:
        tokens = json.loads(data)
    except (ValueError, RecursionError):
        raise KeyringError(f"corrupt {path}: not JSON") from None
    if not isinstance(tokens, dict) or not all(
        isinstance(record, dict) and all(isinstance(value, str) for value in record.values())
        for record in tokens.values()
    ):
        raise KeyringError(f"corrupt {path}: expected an object mapping token ids to records of strings")
    check_private(path, mode, "API token file")
    return tokens


def mint_api_token(keyring: Keyring, label: str = "") -> str:
    """Create a token, store its hash, and return the token (the only time it is visible).

    Runs under the keyring lock: tokens minted at the same time by several processes are all kept.
    """
    if not keyring.exists():
        raise keyring.missing_error()
    token_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(24)
    with keyring_lock(keyring.directory):
        tokens = _load(keyring)
        tokens[token_id] = {
            "sha256": hashlib.sha256(secret.encode()).hexdigest(),
            "label": label,
            "created_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
        write_key_file(keyring.directory / _FILE, json.dumps(tokens, indent=2).encode() + b"\n")
    return f"tmk_{token_id}_{secret}"


def verify_api_token(keyring: Keyring, token: str) -> str:
    """Return the token's id, or raise :class:`InvalidTokenError` (constant-time comparison)."""
    prefix, _, rest = token.partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != "tmk" or not token_id or not secret:
        raise InvalidTokenError("malformed API token")
    record = _load(keyring).get(token_id)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    if record is None or not hmac.compare_digest(digest, record.get("sha256", "")):
        raise InvalidTokenError("unknown or revoked API token")
    return token_id


def list_api_tokens(keyring: Keyring) -> list[dict[str, str]]:
    """Token ids, labels and creation times (never the hashes)."""
    return [{"token_id": k, "label": v.get("label", ""), "created_at": v.get("created_at", "")}
            for k, v in sorted(_load(keyring).items())]  # fmt: skip
