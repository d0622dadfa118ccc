"""End-to-end tests of how a sync survives S3 faults, injected by the test
server (`s3_server.inject`, see conftest.py) into the real `drone-s3-sync`
command's requests.

* Transient faults (500 InternalError, 503 SlowDown, a connection dropped
  mid-request, an answer slower than the read timeout, a 200 answer with an
  error inside) on every kind of request a sync sends are retried, and the run
  ends correct with exit 0. Each test proves the fault was hit and that the
  retried request then succeeded.
* Persistent faults on some keys: every other key is synced, the summary names
  each failed key with its reason, exit 1, no DeleteObjects in that run, and the
  CloudFront invalidation covers only what was changed. The next run finishes
  the job.
* A failed multipart upload is aborted: no parts are left behind.
* A listing that fails (error, no bucket, access denied): one line on stderr
  naming the bucket and the cause, exit 1, nothing written, no invalidation.
* The state object unreadable or unwritable: the sync is still right.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List

import pytest
import drone_run
from drone_run import EIGHT_MIB_PARTS, action_map, ok, plugin_env, summary_counts

from conftest import STATE_NAME, is_state_key, read_state

MiB = 1024 * 1024
BIG = 8 * MiB + 4096  # just above PART_SIZE (digest.py): two UploadPart requests
HTML = "text/html; charset=utf-8"


# --------------------------------------------------------------------------- helpers


def all_keys(s3: Any, bucket: str) -> List[str]:
    keys: List[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(k for k in keys if not is_state_key(k))


def body(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def attempts(s3_server: Any, fault: Any) -> List[Any]:
    """Every request the fault could have matched, in the order the server saw them."""
    return [r for r in s3_server.requests if fault.matches(r)]


def assert_retried(s3_server: Any, fault: Any, op: str) -> None:
    """The fault was hit once, and a later attempt of the same request succeeded."""
    assert fault.hits == 1, (op, fault, s3_server.requests)
    tried = attempts(s3_server, fault)
    assert len(tried) > 1, (op, tried)
    assert tried[-1].status == 200 and not tried[-1].emulated, (op, tried)


def open_uploads(s3: Any, bucket: str) -> List[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


# --------------------------------------------------------------------------- transient faults

# A site whose sync sends every kind of request once: a new small file
# (PutObject), a new big one (CreateMultipartUpload, 2 x UploadPart,
# CompleteMultipartUpload), a header update (CopyObject), a delete
# (DeleteObjects), after one listing (ListObjectsV2).
PAGE = "<h1>page</h1>"


@pytest.fixture
def busy_site(s3_server: Any, s3: Any, bucket: str, make_tree: Any) -> Dict[str, Any]:
    big = os.urandom(BIG)
    tree = make_tree({"new.txt": "new", "big.bin": big, "page.html": PAGE})
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="page.html", Body=PAGE.encode(), ContentType=HTML)
        s3.put_object(Bucket=bucket, Key="orphan.txt", Body=b"old")
    s3_server.reset()
    env = plugin_env(bucket, delete=True, cache_control={"*.html": "max-age=60"}, **EIGHT_MIB_PARTS)
    return {"tree": tree, "env": env, "big": big}


def assert_busy_site_synced(s3_server: Any, s3: Any, bucket: str, site: Dict[str, Any], proc: Any) -> None:
    ok(proc)
    assert action_map(proc.stdout) == {
        "new.txt": ("upload", "new, 3 B"),
        "big.bin": ("upload", "new, 8.0 MiB"),
        "page.html": ("update", "headers changed: cache_control"),
        "orphan.txt": ("delete", "not in source"),
    }
    assert summary_counts(proc.stdout) == {"uploaded": 2, "updated": 1, "redirects": 0, "deleted": 1, "unchanged": 0}
    with s3_server.paused():
        assert all_keys(s3, bucket) == ["big.bin", "new.txt", "page.html"]
        assert body(s3, bucket, "big.bin") == site["big"]
        assert body(s3, bucket, "new.txt") == b"new"
        page = s3.head_object(Bucket=bucket, Key="page.html")
        assert (page["CacheControl"], page["ContentType"]) == ("max-age=60", HTML)
        assert body(s3, bucket, "page.html") == PAGE.encode()
        assert open_uploads(s3, bucket) == []
        assert read_state(s3, bucket, STATE_NAME)["objects"].keys() == {"big.bin", "new.txt", "page.html"}


# op -> the key its request names (None: a bucket-level request)
FAULT_OPS = {
    "PutObject": "new.txt",
    "UploadPart": "big.bin",
    "CompleteMultipartUpload": "big.bin",
    "CopyObject": "page.html",
    "ListObjectsV2": None,
    "DeleteObjects": None,
}
FAULT_KINDS = {
    "500-internal-error": dict(status=500, code="InternalError"),
    "503-slow-down": dict(status=503, code="SlowDown"),
    "connection-reset": dict(reset=True),
    # Slower than the run's 1 s read timeout; then the server does the request
    # anyway, after the retry: a late duplicate must not hurt either.
    "slow-answer": dict(delay=2.0, answer=False),
}


@pytest.mark.parametrize("kind", list(FAULT_KINDS))
def test_transient_faults_are_retried(run_sync, s3_server, s3, bucket, busy_site, kind):
    """One fault of the kind on each kind of request of the run (one run keeps
    the module fast; each fault is checked on its own)."""
    faults = {op: s3_server.inject(op, key=key, bucket=bucket, times=1, **FAULT_KINDS[kind])
              for op, key in FAULT_OPS.items()}
    proc = run_sync({**busy_site["env"], "PLUGIN_READ_TIMEOUT": "1"}, cwd=busy_site["tree"])
    for op, fault in faults.items():
        assert_retried(s3_server, fault, op)
    assert_busy_site_synced(s3_server, s3, bucket, busy_site, proc)


def test_error_inside_a_200_answer_is_retried(run_sync, s3_server, s3, bucket, busy_site):
    """S3 can fail a copy or a multipart completion after it sent 200 OK: the
    error is in the body. botocore reads it as a 500 and retries."""
    faults = {op: s3_server.inject(op, key=FAULT_OPS[op], bucket=bucket, times=1, status=200, code="InternalError")
              for op in ("CopyObject", "CompleteMultipartUpload")}
    proc = run_sync(busy_site["env"], cwd=busy_site["tree"])
    for op, fault in faults.items():
        assert_retried(s3_server, fault, op)
    assert_busy_site_synced(s3_server, s3, bucket, busy_site, proc)


# --------------------------------------------------------------------------- persistent faults on some keys


def invalidations(s3_server: Any, cloudfront: Any, distribution: str) -> List[List[str]]:
    """Each invalidation's paths, sorted (the order within one does not matter here), oldest first."""
    return [sorted(paths) for paths in drone_run.invalidations(s3_server, cloudfront, distribution)]


