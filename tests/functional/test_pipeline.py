"""The whole pipeline in process: `sync()` against the in-memory store with
serial executors. Each test asserts the plan, the outcomes, the requests the
real store would send, and the state the run leaves, without a process start
or an HTTP server (the end-to-end tier proves the same contract through the
real command against the HTTP test server)."""

from __future__ import annotations

import gzip
import hashlib
import io
from collections import Counter
from pathlib import Path
from typing import Dict

import pytest

from drone_s3_sync import digest, pipeline
from drone_s3_sync.config import build_settings
from drone_s3_sync.errors import GuardError, Interrupted, RemoteError
from drone_s3_sync.executors import Executors
from drone_s3_sync.model import Kind, Reason, Stage
from drone_s3_sync.report import Reporter
from drone_s3_sync.keys import lock_key
from drone_s3_sync.state import decode, state_key
from support.memory_store import MemoryStore

STATE, LOCK = state_key(""), lock_key("")
# What the deploy lock costs a run that writes: take it, confirm the state read
# is still current, give it back.
LOCKED = Counter({"PutObject": 1, "HeadObject": 1, "DeleteObject": 1})
# The first object written with a header the server has not yet been seen to
# keep is read back once (readback.py); the state then records what was checked.
READ_BACK = Counter({"HeadObject": 1})
SITE = {"index.html": b"<h1>home</h1>", "about/index.html": b"<h1>about</h1>", "css/site.css": b"body{}",
        "img/logo.png": b"\x89PNG" + bytes(range(200))}


def tree(tmp_path: Path, files: Dict[str, bytes]) -> Path:
    src = tmp_path / "src"
    for rel, body in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(body)
    return src


class Run:
    """One call of `sync()` and what it printed."""

    def __init__(self, store: MemoryStore, src: Path, **settings):
        self.store, self.src, self.settings = store, src, settings

    def __call__(self, **more):
        raw = {"bucket": self.store.bucket, "source": str(self.src), **self.settings, **more}
        self.out, self.err = io.StringIO(), io.StringIO()
        before = len(self.store.ops)
        try:
            return pipeline.sync(build_settings(raw), store=self.store, executors=Executors.serial(),
                                 reporter=Reporter(self.out, self.err, progress=False))
        finally:
            self.sent = Counter(op for op, _ in self.store.ops[before:])


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def kinds(summary) -> Dict[str, Kind]:
    return {a.key: a.kind for a in summary.plan.actions}


def state_of(store: MemoryStore):
    return decode(store.objects[STATE].body)


def test_first_upload_then_nothing_to_do_costs_one_list_and_one_get(store, tmp_path):
    run = Run(store, tree(tmp_path, SITE))
    first = run()
    assert first.exit_code == 0
    assert set(kinds(first).values()) == {Kind.UPLOAD}
    assert run.sent == Counter({"ListObjectsV2": 1, "PutObject": len(SITE) + 1}) + LOCKED + READ_BACK  # + state
    for rel, body in SITE.items():
        assert store.objects[rel].body == body
    entries = state_of(store)
    assert {k: e.etag for k, e in entries.items()} == {k: hashlib.md5(b).hexdigest() for k, b in SITE.items()}
    assert {o.action.key: o.etag for o in first.outcomes} == {k: e.etag for k, e in entries.items()}
    assert entries["index.html"].headers.content_type == "text/html; charset=utf-8"

    again = run()
    assert set(kinds(again).values()) == {Kind.SKIP}
    assert run.sent == Counter({"ListObjectsV2": 1, "GetObject": 1})
    assert again.outcomes == []


def test_a_header_change_is_one_copy_of_each_object_and_a_new_state(store, tmp_path):
    run = Run(store, tree(tmp_path, SITE))
    run()
    summary = run(cache_control='{".html": "max-age=60"}')
    updates = {a.key: a.detail for a in summary.plan.actions if a.kind is Kind.UPDATE}
    assert updates == {"index.html": "cache_control", "about/index.html": "cache_control"}
    # The state vouched for the headers; each copy first reads what it must keep (no ACL read).
    assert run.sent == Counter({"ListObjectsV2": 1, "GetObject": 1, "HeadObject": 2, "CopyObject": 2,
                                "PutObject": 2}) + LOCKED + READ_BACK  # the state: retired, then the new one
    assert store.objects["index.html"].headers.cache_control == "max-age=60"
    assert state_of(store)["index.html"].headers.cache_control == "max-age=60"
    run(cache_control='{".html": "max-age=60"}')
    assert run.sent == Counter({"ListObjectsV2": 1, "GetObject": 1})


