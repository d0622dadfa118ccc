"""The S3 and CloudFront boundary (botocore; s3transfer, imported at the first
upload that needs it; small files through crtupload)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote_plus

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from . import crtupload
from .config import Settings
from .ruleparsers import http_date
from .credentials import make_session
from .errors import CREDENTIALS_HINT, ConfigError, RemoteError, StoreError, error_code, error_text
from .model import ObjectHeaders, RemoteDetails, RemoteObject
from .s3listing import _LISTED, _take_listing, listed_time, storage_class  # noqa: F401 (_LISTED: tests)
from .s3args import MD5_METADATA, header_args, kept_args, md5_from_metadata
from .s3vocab import STANDARD, canned_acl
from .store import Body, Fetched, UploadDone

log = logging.getLogger("drone_s3_sync")

DELETE_BATCH = 1000
CONNECT_TIMEOUT = 10  # seconds; a TCP/TLS handshake that takes longer is retried


def retry_options(settings: Settings) -> dict:
    """Retries and timeouts shared by the S3 and CloudFront clients.

    botocore's "standard" mode: 500/502/503/504, throttling codes (SlowDown,
    ...), 429, dropped connections and timeouts are retried with truncated
    exponential backoff and full jitter (up to 0.05 s * 2**n, or 1 s * 2**n
    for throttling, at most 20 s a wait). Not "adaptive": its rate limiter is
    shared by every thread, so one early SlowDown would throttle the whole run
    to 0.5 requests a second. `total_max_attempts` counts the first attempt."""
    return dict(
        region_name=settings.region,
        retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=settings.read_timeout,
        tcp_keepalive=True,
    )


def s3_client(session: botocore.session.Session, settings: Settings):
    options = retry_options(settings)
    options["max_pool_connections"] = settings.max_concurrency + 4
    if settings.path_style:
        options["s3"] = {"addressing_style": "path"}
    if settings.endpoint:
        # S3-compatible servers (MinIO, R2, Ceph, older releases) reject the CRC32
        # checksums that boto3 sends by default since 1.36; send them only when an
        # operation requires one.
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    kwargs = {"config": Config(**options)}
    if settings.endpoint:
        kwargs["endpoint_url"] = settings.endpoint
    return session.create_client("s3", **kwargs)


def _expires(head: dict) -> Optional[str]:
    """The Expires header as the HTTP-date the settings are normalised to.
    botocore parses it into a datetime and keeps the raw text in ExpiresString;
    a value that is no date is kept as sent (and so differs from any setting)."""
    raw = head.get("ExpiresString") or head.get("Expires")
    if not raw:
        return None
    return http_date(raw) or str(raw)


def _failed(exc: BaseException) -> StoreError:
    """A botocore error as the project's one error type for a failed request."""
    return StoreError(error_text(exc), error_code(exc))


