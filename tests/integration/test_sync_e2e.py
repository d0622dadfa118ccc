"""End-to-end tests of the sync behaviour: the real `drone-s3-sync` command,
configured through `PLUGIN_*` variables exactly as Drone passes them, against
the recording moto server of conftest.py.

Every test asserts what the server *received* (request counts per operation,
their order) and then reads the bucket back, unrecorded, inside
`s3_server.paused()`. Settings parsing, header values of each setting, bad
input, config files, dry-run output and the docs examples live in
test_settings_e2e.py; this file is about what a sync does and how little it
asks of S3 to do it.
"""

from __future__ import annotations

import collections
import os
import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterable, List

import pytest
from drone_run import (EIGHT_MIB_PARTS, action_map, actions, fresh_checkout, keys_of, ok, plugin_env, summary_counts,
                       summary_line)
from boto3.s3.transfer import TransferConfig

from conftest import STATE_NAME, is_state_key, read_state, state_key

MiB = 1024 * 1024
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"



# --------------------------------------------------------------------------- helpers


def all_keys(s3: Any, bucket: str, with_state: bool = False) -> List[str]:
    """Every key in the bucket; without the product's state object(s) unless `with_state`."""
    keys: List[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(k for k in keys if with_state or not is_state_key(k))


def head(s3: Any, bucket: str, key: str) -> Dict[str, Any]:
    r = s3.head_object(Bucket=bucket, Key=key)
    return {
        "ContentType": r.get("ContentType"),
        "CacheControl": r.get("CacheControl"),
        "ContentEncoding": r.get("ContentEncoding"),
        "Metadata": {k.lower(): v for k, v in r.get("Metadata", {}).items()},
        "WebsiteRedirectLocation": r.get("WebsiteRedirectLocation"),
    }


def body(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def public_read(s3: Any, bucket: str, key: str) -> bool:
    grants = s3.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    return any(g["Grantee"].get("URI") == ALL_USERS and g["Permission"] == "READ" for g in grants)


def put_many(s3: Any, bucket: str, keys: Iterable[str], data: bytes = b"x") -> None:
    """Pre-create objects concurrently (call inside s3_server.paused())."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=data), keys))


def assert_no_writes(s3_server: Any, bucket: str) -> None:
    assert s3_server.writes(bucket) == []
    assert s3_server.writes() == []  # no CreateInvalidation either (it has no bucket)


def file_writes(s3_server: Any, bucket: str) -> List[Any]:
    """Writes to anything but the state object."""
    return [r for r in s3_server.writes(bucket) if not is_state_key(r.key)]


def is_in_place_write(req: Any) -> bool:
    """A write that keeps the object's bytes: a copy onto itself, an ACL, a redirect (re)written."""
    return req.op in ("CopyObject", "PutObjectAcl") or (
        req.op == "PutObject" and "x-amz-website-redirect-location" in req.headers)


def assert_state_written(s3_server: Any, bucket: str, prefix: str, in_place: Iterable[str] = ()) -> None:
    """The state object's writes. Without `in_place`: exactly one PutObject of this
    target's, after every other write. With `in_place` (keys rewritten in place that
    the stored state had an entry for): exactly two, the first before any copy or
    redirect write, the second after every other write."""
    writes = s3_server.writes(bucket)
    state_writes = [(i, r.op, r.key) for i, r in enumerate(writes) if is_state_key(r.key)]
    assert writes and writes[-1].key == state_key(prefix), writes
    assert writes[-1].op == "PutObject", writes
    in_place = set(in_place)
    if not in_place:
        assert [(op, key) for _, op, key in state_writes] == [("PutObject", state_key(prefix))], writes
        return
    assert [(op, key) for _, op, key in state_writes] == [("PutObject", state_key(prefix))] * 2, writes
    first = state_writes[0][0]
    rewritten = [i for i, r in enumerate(writes) if r.key in in_place]
    assert {writes[i].key for i in rewritten} == in_place, writes
    assert all(is_in_place_write(writes[i]) for i in rewritten), writes
    assert first < min(i for i, r in enumerate(writes) if is_in_place_write(r)), writes


def assert_only_list_and_state(s3_server: Any, bucket: str, prefix: str) -> None:
    """A run that needed no request per object: one listing, one GET of the state object."""
    assert s3_server.ops(bucket) == collections.Counter({"ListObjectsV2": 1, "GetObject": 1}), s3_server.ops(bucket)
    assert keys_of(s3_server.requests, "GetObject") == [state_key(prefix)]


# --------------------------------------------------------------------------- request economy


SITE: Dict[str, Any] = {
    "index.html": "<h1>home</h1>",
    "about/index.html": "<h1>about</h1>",
    "blog/2024/01/post.html": "<p>post</p>",
    "blog/2024/02/post.html": "<p>post two</p>",
    "css/site.css": "body{}",
    "css/print.css": "@media print{}",
    "js/app.js": "console.log(1)",
    "js/app.mjs": "export {}",
    "img/logo.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 32,
    "img/photo.webp": b"RIFF" + b"\1" * 40,
    "img/icon.svg": "<svg/>",
    "fonts/a.woff2": b"wOF2" + b"\2" * 20,
    "data/feed.json": "{}",
    "data/sitemap.xml": "<urlset/>",
    "robots.txt": "User-agent: *",
    "LICENSE": "MIT",  # no extension
    "blob.qqunknown": b"\0\1\2\3",  # unknown type -> application/octet-stream
    "docs/a/b/c/deep.md": "# deep",
    "docs/readme.txt": "readme",
    "manifest.webmanifest": "{}",
    "app.wasm": b"\0asm",
}
for _i in range(9):
    SITE[f"assets/{_i % 3}/file{_i}.txt"] = f"asset {_i}"
SITE_SETTINGS: Dict[str, Any] = dict(
    cache_control={".html": "public, max-age=60", "assets/*": "public, max-age=31536000, immutable"},
    metadata={"*.png": {"owner": "web"}},
    redirects={"old/page.html": "/blog/2024/01/post.html"},
)


def test_second_run_with_nothing_changed_writes_nothing(s3_server, s3, bucket, make_tree, run_sync, distribution, cloudfront):
    src = make_tree(SITE)
    n_files = len(SITE)
    assert n_files == 30
    env = plugin_env(bucket, delete=True, cloudfront_distribution=distribution, **SITE_SETTINGS)

    first = ok(run_sync(env, cwd=src))
    # 30 files + 1 redirect + the state object; no state to read yet; two objects read back
    assert s3_server.ops(bucket) == collections.Counter({"PutObject": n_files + 2, "ListObjectsV2": 1,
                                                         "HeadObject": 2})
    assert keys_of(s3_server.writes(bucket)) == sorted(list(SITE) + ["old/page.html", STATE_NAME])
    assert_state_written(s3_server, bucket, "")
    assert STATE_NAME not in first.stdout
    assert s3_server.ops()["CreateInvalidation"] == 1
    assert summary_counts(first.stdout)["uploaded"] == n_files
    assert summary_counts(first.stdout)["redirects"] == 1
    with s3_server.paused():
        assert head(s3, bucket, "blob.qqunknown")["ContentType"] == "application/octet-stream"
        assert head(s3, bucket, "LICENSE")["ContentType"]
        assert head(s3, bucket, "old/page.html")["WebsiteRedirectLocation"] == "/blog/2024/01/post.html"
        invalidations_before = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"]["Quantity"]

    s3_server.reset()
    second = ok(run_sync(env, cwd=src))
    ops = s3_server.ops(bucket)
    assert_no_writes(s3_server, bucket)
    assert ops["ListObjectsV2"] == 1
    for op in ("PutObject", "PutObjectAcl", "CopyObject", "DeleteObjects", "DeleteObject", "CreateMultipartUpload"):
        assert ops[op] == 0, op
    assert s3_server.ops()["CreateInvalidation"] == 0
    # The state object vouches for all 31 objects: no request per object.
    assert ops["GetObject"] == 1
    assert ops["HeadObject"] == 0
    assert ops["GetObjectAcl"] == 0
    assert_only_list_and_state(s3_server, bucket, "")
    assert actions(second.stdout) == []
    assert summary_counts(second.stdout) == {
        "uploaded": 0, "updated": 0, "redirects": 0, "deleted": 0, "unchanged": n_files + 1}
    with s3_server.paused():
        after = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"]["Quantity"]
    assert after == invalidations_before == 1


def test_fresh_checkout_with_new_mtimes_uploads_nothing(s3_server, s3, bucket, make_tree, run_sync, tmp_path):
    src = make_tree(SITE)
    env = plugin_env(bucket, delete=True, **SITE_SETTINGS)
    ok(run_sync(env, cwd=src))

    checkout = fresh_checkout(src, tmp_path / "checkout")
    s3_server.reset()
    proc = ok(run_sync(env, cwd=checkout))
    assert_no_writes(s3_server, bucket)
    assert s3_server.ops(bucket)["ListObjectsV2"] == 1
    assert_only_list_and_state(s3_server, bucket, "")
    assert summary_counts(proc.stdout)["uploaded"] == 0
    assert summary_counts(proc.stdout)["unchanged"] == len(SITE) + 1


def test_listing_paginates_past_1000_objects(s3_server, s3, bucket, make_tree, run_sync):
    # Keys sort as site/a/... (1,000 objects, page 1) < site/z-... (page 2):
    # the plan for the z-files is only right if the second page was read.
    src = make_tree({"z-same.txt": "same", "z-changed.txt": "old1"})
    env = plugin_env(bucket, target="site")
    ok(run_sync(env, cwd=src))
    with s3_server.paused():
        put_many(s3, bucket, [f"site/a/{i:04d}.txt" for i in range(1000)])
    make_tree({"z-changed.txt": "new2", "z-new.txt": "brand new"}, root=src)

    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    ops = s3_server.ops(bucket)
    assert ops["ListObjectsV2"] == 2
    assert ops["PutObject"] == 3  # the two files and the state object
    assert keys_of(file_writes(s3_server, bucket)) == ["site/z-changed.txt", "site/z-new.txt"]
    assert_state_written(s3_server, bucket, "site/")
    assert ops["DeleteObjects"] == 0  # delete is off: the 1,000 others stay
    assert action_map(proc.stdout) == {
        "site/z-changed.txt": ("upload", "content changed, 4 B"),
        "site/z-new.txt": ("upload", "new, 9 B"),
    }
    with s3_server.paused():
        assert len(all_keys(s3, bucket)) == 1003
        assert len(all_keys(s3, bucket, with_state=True)) == 1004
        assert body(s3, bucket, "site/z-changed.txt") == b"new2"


# --------------------------------------------------------------------------- change detection


def test_change_detection_same_size_size_change_and_new_file(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree({"a.txt": "aaaa", "b.txt": "bbbb", "c/d.txt": "dddd", "e.bin": b"\0" * 100})
    env = plugin_env(bucket, target="/out/")
    ok(run_sync(env, cwd=src))

    # Same size, different bytes (and an older mtime than before: mtimes must not matter).
    (src / "a.txt").write_text("AAAA")
    os.utime(str(src / "a.txt"), (1_000_000, 1_000_000))
    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    ops = s3_server.ops(bucket)
    # The state object vouches for all four same-size objects (their listed ETags
    # did not change): the local digest alone tells a.txt changed. No HEAD at all.
    assert ops == collections.Counter({"ListObjectsV2": 1, "GetObject": 1, "PutObject": 2}), ops
    assert keys_of(file_writes(s3_server, bucket)) == ["out/a.txt"]
    assert_state_written(s3_server, bucket, "out/")
    assert action_map(proc.stdout) == {"out/a.txt": ("upload", "content changed, 4 B")}

    # Size change: no hash, no HEAD needed for it.
    (src / "c" / "d.txt").write_text("ddddd")
    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    assert s3_server.ops(bucket)["PutObject"] == 2
    assert keys_of(file_writes(s3_server, bucket)) == ["out/c/d.txt"]
    assert_state_written(s3_server, bucket, "out/")
    assert action_map(proc.stdout) == {"out/c/d.txt": ("upload", "size changed, 5 B")}

    # A new file.
    (src / "c" / "new.txt").write_text("n")
    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    assert s3_server.ops(bucket)["PutObject"] == 2
    assert keys_of(file_writes(s3_server, bucket)) == ["out/c/new.txt"]
    assert_state_written(s3_server, bucket, "out/")
    assert action_map(proc.stdout) == {"out/c/new.txt": ("upload", "new, 1 B")}
    assert summary_counts(proc.stdout)["uploaded"] == 1
    assert summary_counts(proc.stdout)["unchanged"] == 4

    with s3_server.paused():
        assert body(s3, bucket, "out/a.txt") == b"AAAA"
        assert body(s3, bucket, "out/c/d.txt") == b"ddddd"
        assert body(s3, bucket, "out/c/new.txt") == b"n"
        assert all_keys(s3, bucket) == ["out/a.txt", "out/b.txt", "out/c/d.txt", "out/c/new.txt", "out/e.bin"]
    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert_no_writes(s3_server, bucket)
    assert_only_list_and_state(s3_server, bucket, "out/")


# --------------------------------------------------------------------------- multipart


def _moto_private_acl(s3: Any, bucket: str, key: str) -> None:
    """moto 5 leaves a multipart object completed without an ACL header with no
    ACL at all, and then answers GetObjectAcl with a 500; real S3 makes it
    private. Give it the private ACL S3 would have (a no-op on S3)."""
    s3.put_object_acl(Bucket=bucket, Key=key, ACL="private")


def test_multipart_upload_and_rerun(s3_server, s3, bucket, make_tree, run_sync):
    data = os.urandom(17 * MiB)
    src = make_tree({"big.bin": data, "small.txt": "s"})
    env = plugin_env(bucket, **EIGHT_MIB_PARTS)
    proc = ok(run_sync(env, cwd=src))
    ops = s3_server.ops(bucket)
    assert ops["CreateMultipartUpload"] == 1
    assert ops["UploadPart"] == 3  # 8 + 8 + 1 MiB
    assert ops["CompleteMultipartUpload"] == 1
    assert ops["PutObject"] == 2  # small.txt and the state object
    assert keys_of(s3_server.writes(bucket), "PutObject") == [STATE_NAME, "small.txt"]
    assert_state_written(s3_server, bucket, "")
    assert ops["AbortMultipartUpload"] == 0
    assert action_map(proc.stdout)["big.bin"] == ("upload", "new, 17.0 MiB")
    with s3_server.paused():
        etag = s3.head_object(Bucket=bucket, Key="big.bin")["ETag"].strip('"')
        assert etag.endswith("-3")
        assert body(s3, bucket, "big.bin") == data
        # The state records the multipart ETag S3 returned.
        assert read_state(s3, bucket, STATE_NAME)["objects"]["big.bin"][:2] == [etag, 17 * MiB]

    # No _moto_private_acl here: with the state, the rerun never asks for the
    # multipart object's ACL (which moto would answer with a 500).
    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert_no_writes(s3_server, bucket)
    assert_only_list_and_state(s3_server, bucket, "")


def test_part_size_settings(s3_server, s3, bucket, make_tree, run_sync):
    """multipart_threshold and part_size decide how a file is sent; without the
    state object, the next run recognises the object by its multipart ETag
    (the configured part size is tried first) instead of uploading it again."""
    data = os.urandom(11 * MiB + 3)
    src = make_tree({"big.bin": data, "mid.bin": os.urandom(6 * MiB)})
    env = plugin_env(bucket, multipart_threshold="7MiB", part_size="5.5MiB", state=False)
    ok(run_sync(env, cwd=src))
    ops = s3_server.ops(bucket)
    assert ops["CreateMultipartUpload"] == 1 and ops["UploadPart"] == 3  # 5.5 + 5.5 + 3 bytes
    assert keys_of(s3_server.writes(bucket), "PutObject") == ["mid.bin"]  # below the threshold
    with s3_server.paused():
        assert s3.head_object(Bucket=bucket, Key="big.bin")["ETag"].strip('"').endswith("-3")
        assert body(s3, bucket, "big.bin") == data
        _moto_private_acl(s3, bucket, "big.bin")
    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    assert_no_writes(s3_server, bucket)
    assert summary_counts(proc.stdout)["unchanged"] == 2


def _foreign_multipart(s3: Any, bucket: str, key: str, data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "foreign.bin"
    path.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
    # The Content-Type the sync would choose, so that only the content decides.
    s3.upload_file(str(path), bucket, key, Config=config, ExtraArgs={"ContentType": "application/octet-stream", "ACL": "private"})
    return s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')


def test_foreign_multipart_object_with_5mib_parts_is_recognised(s3_server, s3, bucket, make_tree, run_sync, tmp_path):
    data = os.urandom(12 * MiB)  # 5 + 5 + 2 MiB parts
    with s3_server.paused():
        etag = _foreign_multipart(s3, bucket, "pkg/big.bin", data, tmp_path)
    assert etag.endswith("-3")
    src = make_tree({"big.bin": data})
    s3_server.reset()
    proc = ok(run_sync(plugin_env(bucket, target="pkg"), cwd=src))
    # Nothing uploaded: the only write is the first state object (no state existed).
    assert file_writes(s3_server, bucket) == []
    assert s3_server.writes() == s3_server.writes(bucket)
    assert_state_written(s3_server, bucket, "pkg/")
    assert summary_counts(proc.stdout)["unchanged"] == 1
    assert s3_server.ops(bucket)["HeadObject"] <= 1
    assert s3_server.ops(bucket)["GetObject"] == 0  # no state object was listed

    s3_server.reset()
    ok(run_sync(plugin_env(bucket, target="pkg"), cwd=src))
    assert_no_writes(s3_server, bucket)
    assert_only_list_and_state(s3_server, bucket, "pkg/")


def test_foreign_multipart_object_with_other_bytes_is_uploaded(s3_server, s3, bucket, make_tree, run_sync, tmp_path):
    remote = os.urandom(12 * MiB)
    local = bytearray(remote)
    local[7 * MiB] ^= 0xFF  # same size, one byte different in the second 5 MiB part
    with s3_server.paused():
        _foreign_multipart(s3, bucket, "pkg/big.bin", remote, tmp_path)
    src = make_tree({"big.bin": bytes(local)})
    s3_server.reset()
    proc = ok(run_sync(plugin_env(bucket, target="pkg"), cwd=src))
    ops = s3_server.ops(bucket)
    # Below the 100 MiB multipart threshold: one PutObject, whose ETag is the MD5.
    assert ops["CreateMultipartUpload"] == 0 and ops["UploadPart"] == 0
    assert sorted(keys_of(s3_server.writes(bucket), "PutObject")) == sorted(["pkg/big.bin", state_key("pkg/")])
    assert_state_written(s3_server, bucket, "pkg/")
    # Its ETag cannot be compared with the file's MD5, and no part size tried
    # reproduces it: the log says so rather than claiming a content change.
    # (12 MiB in 3 parts: 5 MiB is the one whole-MiB size of at least 5 MiB that gives 3.)
    assert action_map(proc.stdout) == {"pkg/big.bin": (
        "upload", "part size unknown: its ETag (3 parts) does not match the one part size tried; "
                  "the content may be the same, 12.0 MiB")}
    with s3_server.paused():
        assert body(s3, bucket, "pkg/big.bin") == bytes(local)
        _moto_private_acl(s3, bucket, "pkg/big.bin")
    s3_server.reset()
    ok(run_sync(plugin_env(bucket, target="pkg"), cwd=src))
    assert_no_writes(s3_server, bucket)


# --------------------------------------------------------------------------- header and ACL drift


DRIFT_SITE = {
    "index.html": "<h1>home</h1>",
    "about/index.html": "<h1>about</h1>",
    "style.css": "body{}",
    "app.js": "1",
    "img.png": b"\x89PNG" + b"\0" * 8,
}


class Drift:
    """Run, check that exactly the expected keys were fixed in place, re-run: nothing."""

    def __init__(self, s3_server: Any, s3: Any, bucket: str, run_sync: Any, src: Path, settings: Dict[str, Any]):
        self.s3_server, self.s3, self.bucket, self.run_sync, self.src = s3_server, s3, bucket, run_sync, src
        self.settings = settings

    def sync(self) -> Any:
        self.s3_server.reset()
        return ok(self.run_sync(plugin_env(self.bucket, target="www", **self.settings), cwd=self.src))

    def change(self, copied: Iterable[str], reason: str, allow_acl_put: bool = False) -> Any:
        proc = self.sync()
        copied = sorted("www/" + k for k in copied)
        # Every copied key had a state entry: two state writes around the copies.
        assert_state_written(self.s3_server, self.bucket, "www/", in_place=copied)
        writes = file_writes(self.s3_server, self.bucket)
        ops = collections.Counter(r.op for r in writes)
        if allow_acl_put and ops["PutObjectAcl"]:
            assert keys_of(writes) == copied
            assert set(ops) <= {"PutObjectAcl", "CopyObject"}
        else:
            assert keys_of(writes, "CopyObject") == copied
            assert ops == collections.Counter({"CopyObject": len(copied)})
        for req in writes:
            if req.op == "CopyObject":
                assert req.headers["x-amz-metadata-directive"] == "REPLACE"
        got = action_map(proc.stdout)
        assert sorted(got) == copied
        for key in copied:
            assert got[key] == ("update", reason), got[key]
        assert summary_counts(proc.stdout)["updated"] == len(copied)
        assert summary_counts(proc.stdout)["uploaded"] == 0
        # and then it stays fixed
        again = self.sync()
        assert_no_writes(self.s3_server, self.bucket)
        assert_only_list_and_state(self.s3_server, self.bucket, "www/")
        assert actions(again.stdout) == []
        return proc

    def head(self, key: str) -> Dict[str, Any]:
        with self.s3_server.paused():
            return head(self.s3, self.bucket, "www/" + key)


def test_header_drift_is_fixed_with_metadata_only_copies(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree(DRIFT_SITE)
    settings: Dict[str, Any] = dict(
        cache_control={".html": "max-age=60", ".css": "max-age=3600"},
        metadata={"*.png": {"owner": "a", "team": "web"}},
    )
    drift = Drift(s3_server, s3, bucket, run_sync, src, settings)
    drift.sync()
    assert s3_server.ops(bucket)["PutObject"] == 6  # five files and the state object
    assert_state_written(s3_server, bucket, "www/")
    png_type = drift.head("img.png")["ContentType"]
    assert png_type == "image/png"
    html_type = drift.head("index.html")["ContentType"]
    assert html_type == "text/html; charset=utf-8"

    # Cache-Control of a rule changes: one copy per html file, no re-upload.
    settings["cache_control"] = {".html": "public, max-age=120", ".css": "max-age=3600"}
    drift.change(["index.html", "about/index.html"], "headers changed: cache_control")
    for key in ("index.html", "about/index.html"):
        assert drift.head(key) == {"ContentType": html_type, "CacheControl": "public, max-age=120",
                                   "ContentEncoding": None, "Metadata": {}, "WebsiteRedirectLocation": None}
    assert drift.head("style.css")["CacheControl"] == "max-age=3600"

    # A metadata value changes.
    settings["metadata"] = {"*.png": {"owner": "b", "team": "web"}}
    drift.change(["img.png"], "headers changed: metadata")
    assert drift.head("img.png") == {"ContentType": png_type, "CacheControl": None, "ContentEncoding": None,
                                     "Metadata": {"owner": "b", "team": "web"}, "WebsiteRedirectLocation": None}

    # A metadata key is renamed (same count, same value).
    settings["metadata"] = {"*.png": {"maintainer": "b", "team": "web"}}
    drift.change(["img.png"], "headers changed: metadata")
    assert drift.head("img.png")["Metadata"] == {"maintainer": "b", "team": "web"}

    # A metadata key is removed.
    settings["metadata"] = {"*.png": {"team": "web"}}
    drift.change(["img.png"], "headers changed: metadata")
    assert drift.head("img.png")["Metadata"] == {"team": "web"}
    assert drift.head("img.png")["ContentType"] == png_type

    # A Content-Type rule changes.
    settings["content_type"] = {".css": "text/x-custom-css"}
    drift.change(["style.css"], "headers changed: content_type")
    assert drift.head("style.css") == {"ContentType": "text/x-custom-css", "CacheControl": "max-age=3600",
                                       "ContentEncoding": None, "Metadata": {}, "WebsiteRedirectLocation": None}

    # Content-Encoding added by a rule.
    settings["content_encoding"] = {".js": "gzip"}
    drift.change(["app.js"], "headers changed: content_encoding")
    assert drift.head("app.js")["ContentEncoding"] == "gzip"

    with s3_server.paused():
        for key, content in DRIFT_SITE.items():
            expected = content.encode() if isinstance(content, str) else content
            assert body(s3, bucket, "www/" + key) == expected


def test_acl_drift_both_ways(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree(DRIFT_SITE)
    settings: Dict[str, Any] = {}
    drift = Drift(s3_server, s3, bucket, run_sync, src, settings)
    drift.sync()
    with s3_server.paused():
        assert not public_read(s3, bucket, "www/app.js")
    cache_before = drift.head("app.js")

    settings["acl"] = {"*.js": "public-read"}
    drift.change(["app.js"], "acl changed: acl", allow_acl_put=True)
    with s3_server.paused():
        assert public_read(s3, bucket, "www/app.js")
        assert not public_read(s3, bucket, "www/style.css")
    assert drift.head("app.js") == cache_before

    settings["acl"] = {"*.js": "private"}
    drift.change(["app.js"], "acl changed: acl", allow_acl_put=True)
    with s3_server.paused():
        assert not public_read(s3, bucket, "www/app.js")
    assert drift.head("app.js") == cache_before


def test_redirect_keeps_its_location_when_its_headers_drift(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree({"index.html": "<h1>"})
    settings: Dict[str, Any] = dict(redirects={"old.html": "/index.html"}, cache_control={".html": "max-age=60"})
    ok(run_sync(plugin_env(bucket, target="www", **settings), cwd=src))
    with s3_server.paused():
        assert head(s3, bucket, "www/old.html")["WebsiteRedirectLocation"] == "/index.html"
        assert head(s3, bucket, "www/old.html")["CacheControl"] == "max-age=60"

    settings["cache_control"] = {".html": "max-age=300"}
    s3_server.reset()
    proc = ok(run_sync(plugin_env(bucket, target="www", **settings), cwd=src))
    assert_state_written(s3_server, bucket, "www/", in_place=["www/index.html", "www/old.html"])
    writes = file_writes(s3_server, bucket)
    # index.html: a metadata-only copy; the redirect: one write of either kind
    # (observed: the zero-byte redirect object is written again with PutObject).
    by_key: Dict[str, List[str]] = collections.defaultdict(list)
    for req in writes:
        by_key[req.key].append(req.op)
    assert sorted(by_key) == ["www/index.html", "www/old.html"]
    assert by_key["www/index.html"] == ["CopyObject"]
    assert by_key["www/old.html"] in (["CopyObject"], ["PutObject"])
    (redirect_write,) = [r for r in writes if r.key == "www/old.html"]
    if redirect_write.op == "PutObject":
        assert redirect_write.headers["x-amz-website-redirect-location"] == "/index.html"
    got = action_map(proc.stdout)
    assert got["www/index.html"] == ("update", "headers changed: cache_control")
    assert got["www/old.html -> /index.html"][1] == "headers changed: cache_control"
    with s3_server.paused():
        h = head(s3, bucket, "www/old.html")
        assert h["WebsiteRedirectLocation"] == "/index.html"
        assert h["CacheControl"] == "max-age=300"
        assert head(s3, bucket, "www/index.html")["CacheControl"] == "max-age=300"

    s3_server.reset()
    ok(run_sync(plugin_env(bucket, target="www", **settings), cwd=src))
    assert_no_writes(s3_server, bucket)

    # The location itself changes: rewritten, new location read back.
    settings["redirects"] = {"old.html": "/elsewhere/"}
    s3_server.reset()
    proc = ok(run_sync(plugin_env(bucket, target="www", **settings), cwd=src))
    assert [(r.op, r.key) for r in file_writes(s3_server, bucket)] == [("PutObject", "www/old.html")]
    assert_state_written(s3_server, bucket, "www/", in_place=["www/old.html"])
    assert s3_server.ops(bucket)["PutObject"] == 3  # the state object, the redirect, the state object
    assert action_map(proc.stdout)["www/old.html -> /elsewhere/"][0] == "redirect"
    with s3_server.paused():
        assert head(s3, bucket, "www/old.html")["WebsiteRedirectLocation"] == "/elsewhere/"


# --------------------------------------------------------------------------- special characters


SPECIAL = {
    "sp ace.txt": "space",
    "per%cent.txt": "percent",
    "per%20cent.txt": "percent encoded-looking",
    "pl+us.txt": "plus",
    "ha#sh.txt": "hash",
    "amp&er.txt": "amp",
    "quo'te.txt": "quote",
    "que?ry.txt": "question",
    "café.txt": "cafe",
    "日本.txt": "nihon",
    "dir with space/a+b c.txt": "nested",
    "trailing ": "trailing space",
}
NFD_NAME = unicodedata.normalize("NFD", "crème.txt")


def test_special_character_keys_upload_update_and_delete(s3_server, s3, bucket, make_tree, run_sync):
    files = dict(SPECIAL)
    files[NFD_NAME] = "nfd"
    src = make_tree(files)
    assert NFD_NAME in os.listdir(str(src))  # the file system kept the decomposed name
    expected = sorted("site/" + unicodedata.normalize("NFC", name) for name in files)
    assert "site/crème.txt" in expected and "site/" + NFD_NAME not in expected

    settings: Dict[str, Any] = dict(cache_control="max-age=1")
    ok(run_sync(plugin_env(bucket, target="site", **settings), cwd=src))
    assert keys_of(file_writes(s3_server, bucket), "PutObject") == expected
    assert s3_server.ops(bucket)["PutObject"] == len(files) + 1
    assert_state_written(s3_server, bucket, "site/")
    with s3_server.paused():
        assert all_keys(s3, bucket) == expected
        assert body(s3, bucket, "site/crème.txt") == b"nfd"
        assert body(s3, bucket, "site/per%cent.txt") == b"percent"

    # A header change: CopyObject onto each of them (copy source encoded right).
    settings["cache_control"] = "max-age=2"
    s3_server.reset()
    proc = ok(run_sync(plugin_env(bucket, target="site", **settings), cwd=src))
    assert keys_of(s3_server.writes(bucket), "CopyObject") == expected
    assert s3_server.ops(bucket)["CopyObject"] == len(files)
    assert s3_server.ops(bucket)["PutObject"] == 2  # the state object only: before the copies and last
    # The state object knew the old headers; each copied object gets one HeadObject
    # (special-character keys included) for what a copy must keep, no GetObjectAcl.
    assert sorted(keys_of(s3_server.requests, "HeadObject")) == sorted(expected)
    assert s3_server.ops(bucket)["GetObjectAcl"] == 0
    assert_state_written(s3_server, bucket, "site/", in_place=expected)
    assert sorted(action_map(proc.stdout)) == expected
    with s3_server.paused():
        for key in expected:
            assert head(s3, bucket, key)["CacheControl"] == "max-age=2", key
        assert all_keys(s3, bucket) == expected  # no stray keys from a mis-encoded copy

    s3_server.reset()
    ok(run_sync(plugin_env(bucket, target="site", **settings), cwd=src))
    assert_no_writes(s3_server, bucket)
    assert_only_list_and_state(s3_server, bucket, "site/")

    # Delete them all but one.
    empty = make_tree({"keep.txt": "k"})
    s3_server.reset()
    proc = ok(run_sync(plugin_env(bucket, source=str(empty), target="site", delete=True, **settings), cwd=src))
    assert s3_server.ops(bucket)["DeleteObjects"] == 1
    got = action_map(proc.stdout)
    assert {k for k, v in got.items() if v == ("delete", "not in source")} == set(expected)
    assert STATE_NAME not in proc.stdout
    with s3_server.paused():
        assert all_keys(s3, bucket) == ["site/keep.txt"]
        assert all_keys(s3, bucket, with_state=True) == [state_key("site/"), "site/keep.txt"]


# --------------------------------------------------------------------------- delete safety


@pytest.mark.parametrize("target", ["site", "/site/"])
def test_delete_only_strictly_inside_the_target(s3_server, s3, bucket, make_tree, run_sync, target):
    with s3_server.paused():
        for key in ("site-old/a.txt", "sitemap.xml", "site/gone.txt", "site/sub/gone2.txt", "siteX"):
            s3.put_object(Bucket=bucket, Key=key, Body=b"old")
        s3.put_object(Bucket=bucket, Key="site/dir/", Body=b"")  # folder marker
        s3.put_object(Bucket=bucket, Key="site/moved.html", Body=b"", WebsiteRedirectLocation="/new.html")
    src = make_tree({"keep.txt": "keep", "a.txt": "a", "b/c.txt": "c"})
    proc = ok(run_sync(plugin_env(bucket, target=target, delete=True), cwd=src))
    ops = s3_server.ops(bucket)
    assert ops["DeleteObjects"] == 1
    assert ops["DeleteObject"] == 0
    assert ops["PutObject"] == 4  # three files and the state object
    assert_state_written(s3_server, bucket, "site/")
    deletes = {k for k, v in action_map(proc.stdout).items() if v[0] == "delete"}
    assert deletes == {"site/gone.txt", "site/sub/gone2.txt"}
    assert summary_counts(proc.stdout)["deleted"] == 2
    # every file write precedes the delete request; the state object comes last
    names = [r.op for r in file_writes(s3_server, bucket)]
    assert max(i for i, op in enumerate(names) if op == "PutObject") < names.index("DeleteObjects")
    assert names[-1] == "DeleteObjects"
    with s3_server.paused():
        assert all_keys(s3, bucket) == sorted([
            "site-old/a.txt", "sitemap.xml", "siteX", "site/dir/", "site/moved.html",
            "site/keep.txt", "site/a.txt", "site/b/c.txt"])
        assert state_key("site/") in all_keys(s3, bucket, with_state=True)


def test_delete_at_bucket_root(s3_server, s3, bucket, make_tree, run_sync):
    with s3_server.paused():
        for key in ("keep.txt", "orphan.txt", "deep/orphan.txt"):
            s3.put_object(Bucket=bucket, Key=key, Body=b"old")
        s3.put_object(Bucket=bucket, Key="dir/", Body=b"")
    src = make_tree({"keep.txt": "old", "new.txt": "n"})
    proc = ok(run_sync(plugin_env(bucket, target="/", delete=True), cwd=src))
    assert s3_server.ops(bucket)["DeleteObjects"] == 1
    assert keys_of(file_writes(s3_server, bucket), "PutObject") == ["new.txt"]  # keep.txt unchanged
    assert_state_written(s3_server, bucket, "")
    assert {k for k, v in action_map(proc.stdout).items() if v[0] == "delete"} == {"orphan.txt", "deep/orphan.txt"}
    with s3_server.paused():
        assert all_keys(s3, bucket) == ["dir/", "keep.txt", "new.txt"]
        assert all_keys(s3, bucket, with_state=True) == [STATE_NAME, "dir/", "keep.txt", "new.txt"]

    # The next delete run at the root does not take the state object for an orphan.
    s3_server.reset()
    proc = ok(run_sync(plugin_env(bucket, target="/", delete=True), cwd=src))
    assert_no_writes(s3_server, bucket)
    assert actions(proc.stdout) == []


def test_deletes_come_after_all_uploads(s3_server, s3, bucket, make_tree, run_sync):
    with s3_server.paused():
        put_many(s3, bucket, [f"o/{i:02d}.txt" for i in range(20)])
    src = make_tree({f"n/{i:02d}.txt": f"new {i}" for i in range(20)})
    ok(run_sync(plugin_env(bucket, delete=True, max_concurrency=8), cwd=src))
    names = [r.op for r in s3_server.requests if r.bucket == bucket and not is_state_key(r.key)]
    assert names.count("PutObject") == 20
    assert names.count("DeleteObjects") == 1
    first_delete = names.index("DeleteObjects")
    assert all(i < first_delete for i, op in enumerate(names) if op == "PutObject")
    assert names[-1] == "DeleteObjects"
    # the state object is written once, after the deletes
    assert_state_written(s3_server, bucket, "")
    with s3_server.paused():
        assert all_keys(s3, bucket) == sorted(f"n/{i:02d}.txt" for i in range(20))


def test_1500_orphans_are_deleted_in_two_batches(s3_server, s3, bucket, make_tree, run_sync):
    orphans = [f"t/old/{i:04d}.txt" for i in range(1500)]
    with s3_server.paused():
        put_many(s3, bucket, orphans)
    src = make_tree({"index.html": "hi"})
    proc = ok(run_sync(plugin_env(bucket, target="t", delete=True), cwd=src))
    ops = s3_server.ops(bucket)
    assert ops["DeleteObjects"] == 2
    assert ops["DeleteObject"] == 0
    assert ops["ListObjectsV2"] == 2
    assert ops["HeadObject"] == 1  # no object the size of a local file; index.html read back once
    assert ops["PutObject"] == 2  # index.html and the state object
    assert_state_written(s3_server, bucket, "t/")
    assert summary_counts(proc.stdout)["deleted"] == 1500
    with s3_server.paused():
        assert all_keys(s3, bucket) == ["t/index.html"]
        assert all_keys(s3, bucket, with_state=True) == [state_key("t/"), "t/index.html"]


def test_delete_off_deletes_nothing(s3_server, s3, bucket, make_tree, run_sync):
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="orphan.txt", Body=b"o")
    src = make_tree({"a.txt": "a"})
    proc = ok(run_sync(plugin_env(bucket), cwd=src))
    assert s3_server.ops(bucket)["DeleteObjects"] == 0
    assert s3_server.ops(bucket)["DeleteObject"] == 0
    assert summary_counts(proc.stdout)["deleted"] == 0
    with s3_server.paused():
        assert all_keys(s3, bucket) == ["a.txt", "orphan.txt"]
    s3_server.reset()
    ok(run_sync(plugin_env(bucket, delete=False), cwd=src))
    assert_no_writes(s3_server, bucket)


def test_no_deletes_after_a_failed_upload(s3_server, s3, acl_disabled_bucket, make_tree, run_sync):
    bucket = acl_disabled_bucket
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="orphan.txt", Body=b"orphan")
    src = make_tree({"a.txt": "a", "b/c.txt": "c", "public/x.txt": "x", "d.html": "d"})
    proc = run_sync(plugin_env(bucket, delete=True, acl={"public/*": "public-read"}), cwd=src)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    ops = s3_server.ops(bucket)
    assert ops["DeleteObjects"] == 0 and ops["DeleteObject"] == 0
    failed_lines = [line for line in proc.stdout.splitlines() if "public/x.txt" in line and "AccessControlListNotSupported" in line]
    assert failed_lines, proc.stdout
    assert "failed" in summary_line(proc.stdout)
    assert summary_counts(proc.stdout)["failed"] == 1
    assert summary_counts(proc.stdout)["uploaded"] == 3
    assert summary_counts(proc.stdout)["deleted"] == 0
    # One error says which setting and what to do.
    assert f"error: PLUGIN_ACL: the server {s3_server.endpoint} refused the ACL of 1 object(s) (first " \
        "public/x.txt: AccessControlListNotSupported" in proc.stdout and "remove the acl setting" in proc.stdout
    # The state object records what did succeed (the failed key gets no entry), and
    # is accepted by the ACL-disabled bucket (no ACL header).
    assert_state_written(s3_server, bucket, "")
    with s3_server.paused():
        assert all_keys(s3, bucket) == ["a.txt", "b/c.txt", "d.html", "orphan.txt"]
        assert sorted(read_state(s3, bucket, STATE_NAME)["objects"]) == ["a.txt", "b/c.txt", "d.html"]


# --------------------------------------------------------------------------- CloudFront


def _invalidations(s3_server: Any, cloudfront: Any, distribution: str) -> List[List[str]]:
    """Paths of each invalidation of the distribution, oldest first."""
    with s3_server.paused():
        items = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"].get("Items", [])
        result = []
        for item in items:
            inv = cloudfront.get_invalidation(DistributionId=distribution, Id=item["Id"])["Invalidation"]
            result.append((inv["CreateTime"], sorted(inv["InvalidationBatch"]["Paths"].get("Items", []))))
    return [paths for _, paths in sorted(result, key=lambda r: r[0])]


def test_cloudfront_invalidates_exactly_what_changed(s3_server, s3, bucket, make_tree, run_sync, distribution, cloudfront):
    src = make_tree({"index.html": "home", "dir/index.html": "dir", "a.txt": "a", "gone.txt": "g",
                     "a b.txt": "space", "café.txt": "cafe"})
    env = plugin_env(bucket, delete=True, cloudfront_distribution=distribution)
    first = ok(run_sync(env, cwd=src))
    assert s3_server.ops()["CreateInvalidation"] == 1
    (req,) = [r for r in s3_server.requests if r.op == "CreateInvalidation"]
    assert req.service == "cloudfront"
    assert distribution in req.path
    expected = sorted(["/index.html", "/", "/dir/index.html", "/dir/", "/a.txt", "/gone.txt",
                       "/a%20b.txt", "/caf%C3%A9.txt"])
    assert _invalidations(s3_server, cloudfront, distribution) == [expected]
    assert "CloudFront: invalidated 8 path(s)" in first.stdout

    # No change: no invalidation.
    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert s3_server.ops()["CreateInvalidation"] == 0
    assert_no_writes(s3_server, bucket)

    # One changed, one deleted: exactly those two paths.
    (src / "a.txt").write_text("A")
    (src / "gone.txt").unlink()
    # Dry run first: plans it, writes and invalidates nothing.
    s3_server.reset()
    dry = ok(run_sync(dict(env, PLUGIN_DRY_RUN="true"), cwd=src))
    assert_no_writes(s3_server, bucket)
    assert s3_server.ops()["CreateInvalidation"] == 0
    assert len(_invalidations(s3_server, cloudfront, distribution)) == 1
    assert "a.txt" in dry.stdout and "gone.txt" in dry.stdout

    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert s3_server.ops()["CreateInvalidation"] == 1
    assert s3_server.ops(bucket)["PutObject"] == 2  # a.txt and the state object (never invalidated)
    assert keys_of(file_writes(s3_server, bucket), "PutObject") == ["a.txt"]
    assert_state_written(s3_server, bucket, "")
    assert s3_server.ops(bucket)["DeleteObjects"] == 1
    assert _invalidations(s3_server, cloudfront, distribution) == [expected, ["/a.txt", "/gone.txt"]]


def test_cloudfront_paths_below_a_target(s3_server, bucket, make_tree, run_sync, distribution, cloudfront):
    src = make_tree({"index.html": "home", "sub dir/ü.html": "u"})
    ok(run_sync(plugin_env(bucket, target="/docs/", cloudfront_distribution=distribution), cwd=src))
    assert _invalidations(s3_server, cloudfront, distribution) == [
        sorted(["/docs/index.html", "/docs/", "/docs/sub%20dir/%C3%BC.html"])]


def test_cloudfront_client_follows_aws_endpoint_url_variables(s3_server, bucket, make_tree, run_sync, distribution, cloudfront):
    src = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, cloudfront_distribution=distribution)
    # Only the generic variable: the CloudFront client still reaches the test server.
    ok(run_sync(dict(env, AWS_ENDPOINT_URL_CLOUDFRONT=None, AWS_ENDPOINT_URL=s3_server.endpoint), cwd=src))
    assert s3_server.ops()["CreateInvalidation"] == 1
    assert _invalidations(s3_server, cloudfront, distribution) == [["/a.txt"]]

    # The service-specific variable wins: pointed at a closed port, no
    # invalidation reaches this server and the run reports the failure.
    (src / "a.txt").write_text("b")
    s3_server.reset()
    proc = run_sync(dict(env, AWS_ENDPOINT_URL_CLOUDFRONT="http://127.0.0.1:9", AWS_ENDPOINT_URL=s3_server.endpoint),
                    cwd=src)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "CloudFront" in proc.stdout + proc.stderr
    assert s3_server.ops()["CreateInvalidation"] == 0
    assert s3_server.ops(bucket)["PutObject"] == 2  # the upload itself was done, and the state object
    assert keys_of(file_writes(s3_server, bucket), "PutObject") == ["a.txt"]
    assert_state_written(s3_server, bucket, "")
    assert len(_invalidations(s3_server, cloudfront, distribution)) == 1


# --------------------------------------------------------------------------- secrets


ACCESS = "AKIAZZDISTINCTIVE77"
SECRET = "s3cr3t/VeryDistinctive+Value/0123456789ab"
TOKEN = "FwoGZXIvYXdzEDistinctiveSessionToken//abc+def=="


@pytest.mark.parametrize("failing", [False, True], ids=["success", "missing-bucket"])
def test_secrets_never_printed_even_with_debug(s3_server, bucket, make_tree, run_sync, failing):
    src = make_tree({"a.txt": "a", "b.txt": "b"})
    env = plugin_env("no-such-bucket-zz9" if failing else bucket, delete=True)
    env.update(PLUGIN_ACCESS_KEY=ACCESS, PLUGIN_SECRET_KEY=SECRET, AWS_SESSION_TOKEN=TOKEN,
               AWS_SECRET_ACCESS_KEY=SECRET, DEBUG="1")
    proc = run_sync(env, cwd=src)
    assert proc.returncode == (1 if failing else 0), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    output = proc.stdout + proc.stderr
    assert output.strip()
    for secret in (SECRET, TOKEN):
        assert secret not in output
        assert secret[:16] not in output
    if failing:
        assert "no-such-bucket-zz9" in proc.stderr
    else:
        assert s3_server.ops(bucket)["PutObject"] == 3  # two files and the state object
        assert_state_written(s3_server, bucket, "")


# --------------------------------------------------------------------------- output


def test_output_one_line_per_action_with_reason_and_one_summary(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree({"same.txt": "same", "edit.txt": "old1", "grow.txt": "g", "page.html": "<p>", "gone.txt": "x"})
    settings: Dict[str, Any] = dict(delete=True, cache_control={".html": "max-age=1"})
    first = ok(run_sync(plugin_env(bucket, target="o", **settings), cwd=src))
    assert action_map(first.stdout) == {
        "o/edit.txt": ("upload", "new, 4 B"), "o/gone.txt": ("upload", "new, 1 B"),
        "o/grow.txt": ("upload", "new, 1 B"), "o/page.html": ("upload", "new, 3 B"),
        "o/same.txt": ("upload", "new, 4 B")}
    assert summary_line(first.stdout).startswith("Done: 5 uploaded, 0 updated, 0 redirects, 0 deleted, 0 unchanged;")

    (src / "edit.txt").write_text("new2")
    (src / "grow.txt").write_text("grown")
    (src / "gone.txt").unlink()
    (src / "fresh.txt").write_text("f")
    settings["cache_control"] = {".html": "max-age=2"}
    settings["redirects"] = {"r": "/o/page.html"}
    s3_server.reset()
    proc = ok(run_sync(plugin_env(bucket, target="o", **settings), cwd=src))
    assert action_map(proc.stdout) == {
        "o/edit.txt": ("upload", "content changed, 4 B"),
        "o/grow.txt": ("upload", "size changed, 5 B"),
        "o/fresh.txt": ("upload", "new, 1 B"),
        "o/page.html": ("update", "headers changed: cache_control"),
        "o/r -> /o/page.html": ("redirect", "new"),
        "o/gone.txt": ("delete", "not in source"),
    }
    lines = proc.stdout.splitlines()
    assert sum(1 for line in lines if line.startswith("Done:")) == 1
    assert summary_line(proc.stdout).startswith("Done: 3 uploaded, 1 updated, 1 redirect, 1 deleted, 1 unchanged;")
    assert re.search(r"; \d+ B in \d+\.\d\d s$", summary_line(proc.stdout))
    # the delete line comes after every write line; the summary is last
    assert lines.index("delete   o/gone.txt  (not in source)") > max(
        i for i, line in enumerate(lines) if line.startswith(("upload ", "update ", "redirect ")))
    assert lines[-1].startswith("Done:")
    assert proc.stderr == ""
    assert STATE_NAME not in proc.stdout  # the state object is never an action
    ops = s3_server.ops(bucket)
    # three uploads, the new redirect and the state object twice: page.html is
    # rewritten in place and had an entry (the new redirect had none)
    assert ops["PutObject"] == 6 and ops["CopyObject"] == 1 and ops["DeleteObjects"] == 1
    assert_state_written(s3_server, bucket, "o/", in_place=["o/page.html"])
    writes = [(r.op, r.key) for r in s3_server.writes(bucket)]
    assert writes[-2:] == [("DeleteObjects", None), ("PutObject", state_key("o/"))]
