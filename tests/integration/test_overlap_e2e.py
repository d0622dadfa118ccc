"""Overlapping deploys, killed runs and other writers, end to end: the real
command through PLUGIN_* against the recording server. Each interleaving is
forced at the server: one run's requests are held (a fault that only delays,
matched by the access key id that signed them) while the other acts, and the
request log shows that the interleaving meant is the one that happened.

Every test ends by checking what every user needs: each object holds the bytes
of the local file and the headers the last run's settings say.
"""

from __future__ import annotations

import re
from typing import Any, Dict

from drone_run import ok, plugin_env
from test_interrupt_e2e import start_sync, wait_for

LOCK = "site/.drone-s3-sync-lock"
STATE = "site/.drone-s3-sync-state.json.gz"
FILES = "^site/(?!\\.drone-s3-sync)"  # the files, not the tool's own objects


def as_run(name: str, env: Dict[str, str]) -> Dict[str, str]:
    """Sign with a key id of this run's own: the server log and the faults tell the runs apart."""
    return {**env, "PLUGIN_ACCESS_KEY": f"RUN{name.upper()}KEYID00000", "PLUGIN_SECRET_KEY": f"{name}-secret-0000000"}


def key_id(name: str) -> str:
    return f"RUN{name.upper()}KEYID00000"


def assert_bucket_is(s3: Any, s3_server: Any, bucket: str, files: Dict[str, bytes], cache_control: str) -> None:
    with s3_server.paused():
        for rel, body in files.items():
            got = s3.get_object(Bucket=bucket, Key="site/" + rel)
            assert got["Body"].read() == body, rel
            assert got.get("CacheControl") == cache_control, rel


def test_two_deploys_at_once_the_second_waits_then_plans_from_what_the_first_left(s3_server, s3, bucket, make_tree,
                                                                                  run_sync):
    old = {"index.html": b"<h1>v1</h1>", "app.js": b"var v = 1;", "style.css": b"p{}"}
    a_files = {"index.html": b"<h1>v2</h1>", "app.js": b"var v = 2;", "style.css": b"p{}"}
    b_files = {"index.html": b"<h1>v3</h1>", "app.js": b"var v = 2;", "style.css": b"a{}"}  # same sizes
    base = make_tree(old)
    ok(run_sync(plugin_env(bucket, target="site", cache_control="max-age=1"), cwd=base))
    a_env = as_run("a", plugin_env(bucket, target="site", cache_control="max-age=2"))
    b_env = as_run("b", plugin_env(bucket, target="site", cache_control="max-age=3"))
    a_src, b_src = make_tree(a_files), make_tree(b_files)
    s3_server.reset()
    # Run A's uploads each take a second: B starts while A holds the lock.
    s3_server.inject("PutObject", re.compile(FILES), delay=1.0, answer=False, times=None, access_key=key_id("a"))
    proc_a = start_sync(s3_server, a_env, a_src)
    wait_for(lambda: any(r.op == "PutObject" and r.key == LOCK and r.status == 200 for r in s3_server.all_requests),
             "run A holding the lock", proc_a)
    proc_b = run_sync(b_env, cwd=b_src)
    out_a, err_a = proc_a.communicate(timeout=60)
    assert proc_a.returncode == 0, err_a
    ok(proc_b)

    log = s3_server.all_requests
    a_released = next(i for i, r in enumerate(log) if r.op == "DeleteObject" and r.access_key == key_id("a"))
    b_locks = [(i, r.status) for i, r in enumerate(log) if r.op == "PutObject" and r.key == LOCK
               and r.access_key == key_id("b")]
    assert b_locks[0][1] == 412 and b_locks[-1][1] == 200 and b_locks[-1][0] > a_released
    b_writes = [i for i, r in enumerate(log) if r.access_key == key_id("b") and r.op in ("PutObject", "CopyObject")
                and r.key != LOCK]
    assert b_writes and min(b_writes) > a_released  # nothing of B's before A was done
    assert sum(1 for r in log if r.op == "ListObjectsV2" and r.access_key == key_id("b")) == 2  # listed again
    assert f"waiting for the deploy lock {LOCK}, held by host" in proc_b.stdout
    assert f"pid {proc_a.pid}" in proc_b.stdout
    assert_bucket_is(s3, s3_server, bucket, b_files, "max-age=3")
    s3_server.reset()
    ok(run_sync(b_env, cwd=b_src))  # and the state B left vouches for exactly that
    assert {r.op for r in s3_server.all_requests if r.bucket == bucket} == {"ListObjectsV2", "GetObject"}


