"""End-to-end tests of the upload path on the AWS Common Runtime's S3 client
(drone_s3_sync/crtupload.py): files below multipart_threshold go up as one
PutObject each on the CRT; the rest, and every other request, on botocore.

The recording server tells the two clients apart by their User-Agent
("CRTS3NativeClient/..." against botocore's "Boto3/... Botocore/...").
`S3_SYNC_CRT=0` sends everything through s3transfer, which makes the
comparisons below: the same files with the same settings must reach the
server with the same headers either way.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from typing import Any, Dict, List

import pytest
from drone_run import EIGHT_MIB_PARTS, ok, plugin_env

from conftest import FAKE_KEY_ID, FAKE_SECRET, REGION, STATE_NAME, _command, command_env, is_state_key, read_state

CRT = "CRTS3NativeClient/"
OFF = {"S3_SYNC_CRT": "0"}
ROLE = "arn:aws:iam::123456789012:role/site-deploy"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
MiB = 1024 * 1024


def puts(s3_server: Any, bucket: str) -> Dict[str, Any]:
    """key -> the last PutObject of it (the state object left out)."""
    return {r.key: r for r in s3_server.requests
            if r.op == "PutObject" and r.bucket == bucket and not is_state_key(r.key)}


def test_small_files_go_through_the_crt_and_the_state_keeps_the_etag_the_server_answered(
        run_sync, s3_server, s3, bucket, make_tree):
    """The ETag in the state object is the one in the PutObject's answer, not
    one computed here: the server answers a.txt with an ETag that is no MD5 of it."""
    files = {"a.txt": "alpha", "dir/b.html": "<p>b</p>", "big.bin": os.urandom(8 * MiB + 10)}
    src = make_tree(files)
    answered = "0123456789abcdef0123456789abcdef"
    s3_server.answer_etags["a.txt"] = answered
    ok(run_sync(plugin_env(bucket, **EIGHT_MIB_PARTS), cwd=src))

    sent = puts(s3_server, bucket)
    assert set(sent) == {"a.txt", "dir/b.html"}  # big.bin: multipart, on botocore
    assert all(r.user_agent.startswith(CRT) for r in sent.values()), {k: r.user_agent for k, r in sent.items()}
    assert s3_server.ops(bucket)["UploadPart"] == 2
    assert not any(r.user_agent.startswith(CRT) for r in s3_server.requests if r.key == "big.bin")
    with s3_server.paused():
        objects = read_state(s3, bucket, STATE_NAME)["objects"]
        assert s3.get_object(Bucket=bucket, Key="dir/b.html")["Body"].read() == b"<p>b</p>"
    assert objects["a.txt"][0] == answered
    assert objects["dir/b.html"][0] == hashlib.md5(b"<p>b</p>").hexdigest()
    assert "-" in objects["big.bin"][0]  # the multipart ETag, as before


def test_turned_off_every_upload_goes_through_botocore(run_sync, s3_server, s3, bucket, make_tree):
    src = make_tree({"a.txt": "alpha"})
    s3_server.answer_etags["a.txt"] = "fedcba9876543210fedcba9876543210"
    ok(run_sync({**plugin_env(bucket), **OFF}, cwd=src))
    sent = puts(s3_server, bucket)
    assert set(sent) == {"a.txt"} and "Botocore/" in sent["a.txt"].user_agent
    with s3_server.paused():
        assert read_state(s3, bucket, STATE_NAME)["objects"]["a.txt"][0] == "fedcba9876543210fedcba9876543210"


HEADER_SETTINGS: Dict[str, Any] = dict(
    acl={"*.pdf": "public-read"},
    cache_control={"*.html": "public, max-age=60"},
    content_disposition={".pdf": "attachment"},
    content_language="en",
    expires="2030-01-01",
    storage_class={"*.pdf": "STANDARD_IA"},
    encryption="aws:kms",  # not an MD5 ETag: the MD5 goes into x-amz-meta-md5chksum
    kms_key_id=KEY_ARN,
    metadata={"*.pdf": {"owner": "web", "Team": "docs"}},
)


def test_headers_acl_and_metadata_are_what_botocore_sends(run_sync, s3_server, s3, bucket, make_tree):
    files = {"index.html": "<h1>home</h1>", "report.pdf": b"%PDF-1.4 report", "gz/app.js": "let a = 1;"}
    src = make_tree(files)
    settings = dict(HEADER_SETTINGS, compress={"*.js": "gzip"})
    ok(run_sync(plugin_env(bucket, target="crt", **settings), cwd=src))
    ok(run_sync({**plugin_env(bucket, target="boto", **settings), **OFF}, cwd=src))

    sent = puts(s3_server, bucket)
    for name in files:
        crt, boto = sent[f"crt/{name}"], sent[f"boto/{name}"]
        assert crt.user_agent.startswith(CRT) and "Botocore/" in boto.user_agent
        assert (crt.headers, crt.meta) == (boto.headers, boto.meta), name
    pdf = sent["crt/report.pdf"]
    assert pdf.headers["x-amz-acl"] == "public-read"
    assert pdf.headers["x-amz-storage-class"] == "STANDARD_IA"
    assert pdf.headers["x-amz-server-side-encryption-aws-kms-key-id"] == KEY_ARN
    assert pdf.headers["expires"] == "Tue, 01 Jan 2030 00:00:00 GMT"
    assert pdf.meta["x-amz-meta-owner"] == "web" and pdf.meta["x-amz-meta-team"] == "docs"
    assert pdf.meta["x-amz-meta-md5chksum"]
    assert sent["crt/gz/app.js"].headers["content-encoding"] == "gzip"
    with s3_server.paused():
        head = s3.head_object(Bucket=bucket, Key="crt/report.pdf")
        acl = s3.get_object_acl(Bucket=bucket, Key="crt/report.pdf")
        body = s3.get_object(Bucket=bucket, Key="crt/gz/app.js")["Body"].read()
    assert (head["ContentDisposition"], head["ContentLanguage"], head["StorageClass"]) == (
        "attachment", "en", "STANDARD_IA")
    assert head["Metadata"]["owner"] == "web" and head["ServerSideEncryption"] == "aws:kms"
    assert any(g["Permission"] == "READ" and g["Grantee"].get("URI", "").endswith("/AllUsers") for g in acl["Grants"])
    import gzip
    assert gzip.decompress(body) == b"let a = 1;"  # a compressed body, sent from memory


def test_a_500_is_retried_by_the_crt_and_the_upload_succeeds(run_sync, s3_server, s3, bucket, make_tree):
    src = make_tree({"a.txt": "alpha", "b.txt": "beta"})
    fault = s3_server.inject("PutObject", key="a.txt", bucket=bucket, times=2)
    ok(run_sync(plugin_env(bucket), cwd=src))
    tried = [r for r in s3_server.requests if r.op == "PutObject" and r.key == "a.txt"]
    assert fault.hits == 2 and [r.status for r in tried] == [500, 500, 200]
    assert all(r.user_agent.startswith(CRT) for r in tried)
    with s3_server.paused():
        assert s3.get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"alpha"
        assert read_state(s3, bucket, STATE_NAME)["objects"]["a.txt"][0] == hashlib.md5(b"alpha").hexdigest()


def test_a_403_fails_the_file_with_the_servers_reason_and_no_traceback(run_sync, s3_server, s3, bucket, make_tree):
    src = make_tree({"a.txt": "alpha", "b.txt": "beta"})
    fault = s3_server.inject("PutObject", key="a.txt", bucket=bucket, status=403, code="AccessDenied", times=None,
                             message="Access Denied by policy")
    proc = run_sync(plugin_env(bucket), cwd=src)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert fault.hits == 1  # a 403 is not retried
    assert "  failed: a.txt: AccessDenied: Access Denied by policy" in proc.stdout.splitlines()
    assert {r.key: r.status for r in puts(s3_server, bucket).values()} == {"a.txt": 403, "b.txt": 200}
    assert all(r.user_agent.startswith(CRT) for r in puts(s3_server, bucket).values())
    with s3_server.paused():
        assert "a.txt" not in read_state(s3, bucket, STATE_NAME)["objects"]


def test_an_answer_slower_than_read_timeout_is_sent_again(run_sync, s3_server, s3, bucket, make_tree):
    """The CRT has no read timeout of its own: an attempt unanswered after
    read_timeout is cancelled and sent again (here 1 s against a 3 s answer)."""
    src = make_tree({"a.txt": "alpha"})
    fault = s3_server.inject("PutObject", key="a.txt", bucket=bucket, delay=3.0, answer=False)
    started = time.monotonic()
    ok(run_sync(plugin_env(bucket, read_timeout=1), cwd=src))
    tried = [r for r in s3_server.requests if r.op == "PutObject" and r.key == "a.txt"]
    assert fault.hits == 1 and len(tried) == 2, tried
    assert all(r.user_agent.startswith(CRT) for r in tried)
    assert time.monotonic() - started < 3.0 + 2.5  # the second attempt did not wait for the first


def test_a_persistent_5xx_fails_after_max_attempts_with_the_servers_reason(run_sync, s3_server, bucket, make_tree):
    """The CRT passes on neither the status nor the body of a 5xx answer: its
    attempts are max_attempts - 1, and botocore makes the last one, whose
    answer is the reason reported."""
    src = make_tree({"a.txt": "alpha"})
    fault = s3_server.inject("PutObject", key="a.txt", bucket=bucket, status=503, code="SlowDown", times=None,
                             message="Please reduce your request rate")
    proc = run_sync(plugin_env(bucket, max_attempts=3), cwd=src)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    tried = [r for r in s3_server.requests if r.op == "PutObject" and r.key == "a.txt"]
    assert fault.hits == 3 and [r.status for r in tried] == [503] * 3
    assert [r.user_agent.startswith(CRT) for r in tried] == [True, True, False]
    assert "Botocore/" in tried[-1].user_agent
    assert "  failed: a.txt: SlowDown: Please reduce your request rate" in proc.stdout.splitlines()


def test_a_last_attempt_through_botocore_that_succeeds_records_its_etag(run_sync, s3_server, s3, bucket, make_tree):
    src = make_tree({"a.txt": "alpha"})
    fault = s3_server.inject("PutObject", key="a.txt", bucket=bucket, times=1)  # 500, and the CRT retries no 5xx
    s3_server.answer_etags["a.txt"] = "00112233445566778899aabbccddeeff"
    ok(run_sync(plugin_env(bucket, max_attempts=2), cwd=src))
    tried = [r for r in s3_server.requests if r.op == "PutObject" and r.key == "a.txt"]
    assert fault.hits == 1 and [r.status for r in tried] == [500, 200]
    assert tried[0].user_agent.startswith(CRT) and "Botocore/" in tried[-1].user_agent
    with s3_server.paused():
        assert read_state(s3, bucket, STATE_NAME)["objects"]["a.txt"][0] == "00112233445566778899aabbccddeeff"


def test_a_429_is_retried_as_botocore_retries_throttling(run_sync, s3_server, bucket, make_tree):
    """The CRT itself does not retry 429: botocore's retry rules decide, and the
    upload is sent again on the CRT after botocore's throttling backoff."""
    src = make_tree({"a.txt": "alpha"})
    fault = s3_server.inject("PutObject", key="a.txt", bucket=bucket, status=429, code="TooManyRequests", times=1)
    ok(run_sync(plugin_env(bucket), cwd=src))
    tried = [r for r in s3_server.requests if r.op == "PutObject" and r.key == "a.txt"]
    assert fault.hits == 1 and [r.status for r in tried] == [429, 200]
    assert all(r.user_agent.startswith(CRT) for r in tried)


