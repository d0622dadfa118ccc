"""The recording server is what every integration test trusts; prove it counts right."""

from __future__ import annotations

import collections
import subprocess
import sys

import pytest
from boto3.s3.transfer import TransferConfig

MiB = 1024 * 1024


def test_endpoint_is_loopback(s3_server):
    assert s3_server.endpoint.startswith("http://127.0.0.1:")
    assert s3_server.port > 0


def test_put_object_is_one_put(s3_server, s3, bucket):
    assert s3_server.requests == []
    s3.put_object(Bucket=bucket, Key="dir/a b.txt", Body=b"hello", ContentType="text/plain")
    assert s3_server.ops(bucket) == collections.Counter({"PutObject": 1})
    (rec,) = s3_server.requests
    assert rec.method == "PUT"
    assert rec.path == f"/{bucket}/dir/a b.txt"
    assert (rec.bucket, rec.key) == (bucket, "dir/a b.txt")
    assert rec.headers["content-type"] == "text/plain"
    assert rec.status == 200
    assert rec.service == "s3"


def test_non_ascii_key_is_decoded(s3_server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="ünï/ça+va?.txt", Body=b"x")
    (rec,) = s3_server.requests
    assert rec.key == "ünï/ça+va?.txt"


def test_other_buckets_are_filtered_out(s3_server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert s3_server.ops("some-other-bucket") == collections.Counter()
    assert s3_server.writes("some-other-bucket") == []


def test_copy_object_is_copy_not_put(s3_server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    s3_server.reset()
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        ContentType="text/html",
    )
    assert s3_server.ops(bucket) == collections.Counter({"CopyObject": 1})
    (rec,) = s3_server.requests
    assert rec.headers["x-amz-copy-source"].endswith(f"{bucket}/src")
    assert rec.headers["x-amz-metadata-directive"] == "REPLACE"


def test_multipart_upload(s3_server, s3, bucket, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"\x01" * (12 * MiB))
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=2)
    s3.upload_file(str(path), bucket, "big.bin", Config=config)
    assert s3_server.ops(bucket) == collections.Counter(
        {"CreateMultipartUpload": 1, "UploadPart": 2, "CompleteMultipartUpload": 1}
    )
    assert len(s3_server.writes(bucket)) == 4
    with s3_server.paused():
        etag = s3.head_object(Bucket=bucket, Key="big.bin")["ETag"]
    assert etag.strip('"').endswith("-2")


def test_abort_multipart(s3_server, s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=up["UploadId"])
    assert s3_server.ops(bucket) == collections.Counter({"CreateMultipartUpload": 1, "AbortMultipartUpload": 1})


def test_delete_objects_is_one_request(s3_server, s3, bucket):
    with s3_server.paused():
        for k in ("a", "b", "c"):
            s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in "abc"]})
    assert s3_server.ops(bucket) == collections.Counter({"DeleteObjects": 1})
    s3_server.reset()
    s3.delete_object(Bucket=bucket, Key="zzz")
    assert s3_server.ops(bucket) == collections.Counter({"DeleteObject": 1})


def test_reads_are_named_and_not_writes(s3_server, s3, bucket):
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.list_objects_v2(Bucket=bucket)
    s3.list_objects(Bucket=bucket)
    s3.head_object(Bucket=bucket, Key="k")
    s3.get_object(Bucket=bucket, Key="k")["Body"].read()
    s3.get_object_acl(Bucket=bucket, Key="k")
    s3.head_bucket(Bucket=bucket)
    s3.list_multipart_uploads(Bucket=bucket)
    assert s3_server.ops(bucket) == collections.Counter(
        {
            "ListObjectsV2": 1,
            "ListObjects": 1,
            "HeadObject": 1,
            "GetObject": 1,
            "GetObjectAcl": 1,
            "HeadBucket": 1,
            "ListMultipartUploads": 1,
        }
    )
    assert s3_server.writes() == []


def test_acl_and_redirect_headers_recorded(s3_server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read", WebsiteRedirectLocation="/other")
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    assert s3_server.ops(bucket) == collections.Counter({"PutObject": 1, "PutObjectAcl": 1})
    put, acl = s3_server.requests
    assert put.headers["x-amz-acl"] == "public-read"
    assert put.headers["x-amz-website-redirect-location"] == "/other"
    assert acl.headers["x-amz-acl"] == "private"
    assert [r.op for r in s3_server.writes(bucket)] == ["PutObject", "PutObjectAcl"]


def test_failed_requests_are_recorded_with_status(s3_server, s3, bucket):
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key="missing")
    (rec,) = s3_server.requests
    assert (rec.op, rec.status) == ("HeadObject", 404)