def test_a_killed_run_leaves_a_lock_that_waits_others_then_goes_stale_and_is_taken_over(s3_server, s3, bucket,
                                                                                        make_tree, run_sync):
    files = {f"page-{i}.html": f"<p>{i}</p>".encode() for i in range(6)}
    src = make_tree(files)
    env = plugin_env(bucket, target="site", cache_control="no-cache")
    s3_server.inject("PutObject", re.compile(FILES), delay=30.0, answer=False, times=None, access_key=key_id("k"))
    proc = start_sync(s3_server, as_run("k", env), src)
    wait_for(lambda: any(r.op == "PutObject" and r.key == LOCK and r.status == 200 for r in s3_server.all_requests),
             "the lock taken", proc)
    proc.kill()  # SIGKILL: a CI timeout or an OOM kill; nothing is cleaned up
    proc.wait()
    s3_server.clear_faults()

    # While its lock is fresh, another run waits for it, then gives up naming it.
    waited = run_sync({**env, "PLUGIN_LOCK_TIMEOUT": "1"}, cwd=src)
    assert waited.returncode == 4, waited.stderr
    assert f"pid {proc.pid}" in waited.stderr and "lock_timeout" in waited.stderr
    assert "Traceback" not in waited.stderr

    # Two minutes later by the server's clock it is stale: taken over, with a warning.
    s3_server.age_object(bucket, LOCK, 200)
    s3_server.reset()
    proc2 = ok(run_sync(env, cwd=src))
    assert f"took over the deploy lock {LOCK}" in proc2.stderr and f"pid {proc.pid}" in proc2.stderr
    assert [r.status for r in s3_server.all_requests if r.op == "PutObject" and r.key == LOCK][:2] == [412, 200]
    assert_bucket_is(s3, s3_server, bucket, files, "no-cache")
    with s3_server.paused():
        assert LOCK not in {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_a_header_copy_never_lands_on_bytes_another_writer_put_meanwhile(s3_server, s3, bucket, make_tree, run_sync):
    files = {"index.html": b"<h1>ours</h1>", "about.html": b"<h1>about</h1>"}
    src = make_tree(files)
    env = plugin_env(bucket, target="site", cache_control="max-age=60", lock="false")
    ok(run_sync(env, cwd=src))
    changed = {**env, "PLUGIN_CACHE_CONTROL": "max-age=600"}
    # Hold this run's copy of index.html; meanwhile another tool uploads other bytes there.
    s3_server.inject("CopyObject", "site/index.html", delay=1.5, answer=False)
    proc = start_sync(s3_server, changed, src)
    wait_for(lambda: any(r.op == "CopyObject" and r.key == "site/index.html" for r in s3_server.all_requests),
             "the copy sent", proc)
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="site/index.html", Body=b"<h1>theirs</h1>", ContentType="text/html")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "site/index.html: another run or tool wrote this object after it was listed" in out
    copy = next(r for r in s3_server.all_requests if r.op == "CopyObject" and r.key == "site/index.html")
    assert copy.status == 412 and copy.headers["x-amz-copy-source-if-match"].strip('"')
    with s3_server.paused():
        theirs = s3.get_object(Bucket=bucket, Key="site/index.html")
        assert theirs["Body"].read() == b"<h1>theirs</h1>" and "CacheControl" not in theirs
    ok(run_sync(changed, cwd=src))  # the next run puts ours back, with the settings' headers
    assert_bucket_is(s3, s3_server, bucket, files, "max-age=600")


def test_a_state_object_copied_from_staging_is_not_trusted_in_production(s3_server, s3, bucket, make_tree, run_sync):
    files = {"index.html": b"<h1>site</h1>", "app.js": b"var a;"}
    src = make_tree(files)
    ok(run_sync(plugin_env(bucket, target="staging", cache_control="no-store"), cwd=src))
    with s3_server.paused():  # production made by copying the staging prefix, state object included
        for key in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="staging/")["Contents"]]:
            s3.copy_object(Bucket=bucket, Key="site/" + key[len("staging/"):],
                           CopySource={"Bucket": bucket, "Key": key})
    s3_server.reset()
    proc = ok(run_sync(plugin_env(bucket, target="site", cache_control="max-age=600"), cwd=src))
    assert f"the state object {STATE} was written for s3://{bucket}/staging/" in proc.stderr
    checked = [r.key for r in s3_server.all_requests if r.op == "HeadObject" and r.key != STATE]
    assert sorted(set(checked)) == ["site/app.js", "site/index.html"]
    assert len(checked) == 3  # each checked, and one read back for the new Cache-Control
    assert_bucket_is(s3, s3_server, bucket, files, "max-age=600")


def test_two_pipelines_with_disjoint_selections_both_stay_cheap(s3_server, s3, bucket, make_tree, run_sync):
    files = {"index.html": b"<p>i</p>", "about.html": b"<p>a</p>", "app.js": b"1", "site.css": b"2"}
    src = make_tree(files)
    pages = plugin_env(bucket, target="site", include="*.html")
    assets = plugin_env(bucket, target="site", exclude="*.html")
    ok(run_sync(pages, cwd=src))
    ok(run_sync(assets, cwd=src))
    for env in (pages, assets, pages):
        s3_server.reset()
        proc = ok(run_sync(env, cwd=src))
        assert {r.op for r in s3_server.all_requests if r.bucket == bucket} == {"ListObjectsV2", "GetObject"}, proc.stdout


