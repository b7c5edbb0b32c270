"""Self-describing key records.

A text-watermark key record says everything a detector needs to refuse a mismatch:
the scheme and its version, the parameters, the vocabulary size and the SHA-256
fingerprint of the tokenizer it was made for.  The secret material is kept in the
record but never appears in ``repr``, in :meth:`TextKey.public_record` or in logs.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NewType

from tracemark._json import FrozenJSONObject, JSONObject, thaw_object
from tracemark.errors import KeyringError

KeyId = NewType("KeyId", str)

KEY_RECORD_FORMAT = "tracemark.key/v1"
_STRING_FIELDS = ("key_id", "scheme", "scheme_version", "tokenizer_sha256", "salt", "created_at")


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _frozen(mapping: Mapping[str, object]) -> FrozenJSONObject:
    """A read-only copy of a new key's mapping as the keyring file will hold it (through canonical JSON)."""
    return MappingProxyType(json.loads(canonical_json(dict(mapping))))


@dataclass(frozen=True)
class TextKey:
    """A text-watermark key bound to one scheme, parameter set and tokenizer."""

    key_id: KeyId
    scheme: str
    scheme_version: str
    params: FrozenJSONObject
    vocab_size: int
    tokenizer_sha256: str
    salt: str
    created_at: str
    secret: FrozenJSONObject = field(repr=False)
    label: str = ""

    @property
    def commitment(self) -> str:
        """SHA-256 commitment to the secret: lets a third party holding the key check it is this one."""
        digest = hashlib.sha256(
            b"tracemark/key-commitment/v1\n" + self.salt.encode() + canonical_json(dict(self.secret))
        )
        return digest.hexdigest()

    def public_record(self) -> JSONObject:
        """Everything but the secret: safe to print, log, publish or put in a verdict.

        ``format``, ``key_id``, ``kind``, ``scheme``, ``scheme_version``, ``params`` (the scheme's own,
        an open object), ``vocab_size``, ``tokenizer_sha256``, ``salt``, ``created_at``, ``label`` and
        ``commitment``.  Typed as open JSON so that verdicts can carry it as evidence.
        """
        return {
            "format": KEY_RECORD_FORMAT,
            "key_id": self.key_id,
            "kind": "text-watermark",
            "scheme": self.scheme,
            "scheme_version": self.scheme_version,
            "params": thaw_object(self.params),
            "vocab_size": self.vocab_size,
            "tokenizer_sha256": self.tokenizer_sha256,
            "salt": self.salt,
            "created_at": self.created_at,
            "label": self.label,
            "commitment": self.commitment,
        }

    def to_json(self) -> bytes:
        """The full record, secret included, for the keyring file."""
        record = self.public_record()
        del record["commitment"]
        record["secret"] = thaw_object(self.secret)
        return json.dumps(record, sort_keys=True, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, *, where: str = "key record") -> TextKey:
        """Parse a keyring file, checking every field's type and that the stored id matches the content.

        Raises :class:`~tracemark.errors.KeyringError` naming ``where`` and the faulty field,
        never a field's value (the record holds the secret).
        """
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise KeyringError(f"malformed {where}: not JSON") from None
        if not isinstance(raw, dict) or raw.get("format") != KEY_RECORD_FORMAT or raw.get("kind") != "text-watermark":
            raise KeyringError(f"{where} is not a tracemark text-watermark key record")
        for name in _STRING_FIELDS:
            if not isinstance(raw.get(name), str):
                raise KeyringError(f"malformed {where}: {name} is missing or not a string")
        label = raw.get("label", "")
        if not isinstance(label, str):
            raise KeyringError(f"malformed {where}: label is not a string")
        vocab_size = raw.get("vocab_size")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= 0:
            raise KeyringError(f"malformed {where}: vocab_size is missing or not a positive integer")
        for name in ("params", "secret"):
            if not isinstance(raw.get(name), dict):
                raise KeyringError(f"malformed {where}: {name} is missing or not an object")
        key = cls(
            key_id=KeyId(raw["key_id"]),
            scheme=raw["scheme"],
            scheme_version=raw["scheme_version"],
            params=MappingProxyType(dict(raw["params"])),
            vocab_size=vocab_size,
            tokenizer_sha256=raw["tokenizer_sha256"],
            salt=raw["salt"],
            created_at=raw["created_at"],
            secret=MappingProxyType(dict(raw["secret"])),
            label=label,
        )
        try:
            expected = compute_key_id(key)
        except (ValueError, RecursionError):
            raise KeyringError(f"malformed {where}: its content cannot be encoded canonically") from None
        if key.key_id != expected:
            raise KeyringError(f"{where} was altered: its key id does not match its content")
        return key


def compute_key_id(key: TextKey) -> KeyId:
    """Key ids name the public description and the salt; they reveal nothing about the secret."""
    public = {
        "scheme": key.scheme,
        "scheme_version": key.scheme_version,
        "params": dict(key.params),
        "vocab_size": key.vocab_size,
        "tokenizer_sha256": key.tokenizer_sha256,
        "salt": key.salt,
        "commitment": key.commitment,
    }
    digest = hashlib.sha256(b"tracemark/key-id/v1\n" + canonical_json(public)).hexdigest()
    return KeyId(f"tm-{key.scheme}-{digest[:16]}")


def make_text_key(
    *,
    scheme: str,
    scheme_version: str,
    params: Mapping[str, object],
    vocab_size: int,
    tokenizer_sha256: str,
    secret: Mapping[str, object],
    label: str = "",
) -> TextKey:
    """Build a new key record with a fresh salt and its derived id."""
    draft = TextKey(
        key_id=KeyId(""),
        scheme=scheme,
        scheme_version=scheme_version,
        params=_frozen(params),
        vocab_size=vocab_size,
        tokenizer_sha256=tokenizer_sha256,
        salt=secrets.token_hex(16),
        created_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
        secret=_frozen(secret),
        label=label,
    )
    return TextKey(**{**draft.__dict__, "key_id": compute_key_id(draft)})
