"""Key management: the local keyring and self-describing key records."""

from tracemark.keys._home import HOME_ENV, default_database_path, tracemark_home
from tracemark.keys._keyring import Keyring
from tracemark.keys._log_key import ensure_log_key, ensure_witness_key, load_log_key, load_witness_key
from tracemark.keys._media_cert import MediaCertificate, ensure_media_certificate, load_media_certificate
from tracemark.keys._records import KeyId, TextKey, canonical_json, compute_key_id, make_text_key
from tracemark.keys._tokens import (
    DEFAULT_TOKEN_LIFETIME,
    DEV_TOKEN_LIFETIME,
    ApiTokenInfo,
    InvalidTokenError,
    list_api_tokens,
    mint_api_token,
    revoke_api_token,
    verify_api_token,
)

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "DEV_TOKEN_LIFETIME",
    "HOME_ENV",
    "ApiTokenInfo",
    "InvalidTokenError",
    "KeyId",
    "Keyring",
    "MediaCertificate",
    "TextKey",
    "canonical_json",
    "compute_key_id",
    "default_database_path",
    "ensure_log_key",
    "ensure_media_certificate",
    "ensure_witness_key",
    "list_api_tokens",
    "load_log_key",
    "load_media_certificate",
    "load_witness_key",
    "make_text_key",
    "mint_api_token",
    "revoke_api_token",
    "tracemark_home",
    "verify_api_token",
]
