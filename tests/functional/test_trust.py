"""What the state object may vouch for: only objects the listing proves are
the ones it recorded. In process against the in-memory store, whose clock
moves only when a test moves it (S3 keeps times to the second)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import xxhash

from drone_s3_sync.model import Kind
from drone_s3_sync.state import decode, read, state_key
from support.memory_store import MemoryStore
from test_pipeline import LOCKED, SITE, Run, state_of, tree

NOTHING_TO_DO = Counter({"ListObjectsV2": 1, "GetObject": 1})


def changes(summary):
    return {a.key: (a.kind, a.detail) for a in summary.plan.actions if a.kind is not Kind.SKIP}


def test_headers_edited_in_place_by_another_tool_are_restored_by_the_next_run(tmp_path):
    store = MemoryStore()
    run = Run(store, tree(tmp_path, SITE), cache_control='{".html": "max-age=60"}')
    run()
    store.now += 30
    store.edit("index.html", cache_control="no-store")  # same bytes, same ETag, a later time
    store.edit("css/site.css", acl="public-read")  # made public by hand
    summary = run()
    assert changes(summary) == {"index.html": (Kind.UPDATE, "cache_control"), "css/site.css": (Kind.UPDATE, "acl")}
    # Only the two objects written after the state are checked with S3.
    assert run.sent == Counter({"ListObjectsV2": 1, "GetObject": 1, "HeadObject": 2, "GetObjectAcl": 2,
                                "CopyObject": 2, "PutObject": 1}) + LOCKED  # the new state only: nothing to retire
    assert store.objects["index.html"].headers.cache_control == "max-age=60"
    assert store.objects["css/site.css"].headers.acl == "private"
    store.now += 30
    run()
    assert run.sent == NOTHING_TO_DO


def test_a_file_edited_after_its_upload_is_uploaded_by_the_next_run(tmp_path):
    """The state records the digest of the bytes read before the upload, never
    of the file as it is after it: a file edited while the run was writing
    must not be vouched for as the object's content."""
    store = MemoryStore()
    src = tree(tmp_path, {"a.txt": b"first"})
    run = Run(store, src)
    # The read-back of the object just written (readback.py) comes after the
    # uploads and before the state is saved: the file changes at that moment.
    store.on("HeadObject", "a.txt", lambda: (src / "a.txt").write_bytes(b"second"))
    run()
    assert run.sent["HeadObject"] == 1 + LOCKED["HeadObject"]  # the hook ran
    assert store.objects["a.txt"].body == b"first"
    assert state_of(store)["a.txt"].xxh == xxhash.xxh3_128(b"first").hexdigest()
    store.now += 30
    summary = run()
    assert changes(summary) == {"a.txt": (Kind.UPLOAD, "")}
    assert store.objects["a.txt"].body == b"second"


def test_an_edit_in_the_second_the_state_was_written_is_not_seen(tmp_path):
    """The limit of second resolution, stated as a test: documented in the README."""
    store = MemoryStore()
    run = Run(store, tree(tmp_path, SITE))
    run()
    store.edit("index.html", cache_control="no-store")  # the store's clock has not moved
    assert changes(run()) == {}


def test_objects_rewritten_after_the_state_are_checked_and_the_state_refreshed(tmp_path):
    """Identical bytes and headers uploaded again by hand: nothing to change,
    but the state is written again so that later runs trust them."""
    store = MemoryStore()
    run = Run(store, tree(tmp_path, SITE))
    run()
    store.now += 10
    obj = store.objects["img/logo.png"]
    store.edit("img/logo.png")
    assert changes(run()) == {}
    assert run.sent == Counter({"ListObjectsV2": 1, "GetObject": 1, "HeadObject": 1, "GetObjectAcl": 1,
                                "PutObject": 1})
    assert store.objects["img/logo.png"] is obj
    store.now += 10
    run()
    assert run.sent == NOTHING_TO_DO


