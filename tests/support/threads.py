"""Running test work in several threads at once, with a thread's failure failing the test."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_in_threads(count: int, work: Callable[[int], object]) -> None:
    """``work(0)`` .. ``work(count - 1)``, each in its own thread, released together by a barrier; waits for all
    and re-raises the first exception a thread raised (a bare ``threading.Thread`` only warns about it)."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # collected, then re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
