"""The transfer stage keeps a bounded number of jobs in flight, whatever the
number of files: uploads handed to the store and header copies queued on the
pool it is given. A stand-in store counts what is outstanding; the real
requests are covered end to end (test_sync_e2e.py, test_load_e2e.py)."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import contextlib

from drone_s3_sync import transfer
from drone_s3_sync.errors import StoreError
from drone_s3_sync.executors import Executors
from drone_s3_sync.model import Action, Kind, LocalFile, ObjectHeaders, Reason
from drone_s3_sync.order import Wave
from drone_s3_sync.report import Reporter

HEADERS = ObjectHeaders(content_type="text/html")


class StandInStore:
    """Uploads end a moment after they start, on another thread, the way
    the S3 store calls `on_done` from s3transfer's threads."""

    def __init__(self, fail=()):
        self.lock = threading.Lock()
        self.outstanding = 0
        self.most_outstanding = 0
        self.uploaded = []
        self.copied = []
        self.fail = set(fail)
        self.ending = []
        self.stop = threading.Event()
        self.ender = threading.Thread(target=self._end_uploads, daemon=True)
        self.ender.start()

    def upload(self, body, key, headers, md5=None, *, keep=None, on_progress=None, on_done):
        with self.lock:
            self.outstanding += 1
            self.most_outstanding = max(self.most_outstanding, self.outstanding)
            self.ending.append((key, on_done))

    def _end_uploads(self):
        while not self.stop.is_set():
            with self.lock:
                batch, self.ending = self.ending, []
            for key, on_done in batch:
                with self.lock:
                    self.outstanding -= 1
                    self.uploaded.append(key)
                if key in self.fail:
                    on_done("", StoreError(f"{key}: gone"))
                else:
                    on_done("etag-" + key, None)
            time.sleep(0.001)

    def copy_headers(self, key, headers, details, md5=None, *, if_match=None):
        with self.lock:
            self.copied.append(key)
        return "etag"

    def put_redirect(self, key, headers):
        with self.lock:
            self.copied.append(key)
        return "etag"

    def wait_uploads(self):
        self.stop.set()


class CountingPool(ThreadPoolExecutor):
    """Counts jobs submitted and not yet finished."""

    most_outstanding = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._count_lock = threading.Lock()
        self._outstanding = 0

    def submit(self, fn, *args, **kwargs):
        with self._count_lock:
            self._outstanding += 1
            CountingPool.most_outstanding = max(CountingPool.most_outstanding, self._outstanding)
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._ended)
        return future

    def _ended(self, future):
        with self._count_lock:
            self._outstanding -= 1


def upload_action(i: int) -> Action:
    key = f"f/{i:05d}.html"
    return Action(Kind.UPLOAD, key, Reason.NEW, local=LocalFile(rel=key, key=key, path="/dev/null", size=1,
                                                                mtime_ns=0), headers=HEADERS, size=1)


class CountingExecutors(Executors):
    """Pools that count the jobs submitted and not yet finished."""

    @contextlib.contextmanager
    def pool(self, workers, name):
        with CountingPool(max_workers=workers, thread_name_prefix=name) as pool:
            yield pool


def make_writer(store, outcomes, executors=None, concurrency: int = 2) -> transfer.Writer:
    return transfer.Writer(store, reporter=Reporter(out=io.StringIO(), err=io.StringIO(), progress=False),
                           executors=executors or Executors(), max_concurrency=concurrency,
                           record=outcomes.append)


def test_uploads_are_handed_over_in_a_bounded_window():
    store = StandInStore(fail={"f/00007.html"})
    actions = [upload_action(i) for i in range(600)]
    outcomes = []
    make_writer(store, outcomes).write([Wave("all", tuple(actions))])

    assert sorted(store.uploaded) == [a.key for a in actions]
    assert 1 < store.most_outstanding <= 32
    assert transfer.upload_window(2) == 32
    assert len(outcomes) == 600
    assert [o.action.key for o in outcomes if not o.ok] == ["f/00007.html"]
    assert [o.error for o in outcomes if not o.ok] == ["f/00007.html: gone"]
    assert {o.etag for o in outcomes if o.ok} == {"etag-" + a.key for a in actions if a.key != "f/00007.html"}


def test_header_copies_are_queued_in_a_bounded_window(monkeypatch):
    monkeypatch.setattr(transfer, "WINDOW", 16)
    CountingPool.most_outstanding = 0
    store = StandInStore()
    actions = [Action(Kind.UPDATE, f"c/{i:05d}.html", Reason.HEADERS, headers=HEADERS) for i in range(300)]
    actions += [Action(Kind.REDIRECT, f"r/{i}", Reason.NEW, headers=ObjectHeaders("text/html", redirect="/x"))
                for i in range(20)]
    outcomes = []
    make_writer(store, outcomes, CountingExecutors()).write([Wave("all", tuple(actions))])
    store.wait_uploads()

    assert sorted(store.copied) == sorted(a.key for a in actions)
    assert len(outcomes) == 320 and all(o.ok for o in outcomes)
    assert 1 < CountingPool.most_outstanding <= 16

