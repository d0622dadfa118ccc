"""Wires the stages: (scan || list) -> hash -> details -> diff -> transfer ->
delete -> invalidate. It owns the thread pools; the stages take values and
return values."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait as wait_futures
from dataclasses import replace
from functools import partial
from typing import Callable, Deque, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.subscribers import BaseSubscriber

from . import diff, guards
from .config import Settings, secrets_of
from .digest import PART_SIZE, SPOOL_SIZE, Digest, compressed_digest, compressed_file, file_digest
from .errors import ConfigError, GuardError, Interrupted, RemoteError, SyncError
from .invalidate import (InvalidationError, create_invalidation, create_invalidation_retrying, invalidation_paths,
                         new_caller_reference, wait_for_invalidations)
from .model import Action, Kind, LocalFile, Outcome, Plan, RemoteDetails, RemoteObject, Summary
from .redact import Redactor, one_line
from .remote import Store, error_text
from .report import Reporter
from .rules import HeaderRules, Selection
from .scan import check_source, files_named, printable, scan
from .state import STATE_NAME, Entry, decode as decode_state, encode as encode_state, entries_at_risk, next_state, state_key

log = logging.getLogger("drone_s3_sync")
K = TypeVar("K")
V = TypeVar("V")


def hash_workers() -> int:
    # hashlib releases the GIL on large buffers: one thread per core keeps every
    # core busy, a couple more hide disk latency.
    return (os.cpu_count() or 1) + 2


WINDOW = 1000  # jobs in flight at once: a Future per file for 100,000 files costs ~100 MB
# How long an interrupted run lets the requests already sent end (so that their
# outcome is known and s3transfer aborts its multipart uploads itself) before it
# aborts the multipart uploads still open and stops.
STOP_WAIT = 5.0


def upload_window(max_concurrency: int) -> int:
    """Uploads handed to s3transfer at once: enough to keep every connection
    busy with small files (one big file alone fills them with its parts)."""
    return max(32, 4 * max_concurrency)


@contextlib.contextmanager
def thread_pool(workers: int, name: str) -> Iterator[ThreadPoolExecutor]:
    """A ThreadPoolExecutor that, when the block is left by an exception
    (Ctrl-C, SIGTERM), drops the jobs not yet started instead of running them
    all first as the executor's own exit would, and does not wait for the
    running ones."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


CACHE_BUDGET = 256 * 1024 * 1024  # compressed bytes kept from the comparison for the upload
COMPRESS_IN_FLIGHT = 8  # uploads of files compressed again, each up to SPOOL_SIZE in memory


def windowed(pool: ThreadPoolExecutor, jobs: Iterable[Tuple[K, Callable[[], V]]],
             errors: Tuple[type, ...]) -> Iterator[Tuple[K, Optional[V], Optional[BaseException]]]:
    """Runs `jobs` on `pool` with at most WINDOW submitted at a time; yields
    (name, result, error) in submission order."""
    pending: Deque[Tuple[K, Future]] = deque()
    for name, job in jobs:
        pending.append((name, pool.submit(job)))
        if len(pending) >= WINDOW:
            yield _settle(*pending.popleft(), errors)
    while pending:
        yield _settle(*pending.popleft(), errors)


def _settle(name, future: Future, errors: Tuple[type, ...]):
    try:
        return name, future.result(), None
    except errors as exc:
        return name, None, exc


class CompressedCache:
    """Compressed bytes kept from the comparison until the upload, so that a
    file is compressed once per run: each at most `limit` bytes, `budget` bytes
    in all. What is not kept is compressed again for its upload. Thread-safe."""

    def __init__(self, budget: int = CACHE_BUDGET, limit: int = SPOOL_SIZE):
        self.budget, self.limit = budget, limit
        self._data: Dict[str, bytes] = {}
        self._used = 0
        self._lock = threading.Lock()

    def offer(self, key: str, data: bytes) -> None:
        with self._lock:
            if len(data) <= self.limit and self._used + len(data) <= self.budget:
                self._data[key] = data
                self._used += len(data)

    def take(self, key: str) -> Optional[bytes]:
        with self._lock:
            data = self._data.pop(key, None)
            if data is not None:
                self._used -= len(data)
            return data


