"""End-to-end tests of the state object, `<target>.drone-s3-sync-state.json.gz`.

The state object records, for every key the last writing run left as the
settings want it, the ETag and size S3 listed, an xxh3-128 digest of the local
bytes and the headers/ACL written. A later run GETs it once and trusts an entry
only while the listing still shows the same ETag and size: then it needs no
HeadObject and no GetObjectAcl for that object.

Every test runs the real `drone-s3-sync` command against the recording moto
server and asserts on the requests the server received, then reads the bucket
back with recording paused. The design claims and each failure mode are proved
through request counts:

* a run with nothing to do is one ListObjectsV2 and one GetObject, whatever the
  number of objects (also from a fresh checkout with new mtimes);
* the state object is written (one PutObject, last) only when it changes; never
  in a dry run; a run that rewrites objects in place (same ETag) that have an
  entry first writes it without those entries, so a run that dies halfway
  leaves no entry vouching for the old headers;
* a change by another tool is detected: one that changes the ETag by it, one
  that keeps it (headers rewritten in place) because the listing shows the
  object written after the state object;
* a corrupt or missing state object only costs the old per-object requests,
  and is rewritten; `state: false` is the old behaviour, except that a run that
  writes deletes the (then outdated) state object first;
* `delete` never removes it, sibling targets keep their own, and a local file
  with its name is refused.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
from typing import Any, Dict, Iterable, List

import drone_run
import pytest
from drone_run import action_map, fresh_checkout, keys_of, ok, summary_counts
import xxhash

from conftest import STATE_NAME, is_state_key, read_state, state_key

MiB = 1024 * 1024
TEXT = "text/plain; charset=utf-8"


# --------------------------------------------------------------------------- helpers


def plugin_env(bucket: str, target: str = "site", **settings: Any) -> Dict[str, str]:
    return drone_run.plugin_env(bucket, ".", target, **settings)


def ops(s3_server: Any, bucket: str) -> "collections.Counter[str]":
    return s3_server.ops(bucket)


def writes(s3_server: Any, bucket: str) -> List[tuple]:
    """(op, key) of every write, in the order the server received them."""
    return [(r.op, r.key) for r in s3_server.writes(bucket)]


def listing(s3: Any, bucket: str) -> Dict[str, tuple]:
    """key -> (ETag, size) of every object, state objects included (call paused)."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", ()):
            found[item["Key"]] = (item["ETag"].strip('"'), item["Size"])
    return found


