"""Helpers every CLI module shares: output in human or JSON form, reading inputs safely."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from tracemark.errors import InvalidInputError

#: Largest input file the CLI reads (bytes); larger inputs are refused before reading.
MAX_INPUT_BYTES = 4 * 1024 * 1024


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """Every verb takes ``--json``."""
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")


def emit(args: argparse.Namespace, payload: Mapping[str, object], human: str) -> None:
    """Print ``payload`` as JSON under ``--json``, else the human text."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(human.rstrip("\n") + "\n")


def read_file_bytes(source: str, max_bytes: int) -> bytes:
    """Read a file, refusing missing files, directories, unreadable files and files over ``max_bytes``."""
    path = Path(source)
    with input_errors(source):
        size = path.stat().st_size
        if size > max_bytes:
            raise InvalidInputError(f"{source} is {size} bytes; the limit is {max_bytes}")
        return path.read_bytes()


@contextlib.contextmanager
def input_errors(source: str) -> Iterator[None]:
    """Turn a missing, directory or unreadable input file into a one-line :class:`InvalidInputError`."""
    try:
        yield
    except FileNotFoundError:
        raise InvalidInputError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{source} is a directory") from None
    except PermissionError:
        raise InvalidInputError(f"{source}: permission denied") from None


def read_text_input(source: str, *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """Read UTF-8 text from a path or ``-`` (stdin), refusing binary, invalid UTF-8 and huge inputs."""
    if source == "-":
        data = sys.stdin.buffer.read(max_bytes + 1)
        name = "standard input"
    else:
        data = read_file_bytes(source, max_bytes)
        name = source
    if len(data) > max_bytes:
        raise InvalidInputError(f"{name} is larger than the limit of {max_bytes} bytes (--max-bytes)")
    if b"\x00" in data:
        raise InvalidInputError(f"{name} holds NUL bytes: binary input is not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{name} is not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise InvalidInputError(f"{name} is empty")
    return text
