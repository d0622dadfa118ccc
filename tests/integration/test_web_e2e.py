"""End-to-end tests of the website deploy settings: `exclude` / `include`, and
the headers `content_disposition`, `content_language`, `expires`,
`storage_class`, `encryption` with `kms_key_id`.

The real `drone-s3-sync` command runs with PLUGIN_* variables as Drone sets them
(lists comma-joined, maps as JSON) against the recording moto server. Tests
assert the requests the server received (operation counts, the headers of each
write) and then read the bucket back with recording paused.
"""

from __future__ import annotations

import re
import base64
import collections
import hashlib
from typing import Any, Dict, List

import pytest
from drone_run import action_map, keys_of, ok, plugin_env

from conftest import is_state_key, state_key

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/99999999-12ab-34cd-56ef-1234567890ab"
EXPIRES = "Tue, 01 Jan 2030 00:00:00 GMT"


def env_for(bucket: str, **settings: Any) -> Dict[str, str]:
    return plugin_env(bucket, ".", "site", **settings)


def keys(s3: Any, s3_server: Any, bucket: str) -> List[str]:
    with s3_server.paused():
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", ())
    return sorted(o["Key"] for o in listed if not is_state_key(o["Key"]))


def head(s3: Any, s3_server: Any, bucket: str, key: str) -> Dict[str, Any]:
    with s3_server.paused():
        return s3.head_object(Bucket=bucket, Key=key)


def put(s3: Any, s3_server: Any, bucket: str, key: str, body: bytes = b"", **extra: Any) -> None:
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)


def restyle(s3: Any, s3_server: Any, bucket: str, key: str, **extra: Any) -> None:
    """What a lifecycle rule or another tool does: same bytes (same ETag), other class/encryption."""
    with s3_server.paused():
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                       MetadataDirective="COPY", **extra)


def object_writes(s3_server: Any, bucket: str) -> List[tuple]:
    """(op, key) of every write but the state object's."""
    return [(r.op, r.key) for r in s3_server.writes(bucket) if not is_state_key(r.key)]


def assert_nothing_to_do(s3_server: Any, bucket: str) -> None:
    """A run with no change: one listing, one GET of the state object, no write."""
    assert s3_server.ops(bucket) == collections.Counter({"ListObjectsV2": 1, "GetObject": 1}), s3_server.ops(bucket)
    assert s3_server.writes() == []


# --------------------------------------------------------------------------- exclude / include

SITE = {
    "index.html": "<h1>home</h1>",
    "app.js": "console.log(1)",
    "app.js.map": "{}",
    "drafts/post.md": "draft",
    "node_modules/pkg/index.js": "module",
}


def test_exclude_neither_uploads_nor_deletes(s3, s3_server, bucket, make_tree, run_sync):
    src = make_tree(SITE)
    put(s3, s3_server, bucket, "site/drafts/published-by-hand.md", b"keep me")  # excluded folder
    put(s3, s3_server, bucket, "site/legacy.js.map", b"keep me too")  # excluded extension
    put(s3, s3_server, bucket, "site/orphan.html", b"gone")  # selected, not in the source
    s3_server.reset()
    # A YAML list in `settings:` reaches the plugin comma-joined.
    env = env_for(bucket, exclude=".map,drafts,node_modules", delete=True)

    proc = ok(run_sync(env, cwd=src))

    assert sorted(object_writes(s3_server, bucket)) == [
        ("DeleteObjects", None), ("PutObject", "site/app.js"), ("PutObject", "site/index.html")]
    assert action_map(proc.stdout)["site/orphan.html"][0] == "delete"
    assert keys(s3, s3_server, bucket) == ["site/app.js", "site/drafts/published-by-hand.md", "site/index.html",
                                           "site/legacy.js.map"]
    assert "drafts" not in proc.stderr and "node_modules" not in proc.stderr  # left out without a word

    # Nothing changed: nothing to do, and still nothing deleted.
    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert_nothing_to_do(s3_server, bucket)

    # Without the exclude the same source publishes everything and deletes what is not in it.
    s3_server.reset()
    ok(run_sync(env_for(bucket, delete=True), cwd=src))
    assert keys(s3, s3_server, bucket) == ["site/app.js", "site/app.js.map", "site/drafts/post.md",
                                           "site/index.html", "site/node_modules/pkg/index.js"]


