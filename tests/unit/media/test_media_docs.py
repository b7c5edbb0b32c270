"""What docs/media.md and the README say about media is what the code does (#21 point 6).

The exit-status table is parsed and checked against the CLI's constants and the error classes; the
Pillow bomb limit the docs describe is checked to be set and to act; table and file names in the docs
are checked against the code.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tracemark import errors
from tracemark.cli import media as cli_media
from tracemark.errors import ImageInputError
from tracemark.keys import default_database_path
from tracemark.media import MAX_IMAGE_BYTES, MAX_PIXELS, Outcome, decode_image
from tracemark.media import _provenance as provenance
from tracemark.media import _repository as repository

ROOT = Path(__file__).resolve().parents[3]
DOCS = (ROOT / "docs" / "media.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _exit_rows() -> dict[int, set[str]]:
    """exit status -> the backticked names in its row of the CLI exit-status table."""
    rows: dict[int, set[str]] = {}
    for line in _section(DOCS, "CLI exit statuses").splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|(.*)\|\s*$", line)
        if match:
            rows[int(match.group(1))] = set(re.findall(r"`([^`]+)`", match.group(2)))
    return rows


def test_every_verify_outcome_has_the_documented_exit_status() -> None:
    rows = _exit_rows()
    documented = {name: status for status, names in rows.items() for name in names if name in set(Outcome)}
    assert documented == cli_media.VERIFY_EXIT
    assert set(cli_media.VERIFY_EXIT) == {outcome.value for outcome in Outcome}
    assert "conflict" in rows[cli_media.CONFLICT_EXIT]


def test_every_documented_error_exits_with_its_row() -> None:
    named = 0
    for status, names in _exit_rows().items():
        for name in names:
            error = getattr(errors, name, None)
            if isinstance(error, type) and issubclass(error, errors.TracemarkError):
                assert error.exit_code == status, name
                named += 1
    assert named >= 7
    assert cli_media.INPUT_ERROR_EXIT == ImageInputError.exit_code == errors.InvalidInputError.exit_code


def test_the_errors_paragraph_agrees() -> None:
    paragraph = DOCS[DOCS.index("Errors: `ImageInputError`") :].split("\n\n")[0]
    assert "`ImageInputError`" in paragraph
    assert f"exits {ImageInputError.exit_code}" in paragraph
    assert f"exit {errors.ContentCredentialError.exit_code}" in paragraph
    assert f"(exit {errors.MissingExtraError.exit_code})" in paragraph


#: README error categories -> the error class each names.
README_CATEGORIES: dict[str, type[errors.TracemarkError]] = {
    "bad input": errors.InvalidInputError,
    "keyring": errors.KeyringError,
    "text watermark": errors.TextWatermarkError,
    "missing optional dependency": errors.MissingExtraError,
    "transparency log": errors.TlogError,
    "media provenance": errors.MediaError,
    "model theft": errors.TheftError,
    "supply chain": errors.SupplyChainError,
    "Electron audit": errors.ElectronAuditError,
    "service configuration": errors.ServiceError,
}


def test_readme_exit_statuses_match_the_code() -> None:
    sentence = " ".join(_section(README, "Errors").split())
    for category, error in README_CATEGORIES.items():
        assert re.search(rf"\b{error.exit_code} {re.escape(category)}\b", sentence), category
    assert "2 bad input (an unusable image included)" in sentence
    assert ImageInputError.exit_code == 2
    media = " ".join(_section(README, "Image provenance").split())
    for outcome, status in cli_media.VERIFY_EXIT.items():
        clause = re.search(rf"{status} for ([^,.]*(?:, [^0-9][^,.]*)*)", media)
        assert clause is not None, outcome
        assert f"`{outcome}`" in clause.group(1), (outcome, clause.group(1))
    assert f"{cli_media.CONFLICT_EXIT} for `invalid` or a conflict" in media


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_pillow_bomb_limit_is_the_documented_figure() -> None:
    assert "lowers Pillow's own bomb limit, `Image.MAX_IMAGE_PIXELS`, to the same figure" in DOCS
    assert f"`MAX_PIXELS` ({MAX_PIXELS // 1_000_000} MP" in DOCS
    assert f"`MAX_IMAGE_BYTES` ({MAX_IMAGE_BYTES // (1 << 20)} MiB)" in DOCS
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS  # Pillow's default is 89,478,485
    side = int(MAX_PIXELS**0.5) + 1  # just over the limit, well under Pillow's default
    data = _png_header_only(side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(Image.DecompressionBombWarning):
            Image.open(io.BytesIO(data))  # Pillow itself, outside tracemark's own check
    with pytest.raises(ImageInputError, match="decompression bomb"):
        decode_image(data)


def test_table_and_file_names_match_the_code() -> None:
    assert "CREATE TABLE IF NOT EXISTS media_soft_bindings" in repository._SCHEMA
    assert "`media_soft_bindings`" in DOCS
    columns = re.search(r"keeps `\(([^)]*)\)`", DOCS)
    assert columns is not None
    for column in columns.group(1).split(", "):
        assert re.search(rf"^\s+{column} ", repository._SCHEMA, re.MULTILINE), column
    assert f"`TRACEMARK_HOME/{default_database_path().name}`" in DOCS
    assert f"``TRACEMARK_HOME/{default_database_path().name}``" in (repository.__doc__ or "")
    for module in re.findall(r"^\| `((?:media|keys|cli|service)/_?[a-z_]+\.py)` \|", DOCS, re.MULTILINE):
        assert (ROOT / "src" / "tracemark" / module).is_file(), module
    assert f"`MARK_WORK_PIXELS` ({provenance.MARK_WORK_PIXELS // 1_000_000} MP)" in DOCS
    for path in re.findall(r"`(tests/unit/media/[a-z_]+\.py)`", DOCS):
        assert (ROOT / path).is_file(), path
