"""``tracemark keys``: create and list the keys in ``TRACEMARK_HOME``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import NotRequired, TypedDict

from tracemark._fs import atomic_write_bytes
from tracemark._json import JSONObject
from tracemark.cli._common import add_json_flag, emit
from tracemark.errors import InvalidInputError, ModelLoadError
from tracemark.keys import (
    DEFAULT_TOKEN_LIFETIME,
    Keyring,
    TextKey,
    ensure_log_key,
    ensure_media_certificate,
    list_api_tokens,
    mint_api_token,
    revoke_api_token,
)
from tracemark.text import (
    DEFAULT_SCHEME,
    SCHEME_NAMES,
    TextTokenizer,
    export_transformers_config,
    import_transformers_config,
    new_text_key,
    reference_model_dir,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys`` and its verbs."""
    parser = subparsers.add_parser("keys", help="manage the local keyring")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    init = verbs.add_parser("init", help="create the keyring and development keys (idempotent)")
    init.add_argument("--model", help="model directory the text keys are bound to (default: reference model)")
    add_json_flag(init)
    init.set_defaults(handler=_init)

    listing = verbs.add_parser("list", help="list the keys (id, scheme, vocabulary, tokenizer, label)")
    add_json_flag(listing)
    listing.set_defaults(handler=_list)

    show = verbs.add_parser("show", help="print a key's public record (never the secret)")
    show.add_argument("key_id", help="the key's id (see keys list)")
    add_json_flag(show)
    show.set_defaults(handler=_show)

    token = verbs.add_parser("token", help="mint, list or revoke API tokens for the service's write routes")
    token.add_argument("--label", default="", help="a name for the new token (shown by --list)")
    lifetime = f"{DEFAULT_TOKEN_LIFETIME.days}d"
    token.add_argument("--expires", default=lifetime, metavar="DURATION",
                       help=f"lifetime of the new token: 30m, 12h, 90d or 'never' (default {lifetime})")  # fmt: skip
    action = token.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list the tokens (ids, labels, expiry; never secrets)")
    action.add_argument("--revoke", metavar="ID", help="revoke the token with this id (tmk_<ID>_...)")
    add_json_flag(token)
    token.set_defaults(handler=_token)

    new = verbs.add_parser("new", help="create a text-watermark key for a model")
    new.add_argument("--scheme", choices=SCHEME_NAMES, default=DEFAULT_SCHEME,
                     help=f"watermark scheme (default {DEFAULT_SCHEME})")  # fmt: skip
    new.add_argument("--model", help="model directory (default: reference model)")
    new.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="scheme parameter, repeatable (native: gamma, delta, context_width, 1 by default, 2 for trigram units; "
        "kgw: greenlist_ratio, "
        "bias, seeding_scheme, context_width; synthid: ngram_len, depth, top_k, temperature, ...)",
    )
    new.add_argument("--version", dest="scheme_version", help="scheme version (default: the scheme's first)")
    new.add_argument("--label", default="", help="a name for people (shown by keys list)")
    new.add_argument("--default", action="store_true", help="make it the default text key")
    add_json_flag(new)
    new.set_defaults(handler=_new)
    _register_interop(verbs)


