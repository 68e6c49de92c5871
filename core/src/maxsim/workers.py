"""Run independent work units on a few single-threaded worker threads.

Many small matrix products, each split over torch's intra-op threads that must meet at
the end of every product, slow to a crawl when another process holds a core: every
product waits for the thread that was descheduled. Workers that each run whole units
on one thread, taking the next unit when done, let a slowed worker simply do fewer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

Unit = TypeVar("Unit")


def run_in_workers(work: Callable[[Unit], None], units: Sequence[Unit]) -> None:
    """Call `work(unit)` for every unit, on up to `torch.get_num_threads()` worker threads.

    Each worker runs torch single-threaded (a thread-local setting), so no product is
    split across threads. The first exception a unit raises is re-raised here after the
    workers stop.

    Example:
        >>> done = []
        >>> run_in_workers(done.append, range(5))
        >>> sorted(done)
        [0, 1, 2, 3, 4]
    """
    threads = torch.get_num_threads()
    count = min(threads, len(units))
    if count <= 1 and threads == 1:
        for unit in units:
            work(unit)
        return
    pending = list(reversed(units))
    lock = threading.Lock()
    errors: list[BaseException] = []
    started = threading.Barrier(count + 1)

    def worker() -> None:
        torch.set_num_threads(1)
        started.wait()
        while True:
            with lock:
                if errors or not pending:
                    return
                unit = pending.pop()
            try:
                work(unit)
            except BaseException as error:
                with lock:
                    errors.append(error)
                return

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(count)]
    for thread in workers:
        thread.start()
    started.wait()
    # A worker's set_num_threads(1) also became the default of threads started later.
    torch.set_num_threads(threads)
    for thread in workers:
        thread.join()
    if errors:
        raise errors[0]