class S3Store:
    """The `store.RemoteStore` of a run, on botocore and s3transfer. Thread-safe:
    botocore clients are."""

    def __init__(self, settings: Settings, session: Optional[botocore.session.Session] = None):
        self.settings = settings
        self.bucket = settings.bucket
        try:
            self.session = session or make_session(settings)
            self.client = s3_client(self.session, settings)
        except BotoCoreError as exc:  # e.g. AWS_PROFILE names no profile, a broken ~/.aws/config
            raise ConfigError("AWS configuration", error_text(exc)) from None
        self._manager = None  # s3transfer's TransferManager, made for the first upload
        self._crt = crtupload.for_store(settings, self.client, self.session, CONNECT_TIMEOUT)  # single PUTs
        # The ETag S3 returns for each object this run writes, for the state object.
        self._upload_etags: Dict[str, str] = {}
        self._etag_lock = threading.Lock()
        # Multipart uploads begun and not yet completed or aborted: {upload id: key}.
        self._open_uploads: Dict[str, str] = {}
        self._on_opened: Callable[[], None] = lambda: None  # told when a multipart upload begins
        events = self.client.meta.events
        for operation in ("PutObject", "CopyObject", "CreateMultipartUpload", "CompleteMultipartUpload",
                          "AbortMultipartUpload"):
            events.register(f"before-parameter-build.s3.{operation}", self._remember_key)
        # s3transfer's futures give no ETag: the PutObject or CompleteMultipartUpload answer keeps it.
        for operation in ("PutObject", "CompleteMultipartUpload"):
            events.register(f"after-call.s3.{operation}", self._record_etag)
        events.register("before-parse.s3.ListObjectsV2", _take_listing)
        events.register("after-call.s3.CreateMultipartUpload", self._upload_opened)
        for operation in ("CompleteMultipartUpload", "AbortMultipartUpload"):
            events.register(f"after-call.s3.{operation}", self._upload_closed)

    @staticmethod
    def _remember_key(params, context, **kwargs):
        context["drone_s3_sync_key"] = params.get("Key")
        context["drone_s3_sync_upload_id"] = params.get("UploadId")

    def _upload_opened(self, parsed, context, **kwargs):
        upload_id = parsed.get("UploadId")
        if upload_id:
            with self._etag_lock:
                self._open_uploads[upload_id] = context.get("drone_s3_sync_key") or parsed.get("Key") or ""
            self._on_opened()

    def _upload_closed(self, http_response, context, **kwargs):
        upload_id = context.get("drone_s3_sync_upload_id")
        # 404 NoSuchUpload: already gone. Anything else failed and leaves it open.
        if upload_id and (http_response.status_code < 300 or http_response.status_code == 404):
            with self._etag_lock:
                self._open_uploads.pop(upload_id, None)

    def _record_etag(self, parsed, context, **kwargs):
        key = context.get("drone_s3_sync_key")
        etag = parsed.get("ETag")
        if key and etag:
            with self._etag_lock:
                self._upload_etags[key] = etag.strip('"').lower()

    # ---------------------------------------------------------------- reads
    def list(self, prefix: str) -> Dict[str, RemoteObject]:
        """Every object under `prefix` (ListObjectsV2, 1,000 keys a request)."""
        objects: Dict[str, RemoteObject] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            # EncodingType=url is asked for explicitly: _take_listing decodes the keys
            # itself (botocore decodes only when it set the parameter on its own).
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, EncodingType="url",
                                           PaginationConfig={"PageSize": 1000}):
                for key, size, etag, listed_class, modified in page.get(_LISTED, ()):
                    objects[key] = RemoteObject(key, size, etag, listed_class, modified)
                for item in page.get("Contents", ()):  # a page _take_listing left to botocore
                    key = unquote_plus(item["Key"]) if page.get("EncodingType") == "url" else item["Key"]
                    modified = item.get("LastModified")
                    objects[key] = RemoteObject(key, item["Size"], item.get("ETag", "").strip('"').lower(),
                                                storage_class(item.get("StorageClass")),
                                                listed_time(modified.astimezone(timezone.utc).isoformat())
                                                if modified is not None else "")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            cause = {
                "NoSuchBucket": "the bucket does not exist",
                "AccessDenied": "access denied (the credentials need s3:ListBucket on it)",
                "InvalidAccessKeyId": "the access key is not valid",
                "SignatureDoesNotMatch": "the secret key does not match the access key",
            }.get(code, error_text(exc))
            raise RemoteError(f'cannot list bucket "{self.bucket}": {cause}') from None
        except BotoCoreError as exc:
            hint = CREDENTIALS_HINT if isinstance(exc, NoCredentialsError) else ""
            raise RemoteError(f'cannot list bucket "{self.bucket}": {error_text(exc)}{hint}') from None
        except RecursionError:  # botocore asks again for the region of each 301 naming none, without end
            raise RemoteError(f'cannot list bucket "{self.bucket}": the server answers every request with a '
                              "redirect (PermanentRedirect) that names no region: check endpoint and region") from None
        return objects

    def details(self, key: str, with_acl: bool = True) -> RemoteDetails:
        """Headers, ACL and encryption of one object (HeadObject + GetObjectAcl)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
            acl = "private"
            if with_acl:
                response = self.client.get_object_acl(Bucket=self.bucket, Key=key)
                acl = canned_acl(response.get("Owner", {}).get("ID"), response.get("Grants", ()))
        except (ClientError, BotoCoreError) as exc:
            raise _failed(exc) from None
        metadata = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
        md5 = md5_from_metadata(metadata.pop(MD5_METADATA, None))
        sse = head.get("ServerSideEncryption") or ("SSE-C" if head.get("SSECustomerAlgorithm") else None)
        kms_key = head.get("SSEKMSKeyId") or None
        # S3 sends no storage class header for STANDARD objects.
        stored_class = head.get("StorageClass") or STANDARD
        headers = ObjectHeaders(
            content_type=head.get("ContentType") or "",
            content_encoding=head.get("ContentEncoding") or None,
            cache_control=head.get("CacheControl") or None,
            metadata=tuple(sorted(metadata.items())),
            acl=acl,
            redirect=head.get("WebsiteRedirectLocation") or None,
            content_disposition=head.get("ContentDisposition") or None,
            content_language=head.get("ContentLanguage") or None,
            expires=_expires(head),
            storage_class=stored_class,
            encryption=sse,
            kms_key_id=kms_key,
        )
        return RemoteDetails(headers=headers, sse=sse, md5=md5, kms_key=kms_key, storage_class=stored_class)

    def acl(self, key: str) -> str:
        try:
            response = self.client.get_object_acl(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise _failed(exc) from None
        return canned_acl(response.get("Owner", {}).get("ID"), response.get("Grants", ()))

    def get_bytes(self, key: str) -> bytes:
        return self.fetch(key).body

    def fetch(self, key: str) -> Fetched:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            body = response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise _failed(exc) from None
        age = 0.0
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        with contextlib.suppress(TypeError, ValueError):
            age = (parsedate_to_datetime(date) - response["LastModified"]).total_seconds()
        return Fetched(body, (response.get("ETag") or "").strip('"').lower(), age)

    def head_etag(self, key: str) -> Optional[str]:
        try:
            return (self.client.head_object(Bucket=self.bucket, Key=key).get("ETag") or "").strip('"').lower()
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _failed(exc) from None

    # ---------------------------------------------------------------- writes
    def put_bytes(self, key: str, body: bytes, content_type: str, headers: Optional[ObjectHeaders] = None, *,
                  if_match: Optional[str] = None, if_none_match: bool = False) -> str:
        """A small object of the tool's own; `headers` gives its encryption (a bucket
        policy may refuse writes without it). Its storage class stays STANDARD."""
        args = {}
        if if_match:
            args["IfMatch"] = f'"{if_match}"'
        if if_none_match:
            args["IfNoneMatch"] = "*"
        if headers is not None and headers.encryption:
            args["ServerSideEncryption"] = headers.encryption
            if headers.kms_key_id:
                args["SSEKMSKeyId"] = headers.kms_key_id
        return self._put(Key=key, Body=body, ContentType=content_type, **args)

    def _put(self, **args) -> str:
        try:
            response = self.client.put_object(Bucket=self.bucket, **args)
        except (ClientError, BotoCoreError) as exc:
            raise _failed(exc) from None
        return (response.get("ETag") or "").strip('"').lower()


    def manager(self):
        if self._manager is None:
            from s3transfer.manager import TransferConfig, TransferManager

            config = TransferConfig(
                multipart_threshold=self.settings.multipart_threshold,
                multipart_chunksize=self.settings.part_size,
                max_request_concurrency=self.settings.max_concurrency,
                max_submission_concurrency=4,
                max_io_queue_size=1000,
            )
            self._manager = TransferManager(self.client, config)
        return self._manager

    def upload(self, body: Body, key: str, headers: ObjectHeaders, md5: Optional[str] = None, *,
               keep: Optional[RemoteDetails] = None, on_progress: Optional[Callable[[int], None]] = None,
               on_done: UploadDone) -> None:
        """Starts an upload of a file (a path) or of a seekable file object (a
        compressed body): below multipart_threshold one PutObject on the CRT
        (crtupload.py) where it can, else s3transfer, multipart from the
        threshold up. `keep`: the object this upload replaces only to change
        its headers. `on_done(etag, error)` is called when it ends."""
        args = header_args(headers, md5)
        args.update(kept_args(headers, keep))
        if self._crt is not None and self._crt.upload(body, key, args, on_progress=on_progress, on_done=on_done):
            return
        subscribers: List[object] = [_Ended(self, key, on_done)]
        if on_progress is not None:
            subscribers.append(_Progress(on_progress))
        self.manager().upload(body, self.bucket, key, extra_args=args, subscribers=subscribers)

    def _etag_of(self, key: str) -> str:
        with self._etag_lock:
            return self._upload_etags.get(key, "")

    def cloudfront(self, quick: bool = False):
        """A CloudFront client retrying like the S3 one; `quick`: short timeouts and
        two attempts, for a run that is stopping."""
        if not quick:
            return self.session.create_client("cloudfront", config=Config(**retry_options(self.settings)))
        return self.session.create_client("cloudfront", config=Config(
            connect_timeout=3, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 2}))

    def put_redirect(self, key: str, headers: ObjectHeaders) -> str:
        return self._put(Key=key, Body=b"", **header_args(headers))

    def copy_headers(self, key: str, headers: ObjectHeaders, details: Optional[RemoteDetails],
                     md5: Optional[str] = None, *, if_match: Optional[str] = None) -> str:
        """Rewrite an object's headers in place: a metadata-only copy onto itself.
        `md5` (else the one recorded in the object) is recorded in its metadata.
        Returns the ETag of the copy."""
        args = header_args(headers, md5 or (details.md5 if details else None))
        args.update(kept_args(headers, details))
        if if_match:
            args["CopySourceIfMatch"] = f'"{if_match}"'
        try:
            response = self.client.copy_object(Bucket=self.bucket, Key=key,
                                               CopySource={"Bucket": self.bucket, "Key": key},
                                               MetadataDirective="REPLACE", **args)
        except (ClientError, BotoCoreError) as exc:
            raise _failed(exc) from None
        return ((response.get("CopyObjectResult") or {}).get("ETag") or "").strip('"').lower()

    def delete(self, keys: List[str]) -> List[Tuple[str, str]]:
        """DeleteObjects in batches of 1,000; returns (key, reason) for each failure."""
        failures: List[Tuple[str, str]] = []
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start:start + DELETE_BATCH]
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            except (ClientError, BotoCoreError) as exc:
                failures.extend((k, error_text(exc)) for k in batch)
                continue
            failures.extend((e.get("Key", ""), f"{e.get('Code')}: {e.get('Message')}") for e in response.get("Errors", ()))
        return failures

    def remove(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise _failed(exc) from None

    def open_uploads(self) -> List[Tuple[str, str]]:
        """(key, upload id) of multipart uploads begun and neither completed nor aborted."""
        with self._etag_lock:
            return sorted((key, upload_id) for upload_id, key in self._open_uploads.items())

    def wait_uploads(self) -> None:
        """Waits for every upload started to finish."""
        if self._crt is not None:
            self._crt.wait()
        if self._manager is not None:
            self._manager.shutdown()
            self._manager = None

    def stop_uploads(self, reason: BaseException, wait: float) -> List[Tuple[str, str]]:
        """Cancels every unfinished upload and aborts its multipart upload, so no
        parts are left behind to be stored (and billed) without an object.

        s3transfer cancels the transfers, lets the requests in flight end and
        aborts each cancelled multipart upload; the CRT's PUTs in flight may end
        too. That waits at most `wait` seconds in all; then the CRT's requests
        are cancelled and the uploads still open aborted here. Returns (key,
        reason) for each that could not be aborted."""
        manager, self._manager = self._manager, None
        ends = time.monotonic() + wait
        if manager is not None:
            # TransferManager's context-manager exit cancels every tracked transfer
            # (a KeyboardInterrupt as CancelledError) and then waits; its shutdown(cancel=True)
            # passes its arguments in the wrong order and raises TypeError (boto/s3transfer#143).
            waiter = threading.Thread(target=manager.__exit__, args=(type(reason), reason, None),
                                      name="upload-stop", daemon=True)
            waiter.start()
            waiter.join(wait)
        if self._crt is not None:
            self._crt.stop(max(0.0, ends - time.monotonic()))
        failures = []
        for key, upload_id in self.open_uploads():
            try:
                self.abort_upload(key, upload_id)
            except StoreError as exc:
                failures.append((key, str(exc)))
        return failures

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Aborts a multipart upload; one already gone (NoSuchUpload) is no error."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) != "NoSuchUpload":
                raise _failed(exc) from None

    def watch_uploads(self, opened: Callable[[], None]) -> None:
        self._on_opened = opened


Store = S3Store  # the name the Python API has used


def _upload_error(exc: BaseException) -> BaseException:
    """An upload's failure for `on_done`: botocore wraps every network error in
    a BotoCoreError, so a bare OSError comes from the local file and is handed
    on as it is; anything else becomes a StoreError."""
    if isinstance(exc, OSError) and not isinstance(exc, BotoCoreError):
        return exc
    if isinstance(exc, StoreError):
        return exc
    return _failed(exc)


class _Ended:
    """Calls an upload's `on_done` once, with the ETag S3 returned or the error
    (an s3transfer subscriber: s3transfer calls the `on_*` methods it finds)."""

    def __init__(self, store: S3Store, key: str, on_done: UploadDone):
        self.store, self.key, self.callback = store, key, on_done

    def on_done(self, future, **kwargs):
        try:
            future.result()
        except BaseException as exc:  # botocore, OS and s3transfer's own error types alike
            self.callback("", _upload_error(exc))
        else:
            self.callback(self.store._etag_of(self.key), None)


class _Progress:
    """Hands on the bytes s3transfer sent."""

    def __init__(self, advance: Callable[[int], None]):
        self.advance = advance

    def on_progress(self, future, bytes_transferred, **kwargs):
        self.advance(bytes_transferred)