def state_body(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def assert_only_list_and_state(s3_server: Any, bucket: str, prefix: str) -> None:
    """No request per object: one listing, one GET of this target's state object, no write."""
    assert ops(s3_server, bucket) == collections.Counter({"ListObjectsV2": 1, "GetObject": 1}), ops(s3_server, bucket)
    assert keys_of(s3_server.requests, "GetObject") == [state_key(prefix)]
    assert s3_server.writes() == []


def assert_state_matches_bucket(s3: Any, s3_server: Any, bucket: str, prefix: str, keys: Iterable[str]) -> Dict:
    """The state object has exactly these keys, each with the ETag and size the bucket lists."""
    with s3_server.paused():
        doc = read_state(s3, bucket, state_key(prefix))
        listed = listing(s3, bucket)
    assert doc["format"] == 1
    assert sorted(doc["objects"]) == sorted(keys)
    for key, (etag, size, _xxh, _row) in doc["objects"].items():
        assert (etag, size) == listed[key], key
    return doc


def headers_of(doc: Dict, key: str) -> list:
    """[content_type, content_encoding, cache_control, metadata, acl, redirect] of a state entry."""
    return doc["headers"][doc["objects"][key][3]]


def _moto_private_acl(s3: Any, bucket: str, key: str) -> None:
    """moto 5 leaves a multipart object completed without an ACL header with no
    ACL at all, and then answers GetObjectAcl with a 500; real S3 makes it
    private. Give it the private ACL S3 would have (a no-op on S3). Needed only
    where a run is forced to read ACLs (verify, state: false)."""
    s3.put_object_acl(Bucket=bucket, Key=key, ACL="private")


SMALL = {
    "index.html": "<h1>home</h1>",
    "about/index.html": "<h1>about</h1>",
    "a.txt": "aaaa",
    "b.txt": "bbbb",
    "css/site.css": "body{}",
    "img/logo.png": b"\x89PNG" + b"\0" * 12,
}
SMALL_SETTINGS: Dict[str, Any] = dict(
    cache_control={".html": "public, max-age=60"},
    metadata={"*.png": {"owner": "web"}},
    redirects={"old.html": "/index.html"},
)
SMALL_KEYS = sorted(["site/" + k for k in SMALL] + ["site/old.html"])  # 6 files + 1 redirect


def small_site(make_tree: Any, s3_server: Any, run_sync: Any, bucket: str, **settings: Any) -> tuple:
    """A synced SMALL site with its state object; the request log is empty afterwards."""
    src = make_tree(SMALL)
    env = plugin_env(bucket, **{**SMALL_SETTINGS, **settings})
    ok(run_sync(env, cwd=src))
    assert writes(s3_server, bucket)[-1] == ("PutObject", state_key("site/"))
    s3_server.reset()
    return src, env


# --------------------------------------------------------------------------- no request per object


@pytest.fixture(scope="module")
def big_bytes() -> bytes:
    return os.urandom(17 * MiB)  # 8 + 8 + 1 MiB parts


def test_second_run_and_fresh_checkout_need_one_list_and_one_get(s3_server, s3, bucket, make_tree, run_sync,
                                                                 tmp_path, big_bytes):
    files: Dict[str, Any] = {f"pages/{i:02d}/index.html": f"<p>page {i}</p>" for i in range(12)}
    files.update({f"assets/{i}.css": f"a{{{i}}}" for i in range(8)})
    files.update({"index.html": "<h1>home</h1>", "robots.txt": "User-agent: *", "LICENSE": "MIT",
                  "img/logo.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "img/icon.svg": "<svg/>",
                  "data/feed.json": "{}", "empty.txt": "", "caf\u00e9 menu.txt": "menu", "big.bin": big_bytes})
    assert len(files) == 29
    src = make_tree(files)
    settings = dict(cache_control={".html": "public, max-age=60", "assets/*": "public, max-age=31536000"},
                    metadata={"*.png": {"owner": "web"}}, acl={"img/*": "public-read"},
                    redirects={"old/page.html": "/pages/01/index.html"}, **drone_run.EIGHT_MIB_PARTS)
    env = plugin_env(bucket, delete=True, **settings)
    keys = sorted(["site/" + k for k in files] + ["site/old/page.html"])  # 30 objects

    first = ok(run_sync(env, cwd=src))
    assert ops(s3_server, bucket) == collections.Counter({
        "ListObjectsV2": 1,
        "PutObject": 28 + 1 + 1,  # small files, the redirect, the state object
        "CreateMultipartUpload": 1, "UploadPart": 3, "CompleteMultipartUpload": 1,
        "HeadObject": 2, "GetObjectAcl": 1,  # two objects read back, one with its ACL (readback.py)
    })
    assert writes(s3_server, bucket)[-1] == ("PutObject", state_key("site/"))
    assert STATE_NAME not in first.stdout
    doc = assert_state_matches_bucket(s3, s3_server, bucket, "site/", keys)
    big = doc["objects"]["site/big.bin"]
    assert big[0].endswith("-3") and big[1] == 17 * MiB
    assert big[2] == xxhash.xxh3_128(big_bytes).hexdigest()
    assert doc["objects"]["site/old/page.html"][2] == xxhash.xxh3_128(b"").hexdigest()
    assert headers_of(doc, "site/old/page.html")[5] == "/pages/01/index.html"
    assert headers_of(doc, "site/img/logo.png")[3:5] == [[["owner", "web"]], "public-read"]
    assert headers_of(doc, "site/index.html")[2] == "public, max-age=60"

    # The second run: the state object vouches for all 30 objects, the 17 MiB
    # multipart one included (its ACL is never asked for: no moto workaround here).
    s3_server.reset()
    second = ok(run_sync(env, cwd=src))
    assert_only_list_and_state(s3_server, bucket, "site/")
    assert action_map(second.stdout) == {}
    assert summary_counts(second.stdout) == {"uploaded": 0, "updated": 0, "redirects": 0, "deleted": 0,
                                             "unchanged": 30}

    # A fresh checkout: every file copied, new mtimes. The local digests decide.
    checkout = fresh_checkout(src, tmp_path / "checkout")
    s3_server.reset()
    third = ok(run_sync(env, cwd=checkout))
    assert_only_list_and_state(s3_server, bucket, "site/")
    assert action_map(third.stdout) == {}
    assert summary_counts(third.stdout)["unchanged"] == 30


# --------------------------------------------------------------------------- written only on change


def imported_packages(stderr: str) -> set:
    """Top-level packages in a `-X importtime` log (PYTHONPROFILEIMPORTTIME)."""
    return {line.split("|")[-1].strip().split(".")[0] for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_a_run_with_nothing_to_do_imports_only_what_it_uses(s3_server, s3, bucket, make_tree, run_sync):
    """Start-up is a cost of every run: one with nothing to upload reads the
    listing and the state with botocore alone; boto3 and s3transfer are not
    imported (s3transfer is, for an upload that does not go on the CRT)."""
    src, env = small_site(make_tree, s3_server, run_sync, bucket)
    proc = ok(run_sync({**env, "PYTHONPROFILEIMPORTTIME": "1"}, cwd=src))
    assert summary_counts(proc.stdout)["uploaded"] == 0
    imported = imported_packages(proc.stderr)
    assert "botocore" in imported and "drone_s3_sync" in imported  # the log is read right
    assert not imported & {"boto3", "s3transfer", "tqdm", "yaml"}, imported

    # A small file goes up on the CRT: still no s3transfer. Without the CRT,
    # the upload imports it (the log above would have shown it).
    (src / "a.txt").write_text("AAAA")
    proc = ok(run_sync({**env, "PYTHONPROFILEIMPORTTIME": "1"}, cwd=src))
    assert summary_counts(proc.stdout)["uploaded"] == 1
    assert "s3transfer" not in imported_packages(proc.stderr)
    (src / "a.txt").write_text("BBBB")
    proc = ok(run_sync({**env, "PYTHONPROFILEIMPORTTIME": "1", "S3_SYNC_CRT": "0"}, cwd=src))
    assert summary_counts(proc.stdout)["uploaded"] == 1
    assert "s3transfer" in imported_packages(proc.stderr)


def test_state_is_written_only_when_something_changed(s3_server, s3, bucket, make_tree, run_sync):
    src, env = small_site(make_tree, s3_server, run_sync, bucket)
    with s3_server.paused():
        before = read_state(s3, bucket, state_key("site/"))

    # One change (same size, other bytes): the file, then the state object.
    (src / "a.txt").write_text("AAAA")
    proc = ok(run_sync(env, cwd=src))
    assert writes(s3_server, bucket) == [("PutObject", "site/a.txt"), ("PutObject", state_key("site/"))]
    assert ops(s3_server, bucket) == collections.Counter({"ListObjectsV2": 1, "GetObject": 1, "PutObject": 2})
    assert action_map(proc.stdout) == {"site/a.txt": ("upload", "content changed, 4 B")}
    doc = assert_state_matches_bucket(s3, s3_server, bucket, "site/", SMALL_KEYS)
    assert doc["objects"]["site/a.txt"][2] == xxhash.xxh3_128(b"AAAA").hexdigest()
    assert doc["objects"]["site/a.txt"] != before["objects"]["site/a.txt"]
    assert {k: v for k, v in doc["objects"].items() if k != "site/a.txt"} == {
        k: v for k, v in before["objects"].items() if k != "site/a.txt"}

    # Nothing changed: nothing written, the state object included.
    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    assert_only_list_and_state(s3_server, bucket, "site/")
    assert action_map(proc.stdout) == {}

    # A dry run with changes pending: reads the state, writes nothing, and asks
    # S3 nothing about the objects the state covers (b.txt changed at the same size).
    (src / "b.txt").write_text("BBBB")
    (src / "new.txt").write_text("new")
    with s3_server.paused():
        saved = state_body(s3, bucket, state_key("site/"))
    s3_server.reset()
    dry = ok(run_sync(dict(env, PLUGIN_DRY_RUN="true"), cwd=src))
    assert_only_list_and_state(s3_server, bucket, "site/")
    assert action_map(dry.stdout) == {"site/b.txt": ("upload", "content changed, 4 B"),
                                      "site/new.txt": ("upload", "new, 3 B")}
    with s3_server.paused():
        assert state_body(s3, bucket, state_key("site/")) == saved

    # The real run does what the dry run said, and records it.
    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert sorted(writes(s3_server, bucket)[:-1]) == [("PutObject", "site/b.txt"), ("PutObject", "site/new.txt")]
    assert writes(s3_server, bucket)[-1] == ("PutObject", state_key("site/"))
    assert_state_matches_bucket(s3, s3_server, bucket, "site/", SMALL_KEYS + ["site/new.txt"])


def test_settings_change_is_detected_from_the_state_alone(s3_server, s3, bucket, make_tree, run_sync):
    src, env = small_site(make_tree, s3_server, run_sync, bucket)
    settings = {**SMALL_SETTINGS, "cache_control": {".html": "public, max-age=600"}}
    env = plugin_env(bucket, **settings)

    proc = ok(run_sync(env, cwd=src))
    html = ["site/about/index.html", "site/index.html", "site/old.html"]
    # The redirect old.html is an .html key too: rewritten (as a zero-byte PUT)
    # with the new Cache-Control; the two pages get metadata-only copies.
    got = ops(s3_server, bucket)
    # Detection needs no per-object request; each copy is preceded by one
    # HeadObject of that object only, to keep what the state does not record
    # (storage class, KMS key). No GetObjectAcl at all.
    assert got["HeadObject"] == 2 and got["GetObjectAcl"] == 0, got
    assert sorted(keys_of(s3_server.requests, "HeadObject")) == html[:2]
    # All three had a state entry and keep their ETag: the state object is first
    # written without them, before any of them is touched, and once more, last.
    assert got == collections.Counter({"ListObjectsV2": 1, "GetObject": 1, "HeadObject": 2, "CopyObject": 2,
                                       "PutObject": 3}), got
    assert keys_of(s3_server.writes(bucket), "CopyObject") == html[:2]
    done = writes(s3_server, bucket)
    assert len(done) == 5, done
    assert done[0] == ("PutObject", state_key("site/")), done
    assert sorted(done[1:-1]) == [("CopyObject", html[0]), ("CopyObject", html[1]), ("PutObject", html[2])], done
    assert done[-1] == ("PutObject", state_key("site/")), done
    assert {k: v[0] for k, v in action_map(proc.stdout).items()} == {
        "site/about/index.html": "update", "site/index.html": "update", "site/old.html -> /index.html": "redirect"}
    doc = assert_state_matches_bucket(s3, s3_server, bucket, "site/", SMALL_KEYS)
    for key in html:
        assert headers_of(doc, key)[2] == "public, max-age=600", key
    with s3_server.paused():
        for key in html:
            assert s3.head_object(Bucket=bucket, Key=key)["CacheControl"] == "public, max-age=600", key

    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    assert_only_list_and_state(s3_server, bucket, "site/")
    assert action_map(proc.stdout) == {}


# --------------------------------------------------------------------------- changes by other tools


def test_object_overwritten_by_another_tool_is_detected_by_its_etag(s3_server, s3, bucket, make_tree, run_sync):
    src, env = small_site(make_tree, s3_server, run_sync, bucket)
    with s3_server.paused():
        etag_before = listing(s3, bucket)["site/b.txt"][0]
        # Same size, same headers the sync would write: only the bytes differ.
        s3.put_object(Bucket=bucket, Key="site/b.txt", Body=b"XXXX", ContentType=TEXT)
        assert listing(s3, bucket)["site/b.txt"] == (s3.head_object(Bucket=bucket, Key="site/b.txt")["ETag"].strip('"'), 4)
        assert listing(s3, bucket)["site/b.txt"][0] != etag_before

    with s3_server.paused():
        saved = state_body(s3, bucket, state_key("site/"))

    proc = ok(run_sync(env, cwd=src))
    # Only that key falls back to HeadObject (+ ACL); all the others stay vouched for.
    assert ops(s3_server, bucket) == collections.Counter({
        "ListObjectsV2": 1, "GetObject": 1, "HeadObject": 1, "GetObjectAcl": 1, "PutObject": 2})
    assert keys_of(s3_server.requests, "HeadObject") == ["site/b.txt"]
    # The upload puts back exactly the object the state recorded (same bytes, same
    # ETag, same headers): the same state is written again after it, so that it
    # is not older than an object it vouches for.
    assert writes(s3_server, bucket) == [("PutObject", "site/b.txt"), ("PutObject", state_key("site/"))]
    assert action_map(proc.stdout) == {"site/b.txt": ("upload", "content changed, 4 B")}
    with s3_server.paused():
        assert s3.get_object(Bucket=bucket, Key="site/b.txt")["Body"].read() == b"bbbb"
        assert listing(s3, bucket)["site/b.txt"] == (etag_before, 4)
        assert state_body(s3, bucket, state_key("site/")) == saved
    assert_state_matches_bucket(s3, s3_server, bucket, "site/", SMALL_KEYS)

    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert_only_list_and_state(s3_server, bucket, "site/")

    # Deleted by another tool: the entry describes nothing the listing shows.
    with s3_server.paused():
        s3.delete_object(Bucket=bucket, Key="site/a.txt")
    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    assert action_map(proc.stdout) == {"site/a.txt": ("upload", "new, 4 B")}
    assert writes(s3_server, bucket) == [("PutObject", "site/a.txt"), ("PutObject", state_key("site/"))]
    assert ops(s3_server, bucket)["HeadObject"] == 0
    assert_state_matches_bucket(s3, s3_server, bucket, "site/", SMALL_KEYS)


def edit_in_place(s3, bucket: str, key: str, **headers: Any) -> None:
    """What `aws s3 cp --metadata-directive REPLACE` or the console does."""
    etag_before = listing(s3, bucket)[key]
    current = s3.head_object(Bucket=bucket, Key=key)
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                   MetadataDirective="REPLACE", ContentType=current["ContentType"], **headers)
    # Same bytes, single part: the ETag (the MD5) and size do not change.
    assert listing(s3, bucket)[key] == etag_before


def test_headers_changed_in_place_are_restored_by_the_next_run(s3_server, s3, bucket, make_tree, run_sync):
    src, env = small_site(make_tree, s3_server, run_sync, bucket)
    key, public = "site/index.html", "site/a.txt"
    with s3_server.paused(), s3_server.clock_ahead(5):
        edit_in_place(s3, bucket, key, CacheControl="no-store")
        edit_in_place(s3, bucket, public, ACL="public-read")  # made public by hand

    # The listing shows both written after the state object: checked with S3
    # (HEAD + ACL for those two only) and restored, without `verify`.
    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    got = ops(s3_server, bucket)
    assert got == collections.Counter({"ListObjectsV2": 1, "GetObject": 1, "HeadObject": 2, "GetObjectAcl": 2,
                                       "CopyObject": 2, "PutObject": 1}), got
    assert sorted(keys_of(s3_server.requests, "HeadObject")) == sorted([key, public])
    assert action_map(proc.stdout) == {key: ("update", "headers changed: cache_control"),
                                       public: ("update", "acl changed: acl")}
    with s3_server.paused():
        assert s3.head_object(Bucket=bucket, Key=key)["CacheControl"] == "public, max-age=60"
        grants = s3.get_object_acl(Bucket=bucket, Key=public)["Grants"]
        assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert_only_list_and_state(s3_server, bucket, "site/")
    with s3_server.paused(), s3_server.clock_ahead(10):
        edit_in_place(s3, bucket, key, CacheControl="no-store")
        saved = state_body(s3, bucket, state_key("site/"))

    # verify: true ignores the state for one run: HEAD + ACL for every same-size
    # object (6 files + the redirect), one copy restores the header, and the
    # state, the same as before the drift, is written again last.
    s3_server.reset()
    proc = ok(run_sync(dict(env, PLUGIN_VERIFY="true"), cwd=src))
    got = ops(s3_server, bucket)
    assert got == collections.Counter({"ListObjectsV2": 1, "GetObject": 1, "HeadObject": 7, "GetObjectAcl": 7,
                                       "CopyObject": 1, "PutObject": 1}), got
    assert keys_of(s3_server.requests, "HeadObject") == SMALL_KEYS
    assert keys_of(s3_server.requests, "GetObject") == [state_key("site/")]
    assert writes(s3_server, bucket) == [("CopyObject", key), ("PutObject", state_key("site/"))]
    assert action_map(proc.stdout) == {key: ("update", "headers changed: cache_control")}
    with s3_server.paused():
        assert s3.head_object(Bucket=bucket, Key=key)["CacheControl"] == "public, max-age=60"
        assert state_body(s3, bucket, state_key("site/")) == saved

    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert_only_list_and_state(s3_server, bucket, "site/")


def test_verify_with_nothing_changed_writes_nothing(s3_server, s3, bucket, make_tree, run_sync):
    files = {**SMALL, "big.bin": os.urandom(9 * MiB)}  # one multipart object (8 + 1 MiB)
    src = make_tree(files)
    env = plugin_env(bucket, **SMALL_SETTINGS)
    ok(run_sync(env, cwd=src))
    with s3_server.paused():
        _moto_private_acl(s3, bucket, "site/big.bin")  # this run reads every ACL
        saved = state_body(s3, bucket, state_key("site/"))
    s3_server.reset()
    proc = ok(run_sync(dict(env, PLUGIN_VERIFY="true"), cwd=src))
    got = ops(s3_server, bucket)
    # Every object checked with S3. To know whether the state differs the run may
    # read it (one GetObject) or compare the encoded bytes' MD5 with its listed ETag.
    assert got["GetObject"] <= 1 and keys_of(s3_server.requests, "GetObject") in ([], [state_key("site/")])
    got.pop("GetObject", None)
    assert got == collections.Counter({"ListObjectsV2": 1, "HeadObject": 8, "GetObjectAcl": 8}), got
    # "rewrites the state if it differs": it does not differ, so nothing is written.
    assert s3_server.writes() == []
    assert action_map(proc.stdout) == {}
    with s3_server.paused():
        assert state_body(s3, bucket, state_key("site/")) == saved


# --------------------------------------------------------------------------- crash safety


def grants_all_users(s3: Any, bucket: str, key: str) -> bool:
    acl = s3.get_object_acl(Bucket=bucket, Key=key)
    return any(g["Grantee"].get("URI", "").endswith("/global/AllUsers") for g in acl["Grants"])


def test_failed_in_place_write_leaves_no_entry_to_vouch_for_old_headers(s3_server, s3, acl_disabled_bucket,
                                                                        make_tree, run_sync):
    """One run changes two objects in place: one copy succeeds, the other is
    refused. Neither may keep the entry describing its old headers (same ETag);
    the one that succeeded is recorded with its new headers, the failed one is
    left for the next run to check with S3."""
    bucket = acl_disabled_bucket
    src = make_tree({"page.html": "<p>page</p>", "app.js": "1", "keep.txt": "k"})
    keys = ["site/app.js", "site/keep.txt", "site/page.html"]
    env = plugin_env(bucket)  # the default, private: no ACL header, so accepted
    ok(run_sync(env, cwd=src))
    before = assert_state_matches_bucket(s3, s3_server, bucket, "site/", keys)
    assert headers_of(before, "site/page.html")[2] is None
    assert headers_of(before, "site/app.js")[4] == "private"
    with s3_server.paused():
        listed_before = listing(s3, bucket)

    # page.html: a new Cache-Control (accepted); app.js: public-read (refused).
    s3_server.reset()
    changed = plugin_env(bucket, cache_control={".html": "max-age=300"}, acl={"*.js": "public-read"})
    proc = run_sync(changed, cwd=src)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    got = ops(s3_server, bucket)
    # One HeadObject before each in-place copy, for what the state does not record,
    # one object read back for the header not seen before, and (the settings now
    # grant an ACL) the ACL scrub of the one object the state still vouches for.
    assert got == collections.Counter({"ListObjectsV2": 1, "GetObject": 1, "HeadObject": 3, "CopyObject": 2,
                                       "PutObject": 2, "GetObjectAcl": 1}), got
    done = [(r.op, r.key, r.status) for r in s3_server.writes(bucket)]
    assert len(done) == 4, done
    assert done[0] == ("PutObject", state_key("site/"), 200), done
    assert sorted(done[1:3]) == [("CopyObject", "site/app.js", 400), ("CopyObject", "site/page.html", 200)], done
    assert done[3] == ("PutObject", state_key("site/"), 200), done
    (refused,) = [r for r in s3_server.writes(bucket) if r.key == "site/app.js"]
    assert refused.emulated and refused.headers["x-amz-acl"] == "public-read"
    assert action_map(proc.stdout)["site/page.html"] == ("update", "headers changed: cache_control")

    with s3_server.paused():
        doc = read_state(s3, bucket, state_key("site/"))
        listed = listing(s3, bucket)
        assert s3.head_object(Bucket=bucket, Key="site/page.html")["CacheControl"] == "max-age=300"
        assert not grants_all_users(s3, bucket, "site/app.js")
    # Same bytes: both copies (even the refused one) left the ETags as they were.
    assert {k: listed[k] for k in keys} == {k: listed_before[k] for k in keys}
    # The failed key has no entry; the copied one has its new headers; the rest is untouched.
    assert sorted(doc["objects"]) == ["site/keep.txt", "site/page.html"]
    assert headers_of(doc, "site/page.html")[2] == "max-age=300"
    assert tuple(doc["objects"]["site/page.html"][:2]) == listed["site/page.html"]
    assert doc["objects"]["site/keep.txt"][:3] == before["objects"]["site/keep.txt"][:3]  # [3]: a row index
    assert headers_of(doc, "site/keep.txt") == headers_of(before, "site/keep.txt")

    # Back to the original settings: the entry for page.html says max-age=300, so
    # it is copied back (one CopyObject, two state writes around it); app.js has
    # no entry and is checked with S3 (still private: nothing to do).
    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    got = ops(s3_server, bucket)
    # HeadObject: app.js to check it (no entry), page.html just before its copy.
    assert got == collections.Counter({"ListObjectsV2": 1, "GetObject": 1, "HeadObject": 2, "GetObjectAcl": 1,
                                       "CopyObject": 1, "PutObject": 2}), got
    assert keys_of(s3_server.requests, "HeadObject") == ["site/app.js", "site/page.html"]
    assert writes(s3_server, bucket) == [
        ("PutObject", state_key("site/")), ("CopyObject", "site/page.html"), ("PutObject", state_key("site/"))]
    assert action_map(proc.stdout) == {"site/page.html": ("update", "headers changed: cache_control")}
    with s3_server.paused():
        assert "CacheControl" not in s3.head_object(Bucket=bucket, Key="site/page.html")
    doc = assert_state_matches_bucket(s3, s3_server, bucket, "site/", keys)
    assert doc["objects"] == before["objects"] and doc["headers"] == before["headers"]

    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert_only_list_and_state(s3_server, bucket, "site/")


def state_versions(s3: Any, bucket: str, key: str) -> List[tuple]:
    """(VersionId, decoded document) of every version of a state object in a
    versioned bucket, oldest first (call paused)."""
    found = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        found.extend(v for v in page.get("Versions", ()) if v["Key"] == key)
    assert found and found[0]["IsLatest"], found  # S3 lists a key's versions newest first
    docs = []
    for version in reversed(found):
        raw = s3.get_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])["Body"].read()
        docs.append((version["VersionId"], json.loads(gzip.decompress(raw).decode("utf-8"))))
    return docs


