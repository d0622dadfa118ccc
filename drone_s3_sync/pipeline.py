"""Wires the stages: (scan || list) -> hash -> details -> diff -> transfer ->
delete -> invalidate. It owns the thread pools; the stages take values and
return values."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Callable, Deque, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.subscribers import BaseSubscriber

from . import diff, guards
from .config import Settings, secrets_of
from .digest import PART_SIZE, Digest, file_digest
from .errors import ConfigError, GuardError, RemoteError, SyncError
from .invalidate import (InvalidationError, create_invalidation_retrying, invalidation_paths, new_caller_reference,
                         wait_for_invalidations)
from .model import Action, Kind, LocalFile, Outcome, Plan, RemoteDetails, RemoteObject, Summary
from .redact import Redactor
from .remote import Store, error_text
from .report import Reporter
from .rules import HeaderRules
from .scan import check_source, files_named, printable, scan
from .state import Entry, decode as decode_state, encode as encode_state, entries_at_risk, next_state, state_key

log = logging.getLogger("drone_s3_sync")
K = TypeVar("K")
V = TypeVar("V")


def hash_workers() -> int:
    # hashlib releases the GIL on large buffers: one thread per core keeps every
    # core busy, a couple more hide disk latency.
    return (os.cpu_count() or 1) + 2


WINDOW = 1000  # jobs in flight at once: a Future per file for 100,000 files costs ~100 MB


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


def hash_files(locals_: Sequence[LocalFile], remotes: Mapping[str, RemoteObject], pool: ThreadPoolExecutor,
               *, state: Mapping[str, Entry] = {}, force_md5: Set[str] = frozenset(),
               everything: bool = False, part_size: int = PART_SIZE) -> Tuple[Dict[str, Digest], Dict[str, str]]:
    """Hash only the files whose remote copy has the same size: nothing else can
    match. `everything` hashes all given files (xxh3 only unless asked).
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
            paths[local.key] = local.path
            yield local.key, partial(file_digest, local.path, md5=md5 or local.key in force_md5,
                                     part_sizes=part_sizes)

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
        self.reporter = reporter or Reporter(dry_run=settings.dry_run, quiet=settings.quiet, redact=self.redact)
        self.cloudfront = cloudfront
        self.rules = HeaderRules(settings)
        self.vouched: Set[str] = set()
        # The state object exists but could not be read: its entries are unknown.
        self.state_unread = False

    def execute(self) -> Summary:
        started = time.monotonic()
        settings = self.settings
        check_source(settings.source_path(), settings.label("source"))
        # A redirect onto a local file is bad input: refused before any request.
        # The check after the scan below still catches what this one cannot see
        # (names that differ only in Unicode normalisation).
        self._refuse_clashes(files_named(settings.source_path(), [rel for rel, _ in settings.redirects]))
        self.reporter.start(settings.bucket, settings.target, settings.endpoint)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="list") as lister:
            listing = lister.submit(self._list_with_state)
            try:
                scanned = scan(settings.source_path(), settings.target,
                               allow_external_symlinks=settings.allow_external_symlinks)
                self._refuse_clashes(diff.clashes(scanned.files, settings))
            except BaseException:
                listing.cancel()
                raise
            remotes, state_exists, stored = listing.result()
        # `verify` plans as if there were no state, but the state read is still
        # compared with the new one, so an unchanged state is not written again.
        state = {} if settings.verify else stored
        reserved = state_key(settings.target)
        if any(f.key == reserved for f in scanned.files):
            scanned.problems.append(f"{reserved}: this name is reserved for the state object; the file is not synced")
            scanned.files = [f for f in scanned.files if f.key != reserved]
        for text in scanned.warnings + scanned.problems:
            self.reporter.warn(text)
        if not scanned.files and not (settings.delete and not settings.allow_empty_source):  # else: refused below
            self.reporter.warn(f"the source {settings.source!r} has no files (an empty folder, or a glob that "
                               "matches nothing)")
        log.debug("%d local files, %d remote objects under %r, %d state entries",
                  len(scanned.files), len(remotes), settings.target, len(state))

        digests, details, detail_errors, read_errors = self._inspect(scanned.files, remotes, state)
        plan = diff.make_plan(scanned.files, remotes, digests, details, settings, self.rules, state,
                              kept_keys=scanned.kept_keys, kept_prefixes=scanned.kept_prefixes)
        summary = Summary(plan=plan, dry_run=settings.dry_run)
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
            stored = self._retire_stale_entries(plan, state_exists, stored, remotes)
            summary.outcomes.extend(self._transfer(plan))
            summary.outcomes.extend(self._delete(plan, summary))
            self._save_state(summary, remotes, digests, stored)
            self._invalidate(summary)
        summary.seconds = time.monotonic() - started
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
        with ThreadPoolExecutor(max_workers=hash_workers(), thread_name_prefix="hash") as hasher:
            digests, read_errors = hash_files(files, remotes, hasher, state=state, part_size=self.settings.part_size)
            details = diff.known_details(remotes, state)
            with ThreadPoolExecutor(max_workers=self.settings.max_concurrency, thread_name_prefix="head") as heads:
                fetched, errors = fetch_details(self.store, diff.detail_needs(files, remotes, self.settings, details),
                                                heads)
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

    def _list_with_state(self) -> Tuple[Dict[str, RemoteObject], bool, Dict[str, Entry]]:
        """The listing under the target, whether a state object exists, and its entries."""
        settings = self.settings
        remotes = self.store.list(settings.target)
        key = state_key(settings.target)
        exists = remotes.pop(key, None) is not None
        if not exists or not settings.state:
            return remotes, exists, {}
        try:
            return remotes, True, decode_state(self.store.get_bytes(key))
        except (ClientError, BotoCoreError) as exc:
            log.warning("cannot read the state object %s (%s); checking every object instead", key, error_text(exc))
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
            self.store.put_bytes(key, encode_state(kept), "application/gzip")
        except (ClientError, BotoCoreError) as exc:
            raise RemoteError(f"cannot update the state object {key} before writing objects it describes "
                              f"({error_text(exc)}); nothing was changed") from None
        return kept

    def _save_state(self, summary: Summary, remotes: Mapping[str, RemoteObject], digests: Dict[str, Digest],
                    old: Mapping[str, Entry]) -> None:
        """Record what every object now is; written only when that changed."""
        if not self.settings.state:
            return
        written = [o.action for o in summary.outcomes
                   if o.ok and o.action.kind is Kind.UPLOAD and o.action.key not in digests]
        if written:  # new files were never hashed; they are in the page cache now
            with ThreadPoolExecutor(max_workers=hash_workers(), thread_name_prefix="hash") as hasher:
                digests = dict(digests)
                digests.update(hash_files([a.local for a in written], {}, hasher, everything=True)[0])
        entries = next_state(summary, remotes, digests, self.store.written_etags)
        if entries == dict(old):
            return
        key = state_key(self.settings.target)
        try:
            self.store.put_bytes(key, encode_state(entries), "application/gzip")
        except (ClientError, BotoCoreError) as exc:
            # The sync itself succeeded; the next run checks objects with S3 instead.
            self.reporter.warn(f"cannot write the state object {key}: {error_text(exc)}")

    def _transfer(self, plan: Plan) -> List[Outcome]:
        """Uploads (s3transfer), header updates (copy) and redirects (zero-byte PUT)."""
        uploads = plan.of(Kind.UPLOAD)
        others = plan.of(Kind.UPDATE, Kind.REDIRECT)
        if not uploads and not others:
            return []
        outcomes: List[Outcome] = []
        lock = threading.Lock()
        reporter = self.reporter

        def finish(action: Action, error: str, started: float) -> None:
            outcome = Outcome(action, ok=not error, error=error, seconds=time.monotonic() - started)
            with lock:
                outcomes.append(outcome)
                reporter.done(outcome)

        reporter.begin_transfer(sum(a.size for a in uploads), len(uploads) + len(others))
        try:
            futures = []
            subscriber = _ProgressSubscriber(reporter)
            for action in uploads:
                futures.append((action, time.monotonic(), self.store.upload(
                    action.local.path, action.key, action.headers, action.md5, subscribers=[subscriber])))

            def run_one(action: Action) -> None:
                started = time.monotonic()
                try:
                    if action.kind is Kind.REDIRECT:
                        self.store.put_redirect(action.key, action.headers)
                    else:
                        remote = action.remote
                        if action.key in self.vouched:
                            remote = self.store.details(action.key, with_acl=False)
                        self.store.copy_headers(action.key, action.headers, remote)
                except (ClientError, BotoCoreError) as exc:
                    finish(action, error_text(exc), started)
                else:
                    finish(action, "", started)

            with ThreadPoolExecutor(max_workers=self.settings.max_concurrency, thread_name_prefix="copy") as pool:
                for _ in pool.map(run_one, others):
                    pass
            for action, started, future in futures:
                try:
                    future.result()
                except Exception as exc:  # botocore, OS and s3transfer's own error types alike
                    finish(action, upload_error_text(exc, action.local.path), started)
                else:
                    finish(action, "", started)
        except BaseException:
            self.store.shutdown(cancel=True)
            raise
        finally:
            reporter.end_transfer()
        self.store.shutdown()
        return outcomes

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

    def _invalidate(self, summary: Summary) -> None:
        """Invalidate what this run changed (uploads, updates, redirects, deletes
        that succeeded); nothing when nothing changed. All invalidations are
        created first, then, with `cloudfront_wait`, waited for together."""
        settings = self.settings
        if not settings.cloudfront_distribution:
            return
        paths = self._paths([o.action for o in summary.outcomes if o.ok])
        summary.invalidation_paths = paths
        if not paths:
            return
        client = self.cloudfront or self.store.cloudfront_client()
        created = []
        for distribution in settings.cloudfront_distribution:
            try:
                invalidation = create_invalidation_retrying(client, distribution, paths,
                                                            caller_reference=new_caller_reference(),
                                                            notify=self.reporter.info)
            except InvalidationError as exc:
                summary.errors.append(f"CloudFront invalidation of {distribution} failed: {exc}")
            except (ClientError, BotoCoreError) as exc:
                summary.errors.append(f"CloudFront invalidation of {distribution} failed: {error_text(exc)}")
            else:
                summary.invalidation_ids.append(invalidation)
                created.append((distribution, invalidation))
        if settings.cloudfront_wait and created:
            summary.errors.extend(wait_for_invalidations(
                client, created, timeout=settings.cloudfront_wait_timeout, notify=self.reporter.info,
                describe=error_text, timeout_name=settings.label("cloudfront_wait_timeout")))


class _ProgressSubscriber(BaseSubscriber):
    """Feeds the progress bar with the bytes s3transfer sent."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter

    def on_progress(self, future, bytes_transferred, **kwargs):
        self.reporter.advance(bytes_transferred)


def sync(settings: Settings, **kwargs) -> Summary:
    """Run one sync; the Python API. Raises ConfigError (bad input), GuardError (refused by a
    safety guard, nothing written) or RemoteError for fatal problems."""
    run = Run(settings, **kwargs)
    try:
        return run.execute()
    except SyncError as exc:
        # Its text may quote an S3 error message, which could echo a key id.
        exc.args = tuple(run.redact(a) if isinstance(a, str) else a for a in exc.args)
        raise