def test_assumed_role_credentials_sign_the_crts_requests(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"a.txt": "alpha", "b.txt": "beta"})
    ok(run_sync(plugin_env(bucket, assume_role=ROLE), cwd=src))
    assert [r.op for r in s3_server.requests if r.service == "sts"] == ["AssumeRole"]
    sent = puts(s3_server, bucket)
    assert set(sent) == {"a.txt", "b.txt"} and all(r.user_agent.startswith(CRT) for r in sent.values())
    keys = {r.access_key for r in s3_server.requests if r.service == "s3" and r.bucket == bucket}
    assert len(keys) == 1 and FAKE_KEY_ID not in keys and None not in keys, keys
    assert all(r.security_token for r in sent.values())


def test_each_request_is_signed_with_the_credentials_of_that_moment(s3_server, bucket, tmp_path, monkeypatch):
    """Credentials that refresh (assumed roles, web identity) are read from
    botocore for every request: here they change between two uploads."""
    from drone_s3_sync.config import Settings
    from drone_s3_sync.crtupload import CrtUploader
    from drone_s3_sync.remote import CONNECT_TIMEOUT, S3Store

    class Rotating:
        def __init__(self):
            self.key = "AKIAFIRSTKEY00000001"

        def get_frozen_credentials(self):
            from botocore.credentials import ReadOnlyCredentials
            return ReadOnlyCredentials(self.key, FAKE_SECRET, None)

    settings = Settings(bucket=bucket, region=REGION, endpoint=s3_server.endpoint, path_style=True, source=str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    store = S3Store(settings)
    credentials = Rotating()
    uploader = CrtUploader(settings, store.client, credentials, connect_timeout=CONNECT_TIMEOUT, session=store.session)
    ended: List[tuple] = []
    done = threading.Event()
    (tmp_path / "f").write_bytes(b"x")

    def on_done(etag, error):
        ended.append((etag, error))
        done.set()

    for key in ("one", "two"):
        done.clear()
        assert uploader.upload(str(tmp_path / "f"), key, {"ContentType": "text/plain"}, on_progress=None,
                               on_done=on_done)
        assert done.wait(30)
        credentials.key = "AKIASECONDKEY0000002"
    assert ended == [(hashlib.md5(b"x").hexdigest(), None)] * 2
    assert [r.access_key for r in s3_server.requests if r.op == "PutObject"] == [
        "AKIAFIRSTKEY00000001", "AKIASECONDKEY0000002"]


def test_signal_mid_upload_ends_cleanly_and_the_next_run_finishes(s3_server, s3, bucket, make_tree, run_sync):
    """SIGTERM while small files are in flight on the CRT (each answer 0.5 s
    late, two at a time): exit 143 without a traceback, what was answered is
    whole, no state object, and the next run uploads the rest."""
    files = {f"page-{i:02d}.html": f"<p>page {i}</p>" for i in range(40)}
    src = make_tree(files)
    env = plugin_env(bucket, source=src, max_concurrency=2)
    s3_server.inject("PutObject", delay=0.5, answer=False, times=None)
    proc = subprocess.Popen(_command(), cwd=str(src), env=command_env(s3_server, os.environ["HOME"], env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(r.op == "PutObject" and r.status == 200 for r in s3_server.requests):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    s3_server.clear_faults()
    assert proc.returncode == 143, out + err
    assert "Traceback" not in err and err.strip().startswith("drone-s3-sync: interrupted by SIGTERM")
    sent = [r for r in s3_server.requests if r.op == "PutObject"]
    assert sent and all(r.user_agent.startswith(CRT) for r in sent)
    assert not any(is_state_key(r.key) for r in sent)
    with s3_server.paused():
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        written = sorted(o["Key"] for o in listed)
        for key in written:
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == files[key].encode()
    assert 0 < len(written) < len(files)

    s3_server.reset()
    ok(run_sync(env, cwd=src))
    with s3_server.paused():
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert sorted(o["Key"] for o in listed if not is_state_key(o["Key"])) == sorted(files)


def test_credentials_that_cannot_be_refreshed_leave_the_verdict_to_the_server(s3_server, bucket, tmp_path,
                                                                               monkeypatch, caplog):
    """A refresh that fails (STS down, an expired web identity token) is logged
    once and the last credentials are sent, for S3 to accept or refuse, instead
    of a traceback from inside awscrt."""
    from botocore.credentials import ReadOnlyCredentials
    from drone_s3_sync.config import Settings
    from drone_s3_sync.crtupload import CrtUploader
    from drone_s3_sync.remote import CONNECT_TIMEOUT, S3Store

    class Failing:
        calls = 0

        def get_frozen_credentials(self):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("STS is not answering")
            return ReadOnlyCredentials("AKIAFIRSTKEY00000001", FAKE_SECRET, None)

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    settings = Settings(bucket=bucket, region=REGION, endpoint=s3_server.endpoint, path_style=True, source=str(tmp_path))
    store = S3Store(settings)
    uploader = CrtUploader(settings, store.client, Failing(), connect_timeout=CONNECT_TIMEOUT, session=store.session)
    (tmp_path / "f").write_bytes(b"x")
    ended: List[tuple] = []
    for key in ("one", "two", "three"):
        done = threading.Event()
        assert uploader.upload(str(tmp_path / "f"), key, {"ContentType": "text/plain"}, on_progress=None,
                               on_done=lambda etag, error, done=done: (ended.append((etag, error)), done.set()))
        assert done.wait(30)
    assert [error for _, error in ended] == [None] * 3
    assert [r.access_key for r in s3_server.requests if r.op == "PutObject"] == ["AKIAFIRSTKEY00000001"] * 3
    warnings = [r.getMessage() for r in caplog.records if "could not be refreshed" in r.getMessage()]
    assert warnings == ["the credentials could not be refreshed: STS is not answering"]