def test_include_from_a_yaml_list_manages_only_what_it_selects(s3, s3_server, bucket, make_tree, run_sync):
    src = make_tree({**SITE, "docs/a.html": "a", "docs/private/key.txt": "k",
                     "deploy.yml": "include:\n  - docs\n  - '*.html'\nexclude: [docs/private]\n"
                                   "redirects:\n  old/page: /docs/a.html\n"})
    put(s3, s3_server, bucket, "site/docs/gone.html", b"gone")  # included, not in the source
    put(s3, s3_server, bucket, "site/blog/post.md", b"other")  # not included: never ours
    put(s3, s3_server, bucket, "site/docs/private/x", b"excluded")
    s3_server.reset()
    env = env_for(bucket, delete=True)

    ok(run_sync(env, cwd=src, args=("--config", "deploy.yml")))

    assert sorted(object_writes(s3_server, bucket)) == [
        ("DeleteObjects", None), ("PutObject", "site/docs/a.html"), ("PutObject", "site/index.html"),
        ("PutObject", "site/old/page")]  # a redirect: include does not apply to it
    assert keys(s3, s3_server, bucket) == ["site/blog/post.md", "site/docs/a.html", "site/docs/private/x",
                                           "site/index.html", "site/old/page"]
    assert head(s3, s3_server, bucket, "site/old/page")["WebsiteRedirectLocation"] == "/docs/a.html"

    s3_server.reset()
    ok(run_sync(env, cwd=src, args=("--config", "deploy.yml")))
    assert_nothing_to_do(s3_server, bucket)  # the redirect is not rewritten


def test_an_excluded_file_can_give_way_to_a_redirect(s3, s3_server, bucket, make_tree, run_sync):
    # Without the exclude a redirect onto a file of the source is refused (exit 2).
    src = make_tree({"index.html": "i", "old.html": "the old page, still in the source"})
    env = env_for(bucket, redirects={"old.html": "/index.html"})
    assert run_sync(env, cwd=src).returncode == 2
    s3_server.reset()
    ok(run_sync(dict(env, PLUGIN_EXCLUDE="old.html"), cwd=src))
    assert sorted(object_writes(s3_server, bucket)) == [("PutObject", "site/index.html"),
                                                        ("PutObject", "site/old.html")]
    assert head(s3, s3_server, bucket, "site/old.html")["WebsiteRedirectLocation"] == "/index.html"


def test_max_delete_percentage_counts_only_selected_objects(s3, s3_server, bucket, make_tree, run_sync):
    src = make_tree({"index.html": "i"})
    for n in range(8):
        put(s3, s3_server, bucket, f"site/archive/{n}.html", b"old")
    put(s3, s3_server, bucket, "site/gone.html", b"gone")
    s3_server.reset()

    # 1 delete among the 1 object under the target the run manages (archive/ is
    # excluded) is 100%: over a 50% limit, whereas it would be 11% of all 9.
    proc = run_sync(env_for(bucket, exclude='["archive"]', delete=True, max_delete="50%"), cwd=src)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "would delete 1 object of the 1 under" in proc.stderr
    assert s3_server.writes() == []


# --------------------------------------------------------------------------- headers on upload

HEADER_SETTINGS: Dict[str, Any] = dict(
    content_disposition={".pdf": "attachment"},
    content_language="en",
    expires="2030-01-01",
    storage_class={"*.pdf": "STANDARD_IA"},
    encryption="aws:kms",
    kms_key_id=KEY_ARN,
    redirects={"old.html": "/index.html"},
)


