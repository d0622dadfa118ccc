"""The deploy lock and overlapping runs, in process: the interleavings are
forced by hooks of the in-memory store that act as the other run at the very
moment a request of this one is answered."""

from __future__ import annotations

from collections import Counter

import pytest

from drone_s3_sync.errors import LockError
from drone_s3_sync.keys import lock_key
from drone_s3_sync.lock import Holder
from drone_s3_sync.model import Kind
from drone_s3_sync.state import decode, state_key
from support.memory_store import MemoryStore
from test_pipeline import SITE, Run, tree

LOCK, STATE = lock_key(""), state_key("")


def plant_lock(store: MemoryStore, **holder) -> None:
    """A lock as another run writes it."""
    fields = dict(host="ci-7", pid=4242, started="2026-12-04T03:00:00Z", build="117", repo="acme/site")
    fields.update(holder)
    store.put(LOCK, Holder(**fields).encode(), "application/json")


def test_a_run_that_writes_takes_the_lock_and_gives_it_back(tmp_path):
    store = MemoryStore()
    run = Run(store, tree(tmp_path, SITE))
    run()
    ops = [op for op in store.ops if op[1] in (LOCK, STATE) and op[0] != "PutObject" or op == ("PutObject", LOCK)]
    ops = [op for op in ops if op[0] != "GetObject"]
    assert ops == [("PutObject", LOCK), ("HeadObject", STATE), ("DeleteObject", LOCK)]
    assert store.ops[1] == ("PutObject", LOCK)  # before the first write
    assert store.ops[-1] == ("DeleteObject", LOCK) and LOCK not in store.objects


def test_a_run_with_nothing_to_write_and_a_dry_run_take_no_lock(tmp_path):
    store = MemoryStore()
    run = Run(store, tree(tmp_path, SITE))
    run()
    plant_lock(store)  # another run is writing right now: reading needs no lock
    run()
    assert run.sent == Counter({"ListObjectsV2": 1, "GetObject": 1})
    (tmp_path / "src" / "new.txt").write_bytes(b"new")
    run(dry_run="true")
    assert run.sent == Counter({"ListObjectsV2": 1, "GetObject": 1})


def test_a_held_lock_is_waited_for_then_refused_with_who_holds_it(tmp_path):
    store = MemoryStore()
    plant_lock(store)
    run = Run(store, tree(tmp_path, SITE), lock_timeout="0.2")
    with pytest.raises(LockError) as info:
        run()
    assert LockError.exit_code == 4
    text = str(info.value)
    assert "held by another run (repo acme/site build 117, host ci-7, pid 4242" in text
    assert "lock_timeout" in text
    assert "waiting for the deploy lock .drone-s3-sync-lock, held by repo acme/site build 117" in run.out.getvalue()
    assert [key for op, key in store.writes()] == [LOCK] * run.sent["PutObject"]  # only tries for the lock
    assert set(store.objects) == {LOCK}


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path):
    store = MemoryStore()
    plant_lock(store)
    store.now += 121  # not renewed for longer than its ttl: its holder was killed
    run = Run(store, tree(tmp_path, SITE))
    summary = run()
    assert summary.exit_code == 0
    assert "took over the deploy lock .drone-s3-sync-lock: its holder (repo acme/site build 117" in run.err.getvalue()
    assert LOCK not in store.objects and set(SITE) <= set(store.objects)


def test_a_run_that_waited_plans_again_from_what_the_other_run_left(tmp_path):
    store = MemoryStore()
    src = tree(tmp_path, SITE)
    run = Run(store, src)
    run()
    (src / "index.html").write_bytes(b"<h1>ours</h1>")
    plant_lock(store)

    def other_run_finishes():  # while this run looks at the lock: writes the same bytes, then lets go
        store.put("index.html", b"<h1>ours</h1>", "text/html; charset=utf-8")
        store.objects.pop(LOCK)

    store.on("GetObject", LOCK, other_run_finishes)
    summary = run()
    assert "listing it again" in run.out.getvalue()
    assert run.sent["ListObjectsV2"] == 2
    # The second plan sees the other run's upload: the same bytes, so only headers are compared.
    assert {a.key: a.kind for a in summary.plan.actions if a.kind is not Kind.SKIP} == {}


