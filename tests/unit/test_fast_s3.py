"""scripts/fast_s3.py, the benchmark's cheap S3 endpoint: what the clients rely on."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import fast_s3  # noqa: E402

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server():
    srv = fast_s3.Background()
    yield srv
    srv.stop()


@pytest.fixture
def s3(server):
    server.server.counters.reset()
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1", aws_access_key_id="k",
                        aws_secret_access_key="s",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


@pytest.fixture
def bucket(s3, request):
    name = "t-" + hashlib.md5(request.node.name.encode()).hexdigest()[:12]
    s3.create_bucket(Bucket=name)
    return name


def test_put_head_get_keep_headers_and_metadata(s3, bucket) -> None:
    s3.put_object(Bucket=bucket, Key="a/ü b.html", Body=b"hello", ContentType="text/html",
                  CacheControl="max-age=60", ContentEncoding="gzip", Metadata={"mtime": "12"},
                  WebsiteRedirectLocation="/x", ACL="public-read")
    head = s3.head_object(Bucket=bucket, Key="a/ü b.html")
    assert head["ETag"] == f'"{hashlib.md5(b"hello").hexdigest()}"'
    assert (head["ContentType"], head["CacheControl"], head["ContentEncoding"]) == ("text/html", "max-age=60", "gzip")
    assert head["Metadata"] == {"mtime": "12"}
    assert head["WebsiteRedirectLocation"] == "/x"
    assert head["ContentLength"] == 5
    assert s3.get_object(Bucket=bucket, Key="a/ü b.html")["Body"].read() == b"hello"
    assert s3.get_object(Bucket=bucket, Key="a/ü b.html", Range="bytes=1-3")["Body"].read() == b"ell"
    grants = s3.get_object_acl(Bucket=bucket, Key="a/ü b.html")["Grants"]
    assert {g["Permission"] for g in grants} == {"FULL_CONTROL", "READ"}
    s3.put_object_acl(Bucket=bucket, Key="a/ü b.html", ACL="private")
    assert [g["Permission"] for g in s3.get_object_acl(Bucket=bucket, Key="a/ü b.html")["Grants"]] == ["FULL_CONTROL"]
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="missing")


def test_listing_pages_prefix_delimiter_and_url_encoding(s3, bucket) -> None:
    keys = [f"d{i % 3}/f {i:03d}+ä" for i in range(25)] + ["top.txt"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    seen, pages = [], 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 7}):
        pages += 1
        seen += [(o["Key"], o["Size"]) for o in page.get("Contents", ())]
    assert seen == sorted((k, len(k.encode())) for k in keys)
    assert pages == 4
    v1 = []  # boto3 asks for encoding-type=url and decodes keys and markers
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, Prefix="d1/",
                                                          PaginationConfig={"PageSize": 3}):
        v1 += [o["Key"] for o in page.get("Contents", ())]
    assert v1 == sorted(k for k in keys if k.startswith("d1/"))
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["d0/", "d1/", "d2/"]
    assert [o["Key"] for o in top["Contents"]] == ["top.txt"]
    first = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert first["IsTruncated"] and [p["Prefix"] for p in first["CommonPrefixes"]] == ["d0/", "d1/"]
    rest = s3.list_objects_v2(Bucket=bucket, Delimiter="/", ContinuationToken=first["NextContinuationToken"])
    assert [p["Prefix"] for p in rest["CommonPrefixes"]] == ["d2/"] and not rest["IsTruncated"]


def test_multipart_etag_copy_and_delete_objects(s3, bucket, server) -> None:
    store = server.server.handler.store
    held = store.stored  # other tests' objects
    parts = [b"a" * (5 * MiB), b"b" * (5 * MiB), b"c" * 100]
    up = s3.create_multipart_upload(Bucket=bucket, Key="big", ContentType="application/x-tar")
    done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="big", UploadId=up["UploadId"],
                                                     PartNumber=n, Body=data)["ETag"]}
            for n, data in enumerate(parts, 1)]
    etag = s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": done})["ETag"]
    want = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
    assert etag == f'"{want}"'
    head = s3.head_object(Bucket=bucket, Key="big")
    assert (head["ContentLength"], head["ContentType"]) == (10 * MiB + 100, "application/x-tar")

    s3.copy_object(Bucket=bucket, Key="big", CopySource={"Bucket": bucket, "Key": "big"},
                   MetadataDirective="REPLACE", Metadata={"mtime": "5"}, ContentType="text/plain")
    head = s3.head_object(Bucket=bucket, Key="big")
    assert (head["ETag"], head["ContentType"], head["Metadata"]) == (f'"{want}"', "text/plain", {"mtime": "5"})
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "big"})
    assert s3.head_object(Bucket=bucket, Key="copy")["Metadata"] == {"mtime": "5"}

    aborted = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="gone", UploadId=aborted, PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=aborted)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "big"}, {"Key": "copy"}], "Quiet": True})
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert store.stored == held  # nothing held once the objects and parts are gone
    ops = server.server.counters.ops
    assert (ops["CreateMultipartUpload"], ops["UploadPart"], ops["CompleteMultipartUpload"], ops["CopyObject"],
            ops["AbortMultipartUpload"], ops["DeleteObjects"]) == (2, 4, 1, 2, 1, 1)


def test_aws_chunked_bodies_are_decoded() -> None:
    body = (b"5;chunk-signature=abc\r\nhello\r\n6;chunk-signature=def\r\n world\r\n"
            b"0;chunk-signature=0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n")
    assert fast_s3.decode_aws_chunked(body) == b"hello world"
    assert fast_s3.decode_aws_chunked(b"3\r\nabc\r\n0\r\n\r\n") == b"abc"


def test_aws_chunked_upload_in_chunked_transfer_stores_the_payload(s3, bucket, server) -> None:
    """What SDKs send for a streaming upload with a trailing checksum: aws-chunked
    content inside HTTP chunked transfer encoding."""
    import http.client

    inner = b"8\r\nstreamed\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("PUT", f"/{bucket}/s")
    for name, value in (("Content-Encoding", "aws-chunked,gzip"), ("Transfer-Encoding", "chunked"),
                        ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
                        ("x-amz-decoded-content-length", "8"), ("Expect", "100-continue")):
        conn.putheader(name, value)
    conn.endheaders()
    for piece in (inner[:10], inner[10:]):
        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    conn.close()
    got = s3.get_object(Bucket=bucket, Key="s")
    assert got["Body"].read() == b"streamed"
    assert got["ContentEncoding"] == "gzip"  # aws-chunked is a transfer detail, not the object's encoding


def test_storage_is_bounded(server) -> None:
    store = fast_s3.Store(max_bytes=10)
    b = fast_s3.Bucket()
    store.put(b, "a", fast_s3.Obj(b"12345678", "e", {}, 0.0, "private"))
    with pytest.raises(fast_s3.S3Error) as err:
        store.put(b, "b", fast_s3.Obj(b"123", "e", {}, 0.0, "private"))
    assert err.value.status == 507
    store.put(b, "a", fast_s3.Obj(b"1234567890", "e", {}, 0.0, "private"))  # replacing frees the old bytes
    assert store.stored == 10