def _compress_job(local: LocalFile, part_sizes: Sequence[int], cache: Optional[CompressedCache]) -> Digest:
    digest, data = compressed_digest(local.path, local.encoding, part_sizes=part_sizes,
                                     keep=cache.limit if cache is not None else 0)
    if data is not None and cache is not None:
        cache.offer(local.key, data)
    return digest


def hash_files(locals_: Sequence[LocalFile], remotes: Mapping[str, RemoteObject], pool: ThreadPoolExecutor,
               *, state: Mapping[str, Entry] = {}, force_md5: Set[str] = frozenset(),
               everything: bool = False, part_size: int = PART_SIZE,
               cache: Optional[CompressedCache] = None) -> Tuple[Dict[str, Digest], Dict[str, str]]:
    """Hash only the files whose remote copy has the same size: nothing else can
    match. `everything` hashes all given files (xxh3 only unless asked).
    A compressed file is compressed when its MD5 is needed (see
    diff.hash_needs); its bytes are offered to `cache` for the upload.
    Returns the digests and, for each file that could not be read, why."""
    paths = {}

    def jobs():
        for local in locals_:
            need = diff.hash_needs(local, remotes.get(local.key), state.get(local.key), part_size)
            if need is None:
                if not everything:
                    continue
                need = (False, [])
            md5, part_sizes = need
            md5 = md5 or local.key in force_md5
            paths[local.key] = local.path
            if local.encoding is not None and (md5 or part_sizes):
                yield local.key, partial(_compress_job, local, part_sizes, cache)
            else:
                yield local.key, partial(file_digest, local.path, md5=md5, part_sizes=part_sizes,
                                         encoding=local.encoding)

    digests: Dict[str, Digest] = {}
    errors: Dict[str, str] = {}
    for key, digest, error in windowed(pool, jobs(), (OSError,)):
        if error is not None:
            errors[key] = read_error_text(error, paths[key])
        else:
            digests[key] = digest
    return digests, errors


def read_error_text(exc: OSError, path: str) -> str:
    """`cannot read /src/a.txt: No such file or directory`"""
    return f"cannot read {printable(path)}: {exc.strerror or type(exc).__name__}"


def upload_error_text(exc: BaseException, path: str) -> str:
    """An upload failure; a local file s3transfer could not open or read is named.
    botocore wraps every network error in a BotoCoreError, so a bare OSError
    comes from the file."""
    if isinstance(exc, OSError) and not isinstance(exc, BotoCoreError):
        return read_error_text(exc, path)
    return error_text(exc)


def fetch_details(store: Store, keys: Set[str], pool: ThreadPoolExecutor) -> Tuple[Dict[str, RemoteDetails], Dict[str, str]]:
    """HeadObject + GetObjectAcl for each key; (details, {key: error})."""
    details: Dict[str, RemoteDetails] = {}
    errors: Dict[str, str] = {}
    jobs = ((key, partial(store.details, key)) for key in sorted(keys))
    for key, result, error in windowed(pool, jobs, (ClientError, BotoCoreError)):
        if error is not None:
            errors[key] = error_text(error)
        else:
            details[key] = result
    return details, errors


