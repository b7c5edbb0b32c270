"""The Ray path of a corpus scan (the ``scale`` extra): the workers read, test and serialise.

The driver only plans: it lists the input files and cuts them into *shards* (a byte range of
a JSONL file holding ``batch_size`` lines, with the number of its first line; a row group of a
Parquet file; a whole compressed file; a group of plain files).  A fixed number of actors
(:class:`_ScanWorker`) each read a shard with the same readers as the in-process scan, skip the
ids already written, test batches with :func:`scan_documents` and return each row as the very
line the results file will hold, so the driver neither parses nor serialises a document.  The
driver writes the answers in shard order, and a row only if its id is new: a duplicate id later
in the corpus is written once, the first copy, exactly as in-process, and a file that cannot be
read stops the scan at the same place in the corpus, after the rows before it are written.

Two engines run the same actors: plain Ray Core actors that the driver feeds shards as they
finish them (``ray_engine="actors"``, the default), and Ray Data's ``map_batches`` over an actor
pool, one block per shard, ``preserve_order`` (``"data"``).  They write the same bytes; Ray Data
costs more CPU beside the workers (its executor in the driver, its own actors, ``ray.data`` and
pyarrow imported by every worker), which on a small machine comes out of the scan itself
(``docs/scale.md``).

The key record, secret included, travels to the workers in the actor's constructor
arguments (Ray's object store): on a cluster, run Ray with TLS if that network is shared.
The model directory and the input files must exist at the same paths on every worker.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import numpy as np

from tracemark.errors import InvalidInputError, MissingExtraError, TracemarkError
from tracemark.keys import TextKey
from tracemark.text._scan import (
    _JSONL_SUFFIXES,
    _PARQUET_SUFFIXES,
    Document,
    RowsChunk,
    ScanOptions,
    ScanRow,
    _file_documents,
    _inner_suffix,
    _jsonl_lines,
    _read_parquet,
    _tested_p_value,
    file_errors_typed,
    input_files,
    row_line,
    scan_documents,
)
from tracemark.text._tokenizer import TextTokenizer


class ScanStartError(TracemarkError):
    """Ray could not be started for a scan (exit status 1, as any run-time failure)."""


_CHUNK = 1 << 20  # bytes read at a time while planning shards


# ---------------------------------------------------------------- planning (driver)


class Shard(TypedDict, total=False):
    """One Ray Data row: a piece of the corpus one worker reads (``kind`` says which members it has)."""

    kind: str  # "jsonl" (a byte range), "parquet" (a row group), "file" (a whole file), "plain" (plain files)
    path: str
    paths: list[str]
    start: int  # jsonl: first byte
    end: int  # jsonl: byte after the last line
    line: int  # jsonl: lines of the file before the range
    group: int  # parquet: row group
    row: int  # parquet: rows of the file before the group


def plan_shards(inputs: Sequence[Path | str], lines_per_shard: int) -> list[Shard]:
    """The shards of ``inputs`` in scan order; reading them one after another gives the documents
    of :func:`read_documents`.  Only line breaks and Parquet footers are read here."""
    shards: list[Shard] = []
    plain: list[Path] = []

    def flush_plain() -> None:
        if plain:
            shards.append({"kind": "plain", "paths": [str(p) for p in plain]})
            plain.clear()

    for file in input_files(inputs):
        kind = _inner_suffix(file)
        compressed = file.suffix.lower() in (".gz", ".zst")
        if kind in _JSONL_SUFFIXES or kind in _PARQUET_SUFFIXES:
            flush_plain()
            if compressed:
                shards.append({"kind": "file", "path": str(file)})
            elif kind in _JSONL_SUFFIXES:
                shards.extend(_jsonl_shards(file, lines_per_shard))
            else:
                shards.extend(_parquet_shards(file))
        else:
            plain.append(file)
            if len(plain) >= lines_per_shard:
                flush_plain()
    flush_plain()
    return shards


def _jsonl_shards(file: Path, lines: int) -> list[Shard]:
    """Byte ranges of ``lines`` lines each (the last may hold fewer), each with the count of lines before it."""
    shards: list[Shard] = []
    start = offset = before = counted = 0
    try:
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                position = 0
                while True:
                    if chunk.count(b"\n", position) < lines - counted:
                        counted += chunk.count(b"\n", position)
                        break
                    for _ in range(lines - counted):
                        position = chunk.index(b"\n", position) + 1
                    end = offset + position
                    shards.append({"kind": "jsonl", "path": str(file), "start": start, "end": end, "line": before})
                    before += lines
                    start, counted = end, 0
                offset += len(chunk)
    except OSError:
        # the worker reading it raises the error at its place in the corpus
        return [{"kind": "file", "path": str(file)}]
    if offset > start:
        shards.append({"kind": "jsonl", "path": str(file), "start": start, "end": offset, "line": before})
    return shards


def _parquet_shards(file: Path) -> list[Shard]:
    """One shard per row group, with the count of rows before it (a Parquet file is split no finer)."""
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped,import-not-found,unused-ignore]

        metadata = pq.ParquetFile(file).metadata
        groups = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
    except Exception:  # missing pyarrow or not a Parquet file: the worker reading it raises the typed error
        return [{"kind": "file", "path": str(file)}]
    shards: list[Shard] = []
    row = 0
    for group, rows in enumerate(groups):
        shards.append({"kind": "parquet", "path": str(file), "group": group, "row": row})
        row += rows
    return shards or [{"kind": "file", "path": str(file)}]


# ---------------------------------------------------------------- reading and testing (workers)


class _ByteRange(io.RawIOBase):
    """Bytes ``start`` to ``end`` of a file, as a stream."""

    def __init__(self, path: str, start: int, end: int) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 (closed with the stream)
        self._file.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer).cast("B")[: self._left]
        count = self._file.readinto(view)
        self._left -= count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


def shard_documents(shard: Shard, max_chars: int) -> Iterator[Document]:
    """The documents of one shard, named as :func:`read_documents` names them (paths as given:
    a relative one is read from the driver's working folder, which the worker moves to)."""
    kind = shard["kind"]
    if kind == "plain":
        for path in shard["paths"]:
            yield from file_errors_typed(Path(path), _file_documents(Path(path), max_chars))
        return
    file = Path(shard["path"])
    documents: Iterator[Document]
    if kind == "jsonl":
        documents = _range_documents(file, int(shard["start"]), int(shard["end"]), int(shard["line"]), max_chars)
    elif kind == "parquet":
        documents = _read_parquet(file, max_chars, row_group=int(shard["group"]), row=int(shard["row"]))
    else:
        documents = _file_documents(file, max_chars)
    yield from file_errors_typed(file, documents)


def _range_documents(file: Path, start: int, end: int, before: int, max_chars: int) -> Iterator[Document]:
    with io.BufferedReader(_ByteRange(str(file), start, end), buffer_size=_CHUNK) as stream:
        yield from _jsonl_lines(stream, file, max_chars, before)


_Batch = dict[str, "np.ndarray[Any, Any]"]


class ShardRows(NamedTuple):
    """What a worker returns for one shard: per row its id, its results-file line and counts, and
    ``stop`` (empty, or why the scan stops after these rows: a file that cannot be read)."""

    ids: list[str]
    lines: list[str]
    marked: list[bool]
    errors: list[bool]
    tokens: list[int]
    p_values: list[float | None]
    stop: str


class _ScanWorker:
    """A scan actor: the tokenizer and key loaded once, then one shard per call, read here.

    ``scan`` answers one shard (Ray Core actors, the default engine); calling the actor answers a
    Ray Data batch of shards (``map_batches``)."""

    def __init__(
        self,
        key_json: bytes,
        model_dir: str,
        alpha: float,
        windows: bool,
        max_chars: int,
        batch_size: int,
        done: frozenset[str],
        folder: str,
    ) -> None:
        if os.path.isdir(folder):  # relative input paths name the driver's files (a worker starts elsewhere)
            os.chdir(folder)
        self.key = TextKey.from_json(key_json)
        self.tokenizer = TextTokenizer(model_dir)
        self.alpha = alpha
        self.windows = windows
        self.max_chars = max_chars
        self.batch_size = batch_size
        self.done = done
        # Ray's modules (about 260,000 objects) are never freed: keep them out of the collector's full
        # passes, which would otherwise walk them again and again while documents come and go.
        gc.freeze()

    def scan(self, shard: Shard) -> ShardRows:
        """The rows of one shard, in order (Ray Core)."""
        rows: list[ScanRow] = []
        stop = ""
        for piece in self._pieces(shard):
            if isinstance(piece, TracemarkError):
                stop = _stop_reason(piece)
            else:
                rows.extend(piece)
        return ShardRows(
            ids=[row["id"] for row in rows],
            lines=[row_line(row) for row in rows],
            marked=[bool(row["marked"]) for row in rows],
            errors=[row["error"] is not None for row in rows],
            tokens=[row["tokens_total"] for row in rows],
            p_values=[_tested_p_value(row) for row in rows],
            stop=stop,
        )

    def __call__(self, batch: _Batch) -> Iterator[_Batch]:
        """Ray Data: a batch of shards in, a batch of rows out per detection batch."""
        for spec in batch["shard"].tolist():
            for piece in self._pieces(json.loads(spec)):
                yield _stop(piece) if isinstance(piece, TracemarkError) else _columns(piece)

    def _pieces(self, shard: Shard) -> Iterator[list[ScanRow] | TracemarkError]:
        """The shard's rows batch by batch, then the error that stops the scan if a file cannot be read."""
        pending: list[Document] = []
        seen: set[str] = set()  # the driver keeps the first copy of an id; later copies in a shard are not tested
        try:
            for doc in shard_documents(shard, self.max_chars):
                if doc.id in self.done or doc.id in seen:
                    continue
                seen.add(doc.id)
                pending.append(doc)
                if len(pending) >= self.batch_size:
                    yield self._tested(pending)
                    pending = []
        except TracemarkError as exc:
            if pending:
                yield self._tested(pending)
            yield exc
            return
        if pending:
            yield self._tested(pending)

    def _tested(self, documents: list[Document]) -> list[ScanRow]:
        return scan_documents(documents, self.key, self.tokenizer, alpha=self.alpha, windows=self.windows)


def _columns(rows: list[ScanRow]) -> _Batch:
    return {
        "id": np.array([row["id"] for row in rows], dtype=object),
        "line": np.array([row_line(row) for row in rows], dtype=object),
        "marked": np.array([bool(row["marked"]) for row in rows], dtype=np.bool_),
        "error": np.array([row["error"] is not None for row in rows], dtype=np.bool_),
        "tokens": np.array([row["tokens_total"] for row in rows], dtype=np.int64),
        # NaN for an error row (the "error" column says which rows those are)
        "p_value": np.array([np.nan if (p := _tested_p_value(row)) is None else p for row in rows], dtype=np.float64),
        "stop": np.array([""] * len(rows), dtype=object),
    }


def _stop_reason(exc: TracemarkError) -> str:
    """``exc`` (a file that cannot be read) as text the driver turns back into the same error."""
    if isinstance(exc, MissingExtraError):
        return json.dumps({"extra": exc.extra, "feature": exc.feature})
    return json.dumps({"message": str(exc)})


def _stop(exc: TracemarkError) -> _Batch:
    """The one-row batch that tells the driver to stop with ``exc`` (Ray Data)."""
    return {
        "id": np.array([""], dtype=object),
        "line": np.array([""], dtype=object),
        "marked": np.zeros(1, dtype=np.bool_),
        "error": np.zeros(1, dtype=np.bool_),
        "tokens": np.zeros(1, dtype=np.int64),
        "p_value": np.full(1, np.nan),
        "stop": np.array([_stop_reason(exc)], dtype=object),
    }


def _raise_stop(stop: str) -> None:
    reason = json.loads(stop)
    if "extra" in reason:
        raise MissingExtraError(str(reason["feature"]), str(reason["extra"]))
    raise InvalidInputError(str(reason["message"]))


# ---------------------------------------------------------------- the driver


def _import_ray(*, data: bool) -> Any:
    try:
        import ray  # type: ignore[import-not-found,unused-ignore]

        if data:
            import ray.data  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise MissingExtraError("'tracemark text scan --ray'", "scale") from None
    return ray


def _start(ray: Any, options: ScanOptions) -> None:
    for name in ("ray", "ray.data"):  # the scan prints its own progress line
        logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        settings: dict[str, bool] = {"log_to_driver": False, "include_dashboard": False, "configure_logging": False}
        if options.ray_address:
            ray.init(address=options.ray_address, **settings)
        else:
            _start_local(ray, options.workers or os.cpu_count() or 1, settings)
    if options.ray_engine == "data":
        configure_data_context(ray)


def configure_data_context(ray: Any) -> None:
    """Ray Data as a scan needs it: outputs in corpus order, and none of the progress bars
    and statistics logs it would compute for a person watching (the scan prints its own line)."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    context.verbose_stats_logs = False
    context.enable_get_object_locations_for_metrics = False
    context.execution_options.preserve_order = True
    context.execution_options.verbose_progress = False


def _start_local(ray: Any, cpus: int, settings: dict[str, bool]) -> None:
    """A local Ray, tried twice: on a loaded machine its raylet can give up waiting (15 s, fixed in Ray)
    for its metrics agent to start, and a second start usually finds the machine less busy."""
    for attempt in (1, 2):
        try:
            ray.init(num_cpus=cpus, **settings)
            return
        except Exception as exc:  # Ray raises a bare Exception for a node that did not start
            ray.shutdown()
            if attempt == 2:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ScanStartError(f"a local Ray could not start (tried twice): {first}") from None


class WorkerArguments(TypedDict):
    """What every scan actor is built with (:class:`_ScanWorker`'s keyword arguments)."""

    key_json: bytes
    model_dir: str
    alpha: float
    windows: bool
    max_chars: int
    batch_size: int
    done: object  # the ids already in the results file: a frozenset, or Ray's reference to one
    folder: str


def ray_scan(
    inputs: Sequence[Path | str], key: TextKey, tokenizer: TextTokenizer, options: ScanOptions, done: set[str]
) -> Iterator[RowsChunk]:
    """Rows of the documents of ``inputs`` whose id is not in ``done``, computed on Ray
    (``options.workers`` actors, default: Ray's CPUs), in corpus order; ``done`` gains their ids.

    Ray is imported and started and the inputs are listed here, before any row is asked for,
    so a missing extra, an unreachable cluster or a missing input fails before the results
    file is touched.
    """
    ray = _import_ray(data=options.ray_engine == "data")
    shards = plan_shards(inputs, options.batch_size)
    _start(ray, options)
    workers = options.workers or max(1, int(ray.available_resources().get("CPU", 1)))
    warnings.filterwarnings("ignore", module="ray")
    arguments: WorkerArguments = {
        "key_json": key.to_json(),
        "model_dir": str(tokenizer.model_dir.resolve()),
        "alpha": options.alpha,
        "windows": options.windows,
        "max_chars": options.max_chars,
        "batch_size": options.batch_size,
        "done": frozenset(done),
        "folder": os.getcwd(),
    }
    if options.ray_engine == "data":
        return _run_data(ray, shards, arguments, workers, done)
    return _run_actors(ray, shards, arguments, workers, done)


#: Shards in flight per actor: one running, one queued, so an actor never waits for the driver.
_IN_FLIGHT = 2


def _run_actors(
    ray: Any, shards: list[Shard], arguments: WorkerArguments, workers: int, done: set[str]
) -> Iterator[RowsChunk]:
    """Ray Core: ``workers`` actors, each fed shards as it finishes them; rows come back in corpus order.

    A shard's answer waits in the driver until every shard before it has been written; shards
    are handed out no more than ``4 * workers`` ahead of the next one to write, which bounds
    that wait's memory."""
    if not shards:
        return
    scanner = ray.remote(num_cpus=1, max_restarts=0)(_ScanWorker)
    arguments = {**arguments, "done": ray.put(arguments["done"])}  # the actors get the set itself
    actors = [scanner.remote(**arguments) for _ in range(workers)]
    window = 4 * workers
    pending: dict[Any, tuple[int, Any]] = {}  # answer -> (shard index, actor)
    loads = dict.fromkeys(range(workers), 0)
    answers: dict[int, ShardRows] = {}
    submitted = written = 0

    def feed() -> None:
        nonlocal submitted
        for slot in sorted(loads, key=loads.__getitem__):
            while loads[slot] < _IN_FLIGHT and submitted < len(shards) and submitted - written < window:
                pending[actors[slot].scan.remote(shards[submitted])] = (submitted, slot)
                loads[slot] += 1
                submitted += 1

    try:
        feed()
        while written < len(shards):
            ready, _ = ray.wait(list(pending), num_returns=1)
            index, slot = pending.pop(ready[0])
            loads[slot] -= 1
            answers[index] = ray.get(ready[0])
            while written in answers:
                answer = answers.pop(written)
                written += 1
                yield _new_rows(
                    answer.ids, answer.lines, answer.marked, answer.errors, answer.tokens, answer.p_values, done
                )
                if answer.stop:
                    _raise_stop(answer.stop)
            feed()
    finally:
        for actor in actors:  # their CPUs are free for the next scan at once
            ray.kill(actor)


def _run_data(
    ray: Any, shards: list[Shard], arguments: WorkerArguments, workers: int, done: set[str]
) -> Iterator[RowsChunk]:
    """Ray Data: one block per shard, ``map_batches`` over a fixed pool of ``workers`` actors."""
    if not shards:
        return
    dataset = ray.data.from_items(
        [{"shard": json.dumps(shard)} for shard in shards],
        # One block per shard (about one batch of documents): the actors take blocks as they
        # finish, so at the end at most one batch's work runs on one worker alone.
        override_num_blocks=len(shards),
    ).map_batches(
        _ScanWorker,
        fn_constructor_kwargs=arguments,
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    for result in dataset.iter_batches(batch_format="numpy", batch_size=None):
        stops = result["stop"].tolist()
        ids = result["id"].tolist()
        end = next((i for i, stop in enumerate(stops) if stop), len(ids))
        yield _new_rows(
            ids[:end],
            result["line"].tolist(),
            result["marked"].tolist(),
            result["error"].tolist(),
            result["tokens"].tolist(),
            result["p_value"].tolist(),
            done,
        )
        if end < len(ids):
            _raise_stop(stops[end])


def _new_rows(
    ids: list[str],
    lines: list[str],
    marked: list[bool],
    errors: list[bool],
    tokens: list[int],
    p_values: list[float | None],
    done: set[str],
) -> RowsChunk:
    """The rows of ``ids`` not written before (a duplicate id: the first copy in corpus order is kept)."""
    kept: list[str] = []
    tested: list[float] = []
    counts = [0, 0, 0]
    for i, doc_id in enumerate(ids):
        if doc_id in done:
            continue
        done.add(doc_id)
        kept.append(lines[i])
        counts[0] += marked[i]
        counts[1] += errors[i]
        counts[2] += tokens[i]
        if not errors[i] and (p := p_values[i]) is not None:
            tested.append(float(p))
    return RowsChunk("".join(kept), len(kept), counts[0], counts[1], counts[2], tuple(tested))