def test_a_state_copied_from_another_target_is_not_trusted(tmp_path):
    store = MemoryStore()
    src = tree(tmp_path, SITE)
    Run(store, src, target="staging/", cache_control="no-cache")()
    # Production got staging's objects and state by a bucket copy, headers included.
    for key in list(store.objects):
        store.objects["prod/" + key[len("staging/"):]] = store.objects[key]
    prod = Run(store, src, target="prod/", cache_control="max-age=600")
    summary = prod()
    assert "written for s3://bucket/staging/, not for s3://bucket/prod/" in prod.err.getvalue()
    assert {k: d for k, (_, d) in changes(summary).items()} == {"prod/" + k: "cache_control" for k in SITE}
    assert prod.sent["HeadObject"] == len(SITE) + 2  # + the lock's look at the state, + one read back
    entries, owner = read(store.objects[state_key("prod/")].body)[:2]
    assert owner == ("bucket", "prod/")
    assert {e.headers.cache_control for e in entries.values()} == {"max-age=600"}
    prod(cache_control="max-age=600")
    assert prod.sent == NOTHING_TO_DO


def test_two_selections_into_one_target_keep_each_others_entries(tmp_path):
    store = MemoryStore()
    src = tree(tmp_path, SITE)
    pages = Run(store, src, include="*.html")
    assets = Run(store, src, exclude="*.html")
    pages()
    assets()
    assert set(decode(store.objects[state_key("")].body)) == set(SITE)
    for run in (pages, assets, pages):
        run()
        assert run.sent == NOTHING_TO_DO


def test_a_parent_target_never_deletes_a_nested_targets_state(tmp_path):
    store = MemoryStore()
    Run(store, tree(tmp_path / "blog", {"post.html": b"p"}), target="blog/")()
    summary = Run(store, tree(tmp_path, SITE), delete="true", allow_nested_delete="true")()
    deleted = {a.key for a in summary.plan.actions if a.kind is Kind.DELETE}
    assert state_key("blog/") not in deleted and state_key("blog/") in store.objects


def test_a_root_delete_that_would_empty_another_deployment_is_refused(tmp_path):
    from drone_s3_sync.errors import GuardError
    import pytest

    store = MemoryStore()
    Run(store, tree(tmp_path / "blog", {"post.html": b"p", "feed.xml": b"f"}), target="blog/")()
    root = Run(store, tree(tmp_path, SITE), delete="true")
    with pytest.raises(GuardError) as info:
        root()
    assert GuardError.exit_code == 3
    text = str(info.value)
    assert "would delete 2 objects of another deployment nested under s3://bucket/ (s3://bucket/blog/" in text
    assert "exclude (for example 'blog/*')" in text and "allow_nested_delete" in text
    assert not any(key.startswith(("index", "css", "about", "img")) for _, key in store.writes())  # nothing written
    summary = Run(store, tree(tmp_path, SITE), delete="true", allow_nested_delete="true")()
    deleted = {a.key for a in summary.plan.actions if a.kind is Kind.DELETE}
    assert deleted == {"blog/post.html", "blog/feed.xml"}
    assert state_key("blog/") in store.objects  # never deleted
    Run(store, tree(tmp_path, SITE), delete="true", exclude="blog/*")()  # the other way out: no refusal


def test_an_acl_changed_by_hand_is_found_by_the_scrub_within_its_bound(tmp_path):
    """PutObjectAcl alone leaves the listing as it was: the rotating ACL scrub of
    writing runs finds it within ceil(N / slice) of them; runs with nothing to
    do check nothing."""
    from drone_s3_sync.scrub import MIN_SLICE, slice_of
    from drone_s3_sync.parsers import DeleteLimit
    from decimal import Decimal

    files = {f"f{i:02d}.txt": b"x%d" % i for i in range(10)}
    store = MemoryStore()
    src = tree(tmp_path, files)
    run = Run(store, src, acl="public-read", acl_scrub="3")
    run()
    store.objects["f07.txt"].headers = replace(store.objects["f07.txt"].headers, acl="private")  # ETag, time kept
    run()
    assert run.sent == NOTHING_TO_DO  # nothing to do: no scrub
    found_in = None
    for n in range(1, 5):  # a writing run each time: f00.txt changes
        (src / "f00.txt").write_bytes(b"y%d" % n)
        summary = run()
        if any(a.key == "f07.txt" and a.kind is Kind.UPDATE for a in summary.plan.actions):
            found_in = n
            break
    assert found_in is not None and found_in <= 4  # 10 vouched objects, 3 a run
    assert store.objects["f07.txt"].headers.acl == "public-read"
    assert slice_of([f"k{i}" for i in range(5)], 4, DeleteLimit(Decimal(2))) == (["k4", "k0"], 1)
    assert len(slice_of([str(i) for i in range(1000)], 0, DeleteLimit(Decimal(2), percent=True))[0]) == MIN_SLICE
