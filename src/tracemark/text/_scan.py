"""Corpus scans: test every document of a corpus for one key, resumably, in-process or on Ray Data.

A scan reads documents (JSONL with ``id`` and ``text``, Parquet, plain text files, folders
of them, gzip or zstd compressed), tests each one with the whole-text de-duplicated test of
:func:`detect_batch` (or, with ``windows=True``, the windowed test of
:func:`detect_watermark`), and appends one row per document to a results file.  Rows are
written as they are computed, so a scan that stops is resumed by running it again with the
same output: documents whose id is already written are skipped.

Problems of one document (a line that is not JSON, a missing ``text``, a line over the
size limit, an empty text) become *error rows* (``error`` set, no verdict) and the scan goes
on; problems of a whole file (missing, unreadable, a corrupt gzip or zstd stream, a Parquet
file without a ``text`` column) raise :class:`~tracemark.errors.InvalidInputError` naming
the file, after the rows computed so far are written.

The summary states what the count of marked documents means across the corpus: the
expected number of false positives at ``alpha`` if no document were marked, the
Bonferroni threshold (``alpha / documents``) with its count, and the Benjamini-Hochberg
discoveries at the chosen false discovery rate.
"""

from __future__ import annotations

import array
import gzip
import io
import json
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypedDict

import numpy as np

from tracemark._stats import benjamini_hochberg
from tracemark.errors import InvalidInputError, MissingExtraError, TracemarkError
from tracemark.keys import TextKey
from tracemark.text._batch import detect_batch
from tracemark.text._canonical import canonicalize, offset_map
from tracemark.text._detect import DEFAULT_ALPHA, DEFAULT_MAX_CHARS, check_key_fits, detect_watermark
from tracemark.text._tokenizer import TextTokenizer
from tracemark.text._verdict import SpanJSON, _number

#: Format tag of each results row and of the summary.
SCAN_ROW_FORMAT = "tracemark.text.scan-row/v1"
SCAN_SUMMARY_FORMAT = "tracemark.text.scan-summary/v1"
#: Default false discovery rate for the Benjamini-Hochberg view.
DEFAULT_FDR = 0.05
#: Documents per detection batch (and per Ray shard).
DEFAULT_BATCH_SIZE = 512
#: How ``--ray`` runs: Ray Core actors (default) or Ray Data (:attr:`ScanOptions.ray_engine`).
RAY_ENGINES = ("actors", "data")

_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_PARQUET_SUFFIXES = (".parquet", ".pq")


class ScanRow(TypedDict):
    """One document's result (``tracemark.text.scan-row/v1``); ``error`` rows carry no verdict."""

    format: str
    id: str
    marked: bool | None
    p_value: float | None
    log10_p_value: float | None
    tokens_total: int
    tokens_scored: int
    spans: list[SpanJSON]
    key_id: str
    scheme: str
    scheme_version: str
    error: str | None


class ScanSummaryJSON(TypedDict):
    """:meth:`ScanSummary.to_json` (``tracemark.text.scan-summary/v1``)."""

    format: str
    out: str
    key_id: str
    scheme: str
    scheme_version: str
    documents: int
    documents_tested: int
    errors: int
    tokens_total: int
    marked: int
    alpha: float
    expected_false_positives: float
    bonferroni_threshold: float | None
    bonferroni_marked: int
    fdr: float
    benjamini_hochberg_threshold: float | None
    benjamini_hochberg_discoveries: int
    resumed_documents: int
    multiple_testing: str


@dataclass(frozen=True)
class Document:
    """One document to test: its id and text, or why it cannot be tested."""

    id: str
    text: str | None
    error: str | None = None


@dataclass(frozen=True)
class ScanProgress:
    """Counts so far, handed to a progress callback after every batch."""

    documents: int
    marked: int
    errors: int
    tokens: int
    seconds: float


@dataclass(frozen=True)
class ScanOptions:
    """How to scan: the test, batching, and where it runs."""

    alpha: float = DEFAULT_ALPHA
    fdr: float = DEFAULT_FDR
    windows: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    max_chars: int = DEFAULT_MAX_CHARS
    ray: bool = False
    ray_address: str | None = None
    workers: int | None = None
    #: ``"actors"``: Ray Core actors fed shards by the driver (the default: less CPU beside the
    #: workers); ``"data"``: Ray Data's ``map_batches`` over an actor pool.  Same rows either way.
    ray_engine: str = "actors"


