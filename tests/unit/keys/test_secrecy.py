"""Secrets never leave the keyring: not in error messages, not in logs, not in CLI output.

Every failure mode of the other keyring tests is replayed on a keyring whose secrets are known,
including corruptions that move a secret into a field the parser reports on, and every message,
log record and CLI stream is searched for every secret.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable

import pytest

from tests.unit.keys._helpers import SECRET_FILES, CliRunner, load_everything, secret_file
from tests.unit.keys.conftest import Populated
from tracemark.errors import TracemarkError


def _move_secret(field: str) -> Callable[[Populated], None]:
    """A key record whose secret value landed in another field (a hand edit gone wrong)."""

    def corrupt(populated: Populated) -> None:
        path = populated.keyring.directory / f"{populated.key.key_id}.json"
        record = json.loads(path.read_text())
        record[field] = next(iter(record["secret"].values()))
        path.write_text(json.dumps(record))

    return corrupt


def _write(pattern: str, content: Callable[[Populated], bytes]) -> Callable[[Populated], None]:
    def corrupt(populated: Populated) -> None:
        secret_file(populated.keyring, pattern).write_bytes(content(populated))

    return corrupt


def _chmod(pattern: str) -> Callable[[Populated], None]:
    return lambda populated: secret_file(populated.keyring, pattern).chmod(0o644)


def _symlink(pattern: str) -> Callable[[Populated], None]:
    def corrupt(populated: Populated) -> None:
        path = secret_file(populated.keyring, pattern)
        target = populated.keyring.home / f"moved-{path.name}"
        shutil.move(path, target)
        path.symlink_to(target)

    return corrupt


def _master_text(populated: Populated) -> bytes:
    return (populated.keyring.directory / "master.key").read_bytes()


FAILURES: dict[str, Callable[[Populated], None]] = {
    "secret as vocab_size": _move_secret("vocab_size"),
    "secret as scheme": _move_secret("format"),
    "secret as params": _move_secret("params"),
    "secret as key_id": _move_secret("key_id"),
    "master truncated": _write("master.key", lambda p: _master_text(p)[:40]),
    "master with a stray byte": _write("master.key", lambda p: _master_text(p)[:63] + b"g\n"),
    "master doubled": _write("master.key", lambda p: _master_text(p).strip() * 2),
    "log key truncated": _write("log.skey", lambda p: (p.keyring.directory / "log.skey").read_bytes()[:-9]),
    "log key under another name": _write(
        "log.skey", lambda p: (p.keyring.directory / "log.skey").read_bytes().replace(b"+KEY+", b"+KEY+ x")
    ),
    "token file a list": _write("api-tokens.json", lambda p: b"[" + p.token.encode() + b"]"),
    **{f"{pattern} readable by others": _chmod(pattern) for pattern in SECRET_FILES},
    **{f"{pattern} a symlink": _symlink(pattern) for pattern in SECRET_FILES},
}


def _assert_hidden(populated: Populated, *texts: str) -> None:
    for secret in populated.secrets:
        assert len(secret) >= 16
        for text in texts:
            assert secret not in text


@pytest.mark.parametrize("corrupt", FAILURES.values(), ids=FAILURES.keys())
def test_no_failure_reveals_a_secret(
    populated: Populated, corrupt: Callable[[Populated], None], caplog: pytest.LogCaptureFixture, cli: CliRunner
) -> None:
    corrupt(populated)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(TracemarkError) as caught:
            load_everything(populated.keyring, populated.token)
        error = caught.value
        outputs = [cli(*argv) for argv in (("keys", "list", "--json"), ("keys", "show", populated.key.key_id))]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    _assert_hidden(populated, error.diagnostics(), str(error), repr(error), logged)
    for result in outputs:
        _assert_hidden(populated, result.out, result.err)


def test_listing_and_showing_print_no_secret(populated: Populated, cli: CliRunner) -> None:
    for argv in (("keys", "list", "--json"), ("keys", "list"), ("keys", "show", populated.key.key_id, "--json")):
        result = cli(*argv)
        assert result.status == 0
        _assert_hidden(populated, result.out, result.err)
    assert populated.key.secret
    assert all(str(value) not in repr(populated.key) for value in populated.key.secret.values())


def test_the_secrets_searched_for_are_the_real_ones(populated: Populated) -> None:
    """Guard against a vacuous test: each secret really is in the keyring's files."""
    contents = "".join(
        path.read_text() for path in populated.keyring.directory.rglob("*") if path.is_file() and path.suffix != ".pem"
    )
    contents += os.fsdecode((populated.keyring.directory / "c2pa" / "signer.key").read_bytes())
    for secret in populated.secrets:
        if secret == populated.token.split("_", 2)[2]:
            continue  # the keyring keeps only the token's hash
        assert secret in contents
