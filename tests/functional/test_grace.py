"""delete_grace in process, with a clock the test moves: a removed file's
object outlives the grace period's runs and goes in the first run after it,
exactly once, invalidated then."""

from __future__ import annotations

import io
from collections import Counter

import pytest

from drone_s3_sync import grace, pipeline
from drone_s3_sync.config import build_settings
from drone_s3_sync.errors import ConfigError, GuardError
from drone_s3_sync.executors import Executors
from drone_s3_sync.model import Kind, Reason
from drone_s3_sync.report import Reporter
from drone_s3_sync.state import read, state_key
from support.memory_store import MemoryStore
from test_pipeline import SITE, tree

DAY = 86400.0


class Clocked:
    """sync() with the test's clock and a fake CloudFront that records invalidations."""

    def __init__(self, store, src, **settings):
        self.store, self.src, self.settings, self.now = store, src, settings, 1_780_000_000.0
        self.invalidated = []

    def create_invalidation(self, DistributionId, InvalidationBatch):  # noqa: N803 (boto's names)
        self.invalidated.append(InvalidationBatch["Paths"]["Items"])
        return {"Invalidation": {"Id": f"I{len(self.invalidated)}"}}

    def __call__(self, **more):
        raw = {"bucket": self.store.bucket, "source": str(self.src), "delete": "true", "delete_grace": "7d",
               **self.settings, **more}
        self.out, self.err = io.StringIO(), io.StringIO()
        before = len(self.store.ops)
        try:
            return pipeline.sync(build_settings(raw), store=self.store, executors=Executors.serial(), cdn=self,
                                 reporter=Reporter(self.out, self.err, progress=False), clock=lambda: self.now)
        finally:
            self.sent = Counter(op for op, _ in self.store.ops[before:])


def removed_record(store):
    return read(store.objects[state_key("")].body).removed


def test_a_removed_file_is_kept_for_the_grace_period_then_deleted_once(tmp_path):
    store = MemoryStore()
    src = tree(tmp_path, SITE)
    run = Clocked(store, src, cloudfront_distribution="E123")
    run()
    run.invalidated.clear()
    (src / "css/site.css").unlink()
    first = run()
    kept = {a.key: a for a in first.plan.actions if a.reason is Reason.GRACE}
    assert list(kept) == ["css/site.css"] and kept["css/site.css"].kind is Kind.SKIP
    assert kept["css/site.css"].detail == f"deleted after {grace.when(run.now + 7 * DAY)}"
    assert "css/site.css" in store.objects and run.sent["DeleteObjects"] == 0
    assert removed_record(store) == {"css/site.css": run.now}
    assert "delete_grace: 1 object(s) no longer in the source kept for now" in run.out.getvalue()
    assert run.invalidated == []  # a kept object is not invalidated

    run.now += 6 * DAY  # within the grace period: still kept, nothing written
    run()
    assert "css/site.css" in store.objects and run.sent == Counter({"ListObjectsV2": 1, "GetObject": 1})

    run.now += 1 * DAY  # over: deleted, said so, invalidated, and its record gone
    summary = run()
    deletes = [a for a in summary.plan.actions if a.kind is Kind.DELETE]
    assert [(a.key, a.detail) for a in deletes] == [
        ("css/site.css", f"removed from the source {grace.when(run.now - 7 * DAY)}, delete_grace over")]
    assert "css/site.css" not in store.objects
    assert run.invalidated == [["/css/site.css"]]
    assert "delete_grace over" in run.out.getvalue()
    assert removed_record(store) == {}
    run()
    assert run.sent == Counter({"ListObjectsV2": 1, "GetObject": 1})  # deleted exactly once


def test_a_file_that_comes_back_is_kept_and_its_record_dropped(tmp_path):
    store = MemoryStore()
    src = tree(tmp_path, SITE)
    run = Clocked(store, src)
    run()
    (src / "img/logo.png").unlink()
    run()
    assert removed_record(store) == {"img/logo.png": run.now}
    (src / "img/logo.png").write_bytes(SITE["img/logo.png"])
    run.now += 30 * DAY
    summary = run()
    assert [a.kind for a in summary.plan.actions if a.key == "img/logo.png"] == [Kind.SKIP]
    assert removed_record(store) == {} and "img/logo.png" in store.objects


def test_a_dry_run_shows_the_deletes_due_and_those_waiting(tmp_path):
    store = MemoryStore()
    src = tree(tmp_path, SITE)
    run = Clocked(store, src)
    run()
    (src / "css/site.css").unlink()
    run()
    run.now += 8 * DAY
    (src / "img/logo.png").unlink()
    run(dry_run="true")
    out = run.out.getvalue()
    assert "would delete   css/site.css  (not in source: removed from the source" in out
    assert "would keep img/logo.png  (kept for delete_grace: deleted after" in out
    assert run.sent == Counter({"ListObjectsV2": 1, "GetObject": 1})


def test_guards_count_only_the_deletes_made_now(tmp_path):
    store = MemoryStore()
    src = tree(tmp_path, SITE)
    run = Clocked(store, src, max_delete="1")
    run()
    for rel in ("css/site.css", "img/logo.png"):
        (src / rel).unlink()
    run()  # two removed, none deleted now: max_delete does not refuse
    run.now += 8 * DAY
    with pytest.raises(GuardError, match="would delete 2 objects"):
        run()
    other = MemoryStore()
    Clocked(other, src)()
    empty = tmp_path / "empty"
    empty.mkdir()
    emptied = Clocked(other, empty)
    emptied()  # an empty source with a grace period only starts the clock
    emptied.now += 8 * DAY
    with pytest.raises(GuardError, match="has no files"):
        emptied()


def test_delete_grace_needs_the_state():
    with pytest.raises(ConfigError, match="delete_grace: needs the state object"):
        build_settings({"bucket": "bucket", "delete_grace": "1d", "state": "false"})