def test_each_header_is_sent_on_upload_and_redirects(s3, s3_server, bucket, make_tree, run_sync):
    src = make_tree({"index.html": "<h1>home</h1>", "report.pdf": b"%PDF-1.4"})
    env = env_for(bucket, **HEADER_SETTINGS)

    ok(run_sync(env, cwd=src))

    sent = {r.key: r.headers for r in s3_server.writes(bucket) if r.op == "PutObject"}
    assert set(sent) == {"site/index.html", "site/report.pdf", "site/old.html", state_key("site/")}
    common = {"content-language": "en", "expires": EXPIRES, "x-amz-server-side-encryption": "aws:kms",
              "x-amz-server-side-encryption-aws-kms-key-id": KEY_ARN}
    assert sent["site/report.pdf"].items() >= {**common, "content-disposition": "attachment",
                                               "x-amz-storage-class": "STANDARD_IA"}.items()
    for key in ("site/index.html", "site/old.html"):
        assert sent[key].items() >= common.items(), key
        assert "content-disposition" not in sent[key] and "x-amz-storage-class" not in sent[key]
    # The state object is encrypted as the settings ask (a bucket policy may demand it), nothing else.
    state = sent[state_key("site/")]
    assert state["x-amz-server-side-encryption"] == "aws:kms" and "x-amz-storage-class" not in state
    assert "expires" not in state and "content-language" not in state

    pdf = head(s3, s3_server, bucket, "site/report.pdf")
    assert (pdf["ContentDisposition"], pdf["ContentLanguage"], pdf["ExpiresString"], pdf["StorageClass"],
            pdf["ServerSideEncryption"], pdf["SSEKMSKeyId"]) == (
        "attachment", "en", EXPIRES, "STANDARD_IA", "aws:kms", KEY_ARN)
    # On S3 an SSE-KMS object's ETag is not its MD5: the MD5 goes into its metadata,
    # so that a run without the state object still recognises the content.
    md5 = base64.b64encode(hashlib.md5(b"%PDF-1.4").digest()).decode()
    assert pdf["Metadata"] == {"md5chksum": md5}

    # With the state object, and then checking every object with S3: nothing to do.
    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert_nothing_to_do(s3_server, bucket)
    s3_server.reset()
    ok(run_sync(dict(env, PLUGIN_VERIFY="true"), cwd=src))
    assert s3_server.writes() == []
    assert s3_server.ops(bucket)["HeadObject"] == 3


# --------------------------------------------------------------------------- a changed setting


@pytest.mark.parametrize("setting, value, header, sent, changed", [
    ("content_disposition", {".pdf": "attachment"}, "content-disposition", "attachment", ["site/report.pdf"]),
    ("content_language", "de-CH", "content-language", "de-CH", ["site/a.txt", "site/report.pdf"]),
    ("expires", "2030-01-01T12:00:00+01:00", "expires", "Tue, 01 Jan 2030 11:00:00 GMT",
     ["site/a.txt", "site/report.pdf"]),
    ("storage_class", {"*.pdf": "GLACIER_IR"}, "x-amz-storage-class", "GLACIER_IR", ["site/report.pdf"]),
    ("encryption", "AES256", "x-amz-server-side-encryption", "AES256", ["site/a.txt", "site/report.pdf"]),
    ("kms_key_id", KEY_ARN, "x-amz-server-side-encryption-aws-kms-key-id", KEY_ARN,
     ["site/a.txt", "site/report.pdf"]),
])
def test_a_changed_setting_is_one_copy_per_affected_object(s3, s3_server, bucket, make_tree, run_sync,
                                                          setting, value, header, sent, changed):
    src = make_tree({"a.txt": "aaaa", "report.pdf": b"%PDF-1.4"})
    # kms_key_id goes with an aws:kms encryption, which the first run already has.
    base = dict(encryption="aws:kms") if setting == "kms_key_id" else {}
    ok(run_sync(env_for(bucket, **base), cwd=src))
    s3_server.reset()
    env = env_for(bucket, **base, **{setting: value})

    proc = ok(run_sync(env, cwd=src))

    copies = [r for r in s3_server.writes(bucket) if r.op == "CopyObject"]
    assert sorted(r.key for r in copies) == changed
    assert all(r.headers.get(header) == sent for r in copies), [r.headers for r in copies]
    assert sorted(object_writes(s3_server, bucket)) == [("CopyObject", k) for k in changed]  # no PutObject
    assert {k: v[1] for k, v in action_map(proc.stdout).items()} == {k: f"headers changed: {setting}" for k in changed}

    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert_nothing_to_do(s3_server, bucket)


def test_removing_a_plain_header_setting_removes_the_header(s3, s3_server, bucket, make_tree, run_sync):
    # Like cache_control: unset means no such header.
    src = make_tree({"a.txt": "aaaa"})
    ok(run_sync(env_for(bucket, content_disposition="attachment", content_language="en"), cwd=src))
    s3_server.reset()
    ok(run_sync(env_for(bucket, content_language="en"), cwd=src))
    assert object_writes(s3_server, bucket) == [("CopyObject", "site/a.txt")]
    assert "ContentDisposition" not in head(s3, s3_server, bucket, "site/a.txt")


# --------------------------------------------------------------------------- unset: leave as it is