def test_changed_and_removed_files_are_uploaded_and_deleted_last(store, tmp_path):
    src = tree(tmp_path, SITE)
    run = Run(store, src, delete="true")
    run()
    (src / "css/site.css").write_bytes(b"body{color:red}")
    (src / "img/logo.png").unlink()
    summary = run()
    assert {k: (a.kind, a.reason) for k, a in ((a.key, a) for a in summary.plan.actions) if a.kind is not Kind.SKIP} \
        == {"css/site.css": (Kind.UPLOAD, Reason.SIZE), "img/logo.png": (Kind.DELETE, Reason.ORPHAN)}
    assert store.writes()[-5:] == [("PutObject", LOCK), ("PutObject", "css/site.css"),
                                   ("DeleteObjects", "img/logo.png"), ("PutObject", STATE), ("DeleteObject", LOCK)]
    assert "img/logo.png" not in store.objects and "img/logo.png" not in state_of(store)


def test_a_failed_upload_blocks_the_deletes_and_is_left_out_of_the_state(store, tmp_path):
    src = tree(tmp_path, SITE)
    run = Run(store, src, delete="true")
    run()
    (src / "index.html").write_bytes(b"<h1>new home</h1>")
    (src / "img/logo.png").unlink()
    store.fail("PutObject", "index.html", "SlowDown")
    summary = run()
    assert summary.exit_code == 1
    assert [(o.action.key, o.error) for o in summary.failures] == [("index.html", "SlowDown: injected")]
    assert summary.delete_blocked_reason == "1 delete(s) not done because 1 operation(s) failed"
    assert "img/logo.png" in store.objects
    assert "index.html" not in state_of(store)  # the next run checks it with S3
    assert "failed: index.html: SlowDown: injected" in run.out.getvalue()


def test_a_dry_run_plans_the_same_and_writes_nothing(store, tmp_path):
    src = tree(tmp_path, SITE)
    run = Run(store, src, delete="true")
    run()
    (src / "css/site.css").write_bytes(b"p{}")
    (src / "index.html").unlink()
    dry = run(dry_run="true")
    assert run.sent == Counter({"ListObjectsV2": 1, "GetObject": 1})
    real = run()
    assert [(a.key, a.kind, a.reason) for a in dry.plan.actions] == \
        [(a.key, a.kind, a.reason) for a in real.plan.actions]


def test_delete_with_an_empty_source_is_refused_before_any_write(store, tmp_path):
    src = tree(tmp_path, SITE)
    Run(store, src)()
    empty = tmp_path / "empty"
    empty.mkdir()
    run = Run(store, empty, delete="true")
    with pytest.raises(GuardError, match="has no files"):
        run()
    assert all(not op.startswith(("Put", "Copy", "Delete")) for op, _ in store.ops[-2:])
    assert set(SITE) <= set(store.objects)


def test_an_unreadable_file_is_kept_as_it_is_and_blocks_deletes(store, tmp_path):
    src = tree(tmp_path, SITE)
    run = Run(store, src, delete="true")
    run()
    (src / "img/logo.png").unlink()
    store.put("old.html", b"old")

    def refusing_open(path, *args, **kwargs):
        if str(path).endswith("site.css"):
            raise PermissionError(13, "Permission denied")
        return open(path, *args, **kwargs)

    (src / "css/site.css").write_bytes(b"p{a:0}")  # the same size: it must be read to compare
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(digest, "open", refusing_open, raising=False)  # as root, chmod would not stop a read
        summary = run()
    assert summary.exit_code == 1
    assert any("css/site.css" in e and "Permission denied" in e for e in summary.errors)
    assert summary.delete_blocked_reason
    assert "old.html" in store.objects and "img/logo.png" in store.objects
    assert store.objects["css/site.css"].body == SITE["css/site.css"]


def test_redirects_are_written_once_and_never_deleted(store, tmp_path):
    run = Run(store, tree(tmp_path, SITE), delete="true", redirects='{"old/page.html": "/about/"}')
    first = run()
    assert kinds(first)["old/page.html"] is Kind.REDIRECT
    assert store.objects["old/page.html"].headers.redirect == "/about/"
    run(redirects="{}")
    assert "old/page.html" in store.objects  # a redirect is never deleted
    assert run.sent["DeleteObjects"] == 0


