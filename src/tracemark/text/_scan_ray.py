"""The Ray Data path of a corpus scan (the ``scale`` extra): the same batches, tested on Ray workers.

The driver reads the corpus (it alone knows which ids are already written) and hands Ray
Data windows of documents; ``map_batches`` runs them on a pool of actors, each of which
loads the tokenizer and the key once.  Rows come back as JSON lines, in any order, and the
driver appends them; a row holds its document's id, so order does not matter for resuming.

The key record, secret included, travels to the workers in the actor's constructor
arguments (Ray's object store): on a cluster, run Ray with TLS if that network is shared.
The model directory must exist at the same path on every worker.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from tracemark.errors import MissingExtraError, TracemarkError
from tracemark.keys import TextKey
from tracemark.text._scan import Document, ScanOptions, ScanRow, scan_documents
from tracemark.text._tokenizer import TextTokenizer


class ScanStartError(TracemarkError):
    """Ray could not be started for a scan (exit status 1, as any run-time failure)."""


#: Documents per Ray Data dataset: workers start once per window, so a window amortises their start.
WINDOW_DOCUMENTS = 200_000


class _ScanWorker:
    """A Ray Data actor: the tokenizer and key loaded once, then one batch of documents per call."""

    def __init__(self, key_json: bytes, model_dir: str, alpha: float, windows: bool) -> None:
        self.key = TextKey.from_json(key_json)
        self.tokenizer = TextTokenizer(model_dir)
        self.alpha = alpha
        self.windows = windows

    def __call__(self, batch: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        # Strings only: Ray Data may carry a column of None through pandas, where it becomes NaN.
        documents = [
            Document(str(i), None if e else str(t), str(e) or None)
            for i, t, e in zip(batch["id"], batch["text"], batch["error"], strict=True)
        ]
        rows = scan_documents(documents, self.key, self.tokenizer, alpha=self.alpha, windows=self.windows)
        return {"row": np.array([json.dumps(row, ensure_ascii=False) for row in rows], dtype=object)}


def _import_ray() -> Any:
    try:
        import ray  # type: ignore[import-not-found,unused-ignore]
        import ray.data  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise MissingExtraError("'tracemark text scan --ray'", "scale") from None
    return ray


def _start(ray: Any, options: ScanOptions) -> None:
    for name in ("ray", "ray.data"):  # the scan prints its own progress line
        logging.getLogger(name).setLevel(logging.ERROR)
    if ray.is_initialized():
        return
    settings: dict[str, bool] = {"log_to_driver": False, "include_dashboard": False, "configure_logging": False}
    if options.ray_address:
        ray.init(address=options.ray_address, **settings)
    else:
        _start_local(ray, options.workers or os.cpu_count() or 1, settings)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False


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


def _windows(batches: Iterator[list[Document]]) -> Iterator[list[Document]]:
    window: list[Document] = []
    for batch in batches:
        window.extend(batch)
        if len(window) >= WINDOW_DOCUMENTS:
            yield window
            window = []
    if window:
        yield window


def ray_scan_batches(
    batches: Iterator[list[Document]], key: TextKey, tokenizer: TextTokenizer, options: ScanOptions
) -> Iterator[list[ScanRow]]:
    """Rows of ``batches`` computed on Ray Data (``options.workers`` actors, default: Ray's CPUs).

    Ray is imported and started here, before any row is asked for, so a missing extra or an
    unreachable cluster fails before the results file is touched.
    """
    ray = _import_ray()
    _start(ray, options)
    workers = options.workers or max(1, int(ray.available_resources().get("CPU", 1)))
    warnings.filterwarnings("ignore", module="ray")
    return _run(ray, batches, key, tokenizer, options, workers)


def _run(
    ray: Any,
    batches: Iterator[list[Document]],
    key: TextKey,
    tokenizer: TextTokenizer,
    options: ScanOptions,
    workers: int,
) -> Iterator[list[ScanRow]]:
    for window in _windows(batches):
        dataset = ray.data.from_items(
            [{"id": d.id, "text": d.text or "", "error": d.error or ""} for d in window],
            # One block per batch: the actors take blocks as they finish, so at the end at most one
            # batch's work runs on one worker alone (a few large blocks left one worker idle for seconds).
            override_num_blocks=max(1, -(-len(window) // options.batch_size)),
        ).map_batches(
            _ScanWorker,
            fn_constructor_kwargs={
                "key_json": key.to_json(),
                "model_dir": str(tokenizer.model_dir.resolve()),
                "alpha": options.alpha,
                "windows": options.windows,
            },
            batch_size=options.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
        )
        for result in dataset.iter_batches(batch_format="numpy", batch_size=options.batch_size):
            yield [json.loads(line) for line in result["row"].tolist()]