def test_state_never_vouches_for_a_redirect_location_being_changed(s3_server, s3, bucket, make_tree, run_sync):
    """A versioned bucket keeps every state object the product wrote, so the one
    written before the in-place write can be read: it must not list the redirect
    at all. Putting it back as the current state is what a run that died right
    after rewriting the redirect would leave; the next run with the old settings
    must then check the redirect with S3 and restore it. (A redirect is zero bytes:
    its ETag never changes, so a stale entry would vouch for the old location.)"""
    with s3_server.paused():
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    src = make_tree({"index.html": "<h1>home</h1>", "a.txt": "aaaa"})
    one = plugin_env(bucket, redirects={"old.html": "/one"})
    two = plugin_env(bucket, redirects={"old.html": "/two"})
    redirect = "site/old.html"
    ok(run_sync(one, cwd=src))
    assert writes(s3_server, bucket)[-1] == ("PutObject", state_key("site/"))
    with s3_server.paused():
        etag_before = listing(s3, bucket)[redirect]

    s3_server.reset()
    proc = ok(run_sync(two, cwd=src))
    assert writes(s3_server, bucket) == [
        ("PutObject", state_key("site/")), ("PutObject", redirect), ("PutObject", state_key("site/"))]
    assert action_map(proc.stdout)[redirect + " -> /two"][0] == "redirect"
    with s3_server.paused():
        versions = state_versions(s3, bucket, state_key("site/"))
        assert listing(s3, bucket)[redirect] == etag_before  # same ETag, other location
        current = read_state(s3, bucket, state_key("site/"))
    assert len(versions) == 3, [v for v, _ in versions]
    (_, first), (pre_write_id, pre_write), (_, final) = versions
    assert final == current
    assert headers_of(first, redirect)[5] == "/one"
    # Written before the redirect: the redirect's entry is gone, the others are kept as they were.
    assert sorted(pre_write["objects"]) == ["site/a.txt", "site/index.html"]
    for key in pre_write["objects"]:
        assert pre_write["objects"][key][:3] == first["objects"][key][:3], key
        assert headers_of(pre_write, key) == headers_of(first, key), key
    assert headers_of(final, redirect)[5] == "/two"
    assert tuple(final["objects"][redirect][:2]) == etag_before
    # No state object written by this run lists the old location.
    for _, doc in versions[1:]:
        assert all(row[5] != "/one" for row in doc["headers"]), doc

    # The crash: the final state write never happened.
    with s3_server.paused():
        s3.copy_object(Bucket=bucket, Key=state_key("site/"),
                       CopySource={"Bucket": bucket, "Key": state_key("site/"), "VersionId": pre_write_id})
        assert read_state(s3, bucket, state_key("site/")) == pre_write
    s3_server.reset()
    proc = ok(run_sync(one, cwd=src))
    got = ops(s3_server, bucket)
    assert got == collections.Counter({"ListObjectsV2": 1, "GetObject": 1, "HeadObject": 1, "GetObjectAcl": 1,
                                       "PutObject": 2}), got
    assert keys_of(s3_server.requests, "HeadObject") == [redirect]
    # No entry for the redirect, so nothing to retire: one state write, last.
    assert writes(s3_server, bucket) == [("PutObject", redirect), ("PutObject", state_key("site/"))]
    assert s3_server.writes(bucket)[0].headers["x-amz-website-redirect-location"] == "/one"
    assert action_map(proc.stdout)[redirect + " -> /one"][0] == "redirect"
    with s3_server.paused():
        assert s3.head_object(Bucket=bucket, Key=redirect)["WebsiteRedirectLocation"] == "/one"
    doc = assert_state_matches_bucket(s3, s3_server, bucket, "site/", ["site/a.txt", "site/index.html", redirect])
    assert doc == first