def test_the_lock_is_visible_in_the_request_log_and_costs_a_writing_run_three_requests(s3_server, bucket, make_tree,
                                                                                        run_sync):
    src = make_tree({"a.txt": b"a"})
    env = plugin_env(bucket, target="site")
    ok(run_sync(env, cwd=src))
    first = [(r.op, r.key, r.status) for r in s3_server.all_requests if r.key in (LOCK, STATE)]
    # First run on this server: the lock, the test that the server refuses a
    # second conditional PUT, the look at the state (none yet), the state
    # (recording the answer), the release.
    assert first == [("PutObject", LOCK, 200), ("PutObject", LOCK, 412), ("HeadObject", STATE, 404),
                     ("PutObject", STATE, 200), ("DeleteObject", LOCK, 204)]
    (src / "a.txt").write_bytes(b"b")
    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert [(r.op, r.key) for r in s3_server.all_requests if r.key in (LOCK, STATE)] == [
        ("GetObject", STATE), ("PutObject", LOCK), ("HeadObject", STATE), ("PutObject", STATE), ("DeleteObject", LOCK)]


def test_a_killed_runs_multipart_upload_is_aborted_by_the_run_that_takes_over(s3_server, s3, bucket, make_tree,
                                                                             run_sync):
    import os

    files = {"big.bin": os.urandom(12 * 1024 * 1024), "index.html": b"<p>i</p>"}
    src = make_tree(files)
    env = plugin_env(bucket, target="site", multipart_threshold="5MiB", part_size="5MiB")
    s3_server.inject("UploadPart", re.compile("^site/big.bin$"), delay=30.0, answer=False, times=None,
                     access_key=key_id("k"))
    proc = start_sync(s3_server, as_run("k", env), src)
    # The lock is renewed as soon as the multipart upload begins: it names the upload.
    wait_for(lambda: any(r.op == "PutObject" and r.key == LOCK and r.status == 200
                         and r.arrived > next((c.answered or 1e18 for c in s3_server.all_requests
                                               if c.op == "CreateMultipartUpload"), 1e18)
                         for r in s3_server.all_requests), "the lock naming the upload", proc)
    proc.kill()
    proc.wait()
    s3_server.clear_faults()
    with s3_server.paused():
        assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == ["site/big.bin"]
    s3_server.age_object(bucket, LOCK, 200)
    proc2 = ok(run_sync(env, cwd=src))
    assert "aborted the multipart upload of site/big.bin left by the stopped run" in proc2.stdout
    with s3_server.paused():
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert_bucket_is(s3, s3_server, bucket, files, None)


def test_an_acl_changed_by_hand_is_restored_by_the_acl_scrub(s3_server, s3, bucket, make_tree, run_sync):
    files = {f"p{i}.html": f"<p>{i}</p>".encode() for i in range(4)}
    src = make_tree(files)
    env = plugin_env(bucket, target="site", acl="public-read", acl_scrub="2")
    ok(run_sync(env, cwd=src))
    with s3_server.paused():
        s3.put_object_acl(Bucket=bucket, Key="site/p2.html", ACL="private")  # listing unchanged
    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert {r.op for r in s3_server.requests if r.bucket == bucket} == {"ListObjectsV2", "GetObject"}  # not scrubbed
    for round_ in range(3):  # writing runs: 3 vouched objects, 2 checked each
        (src / "p0.html").write_text(f"<p>0 v{round_}</p>")
        s3_server.reset()
        proc = ok(run_sync(env, cwd=src))
        if "site/p2.html" in proc.stdout:
            break
    assert "acl_scrub: 1 of 2 object(s) checked have another ACL than recorded (first site/p2.html)" in proc.stdout
    with s3_server.paused():
        grants = s3.get_object_acl(Bucket=bucket, Key="site/p2.html")["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") and g["Permission"] == "READ" for g in grants)


def test_a_parent_targets_delete_leaves_a_nested_deployment_alone(s3_server, s3, bucket, make_tree, run_sync):
    blog = make_tree({"post.html": b"<p>post</p>", "feed.xml": b"<rss/>"})
    ok(run_sync(plugin_env(bucket, target="site/blog"), cwd=blog))
    site = make_tree({"index.html": b"<p>home</p>"})
    s3_server.reset()
    refused = run_sync(plugin_env(bucket, target="site", delete="true"), cwd=site)
    assert refused.returncode == 3, refused.stderr
    assert f"of another deployment nested under s3://{bucket}/site/ (s3://{bucket}/site/blog/" in refused.stderr
    assert "exclude (for example 'blog/*')" in refused.stderr and "allow_nested_delete" in refused.stderr
    assert s3_server.writes(bucket) == []
    ok(run_sync(plugin_env(bucket, target="site", delete="true", exclude="blog/*"), cwd=site))
    ok(run_sync(plugin_env(bucket, target="site", delete="true", allow_nested_delete="true"), cwd=site))
    with s3_server.paused():
        left = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="site/blog/")["Contents"])
    assert left == ["site/blog/.drone-s3-sync-state.json.gz"]  # its files went, its state never does