class Run:
    """One sync run; `execute` returns the Summary."""

    def __init__(self, settings: Settings, *, store: Optional[Store] = None, reporter: Optional[Reporter] = None,
                 cloudfront=None, redact: Optional[Callable[[str], str]] = None):
        self.settings = settings
        self.redact = redact or Redactor(secrets_of(settings, {}))
        self.store = store or Store(settings)
        self.reporter = reporter or Reporter(dry_run=settings.dry_run, quiet=settings.quiet, redact=self.redact,
                                             progress_interval=settings.progress_interval)
        self.cloudfront = cloudfront
        self.rules = HeaderRules(settings)
        # Compressed bytes from the comparison, for the upload (a dry run uploads nothing).
        self.cache: Optional[CompressedCache] = CompressedCache() if settings.compress and not settings.dry_run else None
        self.selection = Selection.of(settings)
        self.vouched: Set[str] = set()
        # The state object exists but could not be read: its entries are unknown.
        self.state_unread = False
        self._phase = ""  # the write stage running: "transfer", "delete", "finish"
        self._invalidated: Set[str] = set()  # distributions invalidated by this run
        # Filled in as the run goes: however it ends, the report is built from it.
        self.summary = Summary(plan=Plan(), dry_run=settings.dry_run)
        self._clock = time.monotonic()

    @contextlib.contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        """Adds the time spent in the block to the stage's timing, also when it raises."""
        started = time.monotonic()
        try:
            yield
        finally:
            timings = self.summary.timings
            timings[stage] = timings.get(stage, 0.0) + time.monotonic() - started

    def elapsed(self) -> float:
        return time.monotonic() - self._clock

    def execute(self) -> Summary:
        summary = self.summary
        summary.started, self._clock = time.time(), time.monotonic()
        settings = self.settings
        check_source(settings.source_path(), settings.label("source"))
        # A redirect onto a local file is bad input: refused before any request.
        # The check after the scan below still catches what this one cannot see
        # (names that differ only in Unicode normalisation).
        self._refuse_clashes(files_named(settings.source_path(), [rel for rel, _ in settings.redirects],
                                         self.selection))
        self.reporter.start(settings.bucket, settings.target, settings.endpoint)
        with thread_pool(1, "list") as lister:
            listing = lister.submit(self._list_with_state)
            try:
                with self._timed("scan"):
                    scanned = scan(settings.source_path(), settings.target,
                                   allow_external_symlinks=settings.allow_external_symlinks, selection=self.selection)
                self._refuse_clashes(diff.clashes(scanned.files, settings))
            except BaseException:
                listing.cancel()
                raise
            remotes, state_exists, stored = listing.result()
        # include/exclude: objects of paths they leave out are not this run's to
        # compare or delete (scan left out their files the same way).
        remotes = diff.selected_remotes(remotes, settings, self.selection)
        # `verify` plans as if there were no state, but the state read is still
        # compared with the new one, so an unchanged state is not written again.
        state = {} if settings.verify else stored
        reserved = state_key(settings.target)
        if any(f.key == reserved for f in scanned.files):
            scanned.problems.append(f"{reserved}: this name is reserved for the state object; the file is not synced")
            scanned.files = [f for f in scanned.files if f.key != reserved]
        scanned.files, conflicts = self.rules.with_encodings(scanned.files)
        if conflicts:
            shown = ", ".join(f.key for f in conflicts[:3]) + (", ..." if len(conflicts) > 3 else "")
            scanned.warnings.append(
                f"{settings.label('compress')}: {len(conflicts)} file(s) also match a content_encoding rule ({shown}); "
                "the compression decides their Content-Encoding (gzip or br), the content_encoding rule does not "
                "apply to them")
        for text in scanned.warnings + scanned.problems:
            self.reporter.warn(text)
        if not scanned.files and not (settings.delete and not settings.allow_empty_source):  # else: refused below
            self.reporter.warn(f"the source {settings.source!r} has no files (an empty folder, or a glob that "
                               f"matches nothing{guards.SELECTION_NOTE if settings.include or settings.exclude else ''})")
        log.debug("%d local files, %d remote objects under %r, %d state entries",
                  len(scanned.files), len(remotes), settings.target, len(state))

        with self._timed("hash"):
            digests, details, detail_errors, read_errors = self._inspect(scanned.files, remotes, state)
        with self._timed("plan"):
            plan = diff.make_plan(scanned.files, remotes, digests, details, settings, self.rules, state,
                                  kept_keys=scanned.kept_keys, kept_prefixes=scanned.kept_prefixes)
        summary.plan = plan
        if scanned.problems:
            summary.errors.extend(scanned.problems)
        # A file that could not be read, or whose object's headers could not be
        # read, is left as it is (never deleted either: it is in the plan).
        unsettled = {key: f"{key}: cannot read its headers: {error}" for key, error in detail_errors.items()}
        unsettled.update((key, f"{key}: {error}") for key, error in read_errors.items())
        if unsettled:
            for key in sorted(read_errors):
                self.reporter.warn(read_errors[key])
            plan.actions = [a if a.key not in unsettled else Action(Kind.SKIP, a.key, a.reason, a.local, a.headers)
                            for a in plan.actions]
            summary.errors.extend(unsettled[key] for key in sorted(unsettled))
        with self._timed("plan"):
            refusal = guards.refusal(plan, settings, local_files=len(scanned.files), remote_objects=len(remotes))

        if settings.dry_run:
            deletes = plan.of(Kind.DELETE)
            if deletes and summary.errors:  # as the real run would: no delete after any problem
                plan.actions = [a for a in plan.actions if a.kind is not Kind.DELETE]
                summary.delete_blocked_reason = (f"{len(deletes)} delete(s) would not be done because of "
                                                 f"{len(summary.errors)} problem(s)")
            self.reporter.plan(plan)
            if refusal:
                raise GuardError(refusal)
            summary.invalidation_paths = self._paths(plan.actions) if settings.cloudfront_distribution else []
        else:
            if refusal:
                raise GuardError(refusal)
            self.reporter.skipped(plan.of(Kind.SKIP))
            with self._timed("state"):
                stored = self._retire_stale_entries(plan, state_exists, stored, remotes)
            try:
                self._phase = "transfer"
                with self._timed("transfer"):
                    self._transfer(plan, summary.outcomes)
                self._phase = "delete"
                with self._timed("delete"):
                    summary.outcomes.extend(self._delete(plan, summary))
                self._phase = "finish"
                with self._timed("state"):
                    self._save_state(summary, remotes, digests, stored)
                with self._timed("invalidate"):
                    self._invalidate(summary)
            except KeyboardInterrupt as exc:
                raise self._interrupted(exc, summary) from None
        summary.seconds = self.elapsed()
        self.reporter.summary(summary)
        return summary

    def _refuse_clashes(self, keys: Sequence[str]) -> None:
        if keys:
            raise ConfigError(self.settings.label("redirects"),
                              f"{keys[0]!r} is also a file in the source; remove the file or the redirect")

    # ---------------------------------------------------------------- stages
    def _inspect(self, files: Sequence[LocalFile], remotes: Mapping[str, RemoteObject],
                 state: Mapping[str, Entry]
                 ) -> Tuple[Dict[str, Digest], Dict[str, RemoteDetails], Dict[str, str], Dict[str, str]]:
        """Digests of the files that could be unchanged, and the headers of their
        objects: from the state where it vouches for them, else from S3.
        Returns (digests, details, {key: header read error}, {key: file read error})."""
        with thread_pool(hash_workers(), "hash") as hasher:
            digests, read_errors = hash_files(files, remotes, hasher, state=state, part_size=self.settings.part_size,
                                              cache=self.cache)
            if self.settings.compress:
                self._compress_changed(files, digests, read_errors, remotes, state, hasher)
            kms = diff.md5_needs(files, remotes, self.rules)
            if kms:  # new files whose upload records their MD5 (SSE-KMS ETags are no MD5)
                more, failed = hash_files([f for f in files if f.key in kms], {}, hasher, force_md5=kms,
                                          everything=True, part_size=self.settings.part_size)
                digests.update(more)
                read_errors.update(failed)
            details = diff.known_details(remotes, state)
            with thread_pool(self.settings.max_concurrency, "head") as heads:
                fetched, errors = fetch_details(
                    self.store, diff.detail_needs(files, remotes, self.settings, details, digests), heads)
            # Keys whose headers only the state vouches for: a header copy of one of
            # them first reads what the state does not record (storage class, KMS
            # key, recorded MD5), since a copy with REPLACE would drop them.
            self.vouched = set(details) - set(fetched)
            details.update(fetched)
            # An MD5 recorded in metadata can settle what the ETag could not; that
            # needs the whole-file MD5 of files hashed only by parts.
            recheck = {f.key for f in files if f.key in fetched and fetched[f.key].md5
                       and f.key in digests and digests[f.key].md5 is None}
            if recheck:
                more, failed = hash_files([f for f in files if f.key in recheck], remotes, hasher, force_md5=recheck,
                                          part_size=self.settings.part_size)
                digests.update(more)
                read_errors.update(failed)
        return digests, details, errors, read_errors

    def _compress_changed(self, files: Sequence[LocalFile], digests: Dict[str, Digest], read_errors: Dict[str, str],
                          remotes: Mapping[str, RemoteObject], state: Mapping[str, Entry],
                          hasher: ThreadPoolExecutor) -> None:
        """Compressed files the state vouched for (so only their source was
        read) whose source changed are compressed now: the plan shows their
        compressed size, and the upload takes the bytes from the cache."""
        changed = {f.key for f in files if f.encoding and f.key in digests and digests[f.key].size is None
                   and (entry := state.get(f.key)) is not None and entry.xxh != digests[f.key].xxh}
        if changed:
            more, failed = hash_files([f for f in files if f.key in changed], remotes, hasher, state=state,
                                      force_md5=changed, part_size=self.settings.part_size, cache=self.cache)
            digests.update(more)
            read_errors.update(failed)
        encoded = [f for f in files if f.encoding]
        compressed = [digests[f.key] for f in encoded if f.key in digests and digests[f.key].size is not None]
        log.debug("compress: %d of %d file(s) with a compress rule compressed to compare (%d bytes of output); "
                  "the state settled the rest", len(compressed), len(encoded), sum(d.size for d in compressed))

    def _list_with_state(self) -> Tuple[Dict[str, RemoteObject], bool, Dict[str, Entry]]:
        """The listing under the target, whether a state object exists, and its entries."""
        settings = self.settings
        with self._timed("list"):
            remotes = self.store.list(settings.target)
            key = state_key(settings.target)
            exists = remotes.pop(key, None) is not None
            if not exists or not settings.state:
                return remotes, exists, {}
            try:
                return remotes, True, decode_state(self.store.get_bytes(key))
            except (ClientError, BotoCoreError) as exc:
                log.warning("cannot read the state object %s (%s); checking every object instead", key,
                            error_text(exc))
                self.state_unread = True
                return remotes, True, {}

    def _retire_stale_entries(self, plan: Plan, state_exists: bool, stored: Mapping[str, Entry],
                              remotes: Mapping[str, RemoteObject]) -> Mapping[str, Entry]:
        """Before writing, make sure the state object can never vouch for old headers.

        A header copy or a rewritten redirect keeps the object's ETag, and some
        uploads recreate an ETag an entry names (see `entries_at_risk`), so an
        entry describing the old headers would still look valid if this run
        stopped before recording the new state, or could not record it. Such
        entries are dropped first; a state object that could not be read is
        emptied before any write, since any of its entries may be at risk;
        without `state`, the whole object goes.
        Returns the entries the state object now holds.
        """
        key = state_key(self.settings.target)
        if not self.settings.state:
            if state_exists and any(a.writes for a in plan.actions):
                failed = self.store.delete([key])
                if failed:
                    raise RemoteError(f"cannot remove the state object {key}, which this run would make "
                                      f"outdated ({failed[0][1]}); nothing was changed")
            return {}
        if self.state_unread:
            at_risk = {a.key for a in plan.of(Kind.UPLOAD, Kind.UPDATE, Kind.REDIRECT)}
        else:
            at_risk = entries_at_risk(plan, stored, remotes)
        if not at_risk:
            return stored
        kept = {k: e for k, e in stored.items() if k not in at_risk}
        try:
            self.store.put_bytes(key, encode_state(kept), "application/gzip", self._state_headers())
        except (ClientError, BotoCoreError) as exc:
            raise RemoteError(f"cannot update the state object {key} before writing objects it describes "
                              f"({error_text(exc)}); nothing was changed") from None
        return kept

    def _state_headers(self):
        """The state object is encrypted as the encryption rules say for its name."""
        return self.rules.headers_for(STATE_NAME)

    def _save_state(self, summary: Summary, remotes: Mapping[str, RemoteObject], digests: Dict[str, Digest],
                    old: Mapping[str, Entry]) -> None:
        """Record what every object now is; written only when that changed."""
        if not self.settings.state:
            return
        written = [o.action for o in summary.outcomes
                   if o.ok and o.action.kind is Kind.UPLOAD and o.action.key not in digests]
        if written:  # new files were never hashed; they are in the page cache now
            with thread_pool(hash_workers(), "hash") as hasher:
                digests = dict(digests)
                digests.update(hash_files([a.local for a in written], {}, hasher, everything=True)[0])
        entries = next_state(summary, remotes, digests, self.store.written_etags)
        if entries == dict(old):
            return
        key = state_key(self.settings.target)
        try:
            self.store.put_bytes(key, encode_state(entries), "application/gzip", self._state_headers())
        except (ClientError, BotoCoreError) as exc:
            # The sync itself succeeded; the next run checks objects with S3 instead.
            self.reporter.warn(f"cannot write the state object {key}: {error_text(exc)}")

    def _transfer(self, plan: Plan, outcomes: List[Outcome]) -> None:
        """Header updates (metadata-only copy) and redirects (zero-byte PUT), then
        uploads (s3transfer). Each outcome is appended to `outcomes` as it ends,
        so an interrupted run still knows what it changed. A bounded window of
        each is in flight: memory does not grow with the number of files."""
        uploads = plan.of(Kind.UPLOAD)
        others = plan.of(Kind.UPDATE, Kind.REDIRECT)
        if not uploads and not others:
            return
        lock = threading.Lock()
        reporter = self.reporter

        def finish(action: Action, error: str, started: float) -> None:
            outcome = Outcome(action, ok=not error, error=error, seconds=time.monotonic() - started)
            with lock:
                outcomes.append(outcome)
                reporter.done(outcome)

        reporter.begin_transfer(sum(a.size for a in uploads), len(uploads) + len(others))
        try:
            self._rewrite_headers(others, finish)
            self._upload(uploads, finish)
        finally:
            reporter.end_transfer()

    def _rewrite_headers(self, actions: Sequence[Action], finish: Callable[[Action, str, float], None]) -> None:
        def run_one(action: Action) -> None:
            started = time.monotonic()
            try:
                if action.kind is Kind.REDIRECT:
                    self.store.put_redirect(action.key, action.headers)
                else:
                    remote = action.remote
                    if action.key in self.vouched:
                        remote = self.store.details(action.key, with_acl=False)
                    self.store.copy_headers(action.key, action.headers, remote, action.md5)
            except (ClientError, BotoCoreError) as exc:
                finish(action, error_text(exc), started)
            else:
                finish(action, "", started)

        if not actions:
            return
        pending: Deque[Future] = deque()
        pool = ThreadPoolExecutor(max_workers=self.settings.max_concurrency, thread_name_prefix="copy")
        try:
            for action in actions:
                pending.append(pool.submit(run_one, action))
                if len(pending) >= WINDOW:
                    pending[0].result()
                    pending.popleft()
            while pending:
                pending[0].result()
                pending.popleft()
        except BaseException:
            # Nothing new starts; the copies already sent may end, so that
            # their outcomes are known (and invalidated).
            pool.shutdown(wait=False, cancel_futures=True)
            wait_futures(pending, timeout=STOP_WAIT)
            raise
        pool.shutdown(wait=True)

    def _upload(self, actions: Sequence[Action], finish: Callable[[Action, str, float], None]) -> None:
        """At most `upload_window` uploads are with s3transfer at a time; each
        is settled (and reported) as it ends."""
        if not actions:
            return
        ended: "queue.Queue[Tuple[Action, float, object]]" = queue.Queue()
        progress = _ProgressSubscriber(self.reporter)
        limit = upload_window(self.settings.max_concurrency)
        in_flight = 0

        def settle(item, interrupted: bool = False) -> None:
            action, started, future = item
            try:
                future.result()
            except Exception as exc:  # botocore, OS and s3transfer's own error types alike
                if not interrupted:  # else: cancelled by the interruption, not failed
                    finish(action, upload_error_text(exc, action.local.path), started)
            else:
                finish(action, "", started)

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
                started = time.monotonic()
                try:
                    keep = self._kept(action)
                except (ClientError, BotoCoreError) as exc:
                    finish(action, error_text(exc), started)
                    continue
                try:
                    self.store.upload(body, action.key, action.headers, action.md5,
                                      subscribers=[progress, _Ended(ended, action, started)], keep=keep)
                except Exception as exc:  # s3transfer checks its arguments before it queues anything
                    finish(action, upload_error_text(exc, action.local.path), started)
                    continue
                in_flight += 1
            if again:
                in_flight += self._upload_compressed(again, progress, finish, ended)
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
        self.store.shutdown()

    def _kept(self, action: Action) -> Optional[RemoteDetails]:
        """What an upload that only changes an object's headers must keep (its
        encryption and class where the settings leave them unset); read from S3
        when only the state vouched for the object, as for header copies."""
        keep = action.remote
        if keep is not None and action.key in self.vouched:
            keep = replace(self.store.details(action.key, with_acl=False), storage_class=keep.storage_class)
        return keep

    def _upload_compressed(self, actions: Sequence[Action], progress: BaseSubscriber,
                           fail: Callable[[Action, str, float], None], ended: "queue.Queue") -> int:
        """Compress each file again and start its upload, which reports to `ended`
        when done; returns how many were started. Compression runs on all cores;
        at most COMPRESS_IN_FLIGHT such bodies (each in memory up to SPOOL_SIZE,
        in a temporary file beyond) exist at once: each is closed when its upload
        is done."""
        gate = threading.Semaphore(COMPRESS_IN_FLIGHT)
        started_uploads = [0]
        pending: Deque[Tuple[Action, float, Future]] = deque()
        workers = min(hash_workers(), COMPRESS_IN_FLIGHT - 1)

        def start(limit: int) -> None:
            while len(pending) > limit:
                action, started, job = pending.popleft()
                try:
                    body = job.result()
                except OSError as exc:
                    gate.release()
                    fail(action, read_error_text(exc, action.local.path), started)
                    continue
                done = _Release(body, gate)
                try:
                    self.store.upload(body, action.key, action.headers, action.md5,
                                      subscribers=[progress, done, _Ended(ended, action, started)],
                                      keep=action.remote)
                except BaseException:
                    done.on_done(None)
                    raise
                started_uploads[0] += 1

        with thread_pool(workers, "compress") as pool:
            try:
                for action in actions:
                    if not gate.acquire(blocking=False):
                        start(0)  # every permit is now held by an upload in progress
                        gate.acquire()
                    pending.append((action, time.monotonic(),
                                    pool.submit(compressed_file, action.local.path, action.local.encoding)))
                    start(workers)
                start(0)
            except BaseException:
                for _, _, job in pending:
                    job.cancel()
                    if not job.cancelled() and job.exception() is None:
                        job.result().close()
                raise
        log.debug("compress: %d file(s) compressed again for their upload", len(actions))
        return started_uploads[0]

    def _delete(self, plan: Plan, summary: Summary) -> List[Outcome]:
        """Deletes run last, and only when every write before them succeeded."""
        deletes = plan.of(Kind.DELETE)
        if not deletes:
            return []
        if summary.failures or summary.errors:
            summary.delete_blocked_reason = (f"{len(deletes)} delete(s) not done because "
                                             f"{len(summary.failures) + len(summary.errors)} operation(s) failed")
            return []
        started = time.monotonic()
        failed = dict(self.store.delete([a.key for a in deletes]))
        outcomes = []
        for action in deletes:
            outcome = Outcome(action, ok=action.key not in failed, error=failed.get(action.key, ""),
                              seconds=time.monotonic() - started)
            self.reporter.done(outcome)
            outcomes.append(outcome)
        return outcomes

    def _paths(self, actions: Sequence[Action]) -> List[str]:
        """What to invalidate for these actions: nothing when none of them changes
        anything, else the `invalidation_paths` setting or the changed paths."""
        keys = [a.key for a in actions if a.kind is not Kind.SKIP]
        if not keys:
            return []
        if self.settings.invalidation_paths:
            return list(self.settings.invalidation_paths)
        return invalidation_paths(keys, root=self.settings.target)

    def _invalidate(self, summary: Summary, extra: Sequence[Action] = (), quick: bool = False) -> None:
        """Invalidate what this run changed (uploads, updates, redirects, deletes
        that succeeded, and `extra`); nothing when nothing changed. All
        invalidations are created first, then, with `cloudfront_wait`, waited for
        together. `quick`, for a run that is stopping: one attempt each, no wait."""
        settings = self.settings
        if not settings.cloudfront_distribution:
            return
        paths = self._paths([o.action for o in summary.outcomes if o.ok] + list(extra))
        summary.invalidation_paths = paths
        if not paths:
            return
        client = self.cloudfront or self.store.cloudfront(quick=quick)
        created = []
        for distribution in settings.cloudfront_distribution:
            if distribution in self._invalidated:
                continue
            try:
                if quick:
                    invalidation = create_invalidation(client, distribution, paths,
                                                       caller_reference=new_caller_reference())
                else:
                    invalidation = create_invalidation_retrying(client, distribution, paths,
                                                                caller_reference=new_caller_reference(),
                                                                notify=self.reporter.info)
            except InvalidationError as exc:
                summary.errors.append(f"CloudFront invalidation of {distribution} failed: {exc}")
            except (ClientError, BotoCoreError) as exc:
                summary.errors.append(f"CloudFront invalidation of {distribution} failed: {error_text(exc)}")
            else:
                self._invalidated.add(distribution)
                summary.invalidation_ids.append(invalidation)
                created.append((distribution, invalidation))
        if settings.cloudfront_wait and created and not quick:
            summary.errors.extend(wait_for_invalidations(
                client, created, timeout=settings.cloudfront_wait_timeout, notify=self.reporter.info,
                describe=error_text, timeout_name=settings.label("cloudfront_wait_timeout")))

    def _interrupted(self, exc: KeyboardInterrupt, summary: Summary) -> Interrupted:
        """After Ctrl-C or SIGTERM in the write stages: invalidate what did change
        (a later run finds those objects unchanged and would never invalidate
        them), and say what was done. The state object is not written: the one
        in the bucket stays correct (an entry vouches for an object only while
        its ETag is unchanged, and entries for headers changed in place were
        dropped before any change), so the next run checks what this one
        wrote against S3 and finishes the job."""
        stop = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        deletes = summary.plan.of(Kind.DELETE)
        # Deletes are sent in batches; which of them were done before the
        # interruption is unknown, so every planned one is invalidated.
        maybe_deleted = deletes if self._phase == "delete" else []
        try:
            self._invalidate(summary, extra=maybe_deleted, quick=True)
        except KeyboardInterrupt:
            pass
        writes = len(summary.plan.actions) - len(summary.plan.of(Kind.SKIP)) - len(deletes)
        done = sum(1 for o in summary.outcomes if o.ok and o.action.kind is not Kind.DELETE)
        notes = [f"{done} of {writes} uploads and header updates done"] if writes else []
        if self._phase == "transfer":
            notes.append("unfinished uploads were cancelled and nothing was deleted")
        elif self._phase == "delete":
            notes.append(f"{len(deletes)} delete(s) were under way")
        else:
            notes.append("every change was made")
        if self._invalidated:
            notes.append(f"CloudFront invalidated for the {len(summary.invalidation_paths)} path(s) changed")
        notes.append("run again to finish")
        stop.note = "; ".join(notes)
        return stop