# --------------------------------------------------------------------------- a bad or missing state object


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


CORRUPTIONS = {
    "garbage": lambda data: b"this is not gzip at all \x00\xff" * 4,
    "truncated": _truncated,
    "not-json": lambda data: gzip.compress(b"{not json"),
    "other-format": lambda data: gzip.compress(json.dumps({"format": 99, "objects": {}}).encode()),
    "bad-shape": lambda data: gzip.compress(json.dumps(
        {"format": 1, "headers": [], "objects": {"site/a.txt": ["etag"]}}).encode()),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_state_falls_back_and_is_rewritten(s3_server, s3, bucket, make_tree, run_sync, corruption):
    src, env = small_site(make_tree, s3_server, run_sync, bucket)
    with s3_server.paused():
        good = state_body(s3, bucket, state_key("site/"))
        s3.put_object(Bucket=bucket, Key=state_key("site/"), Body=CORRUPTIONS[corruption](good))

    proc = ok(run_sync(env, cwd=src))
    got = ops(s3_server, bucket)
    # The old way: HEAD + ACL for each same-size object; nothing to do for the files.
    assert got == collections.Counter({"ListObjectsV2": 1, "GetObject": 1, "HeadObject": 7, "GetObjectAcl": 7,
                                       "PutObject": 1}), got
    assert keys_of(s3_server.requests, "HeadObject") == SMALL_KEYS
    assert writes(s3_server, bucket) == [("PutObject", state_key("site/"))]
    assert action_map(proc.stdout) == {}
    assert "state object" in proc.stderr, proc.stderr
    with s3_server.paused():
        # The same entries for the same bucket and target; what the lost state knew
        # of the server (it honours conditional writes) the next writing run learns again.
        rewritten = read_state(s3, bucket, state_key("site/"))
        original = json.loads(gzip.decompress(good).decode("utf-8"))
        original.pop("conditional_writes")
        original.pop("verified")
        assert rewritten == original
    assert_state_matches_bucket(s3, s3_server, bucket, "site/", SMALL_KEYS)

    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert_only_list_and_state(s3_server, bucket, "site/")


def test_deleted_state_falls_back_and_is_rewritten(s3_server, s3, bucket, make_tree, run_sync):
    src, env = small_site(make_tree, s3_server, run_sync, bucket)
    with s3_server.paused():
        s3.delete_object(Bucket=bucket, Key=state_key("site/"))

    proc = ok(run_sync(env, cwd=src))
    got = ops(s3_server, bucket)
    # Not in the listing: not asked for.
    assert got == collections.Counter({"ListObjectsV2": 1, "HeadObject": 7, "GetObjectAcl": 7, "PutObject": 1}), got
    assert writes(s3_server, bucket) == [("PutObject", state_key("site/"))]
    assert action_map(proc.stdout) == {}
    assert_state_matches_bucket(s3, s3_server, bucket, "site/", SMALL_KEYS)

    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert_only_list_and_state(s3_server, bucket, "site/")


# --------------------------------------------------------------------------- state: false


def test_state_false_is_the_old_behaviour(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree(SMALL)
    env = plugin_env(bucket, state=False, **SMALL_SETTINGS)
    ok(run_sync(env, cwd=src))
    # Two listings: without a state object, the run that takes the deploy lock
    # lists again to see that no other run wrote since its first listing.
    # And, with no state to remember what was checked, two objects read back.
    assert ops(s3_server, bucket) == collections.Counter({"ListObjectsV2": 2, "PutObject": 7, "HeadObject": 2})
    assert keys_of(s3_server.writes(bucket)) == SMALL_KEYS
    with s3_server.paused():
        assert sorted(listing(s3, bucket)) == SMALL_KEYS  # no state object

    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    got = ops(s3_server, bucket)
    assert got == collections.Counter({"ListObjectsV2": 1, "HeadObject": 7, "GetObjectAcl": 7}), got
    assert keys_of(s3_server.requests, "HeadObject") == SMALL_KEYS
    assert s3_server.writes() == []
    assert action_map(proc.stdout) == {}


def test_state_false_removes_an_outdated_state_object_before_writing(s3_server, s3, bucket, make_tree, run_sync):
    src, env = small_site(make_tree, s3_server, run_sync, bucket)
    with s3_server.paused():
        saved = state_body(s3, bucket, state_key("site/"))

    # Nothing to write: the state object is neither read nor touched.
    proc = ok(run_sync(dict(env, PLUGIN_STATE="false"), cwd=src))
    got = ops(s3_server, bucket)
    assert got == collections.Counter({"ListObjectsV2": 1, "HeadObject": 7, "GetObjectAcl": 7}), got
    assert s3_server.writes() == []
    assert action_map(proc.stdout) == {}
    with s3_server.paused():
        assert state_body(s3, bucket, state_key("site/")) == saved

    # Something to write: the state object would become stale, so it is deleted
    # first (one DeleteObjects, before any other write), never read.
    (src / "new.txt").write_text("n")
    s3_server.reset()
    proc = ok(run_sync(dict(env, PLUGIN_STATE="false"), cwd=src))
    assert ops(s3_server, bucket)["GetObject"] == 0
    assert writes(s3_server, bucket) == [("DeleteObjects", None), ("PutObject", "site/new.txt")]
    assert action_map(proc.stdout) == {"site/new.txt": ("upload", "new, 1 B")}
    assert STATE_NAME not in proc.stdout + proc.stderr  # not an action, and no warning
    with s3_server.paused():
        assert sorted(listing(s3, bucket)) == sorted(SMALL_KEYS + ["site/new.txt"])  # only the state object went

    # Back with the state: there is none, so every object is checked with S3
    # (6 files, the redirect and new.txt) and the state object is written anew.
    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    got = ops(s3_server, bucket)
    assert got == collections.Counter({"ListObjectsV2": 1, "HeadObject": 8, "GetObjectAcl": 8, "PutObject": 1}), got
    assert keys_of(s3_server.requests, "HeadObject") == sorted(SMALL_KEYS + ["site/new.txt"])
    assert writes(s3_server, bucket) == [("PutObject", state_key("site/"))]
    assert action_map(proc.stdout) == {}
    assert_state_matches_bucket(s3, s3_server, bucket, "site/", SMALL_KEYS + ["site/new.txt"])


def test_state_false_run_that_rewrites_headers_leaves_no_stale_state(s3_server, s3, bucket, make_tree, run_sync):
    """A `state: false` run that rewrites headers in place keeps every ETag (same
    bytes), so the stored state would still "describe" those objects with the old
    headers. It is deleted before the first copy; the next run with the state
    checks every object with S3 and puts the headers back."""
    src, env = small_site(make_tree, s3_server, run_sync, bucket)
    pages = ["site/about/index.html", "site/index.html"]
    other = plugin_env(bucket, state=False, **{**SMALL_SETTINGS, "cache_control": {".html": "no-cache"}})
    ok(run_sync(other, cwd=src))
    done = writes(s3_server, bucket)
    # The redirect old.html is an .html key too: rewritten with the new header.
    assert done[0] == ("DeleteObjects", None), done
    assert sorted(done[1:]) == [("CopyObject", pages[0]), ("CopyObject", pages[1]), ("PutObject", "site/old.html")]
    assert ops(s3_server, bucket)["GetObject"] == 0
    with s3_server.paused():
        assert state_key("site/") not in listing(s3, bucket)
        for key in pages + ["site/old.html"]:
            assert s3.head_object(Bucket=bucket, Key=key)["CacheControl"] == "no-cache"

    # Back to the original settings, state on: no state object, so every object
    # is checked with S3; the three get their header back; one state write, last
    # (there were no stored entries to retire first).
    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    got = ops(s3_server, bucket)
    assert got == collections.Counter({"ListObjectsV2": 1, "HeadObject": 7 + 1, "GetObjectAcl": 7, "CopyObject": 2,
                                       "PutObject": 2}), got  # + one read back
    done = writes(s3_server, bucket)
    assert sorted(done[:-1]) == [("CopyObject", pages[0]), ("CopyObject", pages[1]), ("PutObject", "site/old.html")]
    assert done[-1] == ("PutObject", state_key("site/"))
    with s3_server.paused():
        for key in pages + ["site/old.html"]:
            assert s3.head_object(Bucket=bucket, Key=key)["CacheControl"] == "public, max-age=60", (key, proc.stdout)
    doc = assert_state_matches_bucket(s3, s3_server, bucket, "site/", SMALL_KEYS)
    for key in pages + ["site/old.html"]:
        assert headers_of(doc, key)[2] == "public, max-age=60", key


# --------------------------------------------------------------------------- delete and sibling targets


def test_delete_keeps_the_state_object_and_sibling_targets_keep_theirs(s3_server, s3, bucket, make_tree, run_sync):
    one = make_tree({"index.html": "one", "gone.txt": "g"})
    two = make_tree({"index.html": "two", "other.txt": "o"})
    env_one = plugin_env(bucket, target="site", delete=True)
    env_two = plugin_env(bucket, target="/site2/", delete=True)
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="site/orphan.txt", Body=b"o")
        s3.put_object(Bucket=bucket, Key="site2/orphan.txt", Body=b"o")

    proc = ok(run_sync(env_one, cwd=one))
    assert {k: v[0] for k, v in action_map(proc.stdout).items()} == {
        "site/index.html": "upload", "site/gone.txt": "upload", "site/orphan.txt": "delete"}
    assert writes(s3_server, bucket)[-2:] == [("DeleteObjects", None), ("PutObject", state_key("site/"))]
    s3_server.reset()
    proc = ok(run_sync(env_two, cwd=two))
    assert {k: v[0] for k, v in action_map(proc.stdout).items()} == {
        "site2/index.html": "upload", "site2/other.txt": "upload", "site2/orphan.txt": "delete"}
    assert writes(s3_server, bucket)[-2:] == [("DeleteObjects", None), ("PutObject", state_key("site2/"))]
    with s3_server.paused():
        assert sorted(listing(s3, bucket)) == sorted([
            state_key("site/"), "site/gone.txt", "site/index.html",
            state_key("site2/"), "site2/index.html", "site2/other.txt"])
    assert_state_matches_bucket(s3, s3_server, bucket, "site/", ["site/gone.txt", "site/index.html"])
    assert_state_matches_bucket(s3, s3_server, bucket, "site2/", ["site2/index.html", "site2/other.txt"])

    # A file goes away: deleted, the state object stays and forgets it.
    (one / "gone.txt").unlink()
    s3_server.reset()
    proc = ok(run_sync(env_one, cwd=one))
    assert action_map(proc.stdout) == {"site/gone.txt": ("delete", "not in source")}
    assert writes(s3_server, bucket) == [("DeleteObjects", None), ("PutObject", state_key("site/"))]
    assert STATE_NAME not in proc.stdout
    assert_state_matches_bucket(s3, s3_server, bucket, "site/", ["site/index.html"])

    # Each target reads only its own state object, and nothing is left to do.
    for env, src, prefix in ((env_one, one, "site/"), (env_two, two, "site2/")):
        s3_server.reset()
        proc = ok(run_sync(env, cwd=src))
        assert_only_list_and_state(s3_server, bucket, prefix)
        assert action_map(proc.stdout) == {}
    with s3_server.paused():
        assert sorted(k for k in listing(s3, bucket) if is_state_key(k)) == [state_key("site/"), state_key("site2/")]


# --------------------------------------------------------------------------- the reserved name


def test_local_file_with_the_state_name_is_not_uploaded(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree({"index.html": "h", STATE_NAME: b"local bytes, not a state", "sub/" + STATE_NAME: b"nested"})
    env = plugin_env(bucket, target="site")

    proc = run_sync(env, cwd=src)
    # The product counts the skipped file as a problem: exit 1, and it says why.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    warning = [line for line in proc.stderr.splitlines() if state_key("site/") in line]
    assert warning and "reserved" in warning[0], proc.stderr
    # Only the exact key is reserved: a file of that name in a subfolder is a file.
    file_puts = [k for op, k in writes(s3_server, bucket)[:-1]]
    assert sorted(file_puts) == ["site/index.html", "site/sub/" + STATE_NAME]
    assert writes(s3_server, bucket)[-1] == ("PutObject", state_key("site/"))
    assert state_key("site/") not in action_map(proc.stdout)
    with s3_server.paused():
        doc = read_state(s3, bucket, state_key("site/"))  # the product's state, not the local file
    assert sorted(doc["objects"]) == ["site/index.html", "site/sub/" + STATE_NAME]

    # Again: the same warning and exit code, nothing written.
    s3_server.reset()
    proc = run_sync(env, cwd=src)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert state_key("site/") in proc.stderr
    assert_only_list_and_state(s3_server, bucket, "site/")

    # Being a problem, it also holds back deletes (as any failure does).
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="site/orphan.txt", Body=b"o")
    s3_server.reset()
    proc = run_sync(dict(env, PLUGIN_DELETE="true"), cwd=src)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Deletes skipped" in proc.stdout
    assert s3_server.writes(bucket) == []
    with s3_server.paused():
        assert "site/orphan.txt" in listing(s3, bucket)


def test_header_update_keeps_storage_class_of_an_object_the_state_vouches_for(s3_server, s3, bucket, make_tree,
                                                                              run_sync):
    # A lifecycle transition changes the storage class but not the ETag, so the
    # state entry still looks valid; the header copy must not move it back.
    src = make_tree({"a.txt": "hello"})
    env = plugin_env(bucket, target="site")
    ok(run_sync(env, cwd=src))
    with s3_server.paused():
        s3.copy_object(Bucket=bucket, Key="site/a.txt", CopySource={"Bucket": bucket, "Key": "site/a.txt"},
                       StorageClass="STANDARD_IA", MetadataDirective="COPY")
    s3_server.reset()
    ok(run_sync(plugin_env(bucket, target="site", cache_control="max-age=60"), cwd=src))
    assert keys_of(s3_server.writes(bucket), "CopyObject") == ["site/a.txt"]
    with s3_server.paused():
        head = s3.head_object(Bucket=bucket, Key="site/a.txt")
    assert head.get("StorageClass") == "STANDARD_IA" and head["CacheControl"] == "max-age=60"
