"""Single-PutObject uploads (below multipart_threshold) on the AWS Common
Runtime's S3 client, which signs and sends natively on its own threads: the
per-request CPU of botocore + s3transfer is what bounds a run of small files.

botocore still decides what is sent: headers from its PutObject serializer
(cached per set of arguments), the URL and signing region from its endpoint
resolution for the bucket (a region redirect met while listing included),
checksums from its client configuration, credentials from the session
(refreshed for assumed roles), and, with its standard retry rules, which
failures are retried and when (crtretry.py; the CRT makes one attempt a
request). The CRT has no read timeout: an attempt unanswered after
read_timeout + size / MIN_RATE is cancelled here and sent again.
`S3_SYNC_CRT=0` turns it off (every upload then goes through s3transfer).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
import urllib.request
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from botocore import auth as botocore_auth
from botocore.awsrequest import prepare_request_dict
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.handlers import remove_bucket_from_url_paths_from_model, validate_ascii_metadata
from botocore.validate import validate_parameters

from .crtretry import Retries
from .errors import StoreError, error_code, error_text

try:
    from awscrt import auth as crt_auth, http as crt_http, io as crt_io, s3 as crt_s3
    _USABLE = hasattr(crt_s3, "S3RetryConfig")  # retries and the connect timeout are set from awscrt 0.38 on
except ImportError:  # pragma: no cover - the fallback is s3transfer
    _USABLE = False

# Once awscrt is importable botocore signs every request with the CRT's SigV4;
# it keeps its own signers here, as before awscrt came along for this module
# (a CRT signer reading a body that s3transfer cancels prints a traceback).
botocore_auth.AUTH_TYPE_MAPS.update({"v4": botocore_auth.SigV4Auth, "v4-query": botocore_auth.SigV4QueryAuth,
                                     "s3v4": botocore_auth.S3SigV4Auth, "s3v4-query": botocore_auth.S3SigV4QueryAuth})

log = logging.getLogger("drone_s3_sync")

ENV = "S3_SYNC_CRT"
MIN_RATE = 16 * 1024  # bytes a second one upload is allowed before its attempt counts as stuck
TICK = 0.1  # seconds between looks at the attempts in flight


def wanted(settings, client) -> bool:
    """Whether this run's small uploads go through the CRT: awscrt can be
    imported, S3_SYNC_CRT is not 0, max_attempts leaves the CRT an attempt
    before botocore's last one, and no proxy is configured (botocore honours
    HTTP(S)_PROXY and the client's proxies; the CRT client would not)."""
    if not _USABLE or os.environ.get(ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    if settings.max_attempts < 2:
        return False
    proxies = urllib.request.getproxies()
    if client.meta.config.proxies or proxies.get("https") or proxies.get("http"):
        log.debug("a proxy is configured: uploads use s3transfer")
        return False
    return True


def for_store(settings, client, session, connect_timeout: float) -> Optional["CrtUploader"]:
    """The run's CRT uploader, or None: turned off, not installed, or no
    credentials (s3transfer then reports the error). Its client is made at
    the first upload, after the listing (and any region redirect it met)."""
    if not wanted(settings, client):
        return None
    credentials = session.get_credentials()
    if credentials is None:
        return None
    return CrtUploader(settings, client, credentials, connect_timeout=connect_timeout, session=session,
                       ca_bundle=session.get_config_variable("ca_bundle"))


def size_of(body) -> int:
    """The bytes an upload of `body` sends: a file (opened, so that an
    unreadable one fails here as an OSError naming it) or a seekable object."""
    if isinstance(body, str):
        fd = os.open(body, os.O_RDONLY)
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)
    size = body.seek(0, os.SEEK_END)
    body.seek(0)
    return size


def _normal_etag(value: str) -> str:
    return value.strip().strip('"').lower()


class _Upload:
    """One file's upload: its attempts, and what to tell when it ends."""

    __slots__ = ("key", "body", "size", "args", "headers", "on_progress", "on_done", "request", "deadline",
                 "attempts", "etag", "timed_out", "not_before", "last", "quota")

    def __init__(self, key, body, size, args, headers, on_progress, on_done):
        self.key, self.body, self.size, self.args, self.headers = key, body, size, args, headers
        self.on_progress, self.on_done = on_progress, on_done
        self.request, self.deadline, self.etag, self.timed_out = None, 0.0, "", False
        self.attempts = 0  # sent so far
        self.not_before = 0.0  # a retry waits until then
        self.last = False  # the next attempt is the last: through botocore
        self.quota = 0  # retry budget taken for the last retry, given back when it succeeds