@dataclass(frozen=True)
class ScanSummary:
    """What a whole results file says, with the multiple-testing view of its p-values."""

    out: str
    key_id: str
    scheme: str
    scheme_version: str
    documents: int
    documents_tested: int
    errors: int
    tokens_total: int
    marked: int
    alpha: float
    expected_false_positives: float
    bonferroni_threshold: float | None
    bonferroni_marked: int
    fdr: float
    benjamini_hochberg_threshold: float | None
    benjamini_hochberg_discoveries: int
    resumed_documents: int

    def to_json(self) -> ScanSummaryJSON:
        """The summary as JSON, with the sentence that says what the counts mean."""
        return ScanSummaryJSON(
            format=SCAN_SUMMARY_FORMAT,
            out=self.out,
            key_id=self.key_id,
            scheme=self.scheme,
            scheme_version=self.scheme_version,
            documents=self.documents,
            documents_tested=self.documents_tested,
            errors=self.errors,
            tokens_total=self.tokens_total,
            marked=self.marked,
            alpha=self.alpha,
            expected_false_positives=self.expected_false_positives,
            bonferroni_threshold=self.bonferroni_threshold,
            bonferroni_marked=self.bonferroni_marked,
            fdr=self.fdr,
            benjamini_hochberg_threshold=self.benjamini_hochberg_threshold,
            benjamini_hochberg_discoveries=self.benjamini_hochberg_discoveries,
            resumed_documents=self.resumed_documents,
            multiple_testing=self.multiple_testing,
        )

    @property
    def multiple_testing(self) -> str:
        """The multiple-testing statement, in words."""
        return (
            f"each verdict holds at alpha {self.alpha:g} on its own; over {self.documents_tested} documents "
            f"{self.expected_false_positives:.3g} false positives are expected if none is marked "
            f"(fewer: binomial p-values are conservative; one key's count on similar texts strays more, "
            f"see docs/text-watermark.md); family-wise (Bonferroni, p <= alpha/documents): "
            f"{self.bonferroni_marked}; Benjamini-Hochberg at FDR {self.fdr:g}: "
            f"{self.benjamini_hochberg_discoveries} discoveries"
        )


# ---------------------------------------------------------------- reading corpora


