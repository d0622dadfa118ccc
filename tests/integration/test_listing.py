"""Store.list reads ListObjectsV2 pages itself (remote._take_listing); prove it
returns exactly what S3 holds, for awkward keys and across pages, and that a
page it does not recognise is still read through botocore's own parser."""

from __future__ import annotations

import collections
from xml.etree import ElementTree

import pytest

from drone_s3_sync.config import build_settings
from drone_s3_sync.remote import _LISTED, Store, _take_listing

AWKWARD = [
    "plain.txt",
    "with space.html",
    "plus+sign.css",
    "percent%20literal.js",
    "amp&lt<gt>quote\"apos'.txt",
    "ünïcødé/çafé.md",
    "emoji/\U0001F600.png",
    "tab\there",
    "ctrl\x01char",
    "trailing-space ",
    "deep/a/b/c/d/e/f.txt",
    "question?mark#hash",
]


def store_for(s3_server, bucket):
    return Store(build_settings({"bucket": bucket, "endpoint": s3_server.endpoint, "path_style": "true"}))


def test_awkward_keys_sizes_and_etags_match_the_bucket(s3_server, s3, bucket):
    with s3_server.paused():
        for index, key in enumerate(AWKWARD):
            s3.put_object(Bucket=bucket, Key=key, Body=b"x" * index)
        expected = {o["Key"]: (o["Size"], o["ETag"].strip('"')) for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    listed = store_for(s3_server, bucket).list("")
    assert sorted(listed) == sorted(AWKWARD)
    assert {k: (o.size, o.etag) for k, o in listed.items()} == expected
    assert s3_server.ops(bucket) == collections.Counter({"ListObjectsV2": 1})


def test_storage_class_of_each_object_is_listed(s3_server, s3, bucket):
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="a", Body=b"a")
        s3.put_object(Bucket=bucket, Key="b", Body=b"b", StorageClass="GLACIER_IR")
    listed = store_for(s3_server, bucket).list("")
    assert {k: o.storage_class for k, o in listed.items()} == {"a": "STANDARD", "b": "GLACIER_IR"}
    assert s3_server.ops(bucket) == collections.Counter({"ListObjectsV2": 1})  # no HeadObject needed


def test_prefix_and_pages(s3_server, s3, bucket):
    with s3_server.paused():
        for i in range(1003):
            s3.put_object(Bucket=bucket, Key=f"site/p{i:04d}+ü.html", Body=b"")
        s3.put_object(Bucket=bucket, Key="other/x.html", Body=b"")
    listed = store_for(s3_server, bucket).list("site/")
    assert len(listed) == 1003
    assert "site/p1002+ü.html" in listed and "other/x.html" not in listed
    assert s3_server.ops(bucket) == collections.Counter({"ListObjectsV2": 2})


NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def page(contents: str, encoding: str = "url") -> dict:
    body = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{NS}"><Name>b</Name>'
            f"<KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>"
            f"<NextContinuationToken>tok</NextContinuationToken>"
            + (f"<EncodingType>{encoding}</EncodingType>" if encoding else "") + contents + "</ListBucketResult>")
    return {"status_code": 200, "body": body.encode("utf-8"), "headers": {}}


def item(key: str, size: int = 1, etag: str = '"ABC"', storage_class: str = "",
         modified: str = "2026-12-04T03:47:21.000Z") -> str:
    stored = f"<StorageClass>{storage_class}</StorageClass>" if storage_class else ""
    return (f"<Contents><Key>{key}</Key><LastModified>{modified}</LastModified><Size>{size}</Size>"
            f"<ETag>{etag.replace(chr(34), '&quot;')}</ETag>{stored}</Contents>")


def test_rows_are_taken_and_the_rest_is_left_for_botocore():
    response = page(item("a%20b+c%2Bd.txt", 5) + item("x", 0, '"0123-2"', "GLACIER_IR", modified="garbage"))
    custom = {}
    _take_listing(response_dict=response, customized_response_dict=custom)
    # No StorageClass element: STANDARD, as S3 means it. LastModified to the second; "" if not understood.
    assert custom[_LISTED] == [("a b c+d.txt", 5, "abc", "STANDARD", "2026-12-04T03:47:21"),
                               ("x", 0, "0123-2", "GLACIER_IR", "")]
    root = ElementTree.fromstring(response["body"])
    assert root.findall(f"{{{NS}}}Contents") == []
    assert root.findtext(f"{{{NS}}}NextContinuationToken") == "tok"


def test_keys_are_not_decoded_without_url_encoding():
    response = page(item("a%20b+c"), encoding="")
    custom = {}
    _take_listing(response_dict=response, customized_response_dict=custom)
    assert custom[_LISTED] == [("a%20b+c", 1, "abc", "STANDARD", "2026-12-04T03:47:21")]


@pytest.mark.parametrize("response", [
    {"status_code": 403, "body": b"<Error><Code>AccessDenied</Code></Error>", "headers": {}},
    {"status_code": 200, "body": b"not xml", "headers": {}},
    {"status_code": 200, "body": b"<Other/>", "headers": {}},
    page("<Contents><Size>1</Size></Contents>"),  # no key: let botocore report it
])
def test_anything_unexpected_is_left_untouched(response):
    before = dict(response)
    custom = {}
    _take_listing(response_dict=response, customized_response_dict=custom)
    assert custom == {}
    assert response == before
