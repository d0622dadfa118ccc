"""End-to-end tests of SIGINT and SIGTERM in the middle of a sync.

The command runs as a child process (subprocess.Popen) against the recording
moto server, slowed down so that the run is mid-flight: UploadPart and
PutObject each take half a second and only two requests run at a time. Once
the server has seen an UploadPart the test sends the signal and asserts what
the server received and what the bucket holds:

* exit 130 (SIGINT) or 143 (SIGTERM) within a few seconds, one line on stderr,
  no traceback;
* no multipart upload left open (ListMultipartUploads is empty): the ones in
  flight were aborted;
* no new upload started once the signal arrived (beyond the requests the two
  connections may have begun in that instant);
* nothing deleted, even with `delete: true` and orphan objects in the bucket;
* no state object written, so nothing vouches for a file not uploaded;
* CloudFront invalidated for exactly the objects that were written;
* the next run, with the server back to normal, finishes the job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List

import drone_run
import pytest
from drone_run import EIGHT_MIB_PARTS, ok, summary_counts

from conftest import _command, command_env, is_state_key

MiB = 1024 * 1024
CONCURRENCY = 2
DELAY = 0.5
BIG_FILES = 3  # 17 MiB: three parts of the 8 MiB part size
SMALL_FILES = 24


def plugin_env(bucket: str, **settings: Any) -> Dict[str, str]:
    """Multipart in 8 MiB parts, so that the 17 MiB files go in three parts."""
    return drone_run.plugin_env(bucket, **EIGHT_MIB_PARTS, **settings)


def site_files() -> Dict[str, bytes]:
    files = {f"big-{i}.bin": os.urandom(17 * MiB) for i in range(BIG_FILES)}
    files.update({f"page-{i:02d}.html": f"<p>page {i}</p>".encode() for i in range(SMALL_FILES)})
    return files


def all_keys(s3: Any, bucket: str) -> List[str]:
    keys: List[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(keys)


def open_multipart_uploads(s3: Any, bucket: str) -> List[str]:
    return sorted(u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def start_sync(s3_server: Any, env: Dict[str, str], cwd: Any) -> "subprocess.Popen[str]":
    full_env = command_env(s3_server, os.environ["HOME"], env)
    cmd = _command()
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # An ignored SIGINT is inherited, and the command leaves it ignored (as
        # Python does); give the child the default disposition back.
        cmd = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execv(sys.argv[1], sys.argv[1:])"] + cmd
    return subprocess.Popen(cmd, cwd=str(cwd), env=full_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, what: str, proc: "subprocess.Popen[str]", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the command ended (exit {proc.returncode}) before {what}\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def interrupt_mid_flight(s3_server: Any, env: Dict[str, str], cwd: Any, signum: int, *,
                         after_put: bool = False) -> Dict[str, Any]:
    """Starts the command slowed down, signals it once an UploadPart (and, with
    `after_put`, a finished PutObject) reached the server; returns what happened."""
    s3_server.inject("UploadPart", delay=DELAY, answer=False, times=None)
    s3_server.inject("PutObject", delay=DELAY, answer=False, times=None)
    proc = start_sync(s3_server, env, cwd)

    def mid_flight() -> bool:
        requests = s3_server.requests
        put_done = any(r.op == "PutObject" and r.status == 200 and not is_state_key(r.key) for r in requests)
        return any(r.op == "UploadPart" for r in requests) and (put_done or not after_put)

    wait_for(mid_flight, "an UploadPart reached the server", proc)
    sent_at = len(s3_server.requests)
    signalled = time.monotonic()
    proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the command did not stop within 60 s of the signal\n{out}\n{err}")
    seconds = time.monotonic() - signalled
    s3_server.clear_faults()
    print(f"--- stdout ---\n{out}--- stderr ---\n{err}--- exit {proc.returncode} after {seconds:.1f} s ---")
    return {"code": proc.returncode, "stdout": out, "stderr": err, "seconds": seconds,
            "requests": s3_server.requests, "after_signal": s3_server.requests[sent_at:]}


def assert_stopped_cleanly(result: Dict[str, Any], s3_server: Any, s3: Any, bucket: str, signum: int, *,
                           aborted: bool = True) -> None:
    assert result["code"] == 128 + signum, result["stderr"]
    assert result["seconds"] < 15
    assert "Traceback" not in result["stderr"]
    lines = result["stderr"].strip().splitlines()
    name = signal.Signals(signum).name
    assert len(lines) == 1 and lines[0].startswith(f"drone-s3-sync: interrupted by {name}; "), lines
    assert "nothing was deleted" in lines[0]
    ops = [r.op for r in result["requests"]]
    assert "DeleteObjects" not in ops and "DeleteObject" not in ops
    # No state object: it could vouch for what this run did not finish.
    assert not [r for r in result["requests"] if r.op == "PutObject" and is_state_key(r.key)]
    # What began after the signal: the aborts, and at most what each of the
    # connections started in the instant before the uploads were cancelled.
    late = [r.op for r in result["after_signal"]
            if r.op in ("PutObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload")]
    assert len(late) <= CONCURRENCY, late
    with s3_server.paused():
        assert open_multipart_uploads(s3, bucket) == []
    if aborted:  # multipart uploads were begun and not all of them finished: they were aborted
        assert ops.count("CreateMultipartUpload") > ops.count("CompleteMultipartUpload")
        assert "AbortMultipartUpload" in ops


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_sync_aborts_uploads_then_next_run_finishes(signum, s3_server, s3, bucket, make_tree, run_sync):
    files = site_files()
    src = make_tree(files)
    env = plugin_env(bucket, source=src, max_concurrency=CONCURRENCY)

    result = interrupt_mid_flight(s3_server, env, src, signum)

    assert_stopped_cleanly(result, s3_server, s3, bucket, signum)
    with s3_server.paused():
        partial = all_keys(s3, bucket)
    assert len(partial) < len(files)  # it really was stopped halfway
    for key in partial:  # whatever is there is whole
        with s3_server.paused():
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == files[key]

    s3_server.reset()
    proc = ok(run_sync(env, cwd=src))
    counts = summary_counts(proc.stdout)
    assert counts["uploaded"] == len(files) - len(partial)
    with s3_server.paused():
        keys = all_keys(s3, bucket)
        assert [k for k in keys if not is_state_key(k)] == sorted(files)
        for key in ("big-0.bin", "big-2.bin", "page-00.html", f"page-{SMALL_FILES - 1}.html"):
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == files[key]
        assert open_multipart_uploads(s3, bucket) == []


def test_sigterm_with_delete_deletes_nothing(s3_server, s3, bucket, make_tree, run_sync):
    files = site_files()
    src = make_tree(files)
    orphans = [f"old/page-{i}.html" for i in range(5)]
    with s3_server.paused():
        for key in orphans:
            s3.put_object(Bucket=bucket, Key=key, Body=b"old")
    s3_server.reset()
    env = plugin_env(bucket, source=src, max_concurrency=CONCURRENCY, delete=True)

    result = interrupt_mid_flight(s3_server, env, src, signal.SIGTERM)

    assert_stopped_cleanly(result, s3_server, s3, bucket, signal.SIGTERM)
    with s3_server.paused():
        assert set(orphans) <= set(all_keys(s3, bucket))

    s3_server.reset()
    ok(run_sync(env, cwd=src))
    assert s3_server.ops(bucket)["DeleteObjects"] == 1
    with s3_server.paused():
        assert [k for k in all_keys(s3, bucket) if not is_state_key(k)] == sorted(files)


def test_sigterm_invalidates_exactly_what_was_written(s3_server, s3, cloudfront, bucket, distribution, make_tree,
                                                      run_sync):
    """A later run finds the objects this one wrote unchanged and would never
    invalidate them: the interrupted run invalidates them itself."""
    files = site_files()
    src = make_tree(files)
    env = plugin_env(bucket, source=src, max_concurrency=CONCURRENCY, cloudfront_distribution=distribution)

    result = interrupt_mid_flight(s3_server, env, src, signal.SIGTERM, after_put=True)

    assert_stopped_cleanly(result, s3_server, s3, bucket, signal.SIGTERM, aborted=False)
    assert [r.op for r in result["requests"]].count("CreateInvalidation") == 1
    with s3_server.paused():
        written = all_keys(s3, bucket)
        listed = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"]["Items"]
        assert len(listed) == 1
        batch = cloudfront.get_invalidation(DistributionId=distribution, Id=listed[0]["Id"])
    assert written and len(written) < len(files)
    assert sorted(batch["Invalidation"]["InvalidationBatch"]["Paths"]["Items"]) == sorted("/" + k for k in written)

    s3_server.reset()
    ok(run_sync(env, cwd=src))
    with s3_server.paused():
        listed = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"]["Items"]
        newest = max(listed, key=lambda item: item["CreateTime"])
        batch = cloudfront.get_invalidation(DistributionId=distribution, Id=newest["Id"])
    assert len(listed) == 2
    assert sorted(batch["Invalidation"]["InvalidationBatch"]["Paths"]["Items"]) == sorted(
        "/" + k for k in files if k not in written)


def start_stuck_upload(s3_server, bucket, make_tree) -> "subprocess.Popen[str]":
    """A multipart upload whose CompleteMultipartUpload gets no answer for 20 s:
    cancelling cannot end a request already sent and waiting for its answer."""
    src = make_tree({"big.bin": os.urandom(17 * MiB)})
    s3_server.inject("CompleteMultipartUpload", delay=20, answer=False, times=None)
    proc = start_sync(s3_server, plugin_env(bucket, source=src, max_concurrency=CONCURRENCY), src)
    wait_for(lambda: any(r.op == "CompleteMultipartUpload" for r in s3_server.requests),
             "CompleteMultipartUpload", proc)
    return proc


def test_stuck_upload_is_aborted_after_a_bounded_wait(s3_server, s3, bucket, make_tree):
    """A request that does not end does not hold the exit up: after a few
    seconds the multipart uploads still open are aborted directly."""
    proc = start_stuck_upload(s3_server, bucket, make_tree)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    seconds = time.monotonic() - signalled
    print(out, err, f"exit {proc.returncode} after {seconds:.1f} s")

    assert proc.returncode == 143 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert seconds < 15
    assert s3_server.ops(bucket)["AbortMultipartUpload"] == 1
    with s3_server.paused():
        assert open_multipart_uploads(s3, bucket) == []
        assert all_keys(s3, bucket) == []


def test_second_signal_stops_at_once(s3_server, s3, bucket, make_tree):
    proc = start_stuck_upload(s3_server, bucket, make_tree)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    seconds = time.monotonic() - signalled
    print(out, err, f"exit {proc.returncode} after {seconds:.1f} s")

    assert proc.returncode == 143 and "Traceback" not in err
    assert seconds < 15
    assert err.strip().splitlines() == [
        "drone-s3-sync: SIGTERM again; stopping now without waiting for requests in flight"]
    assert "AbortMultipartUpload" not in s3_server.ops(bucket)


def test_signal_while_reading_headers_exits_without_waiting_for_the_reads(s3_server, s3, bucket, make_tree):
    """Worker threads still waiting for answers to reads (here HeadObject, 20 s)
    do not keep the process alive, and nothing is written."""
    files = {f"page-{i}.html": f"<p>{i}</p>" for i in range(8)}
    src = make_tree(files)
    with s3_server.paused():
        for key, text in files.items():
            s3.put_object(Bucket=bucket, Key=key, Body=text.upper().encode())  # same size, other bytes
    s3_server.reset()
    s3_server.inject("HeadObject", delay=20, answer=False, times=None)
    proc = start_sync(s3_server, plugin_env(bucket, source=src, max_concurrency=CONCURRENCY), src)
    wait_for(lambda: any(r.op == "HeadObject" for r in s3_server.requests), "a HeadObject", proc)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    seconds = time.monotonic() - signalled
    print(out, err, f"exit {proc.returncode} after {seconds:.1f} s")

    assert proc.returncode == 143 and "Traceback" not in err
    assert seconds < 15
    assert err.strip().splitlines() == [
        "drone-s3-sync: interrupted by SIGTERM; nothing was uploaded or deleted"]
    assert s3_server.writes(bucket) == []