def test_create_invalidation(s3_server, cloudfront, distribution):
    s3_server.reset()
    cloudfront.create_invalidation(
        DistributionId=distribution,
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": "ref-1"},
    )
    (rec,) = s3_server.requests
    assert rec.op == "CreateInvalidation"
    assert rec.service == "cloudfront"
    assert rec.bucket is None
    assert s3_server.ops() == collections.Counter({"CreateInvalidation": 1})
    assert s3_server.writes() == [rec]


def test_paused_suppresses_recording(s3_server, s3, bucket):
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
        with s3_server.paused():  # nests
            s3.get_object(Bucket=bucket, Key="k")["Body"].read()
        s3.list_objects_v2(Bucket=bucket)
    assert s3_server.requests == []
    s3.head_object(Bucket=bucket, Key="k")
    assert s3_server.ops(bucket) == collections.Counter({"HeadObject": 1})


def test_requests_is_a_copy(s3_server, s3, bucket):
    s3.list_objects_v2(Bucket=bucket)
    snapshot = s3_server.requests
    snapshot.clear()
    assert len(s3_server.requests) == 1


def test_requests_from_a_subprocess_are_recorded(s3_server, bucket):
    # run_sync relies on this: the command runs in another process and
    # reaches the server only over HTTP.
    code = (
        "import boto3, sys;"
        "from botocore.config import Config;"
        "c = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1',"
        " aws_access_key_id='testing', aws_secret_access_key='testing',"
        " config=Config(s3={'addressing_style': 'path'}));"
        "c.put_object(Bucket=sys.argv[2], Key='from-child', Body=b'x')"
    )
    subprocess.run([sys.executable, "-c", code, s3_server.endpoint, bucket], check=True, timeout=60)
    assert s3_server.ops(bucket) == collections.Counter({"PutObject": 1})


def test_clean_env_scrubs_and_fakes(monkeypatch, clean_env):
    import os

    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    assert os.environ["HOME"] == str(clean_env)
    assert not any(k.startswith(("PLUGIN_", "DRONE_")) for k in os.environ)
    assert not os.path.exists(os.environ["AWS_CONFIG_FILE"])


def test_make_tree(make_tree, tmp_path):
    root = make_tree({"a/b/c.txt": "ç", "d.bin": b"\x00\xff"})
    assert (root / "a/b/c.txt").read_bytes() == "ç".encode("utf-8")
    assert (root / "d.bin").read_bytes() == b"\x00\xff"
    again = make_tree({"e": ""}, root=tmp_path / "x")
    assert again == tmp_path / "x" and (again / "e").exists()
    with pytest.raises(ValueError):
        make_tree({"../escape": "x"})


def test_run_sync_isolates_environment(run_sync, tmp_path, monkeypatch, s3_server):
    # A stand-in command that prints its environment: this tests run_sync
    # itself, independent of whether the real command exists yet.
    monkeypatch.setenv("PLUGIN_LEAK", "1")
    monkeypatch.setenv("SOME_SECRET", "1")
    import conftest

    monkeypatch.setattr(
        conftest,
        "_command",
        lambda: [sys.executable, "-c", "import os, json; print(json.dumps(dict(os.environ)))"],
    )
    proc = run_sync({"PLUGIN_BUCKET": "b", "AWS_DEFAULT_REGION": None}, cwd=tmp_path)
    import json

    env = json.loads(proc.stdout)
    assert env["PLUGIN_BUCKET"] == "b"
    assert env["PLUGIN_ENDPOINT"] == s3_server.endpoint
    assert env["AWS_ENDPOINT_URL_CLOUDFRONT"] == s3_server.endpoint
    assert "AWS_DEFAULT_REGION" not in env
    assert "PLUGIN_LEAK" not in env and "SOME_SECRET" not in env


