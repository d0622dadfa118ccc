"""Servers that ignore what they are sent (readback.py), and header copies a
server cannot make, in process against the in-memory store."""

from __future__ import annotations

from collections import Counter

from drone_s3_sync.model import Kind
from drone_s3_sync.state import read, state_key
from support.memory_store import MemoryStore
from test_pipeline import SITE, Run, tree


def test_a_server_that_drops_redirects_fails_the_run_every_time(tmp_path):
    store = MemoryStore()
    store.drops = {"redirect": None}  # takes the PUT, keeps no website redirect
    run = Run(store, tree(tmp_path, SITE), endpoint="http://127.0.0.1:8333", redirects='{"old": "/new/"}')
    summary = run()
    assert summary.exit_code == 1
    text = run.err.getvalue()
    assert "the server http://127.0.0.1:8333 did not keep redirects on old (sent '/new/', it has None)" in text
    assert "ignore_unsupported: [redirects]" in text
    assert "old" not in read(store.objects[state_key("")].body).entries  # never vouched for
    assert run().exit_code == 1  # and the next run finds it again


def test_ignore_unsupported_accepts_it_with_a_warning(tmp_path):
    store = MemoryStore()
    store.drops = {"acl": "private"}
    run = Run(store, tree(tmp_path, SITE), acl="public-read", ignore_unsupported="acl")
    assert run().exit_code == 0
    assert "did not keep acl on" in run.err.getvalue() and "accepted by ignore_unsupported: acl" in run.err.getvalue()


def test_what_was_checked_is_not_read_back_again(tmp_path):
    store = MemoryStore()
    src = tree(tmp_path, SITE)
    run = Run(store, src, cache_control="max-age=60")
    run()
    assert run.sent["HeadObject"] == 2  # the lock's look at the state, one object read back
    assert read(store.objects[state_key("")].body).verified == ("", ("cache_control", "content_type"))
    (src / "css/site.css").write_bytes(b"p{margin:0}")
    run()
    assert run.sent["HeadObject"] == 1  # the lock's only
    run(content_language="de")  # a header not seen before: read back once
    assert run.sent["HeadObject"] == 1 + 1 + len(SITE)  # lock, read back, and each copy's look at what to keep


def test_a_header_copy_the_server_cannot_make_is_an_upload(tmp_path):
    store = MemoryStore()
    src = tree(tmp_path, {**SITE, "a+b.css": b"x{}"})
    run = Run(store, src)
    run()
    store.fail("CopyObject", "a+b.css", "NoSuchKey")  # s3rver decodes '+' in the copy source
    summary = run(cache_control="max-age=9")
    assert summary.exit_code == 0
    assert store.objects["a+b.css"].headers.cache_control == "max-age=9"
    assert [(o.action.kind, o.ok) for o in summary.outcomes if o.action.key == "a+b.css"] == [(Kind.UPLOAD, True)]
    assert Counter(op for op, key in store.ops if key == "a+b.css")["PutObject"] == 2  # first upload, fallback


def test_a_server_that_refuses_acls_gets_one_error_naming_the_setting(tmp_path):
    store = MemoryStore()
    for key in ("index.html", "about/index.html"):
        store.fail("PutObject", key, "NotImplemented")  # Cloudflare R2 and x-amz-acl
    run = Run(store, tree(tmp_path, SITE), acl='{".html": "public-read"}', endpoint="https://r2.example.com")
    summary = run()
    assert summary.exit_code == 1
    acl_errors = [e for e in summary.errors if e.startswith("acl:")]
    assert acl_errors == ["acl: the server https://r2.example.com refused the ACL of 2 object(s) (first "
                          "about/index.html: NotImplemented: injected); it does not accept ACLs: remove the acl "
                          "setting (objects are then private, or public through a bucket policy)"]
