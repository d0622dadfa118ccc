"""The CRT upload path's choices, without a server: when it is used, the
checksums, the host and path of each request, and that its headers are the
ones botocore's own put_object sends (captured before they leave)."""

from __future__ import annotations

import io

import pytest
from botocore.awsrequest import AWSResponse

from drone_s3_sync import crtretry, crtupload
from drone_s3_sync.config import Settings
from drone_s3_sync.model import ObjectHeaders
from drone_s3_sync.remote import CONNECT_TIMEOUT, S3Store
from drone_s3_sync.s3args import header_args

KEY = "dir/a b+é&x.html"


@pytest.fixture(autouse=True)
def credentials(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                 crtupload.ENV, "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                 "AWS_REQUEST_CHECKSUM_CALCULATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDUNITTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


def uploader(**settings) -> crtupload.CrtUploader:
    store = S3Store(Settings(**{"bucket": "my-bucket", "source": ".", **settings}))
    assert store._crt is not None
    assert store._crt._start()
    return store._crt


def test_used_unless_turned_off_or_behind_a_proxy_or_with_one_attempt(monkeypatch):
    store = S3Store(Settings(bucket="my-bucket", source="."))
    assert crtupload.wanted(store.settings, store.client)
    monkeypatch.setenv(crtupload.ENV, "0")
    assert not crtupload.wanted(store.settings, store.client)
    assert S3Store(Settings(bucket="my-bucket", source="."))._crt is None
    monkeypatch.delenv(crtupload.ENV)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert not crtupload.wanted(store.settings, store.client)
    monkeypatch.delenv("HTTPS_PROXY")
    assert not crtupload.wanted(Settings(bucket="my-bucket", source=".", max_attempts=1), store.client)


def test_aws_gets_botocores_default_crc32_and_a_custom_endpoint_none():
    aws = uploader(region="eu-west-1")
    assert aws._checksum is not None and aws._checksum.algorithm.name == "CRC32"
    assert aws._checksum.location.name == "TRAILER"
    assert uploader(endpoint="http://127.0.0.1:9000", path_style=True)._checksum is None


def test_virtual_host_on_aws_path_style_on_a_custom_endpoint():
    host, path = uploader(region="eu-west-1")._path(KEY)
    assert (host, path) == ("my-bucket.s3.eu-west-1.amazonaws.com", "/dir/a%20b%2B%C3%A9%26x.html")
    host, path = uploader(endpoint="http://admin:pw@127.0.0.1:9000", path_style=True)._path(KEY)
    assert (host, path) == ("127.0.0.1:9000", "/my-bucket/dir/a%20b%2B%C3%A9%26x.html")


def test_a_small_file_is_taken_a_large_one_left_to_s3transfer(tmp_path):
    crt = uploader(endpoint="http://127.0.0.1:9", path_style=True, multipart_threshold=5 * 1024 * 1024)
    big = tmp_path / "big"
    big.write_bytes(b"\0" * (5 * 1024 * 1024))
    assert not crt.upload(str(big), "big", {"ContentType": "x/y"}, on_progress=None, on_done=lambda e, x: None)
    assert crtupload.size_of(io.BytesIO(b"12345")) == 5
    with pytest.raises(FileNotFoundError):
        crt.upload(str(tmp_path / "missing"), "k", {"ContentType": "x/y"}, on_progress=None,
                   on_done=lambda e, x: None)


class Raw(io.BytesIO):
    def stream(self, **kwargs):
        yield self.read()


HEADERS = ObjectHeaders(
    content_type="text/html; charset=utf-8", content_encoding="gzip", cache_control="public, max-age=60",
    metadata=(("owner", "web"), ("team", "docs")), acl="public-read", redirect="/elsewhere.html",
    content_disposition='attachment; filename="a b.html"', content_language="en",
    expires="Tue, 01 Jan 2030 00:00:00 GMT", storage_class="STANDARD_IA", encryption="aws:kms",
    kms_key_id="arn:aws:kms:us-east-1:123456789012:key/abcd")

# Set per request by the sender, the signer or the body, not by the arguments.
TRANSPORT = {"authorization", "x-amz-date", "x-amz-content-sha256", "user-agent", "content-length", "expect",
             "amz-sdk-invocation-id", "amz-sdk-request", "content-md5", "x-amz-security-token",
             "x-amz-sdk-checksum-algorithm", "x-amz-checksum-crc32", "transfer-encoding",
             "x-amz-decoded-content-length", "x-amz-trailer"}


@pytest.mark.parametrize("endpoint", ["", "http://127.0.0.1:9000"])
def test_the_headers_are_those_botocores_put_object_sends(endpoint):
    crt = uploader(endpoint=endpoint, path_style=bool(endpoint))
    args = header_args(HEADERS, "0123456789abcdef0123456789abcdef")
    sent = {}

    def capture(request, **kwargs):
        sent.update({k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()})
        return AWSResponse(request.url, 200, {"ETag": '"x"'}, Raw())

    crt._botocore.meta.events.register_first("before-send.s3.PutObject", capture)
    crt._botocore.put_object(Bucket="my-bucket", Key=KEY, Body=b"body", **args)
    ours = {k.lower(): v for k, v in crt._headers(args)}
    # With a trailing checksum (AWS) botocore appends "aws-chunked" to the body's
    # encoding; the CRT appends it itself when it sends a trailer.
    sent["content-encoding"] = sent["content-encoding"].replace(",aws-chunked", "")
    assert ours == {k: v for k, v in sent.items() if k not in TRANSPORT}
    assert ours["x-amz-meta-md5chksum"] == "ASNFZ4mrze8BI0VniavN7w=="
    assert ours["expires"] == "Tue, 01 Jan 2030 00:00:00 GMT"


def test_non_ascii_metadata_is_refused_as_botocore_refuses_it():
    crt = uploader(endpoint="http://127.0.0.1:9000", path_style=True)
    with pytest.raises(Exception, match="ascii|ASCII"):
        crt._headers({"ContentType": "text/plain", "Metadata": {"owner": "Zoë"}})


def retries(max_attempts: int = 8) -> crtretry.Retries:
    crt = uploader(endpoint="http://127.0.0.1:9000", path_style=True, max_attempts=max_attempts)
    rules = crtretry.Retries(crt._botocore, crt._operation, max_attempts)
    rules._backoff._random = lambda: 1.0  # the longest wait botocore's jitter allows
    return rules


def test_waits_are_botocores_throttling_ones_for_a_503_and_short_ones_else():
    rules = retries()
    assert rules.failed(1, "AWS_ERROR_S3_SLOW_DOWN", "", False).delay == 1.0
    assert rules.failed(3, "AWS_ERROR_S3_SLOW_DOWN", "", False).delay == 4.0
    assert rules.failed(1, "AWS_ERROR_S3_INTERNAL_ERROR", "", False).delay == 0.05
    assert rules.failed(2, "AWS_IO_SOCKET_CLOSED", "", False).delay == 0.1
    assert rules.failed(1, "AWS_ERROR_S3_CANCELED", "", True).delay == 0.05  # our read timeout
    throttled = rules.answered(1, 429, [("Content-Type", "application/xml")],
                               b"<Error><Code>TooManyRequests</Code></Error>")
    assert throttled.error is None and throttled.delay == 1.0


def test_the_last_attempt_is_botocores_and_a_4xx_is_final():
    rules = retries(max_attempts=3)
    assert not rules.failed(1, "AWS_ERROR_S3_INTERNAL_ERROR", "", False).last
    assert rules.failed(2, "AWS_ERROR_S3_INTERNAL_ERROR", "", False).last
    denied = rules.answered(1, 403, [], b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>")
    assert (str(denied.error), denied.error.code) == ("AccessDenied: no", "AccessDenied")
    throttled = rules.answered(3, 429, [], b"<Error><Code>SlowDown</Code><Message>later</Message></Error>")
    assert str(throttled.error) == "SlowDown: later"  # max_attempts reached: the server's reason


def test_failures_that_go_on_and_on_spend_the_retry_budget():
    rules = retries(max_attempts=20)
    decisions = [rules.failed(1, "AWS_ERROR_S3_INTERNAL_ERROR", "internal", False) for _ in range(40)]
    assert decisions[0].error is None and decisions[0].budget == 14  # botocore's cost of a retry
    spent = [d for d in decisions if d.error is not None]
    assert len(spent) == 40 - 500 // 14 and "retry budget" in str(spent[0])
    rules.succeeded(14)
    assert rules.failed(1, "AWS_ERROR_S3_INTERNAL_ERROR", "", False).error is None