def test_acl_disabled_bucket_refuses_acls_like_s3(s3_server, s3, acl_disabled_bucket, tmp_path):
    b = acl_disabled_bucket
    assert s3_server.requests == []
    big = tmp_path / "big.bin"
    big.write_bytes(b"\x02" * (6 * MiB))  # a refused body must be drained, not break the connection
    with pytest.raises(s3.exceptions.ClientError) as err:
        s3.put_object(Bucket=b, Key="pub", Body=big.read_bytes(), ACL="public-read")
    assert err.value.response["Error"]["Code"] == "AccessControlListNotSupported"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    for call in (
        lambda: s3.put_object(Bucket=b, Key="priv", Body=b"x", ACL="private"),
        lambda: s3.create_multipart_upload(Bucket=b, Key="mp", ACL="public-read"),
        lambda: s3.put_object_acl(Bucket=b, Key="pub", ACL="public-read"),
    ):
        with pytest.raises(s3.exceptions.ClientError, match="AccessControlListNotSupported"):
            call()
    # No ACL, or the one ACL S3 still accepts, go through to moto.
    s3.put_object(Bucket=b, Key="plain", Body=b"x")
    s3.put_object(Bucket=b, Key="owner", Body=b"x", ACL="bucket-owner-full-control")
    s3.get_object_acl(Bucket=b, Key="plain")  # reading ACLs stays allowed
    refused = [r for r in s3_server.requests if r.emulated]
    assert [r.op for r in refused] == ["PutObject", "PutObject", "CreateMultipartUpload", "PutObjectAcl"]
    assert all(r.status == 400 for r in refused)
    with s3_server.paused():
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])}
    assert keys == {"plain", "owner"}


def test_plain_bucket_accepts_acls(s3, bucket):
    # moto's default (no ownership controls) keeps ACLs enabled.
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")
    grants = s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("/AllUsers") and g["Permission"] == "READ" for g in grants)


def test_unknown_mutating_request_counts_as_write(s3_server, s3, bucket):
    import urllib.request

    req = urllib.request.Request(f"{s3_server.endpoint}/moto-api/unknown-thing", data=b"", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10).read()
    except Exception:
        pass
    (rec,) = s3_server.requests
    assert rec.op == "POST /moto-api/unknown-thing"
    assert s3_server.writes() == [rec]


# ---------------------------------------------------------------- fault injection


@pytest.fixture
def s3_once(s3_server):
    """A client that never retries, so each call is exactly one request."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=s3_server.endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}))


def test_injected_error_is_answered_then_spent(s3_server, s3_once, bucket):
    from botocore.exceptions import ClientError

    fault = s3_server.inject("PutObject", key="a.txt", status=503, code="SlowDown")
    with pytest.raises(ClientError) as raised:
        s3_once.put_object(Bucket=bucket, Key="a.txt", Body=b"x")
    assert raised.value.response["Error"]["Code"] == "SlowDown"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    s3_once.put_object(Bucket=bucket, Key="a.txt", Body=b"x")  # times=1: the second one passes
    assert fault.hits == 1 and fault.seen == ["a.txt"]
    assert [r.status for r in s3_server.requests] == [503, 200]


def test_persistent_fault_hits_only_its_key(s3_server, s3_once, bucket):
    import re

    from botocore.exceptions import ClientError

    fault = s3_server.inject("PutObject", key=re.compile(r"^bad/"), times=None)
    s3_once.put_object(Bucket=bucket, Key="good.txt", Body=b"x")
    for _ in range(3):
        with pytest.raises(ClientError):
            s3_once.put_object(Bucket=bucket, Key="bad/b.txt", Body=b"x")
    assert fault.hits == 3
    with s3_server.paused():
        keys = [o["Key"] for o in s3_once.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["good.txt"]


def test_reset_drops_the_connection(s3_server, s3_once, bucket):
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    s3_server.inject("PutObject", reset=True)
    with pytest.raises((ConnectionClosedError, EndpointConnectionError, ConnectionError)):
        s3_once.put_object(Bucket=bucket, Key="a.txt", Body=b"x" * 100_000)
    s3_once.put_object(Bucket=bucket, Key="a.txt", Body=b"y")  # the server itself is fine
    with s3_server.paused():
        assert s3_once.get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"y"


def test_delay_without_answer_only_slows_down(s3_server, s3, bucket):
    import time

    s3_server.inject("ListObjectsV2", delay=0.5, answer=False)
    started = time.monotonic()
    s3.list_objects_v2(Bucket=bucket)
    assert time.monotonic() - started >= 0.5
    assert s3_server.requests[-1].status == 200


def test_faults_are_cleared_between_tests(s3_server):
    assert s3_server._faults == []


def test_multipart_object_without_acl_header_is_private_like_s3(s3_server, s3, bucket):
    # moto alone leaves such an object without any ACL and fails GetObjectAcl with 500.
    up = s3.create_multipart_upload(Bucket=bucket, Key="big")
    part = s3.upload_part(Bucket=bucket, Key="big", UploadId=up["UploadId"], PartNumber=1, Body=b"x")
    s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    acl = s3.get_object_acl(Bucket=bucket, Key="big")
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
