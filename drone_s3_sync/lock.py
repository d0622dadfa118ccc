"""The deploy lock: one writing run per target at a time.

A run that will write takes `<target>.drone-s3-sync-lock` with a conditional
PUT (If-None-Match: *), so that of two runs exactly one gets it. The object
says who holds it (host, process, CI build and commit when known, start time)
and for how long a silence means its holder died (`ttl`). The holder renews
it (a conditional PUT over its own ETag) every `ttl / 4` seconds while it
runs, and deletes it when done. Another run waits, saying who holds the lock,
up to `lock_timeout`; a lock not renewed for `ttl` seconds by the server's own
clock is stale (its holder was killed: a CI timeout, an OOM kill) and is taken
over, again conditionally, so that of two runs waiting only one takes it.

Compared with Terraform's S3 lock file (a conditional PUT, no expiry, removed
by hand with `force-unlock`): renewal and stale takeover need no person, and
the waiting run says who it waits for.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Optional, Tuple

from .errors import LockError, StoreError
from .store import PRECONDITION_FAILED, RemoteStore

log = logging.getLogger("drone_s3_sync")

TTL = 120.0  # seconds without renewal after which a lock is stale
POLL = (2.0, 5.0)  # seconds between two looks at a held lock (jittered)
QUICK = 0.2  # seconds before looking again when the lock changed hands meanwhile
# Variables of CI systems that say which build holds the lock: (label, names).
CI_VARIABLES = (
    ("build", ("DRONE_BUILD_NUMBER", "CI_PIPELINE_NUMBER", "GITHUB_RUN_ID", "CI_JOB_ID", "BUILD_NUMBER")),
    ("repo", ("DRONE_REPO", "CI_REPO", "GITHUB_REPOSITORY")),
    ("commit", ("DRONE_COMMIT_SHA", "CI_COMMIT_SHA", "GITHUB_SHA")),
)
NOT_SUPPORTED = ("NotImplemented", "501")
# The answers to a conditional PUT that found the lock taken: S3 answers 409
# ConditionalRequestConflict to the losers of writes racing at the same moment.
HELD = (PRECONDITION_FAILED, "ConditionalRequestConflict", "409")


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its object says."""

    host: str = "?"
    pid: int = 0
    started: str = ""
    ttl: float = TTL
    build: str = ""
    repo: str = ""
    commit: str = ""
    # Its multipart uploads not yet ended: a run taking over a stale lock aborts
    # them (they are this tool's, so another tool's are never touched).
    uploads: Tuple[Tuple[str, str], ...] = ()

    def describe(self) -> str:
        ci = " ".join(f"{name} {value[:12] if name == 'commit' else value}"
                      for name, value in (("repo", self.repo), ("build", self.build), ("commit", self.commit)) if value)
        return f"{ci + ', ' if ci else ''}host {self.host}, pid {self.pid}, since {self.started or '?'}"

    def encode(self) -> bytes:
        return json.dumps({"tool": "drone-s3-sync", "host": self.host, "pid": self.pid, "started": self.started,
                           "ttl": self.ttl, "build": self.build, "repo": self.repo, "commit": self.commit,
                           "uploads": [list(u) for u in self.uploads]}, sort_keys=True).encode("utf-8")

    @classmethod
    def decode(cls, body: bytes) -> "Holder":
        try:
            data = json.loads(body.decode("utf-8"))
            return cls(host=str(data.get("host", "?")), pid=int(data.get("pid", 0)), started=str(data.get("started", "")),
                       ttl=float(data.get("ttl", TTL)), build=str(data.get("build", "")),
                       repo=str(data.get("repo", "")), commit=str(data.get("commit", "")),
                       uploads=tuple((str(k), str(u)) for k, u in data.get("uploads") or ()))
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
            return cls()  # not ours to read: still a lock, with the default expiry

    @classmethod
    def of_this_run(cls, environ: Mapping[str, str], ttl: float = TTL) -> "Holder":
        ci = {label: next((environ[n] for n in names if environ.get(n)), "") for label, names in CI_VARIABLES}
        return cls(host=socket.gethostname(), pid=os.getpid(),
                   started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), ttl=ttl, **ci)