def failed_lines(stdout: str) -> Dict[str, str]:
    """key -> reason of each "  failed: key: reason" summary line."""
    found = {}
    for line in stdout.splitlines():
        match = re.match(r"^  failed: (\S+): (.*)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_persistent_faults_on_some_keys(run_sync, s3_server, s3, bucket, make_tree, distribution, cloudfront):
    """An upload, a multipart upload, a header update and a redirect fail for
    good; everything else is synced, nothing is deleted, and only what changed
    is invalidated. The next run, without faults, finishes the job."""
    big = os.urandom(BIG)
    tree = make_tree({"ok.txt": "ok", "bad.txt": "bad", "big.bin": big, "page.html": PAGE, "bad.html": PAGE})
    with s3_server.paused():
        for key in ("page.html", "bad.html"):
            s3.put_object(Bucket=bucket, Key=key, Body=PAGE.encode(), ContentType=HTML)
        s3.put_object(Bucket=bucket, Key="orphan.txt", Body=b"old")
    s3_server.reset()
    env = plugin_env(bucket, delete=True, cache_control={"*.html": "max-age=60"}, cloudfront_distribution=distribution,
                     **EIGHT_MIB_PARTS,
                     redirects={"moved.html": "/page.html", "broken.html": "/page.html"}, max_attempts=3)
    faults = {
        "bad.txt": s3_server.inject("PutObject", key="bad.txt", times=None),
        "big.bin": s3_server.inject("UploadPart", key="big.bin", times=None, status=503, code="ServiceUnavailable"),
        "bad.html": s3_server.inject("CopyObject", key="bad.html", times=None, status=403, code="AccessDenied"),
        "broken.html": s3_server.inject("PutObject", key="broken.html", times=None),
    }
    proc = run_sync(env, cwd=tree)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    # max_attempts counts every attempt, the first one included; 403 is not retried.
    assert faults["bad.txt"].hits == 3 and faults["broken.html"].hits == 3
    assert faults["big.bin"].hits >= 3
    assert faults["bad.html"].hits == 1
    assert failed_lines(proc.stdout) == {
        "bad.txt": "InternalError: injected fault",
        "big.bin": "ServiceUnavailable: injected fault",
        "bad.html": "AccessDenied: injected fault",
        "broken.html": "InternalError: injected fault",
    }
    for key in faults:
        assert re.search(rf"^FAILED \w+ +{re.escape(key)} .*: \w+: injected fault$", proc.stdout, re.M), key
    assert summary_counts(proc.stdout) == {"uploaded": 1, "updated": 1, "redirects": 1, "deleted": 0,
                                           "unchanged": 0, "failed": 4}
    assert "Deletes skipped: 1 delete(s) not done because 4 operation(s) failed" in proc.stdout
    ops = s3_server.ops(bucket)
    assert ops["DeleteObjects"] == 0 and ops["DeleteObject"] == 0, ops
    assert ops["AbortMultipartUpload"] == 1, ops
    assert s3_server.ops()["CreateInvalidation"] == 1
    changed = ["/moved.html", "/ok.txt", "/page.html"]
    assert invalidations(s3_server, cloudfront, distribution) == [changed]
    assert f"CloudFront: invalidated 3 path(s): {' '.join(changed)}" in proc.stdout
    with s3_server.paused():
        assert all_keys(s3, bucket) == ["bad.html", "moved.html", "ok.txt", "orphan.txt", "page.html"]
        assert s3.head_object(Bucket=bucket, Key="page.html")["CacheControl"] == "max-age=60"
        assert "CacheControl" not in s3.head_object(Bucket=bucket, Key="bad.html")
        assert s3.head_object(Bucket=bucket, Key="moved.html")["WebsiteRedirectLocation"] == "/page.html"
        assert open_uploads(s3, bucket) == []
        # The state records what succeeded only; the failed keys are checked with S3 next time.
        assert read_state(s3, bucket, STATE_NAME)["objects"].keys() == {"ok.txt", "page.html", "moved.html"}

    s3_server.clear_faults()
    s3_server.reset()
    again = ok(run_sync(env, cwd=tree))
    assert action_map(again.stdout) == {
        "bad.txt": ("upload", "new, 3 B"),
        "big.bin": ("upload", "new, 8.0 MiB"),
        "bad.html": ("update", "headers changed: cache_control"),
        "broken.html -> /page.html": ("redirect", "new"),
        "orphan.txt": ("delete", "not in source"),
    }
    assert s3_server.ops(bucket)["DeleteObjects"] == 1
    assert invalidations(s3_server, cloudfront, distribution)[1:] == [
        ["/bad.html", "/bad.txt", "/big.bin", "/broken.html", "/orphan.txt"]]
    with s3_server.paused():
        assert all_keys(s3, bucket) == ["bad.html", "bad.txt", "big.bin", "broken.html", "moved.html", "ok.txt",
                                        "page.html"]
        assert body(s3, bucket, "big.bin") == big
        assert s3.head_object(Bucket=bucket, Key="bad.html")["CacheControl"] == "max-age=60"
        assert s3.head_object(Bucket=bucket, Key="broken.html")["WebsiteRedirectLocation"] == "/page.html"


# --------------------------------------------------------------------------- multipart uploads


@pytest.mark.parametrize("op", ["UploadPart", "CompleteMultipartUpload"])
def test_failed_multipart_upload_is_aborted(run_sync, s3_server, s3, bucket, make_tree, op):
    big = os.urandom(BIG)
    tree = make_tree({"big.bin": big, "small.txt": "s"})
    fault = s3_server.inject(op, key="big.bin", times=None)
    proc = run_sync(plugin_env(bucket, max_attempts=2, **EIGHT_MIB_PARTS), cwd=tree)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert fault.hits >= 2
    assert failed_lines(proc.stdout) == {"big.bin": "InternalError: injected fault"}
    ops = s3_server.ops(bucket)
    assert ops["CreateMultipartUpload"] == 1 and ops["AbortMultipartUpload"] == 1, ops
    (abort,) = [r for r in s3_server.requests if r.op == "AbortMultipartUpload"]
    assert abort.key == "big.bin" and abort.status == 204
    with s3_server.paused():
        assert open_uploads(s3, bucket) == []
        assert all_keys(s3, bucket) == ["small.txt"]


# --------------------------------------------------------------------------- the listing fails


def assert_one_line_error(proc: Any, *words: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("case", ["internal-error", "no-such-bucket", "access-denied", "connection-reset"])
def test_listing_fails(run_sync, s3_server, bucket, make_tree, distribution, case):
    tree = make_tree({"a.txt": "a", "index.html": "home"})
    name = bucket
    if case == "no-such-bucket":
        name = bucket + "-missing"
    elif case == "internal-error":
        s3_server.inject("ListObjectsV2", times=None)
    elif case == "access-denied":
        s3_server.inject("ListObjectsV2", status=403, code="AccessDenied", times=None)
    else:
        s3_server.inject("ListObjectsV2", reset=True, times=None)
    proc = run_sync(plugin_env(name, delete=True, cloudfront_distribution=distribution, max_attempts=2), cwd=tree)
    cause = {
        "internal-error": "InternalError: injected fault",
        "no-such-bucket": "the bucket does not exist",
        "access-denied": "access denied",
        "connection-reset": "Connection was closed",
    }[case]
    line = assert_one_line_error(proc, f'"{name}"', cause)
    assert line.startswith(f'drone-s3-sync: error: cannot list bucket "{name}": '), line
    assert s3_server.writes() == []  # nothing written to any bucket, no CreateInvalidation
    assert s3_server.ops()["ListObjectsV2"] == (1 if case in ("no-such-bucket", "access-denied") else 2)


def test_a_server_that_redirects_without_naming_a_region_is_one_clear_error(run_sync, s3_server, bucket,
                                                                           make_tree):
    """botocore asks for the bucket's region again on every 301 that does not
    name it (HeadBucket after HeadBucket): the run says what is wrong instead
    of "internal error: RecursionError"."""
    tree = make_tree({"a.txt": "a"})
    s3_server.inject("*", status=301, code="PermanentRedirect", times=None,
                     message="The bucket you are attempting to access must be addressed using the specified endpoint.")
    proc = run_sync(plugin_env(bucket), cwd=tree)
    assert_one_line_error(proc, f'cannot list bucket "{bucket}": the server answers every request with a redirect '
                                "(PermanentRedirect) that names no region: check endpoint and region")
    assert "internal error" not in proc.stderr
    assert s3_server.writes() == []


# --------------------------------------------------------------------------- the state object


def test_unreadable_state_object_falls_back_to_a_full_check(run_sync, s3_server, s3, bucket, make_tree):
    tree = make_tree({"a.txt": "a", "b.txt": "b", "page.html": PAGE})
    env = plugin_env(bucket)
    ok(run_sync(env, cwd=tree))
    (tree / "a.txt").write_text("A")
    (tree / "new.txt").write_text("new")
    s3_server.reset()
    fault = s3_server.inject("GetObject", key=STATE_NAME, times=None)
    proc = ok(run_sync({**env, "PLUGIN_CACHE_CONTROL": '{"*.html": "max-age=60"}', "PLUGIN_MAX_ATTEMPTS": "2"},
                       cwd=tree))
    assert fault.hits == 2
    assert f"cannot read the state object {STATE_NAME} (InternalError: injected fault); checking every object" \
        in proc.stderr
    assert action_map(proc.stdout) == {
        "a.txt": ("upload", "content changed, 1 B"),
        "new.txt": ("upload", "new, 3 B"),
        "page.html": ("update", "headers changed: cache_control"),
    }
    ops = s3_server.ops(bucket)
    assert ops["HeadObject"] >= 3, ops  # every same-size object is checked with S3
    s3_server.clear_faults()
    with s3_server.paused():
        assert body(s3, bucket, "a.txt") == b"A"
        assert s3.head_object(Bucket=bucket, Key="page.html")["CacheControl"] == "max-age=60"
        assert read_state(s3, bucket, STATE_NAME)["objects"].keys() == {"a.txt", "b.txt", "new.txt", "page.html"}
    s3_server.reset()
    ok(run_sync({**env, "PLUGIN_CACHE_CONTROL": '{"*.html": "max-age=60"}'}, cwd=tree))
    assert dict(s3_server.ops(bucket)) == {"ListObjectsV2": 1, "GetObject": 1}


def test_state_object_write_fails_at_the_end(run_sync, s3_server, s3, bucket, make_tree):
    """The sync itself succeeded: a warning, exit 0; the next run checks with S3."""
    tree = make_tree({"a.txt": "a", "page.html": PAGE})
    env = plugin_env(bucket, max_attempts=2)
    fault = s3_server.inject("PutObject", key=STATE_NAME, times=None)
    proc = ok(run_sync(env, cwd=tree))
    assert fault.hits == 2
    assert proc.stderr.strip() == (f"warning: cannot write the state object {STATE_NAME}: "
                                   "InternalError: injected fault")
    with s3_server.paused():
        assert all_keys(s3, bucket) == ["a.txt", "page.html"]
        assert body(s3, bucket, "a.txt") == b"a"
    s3_server.clear_faults()
    s3_server.reset()
    again = ok(run_sync(env, cwd=tree))
    assert action_map(again.stdout) == {}
    assert s3_server.ops(bucket)["HeadObject"] == 2  # no state yet: checked with S3
    with s3_server.paused():
        assert read_state(s3, bucket, STATE_NAME)["objects"].keys() == {"a.txt", "page.html"}


def test_unreadable_state_is_replaced_before_an_in_place_write(run_sync, s3_server, s3, bucket, make_tree):
    """A state object this run could not read may still vouch for headers that a
    header copy is about to change (same ETag): it is replaced first, and when
    that fails nothing is changed. Otherwise, with the final state write failing
    too, the next run would trust the old headers."""
    tree = make_tree({"page.html": PAGE})
    ok(run_sync(plugin_env(bucket), cwd=tree))
    s3_server.reset()
    s3_server.inject("GetObject", key=STATE_NAME, times=None)
    s3_server.inject("PutObject", key=STATE_NAME, times=None)
    changed = plugin_env(bucket, cache_control="max-age=60", max_attempts=2)
    proc = run_sync(changed, cwd=tree)
    assert_one_line_error_in(proc, f"cannot update the state object {STATE_NAME}", "nothing was changed")
    assert s3_server.ops(bucket)["CopyObject"] == 0

    # Back to the old headers, no faults: the page must not keep max-age=60.
    s3_server.clear_faults()
    ok(run_sync(plugin_env(bucket), cwd=tree))
    with s3_server.paused():
        assert "CacheControl" not in s3.head_object(Bucket=bucket, Key="page.html")

    # With the state write working, the replacement comes before the copy.
    s3_server.reset()
    s3_server.inject("GetObject", key=STATE_NAME, times=None)
    ok(run_sync(changed, cwd=tree))
    writes = [(r.op, r.key) for r in s3_server.writes(bucket)]
    assert writes == [("PutObject", STATE_NAME), ("CopyObject", "page.html"), ("PutObject", STATE_NAME)], writes
    s3_server.clear_faults()
    with s3_server.paused():
        assert s3.head_object(Bucket=bucket, Key="page.html")["CacheControl"] == "max-age=60"
        assert read_state(s3, bucket, STATE_NAME)["objects"].keys() == {"page.html"}


def test_stale_state_entry_is_dropped_before_an_upload_recreates_its_object(run_sync, s3_server, s3, bucket,
                                                                           make_tree):
    """Another tool replaced an object; the state entry for the old object stays
    in the state object. Uploading the old bytes again recreates the very ETag
    the entry names, with other headers: the entry goes first."""
    tree = make_tree({"page.html": PAGE})
    ok(run_sync(plugin_env(bucket), cwd=tree))
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="page.html", Body=b"<h1>other tool</h1>", ContentType=HTML)
    s3_server.reset()
    s3_server.inject("PutObject", key=STATE_NAME, times=None)
    proc = run_sync(plugin_env(bucket, cache_control="max-age=60", max_attempts=2), cwd=tree)
    assert_one_line_error_in(proc, f"cannot update the state object {STATE_NAME}", "nothing was changed")
    assert s3_server.ops(bucket)["PutObject"] == 2  # the state object, twice; not the page

    s3_server.clear_faults()
    ok(run_sync(plugin_env(bucket), cwd=tree))
    with s3_server.paused():
        assert body(s3, bucket, "page.html") == PAGE.encode()
        assert "CacheControl" not in s3.head_object(Bucket=bucket, Key="page.html")


def assert_one_line_error_in(proc: Any, *words: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("drone-s3-sync: error:")]
    assert len(errors) == 1, proc.stderr
    for word in words:
        assert word in errors[0], errors[0]


# --------------------------------------------------------------------------- CloudFront


def test_invalidation_is_retried_like_s3_requests(run_sync, s3_server, s3, bucket, make_tree, distribution,
                                                  cloudfront):
    tree = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, cloudfront_distribution=distribution, max_attempts=2)
    fault = s3_server.inject("CreateInvalidation", times=None)
    proc = run_sync(env, cwd=tree)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert fault.hits == 2  # the run's max_attempts, not the CloudFront client's default of 3
    assert f"  error: CloudFront invalidation of {distribution} failed: InternalError: injected fault" in proc.stdout
    assert invalidations(s3_server, cloudfront, distribution) == []

    s3_server.clear_faults()
    (tree / "a.txt").write_text("A")
    fault = s3_server.inject("CreateInvalidation", status=503, code="ServiceUnavailable", times=1)
    ok(run_sync(env, cwd=tree))
    assert fault.hits == 1
    assert invalidations(s3_server, cloudfront, distribution) == [["/a.txt"]]