def _register_interop(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imported = verbs.add_parser("import", help="import a key from a transformers watermarking config")
    imported.add_argument("--from-transformers", required=True, metavar="CONFIG_JSON",
                          help="JSON of a WatermarkingConfig or SynthIDTextWatermarkingConfig (its to_dict()), or "
                               "a generation_config.json holding watermarking_config")  # fmt: skip
    imported.add_argument("--model", help="the model the config watermarks (vocabulary, BOS id, tokenizer; "
                                          "default: reference model)")  # fmt: skip
    imported.add_argument("--label", default="", help="a name for people (shown by keys list)")
    imported.add_argument("--default", action="store_true", help="make it the default text key")
    add_json_flag(imported)
    imported.set_defaults(handler=_import)

    export = verbs.add_parser("export", help="write a kgw or synthid key as a transformers watermarking config")
    export.add_argument("key_id", help="the key to export")
    export.add_argument(
        "--to-transformers",
        action="store_true",
        required=True,
        help="as WatermarkingConfig / SynthIDTextWatermarkingConfig JSON (the only format)",
    )
    export.add_argument("--out", help="file to write (mode 0600; default: standard output). It holds the secret")
    export.set_defaults(handler=_export)


class KeyListPayload(TypedDict):
    """``tracemark keys list --json`` (and ``keys init --json``, which adds ``created``)."""

    home: str
    #: Purpose -> key id of the default keys.
    defaults: Mapping[str, str]
    #: Each key's public record (never its secret).
    keys: list[JSONObject]
    #: Ids of the keys ``keys init`` made.
    created: NotRequired[Sequence[str]]


def _parse_params(items: list[str]) -> dict[str, str | int | float]:
    params: dict[str, str | int | float] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise InvalidInputError(f"--param expects NAME=VALUE, got {item!r}")
        value: str | int | float = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
        params[name] = value
    return params


def _model_dir(args: argparse.Namespace) -> str:
    return str(args.model) if args.model else str(reference_model_dir())


def _key_row(key: TextKey, default: bool) -> str:
    scheme = f"{key.scheme}/{key.scheme_version}"
    label = f"  {key.label}" if key.label else ""
    return (
        f"{'*' if default else ' '} {key.key_id:<30} {scheme:<16} vocab {key.vocab_size:<7} "
        f"tokenizer {key.tokenizer_sha256[:12]}{label}"
    )


def _list_payload(keyring: Keyring) -> tuple[KeyListPayload, str]:
    defaults = keyring.defaults()
    keys = keyring.list()
    payload: KeyListPayload = {
        "home": str(keyring.home),
        "defaults": dict(defaults),
        "keys": [k.public_record() for k in keys],
    }
    lines = [f"keyring {keyring.home}"]
    for k in keys:
        is_default = k.key_id in defaults.values()
        lines.append(_key_row(k, is_default))
    if not keys:
        lines.append("  (no keys: run 'tracemark keys init')")
    return payload, "\n".join(lines)


def _init(args: argparse.Namespace) -> int:
    keyring = Keyring()
    created = keyring.create()
    ensure_log_key(keyring)
    ensure_media_certificate(keyring)
    made = []
    if created or not keyring.list() or args.model:
        try:
            model_dir = _model_dir(args)
        except ModelLoadError as exc:
            # A wheel install carries no model: say so loudly instead of reporting "0 new keys".
            raise ModelLoadError(f"no text keys made (the log and media keys are ready): {exc}") from None
        tokenizer_sha = TextTokenizer(model_dir).sha256
        if not any(key.tokenizer_sha256 == tokenizer_sha for key in keyring.list()):
            first_for_model = not keyring.list()
            for scheme in SCHEME_NAMES:
                key = new_text_key(keyring, scheme, model_dir, label="development key",
                                   make_default=first_for_model and scheme == DEFAULT_SCHEME)  # fmt: skip
                made.append(key.key_id)
    payload, human = _list_payload(keyring)
    payload["created"] = made
    status = "created" if made else "already initialised"
    emit(args, payload, f"{status}: {len(made)} new key(s)\n{human}")
    return 0


def _list(args: argparse.Namespace) -> int:
    payload, human = _list_payload(Keyring())
    emit(args, payload, human)
    return 0


def _show(args: argparse.Namespace) -> int:
    record = Keyring().get(args.key_id).public_record()
    human = "\n".join(f"{name}: {value}" for name, value in record.items())
    emit(args, record, human)
    return 0


def _new(args: argparse.Namespace) -> int:
    keyring = Keyring()
    key = new_text_key(
        keyring,
        args.scheme,
        _model_dir(args),
        params=_parse_params(args.param),
        label=args.label,
        version=args.scheme_version,
        make_default=args.default,
    )
    emit(args, key.public_record(), f"created {key.key_id} ({key.scheme}/{key.scheme_version})")
    return 0


def _import(args: argparse.Namespace) -> int:
    keyring = Keyring()
    if not keyring.exists():
        raise keyring.missing_error()
    tokenizer = TextTokenizer(_model_dir(args))
    key = import_transformers_config(Path(args.from_transformers), tokenizer, label=args.label)
    keyring.add(key, default_for="text" if args.default else None)
    emit(args, key.public_record(), f"imported {key.key_id} ({key.scheme}/{key.scheme_version})")
    return 0


def _export(args: argparse.Namespace) -> int:
    config = export_transformers_config(Keyring().get(args.key_id))
    data = json.dumps(config, indent=2, sort_keys=True) + "\n"
    if args.out:
        atomic_write_bytes(Path(args.out), data.encode(), mode=0o600)
        sys.stdout.write(f"wrote {args.out} (it holds the key's secret)\n")
    else:
        sys.stdout.write(data)
    return 0


_DURATION = re.compile(r"([1-9][0-9]{0,5})([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_lifetime(text: str) -> timedelta | None:
    """``30m``, ``12h``, ``90d`` as a timedelta; ``never`` as None."""
    if text == "never":
        return None
    match = _DURATION.fullmatch(text)
    if match is None:
        raise InvalidInputError(f"--expires expects a duration like 30m, 12h or 90d, or 'never'; got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _token_rows(keyring: Keyring) -> str:
    rows = [f"{t['token_id']}  expires {t['expires_at'] or 'never'}  {t['label']}" for t in list_api_tokens(keyring)]
    return "\n".join(rows) or "(no API tokens)"


def _token(args: argparse.Namespace) -> int:
    keyring = Keyring()
    if args.list:
        emit(args, {"tokens": list_api_tokens(keyring)}, _token_rows(keyring))
        return 0
    if args.revoke:
        revoke_api_token(keyring, args.revoke)
        emit(args, {"revoked": args.revoke, "tokens": list_api_tokens(keyring)}, f"revoked {args.revoke}")
        return 0
    lifetime = parse_lifetime(args.expires)
    token = mint_api_token(keyring, label=args.label, lifetime=lifetime)
    emit(args, {"api_token": token, "tokens": list_api_tokens(keyring)},
         f"{token}\n(shown once; the keyring keeps only its SHA-256)")  # fmt: skip
    return 0