def test_compressed_files_are_settled_by_the_state_without_compressing(store, tmp_path):
    big = b"hello world " * 2000
    src = tree(tmp_path, {"app.js": big, "index.html": b"<p>x</p>"})
    run = Run(store, src, compress='{".js": "gzip"}')
    run()
    obj = store.objects["app.js"]
    assert obj.headers.content_encoding == "gzip" and len(obj.body) < len(big)
    assert gzip.decompress(obj.body) == big
    assert set(kinds(run()).values()) == {Kind.SKIP}
    assert run.sent == Counter({"ListObjectsV2": 1, "GetObject": 1})


def test_an_object_changed_by_another_tool_is_uploaded_again(store, tmp_path):
    run = Run(store, tree(tmp_path, SITE))
    run()
    store.put("index.html", b"<h1>defaced</h1>", content_type="text/html")
    summary = run()
    assert {a.key: a.reason for a in summary.plan.actions if a.kind is Kind.UPLOAD} == {"index.html": Reason.SIZE}
    assert store.objects["index.html"].body == SITE["index.html"]


def test_an_interrupted_upload_leaves_deletes_undone_and_says_what_was_done(store, tmp_path):
    src = tree(tmp_path, SITE)
    run = Run(store, src, delete="true")
    run()
    for rel in SITE:
        (src / rel).write_bytes(SITE[rel] + b"!")
    (src / "extra.txt").write_bytes(b"x")
    store.put("orphan.txt", b"o")
    store.fail("PutObject", "extra.txt", "KeyboardInterrupt")
    with pytest.raises(Interrupted) as info:
        run()
    assert "nothing was deleted" in info.value.note and "run again to finish" in info.value.note
    assert "orphan.txt" in store.objects
    assert not any(op == "DeleteObjects" for op, _ in store.ops)


def test_the_stage_is_recorded_for_an_interruption(store, tmp_path):
    src = tree(tmp_path, {"a.txt": b"a"})
    run = Run(store, src, delete="true")
    run()
    store.put("gone.txt", b"g")
    store.fail("DeleteObjects", "gone.txt", "KeyboardInterrupt")
    summaries = []
    real = pipeline.Run.interrupted

    def spy(self, exc):
        summaries.append(self.summary.stage)
        return real(self, exc)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline.Run, "interrupted", spy)
        with pytest.raises(Interrupted) as info:
            run()
    assert summaries == [Stage.DELETE]
    assert "1 delete(s) were under way" in info.value.note


def test_listing_failure_is_fatal_and_writes_nothing(store, tmp_path):
    store.fail("ListObjectsV2", "", "AccessDenied")
    with pytest.raises(RemoteError, match="AccessDenied"):
        Run(store, tree(tmp_path, SITE))()
    assert store.writes() == []



def test_pages_are_written_after_every_asset_and_redirects_last(store, tmp_path):
    run = Run(store, tree(tmp_path, SITE), redirects='{"old.html": "/about/"}')
    summary = run()
    puts = [key for op, key in store.ops if op == "PutObject" and not key.startswith(".drone")]
    assert puts == ["css/site.css", "img/logo.png", "about/index.html", "index.html", "old.html"]
    assert summary.waves == ["files (2)", "pages (2)", "redirects (1)"] and summary.wave == "redirects"
    out = run.out.getvalue()
    assert out.index("wave 1/3: files, 2 writes") < out.index("wave 2/3: pages, 2 writes") \
        < out.index("wave 3/3: redirects, 1 write")


def test_order_none_writes_in_one_wave_and_says_nothing_of_waves(store, tmp_path):
    run = Run(store, tree(tmp_path, SITE), order="none")
    summary = run()
    assert summary.waves == ["all (4)"] and "wave" not in run.out.getvalue()


def test_an_interruption_in_the_files_wave_leaves_the_old_pages(store, tmp_path):
    src = tree(tmp_path, SITE)
    run = Run(store, src)
    run()
    for rel in SITE:
        (src / rel).write_bytes(SITE[rel] + b" v2")
    store.fail("PutObject", "img/logo.png", "KeyboardInterrupt")
    with pytest.raises(Interrupted):
        run()
    assert store.objects["index.html"].body == SITE["index.html"]  # the pages of the last deploy
    assert store.objects["about/index.html"].body == SITE["about/index.html"]