class _Ended(BaseSubscriber):
    """Queues an upload's future when it has ended, however it ended."""

    def __init__(self, ended: "queue.Queue", action: Action, started: float):
        self.ended, self.action, self.started = ended, action, started

    def on_done(self, future, **kwargs):
        self.ended.put((self.action, self.started, future))


class _Release(BaseSubscriber):
    """Closes an upload's compressed body and frees its place once the upload is done."""

    def __init__(self, body, gate: threading.Semaphore):
        self.body, self.gate = body, gate
        self._lock = threading.Lock()
        self._released = False

    def on_done(self, future, **kwargs):
        with self._lock:
            if self._released:
                return
            self._released = True
        self.body.close()
        self.gate.release()


class _ProgressSubscriber(BaseSubscriber):
    """Feeds the progress bar with the bytes s3transfer sent."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter

    def on_progress(self, future, bytes_transferred, **kwargs):
        self.reporter.advance(bytes_transferred)


def sync(settings: Settings, **kwargs) -> Summary:
    """Run one sync; the Python API. Raises ConfigError (bad input), GuardError (refused by a
    safety guard, nothing written) or RemoteError for fatal problems.

    The JSON report (`report`, and the reporter's `document` stream) is written
    however the run ends, except on a ConfigError: then nothing ran."""
    run = Run(settings, **kwargs)
    summary, finish = run.summary, run.reporter.finish
    try:
        summary = run.execute()
    except ConfigError as exc:
        exc.args = tuple(run.redact(a) if isinstance(a, str) else a for a in exc.args)
        raise
    except SyncError as exc:
        # Its text may quote an S3 error message, which could echo a key id.
        exc.args = tuple(run.redact(a) if isinstance(a, str) else a for a in exc.args)
        summary.seconds = run.elapsed()
        if isinstance(exc, GuardError):
            finish(settings, summary, exc.exit_code, refused=str(exc))
        else:
            finish(settings, summary, exc.exit_code, error=str(exc))
        raise
    except KeyboardInterrupt as exc:
        stop = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        summary.seconds = run.elapsed()
        finish(settings, summary, stop.exit_code, interrupted=stop.signal_name)
        raise
    except Exception as exc:  # a bug: the report still says the run failed, and where it stopped
        summary.seconds = run.elapsed()
        with contextlib.suppress(Exception):
            finish(settings, summary, 1, error=f"internal error: {one_line(exc)}")
        raise
    finish(settings, summary, summary.exit_code)
    return summary