def _open_decompressed(path: Path) -> io.BufferedIOBase:
    """The file's bytes, gunzipped or un-zstd'ed by suffix."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".zst":
        try:
            import zstandard  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise InvalidInputError(
                f"{path}: reading .zst needs the zstandard package (pip install zstandard)"
            ) from None
        reader = zstandard.ZstdDecompressor().stream_reader(path.open("rb"), closefd=True)
        return io.BufferedReader(reader)
    return path.open("rb")


def _inner_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst"):
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _jsonl_document(line: bytes, where: str, max_chars: int) -> Document:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return Document(where, None, f"not a JSON object: {str(exc)[:80]}")
    if not isinstance(record, dict):
        return Document(where, None, "not a JSON object")
    raw_id = record.get("id", where)
    doc_id = str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else where
    text = record.get("text")
    if not isinstance(text, str):
        return Document(doc_id, None, "no 'text' string")
    return _checked(doc_id, text, max_chars)


def _checked(doc_id: str, text: str, max_chars: int) -> Document:
    if len(text) > max_chars:
        return Document(doc_id, None, f"text has {len(text)} characters; the limit is {max_chars}")
    if "\x00" in text:
        return Document(doc_id, None, "text contains NUL characters")
    return Document(doc_id, text)


def _read_jsonl(path: Path, max_chars: int) -> Iterator[Document]:
    with _open_decompressed(path) as stream:
        yield from _jsonl_lines(stream, path, max_chars)


def _jsonl_lines(stream: io.BufferedIOBase, path: Path, max_chars: int, number: int = 0) -> Iterator[Document]:
    """The documents of the JSONL lines left in ``stream``, the first numbered ``number + 1``
    (a Ray worker reads a byte range of a file starting at a known line)."""
    # A line is read with a bound (4 bytes per character at most), so a huge line costs no more memory.
    limit = 4 * max_chars + 2
    while line := stream.readline(limit):
        number += 1
        where = f"{path}:{number}"
        if len(line) >= limit and not line.endswith(b"\n"):
            while (rest := stream.readline(limit)) and not rest.endswith(b"\n"):
                pass
            yield Document(where, None, f"line longer than {limit} bytes")
            continue
        if line.strip():
            yield _jsonl_document(line, where, max_chars)


def _read_parquet(path: Path, max_chars: int, row_group: int | None = None, row: int = 0) -> Iterator[Document]:
    """The documents of a Parquet file, or of one of its row groups (its first row numbered ``row + 1``)."""
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise MissingExtraError("reading Parquet", "scale") from None
    try:
        table = pq.ParquetFile(path)
        names = table.schema_arrow.names
    except Exception as exc:  # pyarrow raises its own ArrowException family
        raise InvalidInputError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
    if "text" not in names:
        raise InvalidInputError(f"{path}: Parquet file has no 'text' column")
    columns = ["text", "id"] if "id" in names else ["text"]
    groups = None if row_group is None else [row_group]
    for batch in table.iter_batches(columns=columns, batch_size=4096, row_groups=groups):
        data = batch.to_pydict()
        ids = data.get("id") or [None] * len(data["text"])
        for doc_id, text in zip(ids, data["text"], strict=True):
            row += 1
            name = str(doc_id) if doc_id is not None else f"{path}:{row}"
            if not isinstance(text, str):
                yield Document(name, None, "no 'text' string")
            else:
                yield _checked(name, text, max_chars)


def _read_plain(path: Path, max_chars: int) -> Iterator[Document]:
    with _open_decompressed(path) as stream:
        data = stream.read(4 * max_chars + 1)
    if len(data) > 4 * max_chars:
        yield Document(str(path), None, f"file larger than {4 * max_chars} bytes")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield Document(str(path), None, f"not valid UTF-8 (byte {exc.start})")
        return
    yield _checked(str(path), text, max_chars)


def _file_documents(path: Path, max_chars: int) -> Iterator[Document]:
    kind = _inner_suffix(path)
    if kind in _PARQUET_SUFFIXES:
        yield from _read_parquet(path, max_chars)
    elif kind in _JSONL_SUFFIXES:
        yield from _read_jsonl(path, max_chars)
    else:
        yield from _read_plain(path, max_chars)


def read_documents(inputs: Iterable[Path | str], *, max_chars: int = DEFAULT_MAX_CHARS) -> Iterator[Document]:
    """Every document of ``inputs`` (files and folders, folders walked in name order).

    A document-level problem comes back as a :class:`Document` with ``error`` set; a
    missing or corrupt file raises :class:`InvalidInputError` naming it.
    """
    for file in input_files(inputs):
        yield from file_errors_typed(file, _file_documents(file, max_chars))


def input_files(inputs: Iterable[Path | str]) -> Iterator[Path]:
    """The files of ``inputs`` in scan order (folders walked in name order); a missing one raises."""
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.exists():
            yield path
        else:
            raise InvalidInputError(f"{path}: no such file or folder")


def file_errors_typed(file: Path, documents: Iterator[Document]) -> Iterator[Document]:
    """``documents`` of ``file``, a failure to read or decode it raised as :class:`InvalidInputError` naming it."""
    try:
        yield from documents
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidInputError(f"{file}: cannot be read ({type(exc).__name__}: {exc})") from None
    except TracemarkError:
        raise
    except Exception as exc:  # zstandard.ZstdError and other decoder failures
        raise InvalidInputError(f"{file}: cannot be decoded ({type(exc).__name__})") from None


# ---------------------------------------------------------------- testing documents


def _error_row(key: TextKey, doc_id: str, error: str) -> ScanRow:
    return ScanRow(
        format=SCAN_ROW_FORMAT, id=doc_id, marked=None, p_value=None, log10_p_value=None, tokens_total=0,
        tokens_scored=0, spans=[], key_id=key.key_id, scheme=key.scheme, scheme_version=key.scheme_version,
        error=error,
    )  # fmt: skip


def _windowed_rows(
    documents: Sequence[Document], key: TextKey, tokenizer: TextTokenizer, alpha: float
) -> list[ScanRow]:
    rows: list[ScanRow] = []
    for doc in documents:
        try:
            verdict = detect_watermark(doc.text or "", key, tokenizer, alpha=alpha, scan_windows=True)
        except InvalidInputError as exc:
            rows.append(_error_row(key, doc.id, exc.diagnostics()))
            continue
        spans = verdict.to_json()["spans"]
        rows.append(ScanRow(
            format=SCAN_ROW_FORMAT, id=doc.id, marked=verdict.marked, p_value=verdict.p_value,
            log10_p_value=_number(verdict.log10_p_value), tokens_total=verdict.tokens_total,
            tokens_scored=verdict.tokens_scored, spans=spans, key_id=key.key_id, scheme=key.scheme,
            scheme_version=key.scheme_version, error=None,
        ))  # fmt: skip
    return rows


def scan_documents(
    documents: Sequence[Document],
    key: TextKey,
    tokenizer: TextTokenizer,
    *,
    alpha: float = DEFAULT_ALPHA,
    windows: bool = False,
) -> list[ScanRow]:
    """One row per document, in order: the batch whole-text test (or the windowed test)."""
    check_key_fits(key, tokenizer)
    rows: list[ScanRow | None] = [None] * len(documents)
    tested: list[int] = []
    canonical: dict[int, str] = {}  # each document is canonicalised once (it was the scan's largest cost)
    for i, doc in enumerate(documents):
        if doc.error is not None or doc.text is None:
            rows[i] = _error_row(key, doc.id, doc.error or "no text")
        elif not (canonical_text := canonicalize(doc.text).text).strip():
            rows[i] = _error_row(key, doc.id, "no text to test (empty after removing invisible characters)")
        else:
            tested.append(i)
            canonical[i] = canonical_text
    if windows:
        for i, row in zip(tested, _windowed_rows([documents[i] for i in tested], key, tokenizer, alpha), strict=True):
            rows[i] = row
        return [r for r in rows if r is not None]
    encoded = [tokenizer.encode(canonical[i]) for i in tested]
    batch = detect_batch([e.ids for e in encoded], key, alpha=alpha)
    log10 = batch.log10_p_values
    width = batch.scheme.context_width
    for j, i in enumerate(tested):
        marked = bool(batch.marked[j])
        spans: list[SpanJSON] = []
        n = int(batch.tokens_total[j])
        if marked:  # the whole-text test marks everything it scored, as detect_tokens reports it
            p = float(batch.p_values[j])
            text = documents[i].text or ""
            back = offset_map(text, canonical[i])  # offsets count characters of the document as given
            offsets = encoded[j].offsets if back is None else back.to_original(encoded[j].offsets)
            spans.append(SpanJSON(
                start_token=width, end_token=n, start_char=int(offsets[width][0]), end_char=int(offsets[n - 1][1]),
                tokens_scored=int(batch.tokens_scored[j]), hits=int(batch.hits[j]), p_value=p, p_value_corrected=p,
            ))  # fmt: skip
        rows[i] = ScanRow(
            format=SCAN_ROW_FORMAT, id=documents[i].id, marked=marked, p_value=float(batch.p_values[j]),
            log10_p_value=_number(float(log10[j])), tokens_total=n, tokens_scored=int(batch.tokens_scored[j]),
            spans=spans, key_id=key.key_id, scheme=key.scheme, scheme_version=key.scheme_version, error=None,
        )  # fmt: skip
    return [r for r in rows if r is not None]


# ---------------------------------------------------------------- results files


class _Results:
    """The results file: JSONL appended row by row; for ``.parquet`` a JSONL journal beside it,
    turned into the Parquet file when the scan completes."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.parquet = out.suffix.lower() in _PARQUET_SUFFIXES
        self.journal = out.with_name(out.name + ".partial.jsonl") if self.parquet else out
        if self.parquet:
            _require_pyarrow()
            if out.exists() and not self.journal.exists():
                self._restore_journal()

    def _restore_journal(self) -> None:
        import pyarrow.parquet as pq  # type: ignore[import-untyped,import-not-found,unused-ignore]

        rows = pq.read_table(self.out).to_pylist()
        with self.journal.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    def rows(self) -> Iterator[ScanRow]:
        """Rows already written (a torn last line from a killed run is ignored and rewritten)."""
        if not self.journal.exists():
            return
        with self.journal.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                try:
                    row = json.loads(line)
                except ValueError:
                    raise InvalidInputError(f"{self.journal}: a line is not a scan row; use a new --out") from None
                if not isinstance(row, dict) or row.get("format") != SCAN_ROW_FORMAT:
                    raise InvalidInputError(f"{self.journal} is not a scan results file; use a new --out")
                yield row  # type: ignore[misc]

    def open_for_append(self) -> IO[str]:
        """Append, first cutting a torn last line left by a killed run."""
        if self.journal.exists():
            data = self.journal.read_bytes()
            end = data.rfind(b"\n") + 1
            if end != len(data):
                with self.journal.open("r+b") as handle:
                    handle.truncate(end)
        return self.journal.open("a", encoding="utf-8")

    def finish(self) -> None:
        """Write the Parquet file from the journal (atomically) and drop the journal."""
        if not self.parquet:
            return
        import pyarrow as pa  # type: ignore[import-untyped,import-not-found,unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-untyped,import-not-found,unused-ignore]

        table = pa.Table.from_pylist(list(self.rows()), schema=_parquet_schema(pa))
        temporary = self.out.with_name(self.out.name + ".tmp")
        pq.write_table(table, temporary)
        temporary.replace(self.out)
        self.journal.unlink()