def test_unset_class_and_encryption_leave_objects_as_they_are(s3, s3_server, bucket, make_tree, run_sync):
    src = make_tree({"a.txt": "aaaa", "b.txt": "bbbb", "c.txt": "cccc"})
    ok(run_sync(env_for(bucket), cwd=src))
    # A lifecycle rule, the bucket's default encryption, another tool: same bytes, same ETag.
    restyle(s3, s3_server, bucket, "site/a.txt", StorageClass="STANDARD_IA")
    restyle(s3, s3_server, bucket, "site/b.txt", ServerSideEncryption="aws:kms", SSEKMSKeyId=OTHER_KEY_ARN)
    restyle(s3, s3_server, bucket, "site/c.txt", ServerSideEncryption="AES256", StorageClass="GLACIER_IR")
    s3_server.age_object(bucket, "site/.drone-s3-sync-state.json.gz", 10)  # they came seconds after the deploy
    s3_server.reset()

    # Written after the state: each is checked with S3 once, found as the settings
    # want it (they leave class and encryption unset), and the state written again.
    ok(run_sync(env_for(bucket), cwd=src))
    assert s3_server.ops(bucket) == collections.Counter({"ListObjectsV2": 1, "GetObject": 1, "HeadObject": 3,
                                                         "GetObjectAcl": 3, "PutObject": 1})
    assert object_writes(s3_server, bucket) == []
    s3_server.reset()
    ok(run_sync(env_for(bucket), cwd=src))
    assert_nothing_to_do(s3_server, bucket)
    s3_server.reset()
    ok(run_sync(env_for(bucket, verify=True), cwd=src))  # every object checked with S3
    assert s3_server.ops(bucket)["HeadObject"] == 3 and s3_server.writes() == []

    # A header change copies them and keeps what the settings leave unset.
    s3_server.reset()
    ok(run_sync(env_for(bucket, cache_control="max-age=60"), cwd=src))
    assert sorted(object_writes(s3_server, bucket)) == [("CopyObject", f"site/{n}.txt") for n in "abc"]
    a, b, c = (head(s3, s3_server, bucket, f"site/{n}.txt") for n in "abc")
    assert a["StorageClass"] == "STANDARD_IA"
    assert (b["ServerSideEncryption"], b["SSEKMSKeyId"], b.get("StorageClass")) == ("aws:kms", OTHER_KEY_ARN, None)
    assert (c["ServerSideEncryption"], c["StorageClass"]) == ("AES256", "GLACIER_IR")
    assert {h["CacheControl"] for h in (a, b, c)} == {"max-age=60"}


def test_existing_objects_with_other_class_and_encryption_need_no_copy_without_state(
        s3, s3_server, bucket, make_tree, run_sync):
    # A deployment made by the original plugin (no state object), then moved by lifecycle.
    src = make_tree({"a.txt": "aaaa", "b.txt": "bbbb"})
    put(s3, s3_server, bucket, "site/a.txt", b"aaaa", ContentType="text/plain; charset=utf-8",
        StorageClass="STANDARD_IA", ServerSideEncryption="AES256")
    put(s3, s3_server, bucket, "site/b.txt", b"bbbb", ContentType="text/plain; charset=utf-8",
        ServerSideEncryption="aws:kms", SSEKMSKeyId=KEY_ARN)
    s3_server.reset()
    ok(run_sync(env_for(bucket, state=False), cwd=src))
    assert s3_server.writes() == []
    assert s3_server.ops(bucket)["HeadObject"] == 2


def test_storage_class_drift_is_seen_in_the_listing(s3, s3_server, bucket, make_tree, run_sync):
    src = make_tree({"a.txt": "aaaa", "b.txt": "bbbb"})
    env = env_for(bucket, storage_class="STANDARD_IA")
    ok(run_sync(env, cwd=src))
    # The state object still vouches for both (same ETag); only the listing shows the move.
    restyle(s3, s3_server, bucket, "site/a.txt", StorageClass="GLACIER_IR")
    s3_server.reset()

    ok(run_sync(env, cwd=src))

    assert object_writes(s3_server, bucket) == [("CopyObject", "site/a.txt")]
    assert keys_of(s3_server.requests, "HeadObject") == ["site/a.txt"]  # what the copy must keep; not for b.txt
    assert head(s3, s3_server, bucket, "site/a.txt")["StorageClass"] == "STANDARD_IA"
    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert_nothing_to_do(s3_server, bucket)


