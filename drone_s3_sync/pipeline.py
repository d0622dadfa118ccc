"""One run, stage by stage:

    check source ─┬─ scan (local files) ─┬─ evidence ─ plan ─ guards ─┬─ dry run: show the plan
                  └─ list (+ state)    ──┘                            └─ retire state ─ transfer ─ delete
                                                                         ─ save state ─ invalidate

Each stage takes values and returns values; this module only wires them and
owns what a stopping run must know (the stage it was in, the outcomes so far).
The store (S3), the CloudFront client, the executors and the reporter are
passed in, so that the whole pipeline runs in process against an in-memory
store with serial executors in the tests.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import replace
from typing import Callable, Iterator, Optional, Sequence

from . import diff, grace, guards, readback, scrub, statefile
from .cdn import invalidate, paths_for
from .config import Settings
from .sources import secrets_of
from .errors import ConfigError, GuardError, Interrupted, LockError, SyncError
from .evidence import CompressedCache, Planned, gather, source_hashes, state_digests
from .executors import Executors, hash_workers
from .model import Action, Kind, Outcome, Plan, Stage, Summary
from .redact import Redactor, one_line
from .report import Reporter
from .rules import HeaderRules, Selection
from .scan import ScanResult, check_source, files_named, scan
from .keys import STATE_NAME, lock_key, state_key
from .lock import DeployLock
from .order import WRITES, waves
from .store import RemoteStore
from .transfer import Writer, delete

log = logging.getLogger("drone_s3_sync")


def sync(settings: Settings, *, store: Optional[RemoteStore] = None, cdn=None, executors: Optional[Executors] = None,
         reporter: Optional[Reporter] = None, redact: Optional[Callable[[str], str]] = None,
         clock: Callable[[], float] = time.time) -> Summary:
    """Run one sync; the Python API. Raises ConfigError (bad input), GuardError (refused by a
    safety guard, nothing written) or RemoteError for fatal problems.

    `cdn`: a CloudFront client (else the store makes one); `clock`: the time
    (delete_grace is measured with it). The JSON report
    (`report`, and the reporter's `document` stream) is written however the
    run ends, except on a ConfigError: then nothing ran."""
    redact = redact or Redactor(secrets_of(settings, {}))
    reporter = reporter or Reporter(dry_run=settings.dry_run, quiet=settings.quiet, redact=redact,
                                    progress_interval=settings.progress_interval)
    run = Run(settings, store=store, cdn=cdn, executors=executors or Executors(), reporter=reporter, clock=clock)
    summary, finish = run.summary, reporter.finish
    try:
        run.execute()
    except ConfigError as exc:
        exc.args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)
        raise
    except SyncError as exc:
        # Its text may quote an S3 error message, which could echo a key id.
        exc.args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)
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


class Run:
    """The values one run shares between its stages; `execute` runs them in order."""

    def __init__(self, settings: Settings, *, store: Optional[RemoteStore], cdn, executors: Executors,
                 reporter: Reporter, clock: Callable[[], float] = time.time):
        self.settings, self.executors, self.reporter, self.cdn = settings, executors, reporter, cdn
        self.clock = clock
        self._store = store
        self.rules = HeaderRules(settings)
        self.selection = Selection.of(settings)
        self.summary = Summary(plan=Plan(), dry_run=settings.dry_run)
        self._invalidated: set = set()  # distributions invalidated by this run
        self._lock = threading.Lock()
        self._clock = time.monotonic()
        self.lock: Optional[DeployLock] = None
        self.next_scrub: Optional[int] = None  # where the next ACL scrub begins, when this run scrubbed
        self.sampler = readback.Sampler()  # the first object written of each kind, to read back
        self.verified: Optional[tuple] = None  # (endpoint, kinds) the server is known to keep

    @property
    def store(self) -> RemoteStore:
        if self._store is None:  # made after the source checks: a bad source sends no request
            from .remote import S3Store
            self._store = S3Store(self.settings)
        return self._store

    def elapsed(self) -> float:
        return time.monotonic() - self._clock

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Adds the time spent in the block to the stage's timing, also when it raises."""
        started = time.monotonic()
        try:
            yield
        finally:
            timings = self.summary.timings
            timings[stage] = timings.get(stage, 0.0) + time.monotonic() - started

    def record(self, outcome: Outcome) -> None:
        """An outcome as it ends, from any thread."""
        with self._lock:
            self.summary.outcomes.append(outcome)
            self.reporter.done(outcome)
        if outcome.ok:
            self.sampler.wrote(outcome.action)

    # ---------------------------------------------------------------- stages
    def execute(self) -> Summary:
        settings, summary, reporter = self.settings, self.summary, self.reporter
        summary.started, self._clock = time.time(), time.monotonic()
        check_source(settings.source_path(), settings.label("source"))
        # A redirect onto a local file is bad input: refused before any request.
        # The check after the scan still catches what this one cannot see
        # (names that differ only in Unicode normalisation).
        self.refuse_clashes(files_named(settings.source_path(), [rel for rel, _ in settings.redirects],
                                        self.selection))
        self.store  # noqa: B018 (made now: credentials problems are told before any work)
        reporter.start(settings.bucket, settings.target, settings.endpoint)
        scanned, listing = self.scan_and_list()
        planned = self.plan(scanned, listing)
        if settings.dry_run:
            self.show_plan(planned.plan, planned.refusal)
        else:
            if planned.refusal:
                raise GuardError(planned.refusal)
            with self.locked(scanned, planned) as planned:
                reporter.skipped(planned.plan.of(Kind.SKIP))
                reporter.kept(grace.kept(planned.plan))
                try:
                    self.write(planned)
                except KeyboardInterrupt as exc:
                    raise self.interrupted(exc) from None
        summary.seconds = self.elapsed()
        reporter.summary(summary)
        return summary

    def plan(self, scanned: ScanResult, listing: statefile.Listing) -> Planned:
        """The evidence and the plan for what the scan found and the bucket listed."""
        settings, summary = self.settings, self.summary
        # include/exclude: objects of paths they leave out are not this run's to
        # compare or delete (scan left out their files the same way).
        remotes = diff.selected_remotes(listing.remotes, settings, self.selection)
        # `verify` plans as if there were no state, but the state read is still
        # compared with the new one, so an unchanged state is not written again.
        state = {} if settings.verify else listing.entries
        log.debug("%d local files, %d remote objects under %r, %d state entries",
                  len(scanned.files), len(remotes), settings.target, len(state))
        summary.stage = Stage.PLAN
        cache = CompressedCache() if settings.compress and not settings.dry_run else None
        with self.timed("hash"):
            evidence = gather(scanned.files, remotes, state, settings=settings, rules=self.rules,
                              store=self.store, executors=self.executors, cache=cache, known=scanned.hashes)
        with self.timed("plan"):
            plan = diff.make_plan(scanned.files, remotes, evidence.digests, evidence.details, settings,
                                  self.rules, state, kept_keys=scanned.kept_keys, kept_prefixes=scanned.kept_prefixes)
            plan, problems = diff.settle_unreadable(plan, evidence.read_errors, evidence.detail_errors,
                                                    scanned.problems)
            plan, summary.removed = grace.apply(plan, listing.removed, grace=settings.delete_grace, now=self.clock())
            for key in sorted(evidence.read_errors):
                self.reporter.warn(evidence.read_errors[key])
            summary.plan, summary.errors = plan, problems
            nested = [k[:-len(STATE_NAME)] for k in listing.remotes if k.endswith(STATE_NAME)]
            refusal = guards.refusal(plan, settings, local_files=len(scanned.files), remote_objects=len(remotes),
                                     nested=nested)
        return Planned(listing, evidence, plan, refusal, cache)

    @contextlib.contextmanager
    def locked(self, scanned: ScanResult, planned: Planned) -> Iterator[Planned]:
        """Holds the deploy lock around the writes of a run that has any. Taken
        after planning (a run with nothing to do writes nothing), so the view
        it planned from is then confirmed: when another run held the lock, or
        wrote the state object since it was read, the bucket is listed and the
        run planned again, with the lock held."""
        settings = self.settings
        if not settings.lock or not any(a.writes for a in planned.plan.actions):
            yield planned
            return
        lock = DeployLock(self.store, lock_key(settings.target), timeout=settings.lock_timeout,
                          endpoint=settings.endpoint, tested=planned.listing.conditional_writes,
                          notify=self.reporter.info, warn=self.reporter.warn)
        with self.timed("lock"):
            lock.acquire()
        try:
            if lock.held and (lock.waited or not statefile.current(self.store, planned.listing, target=settings.target,
                                                                     use_state=settings.state)):
                self.reporter.info("another run wrote to this target since it was listed: listing it again")
                listing = statefile.load(self.store, settings.bucket, settings.target, use_state=settings.state,
                                         warn=self.reporter.warn)
                planned = self.plan(scanned, listing)
                if planned.refusal:
                    raise GuardError(planned.refusal)
            self.lock = lock
            yield self.scrub(scanned, planned)
        finally:
            lock.release()

    def scan_and_list(self):
        """The scan and the listing (with the state object) at the same time."""
        settings = self.settings
        with self.executors.pool(1, "list") as lister:
            def listed():
                with self.timed("list"):
                    listed = statefile.load(self.store, settings.bucket, settings.target, use_state=settings.state,
                                            warn=self.reporter.warn)
                return listed
            listing = lister.submit(listed)
            try:
                with self.timed("scan"):
                    scanned = scan(settings.source_path(), settings.target,
                                   allow_external_symlinks=settings.allow_external_symlinks, selection=self.selection)
                self.refuse_clashes(diff.clashes(scanned.files, settings))
                if settings.state and not settings.dry_run:
                    with self.timed("hash"), self.executors.pool(hash_workers(), "hash") as hasher:
                        scanned.hashes = source_hashes(scanned.files, hasher)
            except BaseException:
                listing.cancel()
                raise
            listing = listing.result()
        self.prepare(scanned)
        return scanned, listing

    def prepare(self, scanned: ScanResult) -> None:
        """Leaves out the state object's name, gives compressed files their
        encoding, and says what the scan found wrong."""
        settings, reporter = self.settings, self.reporter
        for reserved, what in ((state_key(settings.target), "the state object"),
                               (lock_key(settings.target), "the deploy lock")):
            if any(f.key == reserved for f in scanned.files):
                scanned.problems.append(f"{reserved}: this name is reserved for {what}; the file is not synced")
                scanned.files = [f for f in scanned.files if f.key != reserved]
        scanned.files, conflicts = self.rules.with_encodings(scanned.files)
        if conflicts:
            shown = ", ".join(f.key for f in conflicts[:3]) + (", ..." if len(conflicts) > 3 else "")
            scanned.warnings.append(
                f"{settings.label('compress')}: {len(conflicts)} file(s) also match a content_encoding rule ({shown}); "
                "the compression decides their Content-Encoding (gzip or br), the content_encoding rule does not "
                "apply to them")
        for text in scanned.warnings + scanned.problems:
            reporter.warn(text)
        if not scanned.files and not (settings.delete and not settings.allow_empty_source):  # else: refused later
            reporter.warn(f"the source {settings.source!r} has no files (an empty folder, or a glob that "
                          f"matches nothing{guards.SELECTION_NOTE if settings.include or settings.exclude else ''})")

    def show_plan(self, plan: Plan, refusal: Optional[str]) -> None:
        """A dry run: the plan as the real run would carry it out."""
        summary = self.summary
        deletes = plan.of(Kind.DELETE)
        if deletes and summary.errors:  # as the real run would: no delete after any problem
            summary.plan = plan = Plan([a for a in plan.actions if a.kind is not Kind.DELETE])
            summary.delete_blocked_reason = (f"{len(deletes)} delete(s) would not be done because of "
                                             f"{len(summary.errors)} problem(s)")
        # In the order the real run writes (wave by wave), then the deletes and what is kept.
        ordered = [a for wave in waves(plan.actions, self.settings.order, self.settings.target) for a in wave.actions]
        self.reporter.plan(ordered + [a for a in plan.actions if a.kind not in WRITES])
        if refusal:
            raise GuardError(refusal)
        if self.settings.cloudfront_distribution:
            summary.invalidation_paths = paths_for(plan.actions, self.settings)

    def scrub(self, scanned: ScanResult, planned: Planned) -> Planned:
        """Re-checks the ACL of a slice of the objects the state vouches for (see
        scrub.py); plans again without the entries found wrong."""
        listing = planned.listing
        with self.timed("plan"):
            wrong, self.next_scrub = scrub.scrub(self.store, planned.plan, listing, self.settings,
                                                 notify=self.reporter.info)
        if not wrong:
            return planned
        entries = {k: e for k, e in listing.entries.items() if k not in wrong}
        return self.plan(scanned, replace(listing, entries=entries, refresh=True))

    def write(self, planned: Planned) -> None:
        settings, summary = self.settings, self.summary
        plan, listing, evidence = planned.plan, planned.listing, planned.evidence
        if listing.verified is not None and listing.verified[0] == settings.endpoint:
            self.sampler.known = frozenset(listing.verified[1])
        with self.timed("state"):
            stored = statefile.retire(plan, listing, store=self.store, bucket=settings.bucket, target=settings.target,
                                      use_state=settings.state, rules=self.rules)
        summary.stage = Stage.TRANSFER
        ordered = waves(plan.actions, settings.order, settings.target)
        summary.waves = [f"{w.name} ({len(w.actions)})" for w in ordered]
        with self.timed("transfer"):
            Writer(self.store, reporter=self.reporter, executors=self.executors,
                   max_concurrency=settings.max_concurrency, record=self.record, vouched=evidence.vouched,
                   cache=planned.cache, on_wave=lambda name: setattr(summary, "wave", name)).write(ordered)
        unkept = self.read_back()
        where = f"the server {settings.endpoint}" if settings.endpoint else f"bucket {settings.bucket}"
        summary.errors.extend(readback.acl_refusal(summary.failures, settings.label("acl"), where))
        self.check_lock()
        summary.stage = Stage.DELETE
        with self.timed("delete"):
            _, summary.delete_blocked_reason = delete(plan, self.store, self.record,
                                                      blocked_by=len(summary.failures) + len(summary.errors))
        summary.stage = Stage.FINISH
        if settings.state:
            with self.timed("state"):
                uploaded = [o.action.local for o in summary.outcomes if o.ok and o.action.kind is Kind.UPLOAD]
                statefile.save(summary, listing, state_digests(uploaded, evidence, self.executors), stored,
                               store=self.store, bucket=settings.bucket, target=settings.target, rules=self.rules,
                               warn=self.reporter.warn, conditional_writes=self.conditional_writes(listing),
                               distrust=unkept, verified=self.verified, scrub=self.next_scrub)
        with self.timed("invalidate"):
            self.invalidate()

    def read_back(self) -> set:
        """Checks that the server kept what the first write of each kind sent;
        returns the keys the state must not vouch for (written with something
        the server dropped), so that every run finds them again."""
        with self.timed("transfer"):
            errors, unkept, self.verified = readback.verify(
                self.sampler, self.store, [o.action for o in self.summary.outcomes if o.ok],
                endpoint=self.settings.endpoint, ignored=self.settings.ignore_unsupported, warn=self.reporter.warn)
        self.summary.errors.extend(errors)
        return unkept

    def conditional_writes(self, listing: statefile.Listing) -> bool:
        """What the state records of the server: seen to honour conditional writes."""
        if self.lock is not None and self.lock.held:
            return self.lock.honoured
        return listing.conditional_writes

    def check_lock(self) -> None:
        if self.lock is not None and self.lock.lost:
            raise LockError(f"the deploy lock {self.lock.key} was taken over by another run while this one wrote; "
                            "it stopped before deleting anything or recording its state: run again")

    def cloudfront(self, quick: bool):
        return self.cdn if self.cdn is not None else self.store.cloudfront(quick=quick)

    def invalidate(self, extra: Sequence[Action] = (), quick: bool = False) -> None:
        """Invalidate what this run changed (writes and deletes that succeeded,
        and `extra`)."""
        summary = self.summary
        if not self.settings.cloudfront_distribution:
            return
        done = invalidate([o.action for o in summary.outcomes if o.ok] + list(extra), self.settings,
                          client=self.cloudfront, notify=self.reporter.info, skip=self._invalidated, quick=quick)
        summary.invalidation_paths = done.paths
        summary.invalidation_ids.extend(i for _, i in done.created)
        self._invalidated.update(d for d, _ in done.created)
        summary.errors.extend(done.errors)

    def refuse_clashes(self, keys: Sequence[str]) -> None:
        if keys:
            raise ConfigError(self.settings.label("redirects"),
                              f"{keys[0]!r} is also a file in the source; remove the file or the redirect")

    def interrupted(self, exc: KeyboardInterrupt) -> Interrupted:
        """After Ctrl-C or SIGTERM in the write stages: invalidate what did change
        (a later run finds those objects unchanged and would never invalidate
        them), and say what was done. The state object is not written: the one
        in the bucket stays correct (an entry vouches for an object only while
        its ETag is unchanged, and entries for headers changed in place were
        dropped before any change), so the next run checks what this one
        wrote against S3 and finishes the job."""
        summary = self.summary
        stop = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        deletes = summary.plan.of(Kind.DELETE)
        # Deletes are sent in batches; which of them were done before the
        # interruption is unknown, so every planned one is invalidated.
        maybe_deleted = deletes if summary.stage is Stage.DELETE else []
        try:
            self.invalidate(extra=maybe_deleted, quick=True)
        except KeyboardInterrupt:
            pass
        writes = len(summary.plan.actions) - len(summary.plan.of(Kind.SKIP)) - len(deletes)
        done = sum(1 for o in summary.outcomes if o.ok and o.action.kind is not Kind.DELETE)
        notes = [f"{done} of {writes} uploads and header updates done"] if writes else []
        if summary.stage is Stage.TRANSFER:
            notes.append("unfinished uploads were cancelled and nothing was deleted")
        elif summary.stage is Stage.DELETE:
            notes.append(f"{len(deletes)} delete(s) were under way")
        else:
            notes.append("every change was made")
        if self._invalidated:
            notes.append(f"CloudFront invalidated for the {len(summary.invalidation_paths)} path(s) changed")
        notes.append("run again to finish")
        stop.note = "; ".join(notes)
        return stop