class DeployLock:
    """Taken with `acquire`, renewed in the background, given back with `release`.

    `lost` turns true when a renewal finds the lock taken over by another run
    (this one was silent for longer than the ttl): the run must stop writing.
    """

    def __init__(self, store: RemoteStore, key: str, *, timeout: float, endpoint: str = "", tested: bool = False,
                 notify: Callable[[str], None] = log.info, warn: Callable[[str], None] = log.warning,
                 environ: Optional[Mapping[str, str]] = None, ttl: float = TTL,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.store, self.key, self.timeout, self.endpoint = store, key, timeout, endpoint
        # Whether the server honours conditional writes: AWS does; an S3-compatible
        # server is tested once, and the state records the answer (`tested`).
        self.honoured = tested or not endpoint
        self.notify, self.warn, self.sleep, self.clock = notify, warn, sleep, clock
        self.holder = Holder.of_this_run(os.environ if environ is None else environ, ttl)
        self.etag: Optional[str] = None
        self.waited = False  # another run held it, or held it last: what was read before is stale
        self.lost = False
        self.held = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._renewer: Optional[threading.Thread] = None
        self._etag_lock = threading.Lock()

    # ---------------------------------------------------------------- taking it
    def acquire(self) -> None:
        """Takes the lock, waiting for its holder up to `timeout` seconds;
        raises LockError when it is still held then. A server that does not
        support conditional writes gets a warning and no lock."""
        started = self.clock()
        told = None
        while True:
            try:
                self.etag = self.store.put_bytes(self.key, self.holder.encode(), "application/json",
                                                 if_none_match=True)
            except StoreError as exc:
                if exc.code in NOT_SUPPORTED:
                    self._unsupported(f"it answered {exc}")
                    return
                if exc.code not in HELD:
                    raise LockError(f"cannot take the deploy lock {self.key}: {exc}") from None
            else:
                self.held = True
                if not self.honoured:
                    self._check_conditions_honoured()
                self._start_renewing()
                return
            # Held by another run.
            self.waited = True
            pause = random.uniform(*POLL)
            try:
                current = self.store.fetch(self.key)
            except StoreError as exc:
                if exc.code not in ("404", "NoSuchKey"):
                    raise LockError(f"cannot read the deploy lock {self.key}: {exc}") from None
                current, holder, pause = None, Holder(), QUICK  # given back meanwhile: try again soon
            if current is not None:
                holder = Holder.decode(current.body)
                if current.age > holder.ttl:
                    if self._take_over(current.etag, holder, current.age):
                        return
                    pause = QUICK  # another run was quicker, or the holder came back: look again
                elif told != current.etag:
                    self.notify(f"waiting for the deploy lock {self.key}, held by {holder.describe()}")
                    told = current.etag
            waited = self.clock() - started
            if waited >= self.timeout:
                raise LockError(
                    f"the deploy lock {self.key} is held by another run ({holder.describe()}); waited "
                    f"{waited:.0f} s (lock_timeout). It is renewed while its holder runs and goes stale "
                    f"{holder.ttl:.0f} s after it stops; raise lock_timeout to wait longer") from None
            self.sleep(min(pause, max(0.0, self.timeout - waited)))

    def _take_over(self, etag: str, holder: Holder, age: float) -> bool:
        try:
            self.etag = self.store.put_bytes(self.key, self.holder.encode(), "application/json", if_match=etag)
        except StoreError as exc:
            if exc.code in HELD:
                return False  # another run took it first, or its holder renewed it
            raise LockError(f"cannot take over the deploy lock {self.key}: {exc}") from None
        self.warn(f"took over the deploy lock {self.key}: its holder ({holder.describe()}) has not renewed it "
                  f"for {age:.0f} s and was probably stopped; what it left half done is checked with S3")
        self.held = True
        self._start_renewing()
        self._abort_left_uploads(holder)
        return True

    def _abort_left_uploads(self, holder: Holder) -> None:
        """The multipart uploads the stopped holder had begun: their parts would
        otherwise stay stored (and billed) without an object."""
        for key, upload_id in holder.uploads:
            try:
                self.store.abort_upload(key, upload_id)
            except StoreError as exc:
                self.warn(f"cannot abort the multipart upload of {key} left by the stopped run ({exc})")
            else:
                self.notify(f"aborted the multipart upload of {key} left by the stopped run")

    def _check_conditions_honoured(self) -> None:
        """An S3-compatible server may ignore If-None-Match: a second conditional
        PUT onto the lock just taken must be refused."""
        try:
            self.etag = self.store.put_bytes(self.key, self.holder.encode(), "application/json", if_none_match=True)
        except StoreError as exc:
            if exc.code == PRECONDITION_FAILED:
                self.honoured = True
                return
            if exc.code not in NOT_SUPPORTED:
                raise LockError(f"cannot take the deploy lock {self.key}: {exc}") from None
        self._unsupported("it accepted a conditional write it had to refuse")
        try:  # the lock object just written means nothing on such a server
            self.store.remove(self.key)
        except StoreError:
            pass

    def _unsupported(self, how: str) -> None:
        self.warn(f"the server {self.endpoint or 'S3'} does not support conditional writes ({how}): the deploy lock "
                  "cannot keep two runs from writing to this target at once; set lock: false to skip it")
        self.held = False

    # ---------------------------------------------------------------- holding it
    def _start_renewing(self) -> None:
        self.store.watch_uploads(self._wake.set)
        self._renewer = threading.Thread(target=self._renew_loop, name="lock-renew", daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        """Every ttl/4, and at once when a multipart upload begins (so that the
        lock names it should this run be killed)."""
        while not self._stop.is_set():
            self._wake.wait(self.holder.ttl / 4)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.renew()

    def renew(self) -> None:
        with self._etag_lock:
            if self.lost or not self.held:
                return
            self.holder = replace(self.holder, uploads=tuple(self.store.open_uploads()))
            try:
                self.etag = self.store.put_bytes(self.key, self.holder.encode(), "application/json",
                                                 if_match=self.etag)
            except StoreError as exc:
                if exc.code == PRECONDITION_FAILED:
                    self.lost = True
                    self.warn(f"the deploy lock {self.key} was taken over by another run; this run stops writing")
                else:  # the next renewal tries again; the ttl leaves room for a few failures
                    log.warning("cannot renew the deploy lock %s (%s)", self.key, exc)

    def release(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._renewer is not None:
            self._renewer.join()
        with self._etag_lock:
            if not self.held or self.lost:
                return
            self.held = False
            try:
                self.store.remove(self.key)
            except StoreError as exc:
                self.warn(f"cannot remove the deploy lock {self.key} ({exc}); the next run takes it over once "
                          f"it is stale, {self.holder.ttl:.0f} s from now")