def test_archived_object_gets_new_headers_by_upload_and_keeps_its_class(s3, s3_server, bucket, make_tree,
                                                                          run_sync):
    src = make_tree({"a.txt": "aaaa"})
    ok(run_sync(env_for(bucket), cwd=src))
    # Archived by a lifecycle rule some time after the state was written: the
    # state no longer vouches for the object, whose headers and ACL are read.
    with s3_server.clock_ahead(5):
        restyle(s3, s3_server, bucket, "site/a.txt", StorageClass="GLACIER")
    s3_server.reset()

    ok(run_sync(env_for(bucket, cache_control="max-age=60"), cwd=src))
    assert s3_server.ops(bucket)["GetObjectAcl"] == 1

    # CopyObject cannot read a GLACIER object before a restore: the bytes go up again.
    assert object_writes(s3_server, bucket) == [("PutObject", "site/a.txt")]
    put_request = [r for r in s3_server.writes(bucket) if r.key == "site/a.txt"][0]
    assert put_request.headers["x-amz-storage-class"] == "GLACIER"
    got = head(s3, s3_server, bucket, "site/a.txt")
    assert (got["StorageClass"], got["CacheControl"]) == ("GLACIER", "max-age=60")
    s3_server.reset()
    ok(run_sync(env_for(bucket, cache_control="max-age=60"), cwd=src))
    assert_nothing_to_do(s3_server, bucket)


# --------------------------------------------------------------------------- upload order


def test_pages_go_up_after_every_asset_is_answered_and_redirects_last(s3_server, bucket, make_tree, run_sync):
    files = {f"assets/app-{i}.js": f"var a{i};" for i in range(12)}
    files.update({f"img/{i}.png": b"\x89PNG" + bytes(i) for i in range(6)})
    files.update({"index.html": "<h1>home</h1>", "docs/guide.htm": "<p>guide</p>", "feed": "<rss/>"})
    src = make_tree(files)
    env = plugin_env(bucket, content_type='{"feed": "text/html"}', redirects='{"old.html": "/index.html"}',
                     max_concurrency="8")
    s3_server.inject("PutObject", re.compile(r"^assets/app-0\.js$"), delay=0.5, answer=False)  # a slow asset
    proc = run_sync(env, cwd=src)
    assert proc.returncode == 0, proc.stderr
    puts = [r for r in s3_server.writes(bucket) if r.op == "PutObject" and not r.key.startswith(".drone")]
    pages = [r for r in puts if r.key in ("index.html", "docs/guide.htm", "feed")]
    redirects = [r for r in puts if r.key == "old.html"]
    assets = [r for r in puts if r not in pages and r not in redirects]
    assert len(assets) == 18 and len(pages) == 3 and len(redirects) == 1
    # Every page request arrived after the server answered every asset, even the slow one.
    assert min(p.arrived for p in pages) > max(a.answered for a in assets)
    assert redirects[0].arrived > max(p.answered for p in pages)
    assert "wave 1/3: files, 18 writes" in proc.stdout and "wave 2/3: pages, 3 writes" in proc.stdout


def test_order_patterns_each_make_a_wave_and_none_makes_one(s3_server, bucket, make_tree, run_sync):
    files = {"fonts/a.woff2": b"w", "css/site.css": "p{}", "app.js": "1", "index.html": "<p>i</p>"}
    src = make_tree(files)
    proc = run_sync(plugin_env(bucket, order="fonts/*,.css"), cwd=src)
    assert proc.returncode == 0, proc.stderr
    puts = [r for r in s3_server.writes(bucket) if r.op == "PutObject" and not r.key.startswith(".drone")]
    by_key = {r.key: r for r in puts}
    assert by_key["css/site.css"].arrived > by_key["fonts/a.woff2"].answered
    assert by_key["app.js"].arrived > by_key["css/site.css"].answered
    assert by_key["index.html"].arrived > by_key["app.js"].answered
    assert [line for line in proc.stdout.splitlines() if line.startswith("wave")] == [
        "wave 1/4: fonts/*, 1 write", "wave 2/4: .css, 1 write", "wave 3/4: files, 1 write",
        "wave 4/4: pages, 1 write"]
    other = make_tree(files)
    (other / "index.html").write_text("<p>changed</p>")
    (other / "app.js").write_text("2")
    proc = run_sync(plugin_env(bucket, order="none"), cwd=other)
    assert proc.returncode == 0 and "wave" not in proc.stdout


