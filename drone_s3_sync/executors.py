"""Where the stages run their jobs: thread pools made in one place, one bounded
submit helper, and a serial executor so that tests can run the whole pipeline
on one thread, deterministically.

The pipeline passes an `Executors` to every stage; no stage makes a pool of its
own. `Executors.serial()` runs every job at submit time, on the caller's thread.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Callable, Deque, Iterable, Iterator, Optional, Tuple, TypeVar

K = TypeVar("K")
V = TypeVar("V")

# Jobs in flight at once: a Future per file for 100,000 files costs ~100 MB.
WINDOW = 1000


def hash_workers() -> int:
    # hashlib releases the GIL on large buffers: one thread per core keeps every
    # core busy, a couple more hide disk latency.
    return (os.cpu_count() or 1) + 2


class SerialExecutor(Executor):
    """Runs each job when it is submitted, on the submitting thread."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to whoever reads the future, as a pool would
                future.set_exception(exc)
        return future


class Executors:
    """Makes the pools of a run. `pool(workers, name)` is a context manager
    that, when its block is left by an exception (Ctrl-C, SIGTERM), drops the
    jobs not yet started instead of running them all first as the executor's
    own exit would, and does not wait for the running ones."""

    def __init__(self, serial: bool = False):
        self.is_serial = serial

    @classmethod
    def serial(cls) -> "Executors":
        return cls(serial=True)

    @contextlib.contextmanager
    def pool(self, workers: int, name: str) -> Iterator[Executor]:
        if self.is_serial:
            yield SerialExecutor()
            return
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        try:
            yield pool
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def bounded(pool: Executor, jobs: Iterable[Tuple[K, Callable[[], V]]], errors: Tuple[type, ...] = (),
            window: int = WINDOW) -> Iterator[Tuple[K, Optional[V], Optional[BaseException]]]:
    """Runs `jobs` on `pool` with at most `window` submitted and unsettled at a
    time; yields (name, result, error) in submission order. Errors of the
    types in `errors` are yielded, others raised."""
    pending: Deque[Tuple[K, Future]] = deque()
    for name, job in jobs:
        pending.append((name, pool.submit(job)))
        if len(pending) >= window:
            yield _settle(*pending.popleft(), errors)
    while pending:
        yield _settle(*pending.popleft(), errors)


def _settle(name, future: Future, errors: Tuple[type, ...]):
    try:
        return name, future.result(), None
    except errors as exc:
        return name, None, exc
