"""API tokens for the service's write routes, stored hashed in the keyring.

A token is shown once, when it is minted; the keyring keeps only its SHA-256 so a
leaked keyring file does not leak working tokens.  Tokens look like ``tmk_<id>_<secret>``
so that a request names which token it uses without revealing the secret in logs.

Every token may carry an expiry (``expires_at``, UTC): ``tracemark keys token`` mints tokens for
90 days unless told otherwise (``--expires 12h``, ``--expires never``) and ``service run --dev-token``
for 12 hours.  An expired token is refused like a revoked one, and tokens that expired are dropped
from the file the next time a token is minted.  :func:`revoke_api_token` removes a token at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from tracemark.errors import KeyringError
from tracemark.keys._files import check_private, keyring_lock, read_key_file, write_key_file
from tracemark.keys._keyring import Keyring

_FILE = "api-tokens.json"

#: How long a token from ``tracemark keys token`` lives unless ``--expires`` says otherwise.
DEFAULT_TOKEN_LIFETIME = timedelta(days=90)
#: How long a ``service run --dev-token`` token lives.
DEV_TOKEN_LIFETIME = timedelta(hours=12)
#: Token tiers: ``write`` tokens call the write routes; ``authority`` keys only lift the detection routes' rate
#: limits for authorities, fact-checkers and researchers (EU AI Act Art. 50 Code of Practice) and write nothing.
TOKEN_TIERS = ("write", "authority")


class ApiTokenInfo(TypedDict):
    """What ``tracemark keys token --list`` shows of a token (never its hash)."""

    token_id: str
    label: str
    created_at: str
    #: ISO 8601 UTC, or "" for a token that never expires.
    expires_at: str
    #: ``write`` or ``authority`` (:data:`TOKEN_TIERS`).
    tier: str


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _expired(record: dict[str, str], now: datetime) -> bool:
    expires = record.get("expires_at", "")
    if not expires:
        return False
    try:
        moment = datetime.fromisoformat(expires)
    except ValueError:  # a hand-edited, unreadable expiry: refuse rather than trust the token forever
        return True
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return now >= moment


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


def mint_api_token(keyring: Keyring, label: str = "", *, lifetime: timedelta | None = None, tier: str = "write") -> str:
    """Create a token, store its hash, and return the token (the only time it is visible).

    ``lifetime`` None makes a token that never expires.  Runs under the keyring lock: tokens
    minted at the same time by several processes are all kept; tokens that have expired are dropped.
    ``tier`` is ``write`` (the write routes) or ``authority`` (higher detection limits, no writes).
    """
    if lifetime is not None and lifetime <= timedelta(0):
        raise InvalidTokenError("a token's lifetime must be positive")
    if tier not in TOKEN_TIERS:
        raise InvalidTokenError(f"unknown token tier {tier!r} (one of {', '.join(TOKEN_TIERS)})")
    if not keyring.exists():
        raise keyring.missing_error()
    token_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(24)
    now = _now()
    with keyring_lock(keyring.directory):
        tokens = {key: record for key, record in _load(keyring).items() if not _expired(record, now)}
        tokens[token_id] = {
            "sha256": hashlib.sha256(secret.encode()).hexdigest(),
            "label": label,
            "created_at": now.isoformat(),
            "expires_at": (now + lifetime).isoformat() if lifetime is not None else "",
            **({"tier": tier} if tier != "write" else {}),
        }
        _write(keyring, tokens)
    return f"tmk_{token_id}_{secret}"


def _write(keyring: Keyring, tokens: dict[str, dict[str, str]]) -> None:
    write_key_file(keyring.directory / _FILE, json.dumps(tokens, indent=2).encode() + b"\n")


def revoke_api_token(keyring: Keyring, token_id: str) -> None:
    """Remove a token (by its id, the part after ``tmk_``): requests with it get 401 from then on."""
    if not keyring.exists():
        raise keyring.missing_error()
    with keyring_lock(keyring.directory):
        tokens = _load(keyring)
        if token_id not in tokens:
            raise InvalidTokenError(f"no API token {token_id!r} (tracemark keys token --list)")
        del tokens[token_id]
        _write(keyring, tokens)


def verify_api_token(keyring: Keyring, token: str, *, tier: str = "write") -> str:
    """Return the token's id, or raise :class:`InvalidTokenError` (constant-time comparison).

    The token must be of ``tier``: an authority key is refused on the write routes.
    """
    prefix, _, rest = token.partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != "tmk" or not token_id or not secret:
        raise InvalidTokenError("malformed API token")
    record = _load(keyring).get(token_id)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    if record is None or not hmac.compare_digest(digest, record.get("sha256", "")):
        raise InvalidTokenError("unknown or revoked API token")
    if _expired(record, _now()):
        raise InvalidTokenError(f"API token {token_id} expired at {record.get('expires_at')}")
    if record.get("tier", "write") != tier:
        raise InvalidTokenError(f"API token {token_id} is a {record.get('tier', 'write')} token, not a {tier} token")
    return token_id


def list_api_tokens(keyring: Keyring) -> list[ApiTokenInfo]:
    """Token ids, labels, creation and expiry times (never the hashes)."""
    return [
        {
            "token_id": key,
            "label": record.get("label", ""),
            "created_at": record.get("created_at", ""),
            "expires_at": record.get("expires_at", ""),
            "tier": record.get("tier", "write"),
        }
        for key, record in sorted(_load(keyring).items())
    ]