class CrtUploader:
    """Uploads of one bucket on one `awscrt.s3.S3Client`. Thread-safe; at most
    `settings.max_concurrency` requests in flight (upload blocks beyond)."""

    def __init__(self, settings, client, credentials, *, connect_timeout: float, session,
                 ca_bundle: Optional[str] = None):
        self.settings, self.bucket, self._botocore, self._session = settings, settings.bucket, client, session
        self._credentials, self._connect_timeout, self._ca_bundle = credentials, connect_timeout, ca_bundle
        self._client = None
        self._broken = False  # the client could not be made: s3transfer does the uploads
        self._header_cache: Dict[Tuple, list] = {}
        self._lock = threading.Lock()
        self._live: Dict[int, _Upload] = {}
        self._idle = threading.Condition(self._lock)
        self._slots = threading.Semaphore(max(1, settings.max_concurrency))
        self._stopping = False
        self._watchdog: Optional[threading.Thread] = None
        self._resend: List[_Upload] = []  # attempts to send again (by the watchdog, off the CRT's threads)
        self._single = None  # the botocore client of last attempts: one attempt each
        self._single_lock = threading.Lock()

    def _start(self) -> bool:
        try:
            self._make_client()
        except Exception as exc:  # awscrt's own errors included: the slower path still works
            log.info("uploads use s3transfer: the CRT S3 client could not be made (%s)", exc)
            self._broken = True
        return not self._broken

    def _make_client(self) -> None:
        client, settings = self._botocore, self.settings
        self._operation = client.meta.service_model.operation_model("PutObject")
        # botocore drops "/{Bucket}" from the operation's URI on its first call (the
        # endpoint carries the bucket); the same change, in case none was made yet.
        remove_bucket_from_url_paths_from_model(params={}, model=self._operation, context={})
        self._retries = Retries(client, self._operation, settings.max_attempts)
        self._context = {"client_region": client.meta.region_name, "client_config": client.meta.config,
                         "has_streaming_input": True, "auth_type": self._operation.resolved_auth_type}
        # The bucket's endpoint as botocore resolves it (and its signing region,
        # which a redirect botocore followed while listing has already set).
        url, extra_headers, _ = client._resolve_endpoint_ruleset(
            self._operation, {"Bucket": self.bucket, "Key": "k"}, self._context)
        self._endpoint = url
        self._extra_headers = list(extra_headers.items())
        region = self._context.get("signing", {}).get("region") or settings.region

        last: list = []

        def provide():
            try:
                frozen = self._credentials.get_frozen_credentials()  # botocore refreshes assumed roles here
                last[:] = [frozen]
            except Exception as exc:  # raised here, awscrt would print a traceback; the server refuses stale keys
                if not last:
                    raise
                if len(last) == 1:
                    log.warning("the credentials could not be refreshed: %s", error_text(exc))
                    last.append(exc)
                frozen = last[0]
            return crt_auth.AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)

        provider = crt_auth.AwsCredentialsProvider.new_delegate(provide)
        signing = crt_s3.create_default_s3_signing_config(region=region, credential_provider=provider)
        secure = urlsplit(url).scheme == "https"
        tls_options = None
        if secure and self._ca_bundle:
            tls = crt_io.TlsContextOptions()
            tls.override_default_trust_store_from_path(ca_filepath=self._ca_bundle)
            tls_options = crt_io.ClientTlsContext(tls).new_connection_options()
        retry = crt_s3.S3RetryConfig(retry_mode=crt_s3.S3RetryMode.NONE)  # one attempt a request: see _ended
        # Checksums as botocore sends them: on AWS a CRC32 (its default), on a
        # server configured "when_required" (custom endpoints) none.
        self._checksum = None
        if client.meta.config.request_checksum_calculation != "when_required":
            self._checksum = crt_s3.S3ChecksumConfig(algorithm=crt_s3.S3ChecksumAlgorithm.CRC32,
                                                     location=crt_s3.S3ChecksumLocation.TRAILER)
        self._client = crt_s3.S3Client(
            region=region, tls_mode=crt_s3.S3RequestTlsMode.ENABLED if secure else crt_s3.S3RequestTlsMode.DISABLED,
            tls_connection_options=tls_options, signing_config=signing,
            part_size=settings.part_size, multipart_upload_threshold=settings.multipart_threshold,
            max_active_connections_override=max(1, settings.max_concurrency), retry_config=retry,
            # ~2.5 connections per Gbps of target (10 by default: ~25); this lets the override be
            # the limit (5,000 small files, 30 ms a request, 64 at once: 7.9 s -> 4.9 s).
            throughput_target_gbps=max(10.0, settings.max_concurrency / 2),
            connect_timeout_ms=int(self._connect_timeout * 1000))

    # ---------------------------------------------------------------- requests
    def _headers(self, args: dict) -> list:
        """The PutObject headers botocore would send for `args` (no body)."""
        cache_key = tuple(sorted((k, tuple(sorted(v.items())) if isinstance(v, dict) else v)
                                 for k, v in args.items()))
        headers = self._header_cache.get(cache_key)
        if headers is None:
            params = dict(args, Bucket=self.bucket, Key="k")
            validate_parameters(params, self._operation.input_shape)
            validate_ascii_metadata(params)
            serialized = self._botocore._serializer.serialize_to_request(params, self._operation)
            headers = [(name, value if isinstance(value, str) else value.decode("utf-8"))
                       for name, value in serialized["headers"].items()] + self._extra_headers
            if len(self._header_cache) > 4096:
                self._header_cache.clear()
            self._header_cache[cache_key] = headers
        return headers

    def _path(self, key: str) -> Tuple[str, str]:
        """The request's (Host, path) for `key`, from botocore's serializer."""
        request = self._botocore._serializer.serialize_to_request({"Bucket": self.bucket, "Key": key},
                                                                  self._operation)
        prepare_request_dict(request, endpoint_url=self._endpoint, context=self._context, user_agent=None)
        parts = urlsplit(request["url"])
        return parts.netloc.rpartition("@")[2], parts.path + ("?" + parts.query if parts.query else "")

    def upload(self, body, key: str, args: dict, *, on_progress: Optional[Callable[[int], None]],
               on_done: Callable[[str, Optional[BaseException]], None]) -> bool:
        """Starts one PutObject of `body` (a path or a seekable file object)
        and returns True; False, having done nothing, for a body from
        multipart_threshold up (or no CRT client). Blocks while
        max_concurrency requests are in flight."""
        size = size_of(body)
        if size >= self.settings.multipart_threshold or self._broken or (self._client is None and not self._start()):
            return False
        upload = _Upload(key, body, size, args, self._headers(args), on_progress, on_done)
        self._slots.acquire()
        try:
            with self._lock:
                if self._stopping:
                    raise StoreError("the run is stopping", "")
                self._live[id(upload)] = upload
            self._send(upload)
        except BaseException:
            with self._lock:
                self._live.pop(id(upload), None)
            self._slots.release()
            raise
        return True

    def _send(self, upload: _Upload) -> None:
        host, path = self._path(upload.key)
        headers = crt_http.HttpHeaders(upload.headers + [("Host", host), ("Content-Length", str(upload.size))])
        request = crt_http.HttpRequest("PUT", path, headers)
        send_filepath = None
        if isinstance(upload.body, str):
            send_filepath = upload.body
        else:
            upload.body.seek(0)
            request.body_stream = upload.body
        upload.attempts += 1
        upload.timed_out = False
        upload.etag = ""
        upload.deadline = time.monotonic() + self.settings.read_timeout + upload.size / MIN_RATE
        self._ensure_watchdog()

        def on_headers(status_code, headers, **kwargs):
            if 200 <= status_code < 300:
                for name, value in headers:
                    if name.lower() == "etag":
                        upload.etag = _normal_etag(value)

        def on_done(error=None, status_code=None, error_headers=None, error_body=None, **kwargs):
            self._ended(upload, error, status_code, error_headers, error_body)

        upload.request = self._client.make_request(
            type=crt_s3.S3RequestType.PUT_OBJECT, request=request, send_filepath=send_filepath,
            checksum_config=self._checksum, on_headers=on_headers, on_done=on_done,
            on_progress=upload.on_progress)

    def _ended(self, upload: _Upload, error, status_code, error_headers, error_body) -> None:
        """On a CRT thread: an attempt ended; retries as crtretry.py decides."""
        upload.request = None
        if error is None:
            self._retries.succeeded(upload.quota)
            return self._finish(upload, upload.etag, None)
        name = getattr(error, "name", "") or type(error).__name__
        message = getattr(error, "message", "") or str(error)
        if self._stopping:
            return self._finish(upload, "", StoreError(f"stopped: {name}", ""))
        if "FILE" in name or name in ("AWS_ERROR_NO_PERMISSION", "AWS_ERROR_MAX_FDS_EXCEEDED"):
            return self._finish(upload, "", OSError(errno.EIO, message))  # the local file, not the server
        if status_code and error_headers is not None:  # an error answer the CRT passes on (not a 5xx)
            decision = self._retries.answered(upload.attempts, status_code, error_headers, error_body)
        else:
            decision = self._retries.failed(upload.attempts, name, message, upload.timed_out)
        if decision.error is not None:
            return self._finish(upload, "", decision.error)
        upload.quota = decision.budget
        self._again(upload, decision.delay, last=decision.last)

    def _again(self, upload: _Upload, delay: float, last: bool = False) -> None:
        """Sends the upload again after `delay` seconds (by the watchdog, off
        the CRT's threads): on the CRT, or through botocore for the last attempt."""
        upload.not_before, upload.last = time.monotonic() + delay, last
        with self._lock:
            self._resend.append(upload)
            self._idle.notify_all()

    def _last_try(self, upload: _Upload) -> None:
        """The last attempt, through botocore (one attempt, no retries of its own)."""
        upload.attempts += 1
        try:
            with self._single_lock:  # not self._lock: making a client takes a while, the CRT's threads need that one
                if self._single is None:
                    config = self._botocore.meta.config.merge(Config(retries={"mode": "standard",
                                                                              "total_max_attempts": 1}))
                    self._single = self._session.create_client("s3", config=config,
                                                               endpoint_url=self.settings.endpoint or None)
            path = isinstance(upload.body, str)
            with (open(upload.body, "rb") if path else contextlib.nullcontext(upload.body)) as body:
                body.seek(0)
                response = self._single.put_object(Bucket=self.bucket, Key=upload.key, Body=body, **upload.args)
        except (ClientError, BotoCoreError) as exc:
            return self._finish(upload, "", StoreError(error_text(exc), error_code(exc)))
        except OSError as exc:
            return self._finish(upload, "", exc)
        except Exception as exc:  # the upload must end whatever happened, or the run would wait for it forever
            return self._finish(upload, "", StoreError(f"{type(exc).__name__}: {exc}", ""))
        if upload.on_progress is not None:
            upload.on_progress(upload.size)
        self._finish(upload, _normal_etag(response.get("ETag") or ""), None)

    def _finish(self, upload: _Upload, etag: str, error: Optional[BaseException]) -> None:
        with self._lock:
            self._live.pop(id(upload), None)
            self._idle.notify_all()
        self._slots.release()
        upload.on_done(etag, error)

    # ---------------------------------------------------------------- read timeout, resends
    def _ensure_watchdog(self) -> None:
        with self._lock:
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="upload-timeouts", daemon=True)
                self._watchdog.start()

    def _watch(self) -> None:
        """Cancels attempts past their deadline and sends again those due
        (off the CRT threads); sleeps while nothing is in flight."""
        while True:
            with self._lock:
                if not self._live:
                    self._idle.wait(1.0)
                    continue
                now = time.monotonic()
                due = [u for u in self._resend if u.not_before <= now]
                self._resend = [u for u in self._resend if u.not_before > now]
                late = [u for u in self._live.values() if u.request is not None and not u.timed_out
                        and u.deadline < now]
                for upload in late:
                    upload.timed_out = True
            for upload in late:
                request = upload.request
                if request is not None:
                    log.debug("%s: no answer within %g s; cancelling the attempt", upload.key,
                              self.settings.read_timeout)
                    request.cancel()
            for upload in due:
                try:
                    if self._stopping:
                        raise StoreError("stopped before it could be sent again", "")
                    if upload.last:  # a thread of its own, a daemon: a hung request never holds the exit up
                        threading.Thread(target=self._last_try, args=(upload,), name="upload-last-try",
                                         daemon=True).start()
                        continue
                    self._send(upload)
                except BaseException as exc:
                    self._finish(upload, "", exc if isinstance(exc, StoreError) else StoreError(str(exc), ""))
            time.sleep(TICK)

    # ---------------------------------------------------------------- ending
    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits for every upload to end; False when `timeout` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._live:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left if left is not None else 1.0)
        return True

    def stop(self, wait: float) -> None:
        """No new uploads; those in flight may end within `wait` seconds (so
        that what they wrote is known), then the rest are cancelled."""
        with self._lock:
            self._stopping = True
        if self.wait(wait):
            return
        with self._lock:
            requests = [u.request for u in self._live.values() if u.request is not None]
        for request in requests:
            request.cancel()
        self.wait(2.0)
