"""Key management: the local keyring and self-describing key records."""

from tracemark.keys._home import HOME_ENV, default_database_path, tracemark_home
from tracemark.keys._keyring import Keyring
from tracemark.keys._records import KeyId, TextKey, canonical_json, compute_key_id, make_text_key

__all__ = [
    "HOME_ENV",
    "KeyId",
    "Keyring",
    "TextKey",
    "canonical_json",
    "compute_key_id",
    "default_database_path",
    "make_text_key",
    "tracemark_home",
]