def _parquet_schema(pa: Any) -> Any:
    counts = ("start_token", "end_token", "start_char", "end_char", "tokens_scored", "hits")
    floats = ("p_value", "p_value_corrected")
    span = pa.struct([(name, pa.int64()) for name in counts] + [(name, pa.float64()) for name in floats])
    return pa.schema([
        ("format", pa.string()), ("id", pa.string()), ("marked", pa.bool_()), ("p_value", pa.float64()),
        ("log10_p_value", pa.float64()), ("tokens_total", pa.int64()), ("tokens_scored", pa.int64()),
        ("spans", pa.list_(span)), ("key_id", pa.string()), ("scheme", pa.string()),
        ("scheme_version", pa.string()), ("error", pa.string()),
    ])  # fmt: skip


def _require_pyarrow() -> None:
    try:
        import pyarrow  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        raise MissingExtraError("writing Parquet", "scale") from None


# ---------------------------------------------------------------- the scan


def row_line(row: ScanRow) -> str:
    """A row as the line the results file holds (the same bytes in-process and on Ray)."""
    return json.dumps(row, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class RowsChunk:
    """Rows ready to append: their JSONL text, what they count, and the p-values of the rows tested
    (the scan's summary is built from these as the rows are written, not by reading the file back)."""

    text: str
    documents: int
    marked: int
    errors: int
    tokens: int
    p_values: tuple[float, ...]

    @classmethod
    def of(cls, rows: Sequence[ScanRow]) -> RowsChunk:
        """The chunk of ``rows``."""
        return cls(
            text="".join(row_line(row) for row in rows),
            documents=len(rows),
            marked=sum(bool(r["marked"]) for r in rows),
            errors=sum(r["error"] is not None for r in rows),
            tokens=sum(r["tokens_total"] for r in rows),
            p_values=tuple(p for p in map(_tested_p_value, rows) if p is not None),
        )


def _tested_p_value(row: ScanRow) -> float | None:
    """A row's p-value if it was tested, None for an error row (the summary counts it as an error)."""
    p = row["p_value"]
    return None if row["error"] is not None or p is None else float(p)


class _Tally:
    """What the summary needs from a results file's rows, gathered as they are read or written."""

    def __init__(self) -> None:
        self.p_values = array.array("d")
        self.documents = self.marked = self.tokens = 0

    def add_row(self, row: ScanRow) -> None:
        self.documents += 1
        p = _tested_p_value(row)
        if p is not None:
            self.p_values.append(p)
            self.marked += bool(row["marked"])
            self.tokens += int(row["tokens_total"])

    def add_chunk(self, chunk: RowsChunk) -> None:
        # an error row is never marked and has no tokens, so the chunk's totals are the tested rows'
        self.documents += chunk.documents
        self.p_values.extend(chunk.p_values)
        self.marked += chunk.marked
        self.tokens += chunk.tokens

    def summary(self, key: TextKey, out: Path, options: ScanOptions, resumed: int) -> ScanSummary:
        """The summary at ``options.alpha`` and ``options.fdr``."""
        column = np.frombuffer(self.p_values, dtype=np.float64) if self.p_values else np.zeros(0)
        tested = int(column.shape[0])
        bonferroni = options.alpha / tested if tested else None
        discoveries, bh_threshold = benjamini_hochberg(column, options.fdr)
        return ScanSummary(
            out=str(out), key_id=key.key_id, scheme=key.scheme, scheme_version=key.scheme_version,
            documents=self.documents, documents_tested=tested, errors=self.documents - tested,
            tokens_total=self.tokens, marked=self.marked, alpha=options.alpha,
            expected_false_positives=options.alpha * tested, bonferroni_threshold=bonferroni,
            bonferroni_marked=int(np.count_nonzero(column <= bonferroni)) if bonferroni is not None else 0,
            fdr=options.fdr, benjamini_hochberg_threshold=bh_threshold, benjamini_hochberg_discoveries=discoveries,
            resumed_documents=resumed,
        )  # fmt: skip


def _batches(documents: Iterator[Document], done: set[str], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in documents:
        if doc.id in done:
            continue
        done.add(doc.id)  # a duplicate id later in the corpus is tested once, like a resumed one
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _check_options(options: ScanOptions) -> None:
    if not 0.0 < options.alpha < 1.0:
        raise InvalidInputError("alpha must lie strictly between 0 and 1")
    if not 0.0 < options.fdr < 1.0:
        raise InvalidInputError("fdr must lie strictly between 0 and 1")
    if options.batch_size < 1:
        raise InvalidInputError("batch size must be at least 1")
    if options.workers is not None and options.workers < 1:
        raise InvalidInputError("workers must be at least 1")
    if options.ray_engine not in RAY_ENGINES:
        raise InvalidInputError(f"ray engine must be one of {', '.join(RAY_ENGINES)}, not {options.ray_engine!r}")


def scan_corpus(
    inputs: Sequence[Path | str],
    key: TextKey,
    tokenizer: TextTokenizer,
    out: Path | str,
    options: ScanOptions = ScanOptions(),
    *,
    progress: Callable[[ScanProgress], None] | None = None,
) -> ScanSummary:
    """Test every document of ``inputs`` for ``key`` and append one row per document to ``out``.

    ``out`` ending in ``.parquet`` gives a Parquet file (needs pyarrow), anything else JSONL.
    Documents whose id ``out`` already holds are skipped, so re-running a stopped scan
    finishes it.  With ``options.ray`` the batches run on Ray Data (the ``scale`` extra).
    """
    _check_options(options)
    check_key_fits(key, tokenizer)
    results = _Results(Path(out))
    tally = _Tally()
    done: set[str] = set()
    for row in results.rows():
        done.add(row["id"])
        tally.add_row(row)
    resumed = len(done)
    computed: Iterator[RowsChunk]
    if options.ray:
        from tracemark.text._scan_ray import ray_scan

        # The workers read the files themselves; the driver only plans shards and writes rows.
        computed = ray_scan(inputs, key, tokenizer, options, done)
    else:
        batches = _batches(read_documents(inputs, max_chars=options.max_chars), done, options.batch_size)
        computed = (
            RowsChunk.of(scan_documents(batch, key, tokenizer, alpha=options.alpha, windows=options.windows))
            for batch in batches
        )
    started = time.monotonic()
    counts = [0, 0, 0, 0]  # documents, marked, errors, tokens
    try:
        with results.open_for_append() as handle:
            for chunk in computed:
                handle.write(chunk.text)
                handle.flush()
                tally.add_chunk(chunk)
                counts[0] += chunk.documents
                counts[1] += chunk.marked
                counts[2] += chunk.errors
                counts[3] += chunk.tokens
                if progress is not None:
                    progress(ScanProgress(counts[0], counts[1], counts[2], counts[3], time.monotonic() - started))
    finally:
        # an interrupted scan releases its Ray workers now, not when the generator is collected
        close = getattr(computed, "close", None)
        if close is not None:
            close()
    summary = tally.summary(key, Path(out), options, resumed)
    results.finish()
    return summary
