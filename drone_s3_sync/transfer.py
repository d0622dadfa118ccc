"""The write stages: header updates (metadata-only copy), redirects (zero-byte
PUT) and uploads, then deletes. Each takes the plan's actions and hands every
`Outcome` to `record` as it ends, so that an interrupted run still knows what
it changed. A bounded window of each kind of job is in flight: memory does not
grow with the number of files.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, wait as wait_futures
from dataclasses import replace
from typing import Callable, Deque, FrozenSet, List, Optional, Sequence, Tuple

from .digest import compressed_file
from .errors import StoreError
from .evidence import CompressedCache, read_error_text
from .executors import Executors, WINDOW, hash_workers
from .model import Action, Kind, Outcome, Plan, RemoteDetails
from .order import Wave
from .report import Reporter
from .store import PRECONDITION_FAILED, RemoteStore

log = logging.getLogger("drone_s3_sync")

# How long an interrupted run lets the requests already sent end (so that their
# outcome is known and the uploads abort their multipart uploads themselves)
# before it aborts the multipart uploads still open and stops.
STOP_WAIT = 5.0
COMPRESS_IN_FLIGHT = 8  # uploads of files compressed again, each up to SPOOL_SIZE in memory

Record = Callable[[Outcome], None]


def upload_window(max_concurrency: int) -> int:
    """Uploads handed to the store at once: enough to keep every connection
    busy with small files (one big file alone fills them with its parts)."""
    return max(32, 4 * max_concurrency)


class Writer:
    """Carries out a plan's writes against `store`. `vouched`: keys whose
    headers only the state vouched for; a header write first reads what the
    state does not record (storage class, KMS key, recorded MD5), since a copy
    with REPLACE would drop them."""

    def __init__(self, store: RemoteStore, *, reporter: Reporter, executors: Executors, max_concurrency: int,
                 record: Record, vouched: FrozenSet[str] = frozenset(), cache: Optional[CompressedCache] = None,
                 on_wave: Callable[[str], None] = lambda name: None):
        self.store, self.reporter, self.executors = store, reporter, executors
        self.max_concurrency = max_concurrency
        self.vouched, self.cache = vouched, cache
        self._record = record
        self._fallback: List[Action] = []  # header updates the server could not copy: uploaded instead
        self._fallback_lock = threading.Lock()
        self._on_wave = on_wave

    def finish(self, action: Action, error: str, started: float, etag: str = "") -> None:
        self._record(Outcome(action, ok=not error, error=error, seconds=time.monotonic() - started, etag=etag))

    # ---------------------------------------------------------------- writes
    def write(self, waves: Sequence[Wave]) -> None:
        """The waves one after the other: each ends (every request answered)
        before the next begins. Within a wave, header updates and redirects,
        then uploads, each with the full concurrency."""
        actions = [a for wave in waves for a in wave.actions]
        if not actions:
            return
        self.reporter.begin_transfer(sum(a.size for a in actions if a.kind is Kind.UPLOAD), len(actions),
                                     order=[a.key for a in actions])
        try:
            for number, wave in enumerate(waves, 1):
                self.reporter.wave(number, len(waves), wave.name, len(wave.actions))
                self._on_wave(wave.name)
                self._rewrite_headers([a for a in wave.actions if a.kind in (Kind.UPDATE, Kind.REDIRECT)])
                with self._fallback_lock:
                    fallback, self._fallback = self._fallback, []
                self._upload([a for a in wave.actions if a.kind is Kind.UPLOAD] + fallback)
        finally:
            self.reporter.end_transfer()

    def _rewrite_one(self, action: Action) -> None:
        started = time.monotonic()
        try:
            if action.kind is Kind.REDIRECT:
                etag = self.store.put_redirect(action.key, action.headers)
            else:
                remote = action.remote
                if action.key in self.vouched:
                    remote = self.store.details(action.key, with_acl=False)
                etag = self.store.copy_headers(action.key, action.headers, remote, action.md5,
                                               if_match=action.listed_etag or None)
        except StoreError as exc:
            if exc.code in ("NoSuchKey", "404") and action.kind is Kind.UPDATE and action.local is not None:
                # Listed a moment ago, yet the copy finds no such key: a server that
                # cannot copy this key (s3rver with '+' in it). The bytes go up again.
                log.info("%s: the server answered %s to the header copy; uploading the file again", action.key, exc)
                with self._fallback_lock:
                    self._fallback.append(replace(action, kind=Kind.UPLOAD, listed_etag=""))
            elif exc.code == PRECONDITION_FAILED:
                self.finish(action, "another run or tool wrote this object after it was listed: its headers "
                                    "were not changed; the next run checks it again", started)
            else:
                self.finish(action, str(exc), started)
        else:
            self.finish(action, "", started, etag)

    def _rewrite_headers(self, actions: Sequence[Action]) -> None:
        if not actions:
            return
        pending: Deque[Future] = deque()
        with self.executors.pool(self.max_concurrency, "copy") as pool:
            try:
                for action in actions:
                    pending.append(pool.submit(self._rewrite_one, action))
                    if len(pending) >= WINDOW:
                        pending.popleft().result()
                while pending:
                    pending.popleft().result()
            except BaseException:
                # Nothing new starts; the copies already sent may end, so that
                # their outcomes are known (and invalidated).
                for future in pending:
                    future.cancel()
                wait_futures(pending, timeout=STOP_WAIT)
                raise

    def _kept(self, action: Action) -> Optional[RemoteDetails]:
        """What an upload that only changes an object's headers must keep (its
        encryption and class where the settings leave them unset); read from S3
        when only the state vouched for the object, as for header copies."""
        keep = action.remote
        if keep is not None and action.key in self.vouched:
            keep = replace(self.store.details(action.key, with_acl=False), storage_class=keep.storage_class)
        return keep

    def _upload(self, actions: Sequence[Action]) -> None:
        """At most `upload_window` uploads are with the store at a time; each
        is settled (and reported) as it ends."""
        if not actions:
            return
        ended: "queue.Queue[Tuple[Action, float, str, Optional[BaseException]]]" = queue.Queue()
        limit = upload_window(self.max_concurrency)
        in_flight = 0

        def settle(item, interrupted: bool = False) -> None:
            action, started, etag, error = item
            if error is None:
                self.finish(action, "", started, etag)
            elif not interrupted:  # else: cancelled by the interruption, not failed
                self.finish(action, _upload_error_text(error, action), started)

        def start(action: Action, body, started: float, release: Optional[Callable] = None) -> bool:
            def done(etag: str, error: Optional[BaseException]) -> None:
                if release is not None:
                    release()
                ended.put((action, started, etag, error))
            try:
                self.store.upload(body, action.key, action.headers, action.md5, keep=self._kept(action),
                                  on_progress=self.reporter.advance, on_done=done)
            except Exception as exc:  # a refused argument, or the read of what a header upload keeps
                if release is not None:
                    release()
                self.finish(action, _upload_error_text(exc, action), started)
                return False
            return True

        again = []  # compressed files whose bytes were not kept: compressed again below
        try:
            for action in actions:
                body = action.local.path
                if action.local.encoding:
                    data = self.cache.take(action.key) if self.cache is not None else None
                    if data is None:
                        again.append(action)
                        continue
                    body = io.BytesIO(data)
                while in_flight >= limit:
                    settle(ended.get())
                    in_flight -= 1
                in_flight += start(action, body, time.monotonic())
            if again:
                in_flight += self._upload_compressed(again, start)
            while in_flight:
                settle(ended.get())
                in_flight -= 1
        except BaseException as exc:
            for key, reason in self.store.stop_uploads(exc, STOP_WAIT):
                self.reporter.warn(f"cannot abort the unfinished multipart upload of {key} ({reason}); "
                                   "its parts stay stored until aborted or a lifecycle rule removes them")
            # Uploads that ended while stopping did change the bucket.
            while True:
                try:
                    settle(ended.get_nowait(), interrupted=True)
                except queue.Empty:
                    break
            raise
        self.store.wait_uploads()

    def _upload_compressed(self, actions: Sequence[Action], start) -> int:
        """Compress each file again and start its upload; returns how many were
        started. Compression runs on all cores; at most COMPRESS_IN_FLIGHT such
        bodies (each in memory up to SPOOL_SIZE, in a temporary file beyond)
        exist at once: each is closed, and its place freed, when its upload
        has ended."""
        free = threading.Semaphore(COMPRESS_IN_FLIGHT)
        started_uploads = 0
        pending: Deque[Tuple[Action, float, Future]] = deque()
        workers = min(hash_workers(), COMPRESS_IN_FLIGHT - 1)

        def release_of(body) -> Callable[[], None]:
            def release() -> None:
                body.close()
                free.release()
            return release

        def begin(limit: int) -> None:
            nonlocal started_uploads
            while len(pending) > limit:
                action, started, job = pending.popleft()
                try:
                    body = job.result()
                except OSError as exc:
                    free.release()
                    self.finish(action, read_error_text(exc, action.local.path), started)
                    continue
                started_uploads += start(action, body, started, release_of(body))

        with self.executors.pool(workers, "compress") as pool:
            try:
                for action in actions:
                    if not free.acquire(blocking=False):
                        begin(0)  # every place is now held by an upload in progress
                        free.acquire()
                    pending.append((action, time.monotonic(),
                                    pool.submit(compressed_file, action.local.path, action.local.encoding)))
                    begin(workers)
                begin(0)
            except BaseException:
                for _, _, job in pending:
                    job.cancel()
                    if not job.cancelled() and job.exception() is None:
                        job.result().close()
                raise
        log.debug("compress: %d file(s) compressed again for their upload", len(actions))
        return started_uploads


def _upload_error_text(exc: BaseException, action: Action) -> str:
    """An upload failure; a local file that could not be opened or read is named."""
    if isinstance(exc, OSError):
        return read_error_text(exc, action.local.path)
    return str(exc)


def delete(plan: Plan, store: RemoteStore, record: Record, *, blocked_by: int) -> Tuple[List[Outcome], str]:
    """Deletes run last, and only when every write before them succeeded:
    `blocked_by` counts the failures and problems so far. Returns the outcomes
    and, when the deletes were held back, why."""
    deletes = plan.of(Kind.DELETE)
    if not deletes:
        return [], ""
    if blocked_by:
        return [], f"{len(deletes)} delete(s) not done because {blocked_by} operation(s) failed"
    started = time.monotonic()
    failed = dict(store.delete([a.key for a in deletes]))
    outcomes = []
    for action in deletes:
        outcome = Outcome(action, ok=action.key not in failed, error=failed.get(action.key, ""),
                          seconds=time.monotonic() - started)
        record(outcome)
        outcomes.append(outcome)
    return outcomes, ""