def test_a_state_written_between_reading_and_locking_makes_the_run_look_again(tmp_path):
    store = MemoryStore()
    src = tree(tmp_path, SITE)
    run = Run(store, src)
    run()
    (src / "css/site.css").write_bytes(b"body{color:red}")

    def other_run_writes_the_state():
        store.put("css/site.css", b"body{color:red}", "text/css; charset=utf-8")
        store.put(STATE, store.objects[STATE].body + b"", "application/gzip")
        store.objects[STATE].etag = "other-run"

    store.on("PutObject", LOCK, other_run_writes_the_state)
    run()
    assert run.sent["ListObjectsV2"] == 2
    assert [key for op, key in store.writes() if op == "PutObject"][-2:] == [LOCK, STATE]


def test_without_the_lock_a_state_written_meanwhile_leaves_both_runs_writes_unvouched(tmp_path):
    store = MemoryStore()
    src = tree(tmp_path, SITE)
    run = Run(store, src, lock="false")
    run()
    (src / "css/site.css").write_bytes(b"body{color:red}")
    original = decode(store.objects[STATE].body)

    def other_run_rewrites_index_and_the_state():
        store.put("index.html", SITE["index.html"], "text/html; charset=utf-8", cache_control="no-store")
        entries = dict(original)
        entries.pop("index.html")
        from drone_s3_sync.state import encode
        store.put(STATE, encode(entries, ("bucket", "")), "application/gzip")

    store.on("PutObject", "css/site.css", other_run_rewrites_index_and_the_state)
    run()
    assert "another run wrote to this target at the same time" in run.err.getvalue()
    entries = decode(store.objects[STATE].body)
    assert "css/site.css" not in entries and "index.html" not in entries  # checked with S3 next time
    assert set(entries) == {"about/index.html", "img/logo.png"}
    assert LOCK not in [key for _, key in store.ops]
    summary = run()  # the next run restores what the other run changed
    assert {a.key: a.kind for a in summary.plan.actions if a.kind is not Kind.SKIP} == {"index.html": Kind.UPDATE}
    assert store.objects["index.html"].headers.cache_control is None


def test_a_header_copy_applies_only_to_the_object_that_was_listed(tmp_path):
    store = MemoryStore()
    src = tree(tmp_path, SITE)
    run = Run(store, src, lock="false")
    run()
    store.on("CopyObject", "index.html",
             lambda: store.put("index.html", b"<h1>theirs</h1>", "text/html"))  # written just before the copy
    summary = run(cache_control='{".html": "max-age=60"}')
    failed = {o.action.key: o.error for o in summary.failures}
    assert list(failed) == ["index.html"] and "wrote this object after it was listed" in failed["index.html"]
    assert store.objects["index.html"].body == b"<h1>theirs</h1>"  # not given our headers over their bytes
    assert "index.html" not in decode(store.objects[STATE].body)
    assert run(cache_control='{".html": "max-age=60"}').exit_code == 0
    assert store.objects["index.html"].body == SITE["index.html"]


def test_a_server_that_ignores_conditional_writes_is_told(tmp_path):
    store = MemoryStore()
    store.conditional = False
    run = Run(store, tree(tmp_path, SITE), endpoint="http://127.0.0.1:9000")
    assert run().exit_code == 0
    assert "the server http://127.0.0.1:9000 does not support conditional writes" in run.err.getvalue()
    assert "set lock: false" in run.err.getvalue()


def test_lock_false_sends_no_lock_request(tmp_path):
    store = MemoryStore()
    Run(store, tree(tmp_path, SITE), lock="false")()
    assert all(key != LOCK for _, key in store.ops)
    assert ("HeadObject", STATE) not in store.ops


def test_taking_over_a_stale_lock_aborts_the_multipart_uploads_its_holder_left(tmp_path):
    store = MemoryStore()
    plant_lock(store, uploads=(("big.iso", "upload-1"), ("video.mp4", "upload-2")))
    store.now += 121
    run = Run(store, tree(tmp_path, SITE))
    assert run().exit_code == 0
    assert store.aborted == [("big.iso", "upload-1"), ("video.mp4", "upload-2")]
    assert "aborted the multipart upload of big.iso left by the stopped run" in run.out.getvalue()


def test_a_conditional_write_conflict_counts_as_a_held_lock_and_the_wait_is_bounded(tmp_path):
    store = MemoryStore()
    store.fail("PutObject", LOCK, "ConditionalRequestConflict")  # S3's 409 to racing writers, every time
    plant_lock(store)
    store.now += 121  # stale, but every takeover loses the race too
    run = Run(store, tree(tmp_path, SITE), lock_timeout="0.5")
    with pytest.raises(LockError, match="held by another run"):
        run()
    tries = run.sent["PutObject"]
    assert 2 <= tries <= 12  # looked again every 0.2 s, then gave up: no busy loop