# --------------------------------------------------------------------------- delete grace


def test_delete_grace_keeps_a_removed_file_then_deletes_it_once_after(s3_server, s3, bucket, make_tree, run_sync,
                                                                      tmp_path):
    import gzip
    import json

    src = make_tree({"index.html": "<p>i</p>", "app-1.js": "var a;"})
    env = plugin_env(bucket, delete="true", delete_grace="7d")
    assert run_sync(env, cwd=src).returncode == 0
    (src / "app-1.js").unlink()
    report = tmp_path / "report.json"
    proc = run_sync({**env, "PLUGIN_REPORT": str(report)}, cwd=src)
    assert proc.returncode == 0, proc.stderr
    assert "delete_grace: 1 object(s) no longer in the source kept for now (the first, app-1.js, deleted after" \
        in proc.stdout
    assert [p["key"] for p in json.loads(report.read_text())["pending_deletes"]] == ["app-1.js"]
    with s3_server.paused():
        assert "app-1.js" in {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
        # Eight days pass: the state's record of when the file was first seen gone moves back.
        key = ".drone-s3-sync-state.json.gz"
        doc = json.loads(gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        doc["removed"] = {k: v - 8 * 86400 for k, v in doc["removed"].items()}
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(json.dumps(doc).encode()))
    s3_server.reset()
    proc = run_sync(env, cwd=src)
    assert proc.returncode == 0, proc.stderr
    assert "delete   app-1.js  (not in source: removed from the source" in proc.stdout
    assert [(r.op, r.key) for r in s3_server.writes(bucket) if r.op == "DeleteObjects"] == [("DeleteObjects", None)]
    s3_server.reset()
    proc = run_sync(env, cwd=src)
    assert proc.returncode == 0 and "delete " not in proc.stdout
    assert s3_server.writes(bucket) == []  # deleted exactly once


# --------------------------------------------------------------------------- servers that ignore what they are sent


@pytest.mark.parametrize("dropped, settings, setting", [
    ("x-amz-website-redirect-location", {"redirects": '{"old.html": "/index.html"}'}, "redirects"),
    ("x-amz-acl", {"acl": "public-read"}, "acl"),
], ids=["redirect", "acl"])
def test_a_server_that_ignores_a_header_is_caught_by_reading_back_once(s3_server, bucket, make_tree, run_sync,
                                                                         dropped, settings, setting):
    src = make_tree({"index.html": "<p>i</p>", "a.css": "p{}"})
    env = plugin_env(bucket, **settings)
    s3_server.dropped_headers = {dropped}
    proc = run_sync(env, cwd=src)
    assert proc.returncode == 1, proc.stderr
    assert f"the server {s3_server.endpoint} did not keep {setting} on" in proc.stderr
    assert f"ignore_unsupported: [{setting}]" in proc.stderr and "Traceback" not in proc.stderr
    reads = [r for r in s3_server.requests if r.op in ("HeadObject", "GetObjectAcl")]
    assert 1 <= len(reads) <= 2  # one object read back, its ACL too when an ACL was sent
    assert run_sync(env, cwd=src).returncode == 1  # not vouched for: the next run fails again
    accepted = run_sync({**env, "PLUGIN_IGNORE_UNSUPPORTED": setting}, cwd=src)
    assert accepted.returncode == 0, accepted.stderr
    assert f"accepted by ignore_unsupported: {setting}" in accepted.stderr


def test_a_header_copy_answered_no_such_key_goes_up_as_an_upload(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree({"c++/guide.html": "<p>g</p>", "index.html": "<p>i</p>"})
    assert run_sync(plugin_env(bucket), cwd=src).returncode == 0
    # s3rver decodes the copy source with decodeURI: a '+' in the key is not found.
    s3_server.inject("CopyObject", "c++/guide.html", status=404, code="NoSuchKey", times=None)
    s3_server.reset()
    proc = run_sync(plugin_env(bucket, cache_control="max-age=60"), cwd=src)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [(r.op, r.status) for r in s3_server.requests if r.key == "c++/guide.html"
            and r.op in ("CopyObject", "PutObject")] == [("CopyObject", 404), ("PutObject", 200)]
    with s3_server.paused():
        assert s3.head_object(Bucket=bucket, Key="c++/guide.html")["CacheControl"] == "max-age=60"
