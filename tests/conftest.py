"""Shared fixtures: one real S3/CloudFront/STS HTTP server (moto) per session.

Tests talk to the server over real HTTP on 127.0.0.1 and assert on what the
server *received*, so a regression that sends extra or different requests is
caught even when the end state in the bucket looks right.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Pattern, Sequence, Union
from urllib.parse import parse_qsl

import boto3
import botocore.session
import pytest
from botocore.config import Config
from s3ops import cloudfront_operation, request_target, s3_operation

HOST = "127.0.0.1"
REGION = "us-east-1"
FAKE_KEY_ID = "testing"
FAKE_SECRET = "testing"

# Headers worth asserting on. Signing headers (authorization, x-amz-date,
# x-amz-content-sha256, ...) are left out: they change on every request and
# would only add noise to failure output.
_RECORDED_HEADERS = (
    "x-amz-copy-source",
    "x-amz-copy-source-if-match",
    "if-match",
    "if-none-match",
    "x-amz-copy-source-range",
    "x-amz-acl",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
    "x-amz-website-redirect-location",
    "x-amz-metadata-directive",
    "x-amz-storage-class",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-tagging",
    "content-type",
    "content-length",
    "content-encoding",
    "content-disposition",
    "content-language",
    "content-md5",
    "cache-control",
    "expires",
)

# Op-name prefixes that change server state; "Create" also covers
# CreateMultipartUpload / CreateInvalidation / CreateBucket.
_WRITE_PREFIXES = ("Put", "Copy", "Delete", "UploadPart", "Create", "Complete", "Abort", "Restore")
_WRITE_METHODS = ("PUT", "POST", "DELETE", "PATCH")

@dataclass
class Request:
    """One HTTP request as the server saw it."""

    method: str
    path: str  # percent-decoded, e.g. "/bucket/dir/file name.txt"
    query: Dict[str, str]  # blank values kept: {"uploads": ""}
    headers: Dict[str, str]  # lower-case names, only _RECORDED_HEADERS present
    service: str  # "s3", "cloudfront", "sts", ... from the SigV4 scope
    op: str = ""
    bucket: Optional[str] = None
    key: Optional[str] = None  # None for bucket-level requests, else the object key
    status: Optional[int] = None  # filled in once the server has answered
    emulated: bool = False  # answered by this fixture, not by moto (see _acl_refusal)
    form: Dict[str, str] = field(default_factory=dict)  # STS: the form parameters (Action, RoleArn, ...)
    access_key: Optional[str] = None  # the SigV4 access key id that signed it; None when unsigned
    security_token: bool = False  # sent with X-Amz-Security-Token (its value is never kept)
    body: str = ""  # CloudFront POST requests only: the XML body (e.g. the InvalidationBatch)
    arrived: float = field(default_factory=time.monotonic)  # when the server began to read it
    answered: Optional[float] = None  # when the server sent its status line

    def __repr__(self) -> str:
        where = self.path + ("?" + "&".join(self.query) if self.query else "")
        return f"<{self.op} {self.method} {where} -> {self.status}>"


def _service_of(environ: Mapping[str, Any], query: Mapping[str, str]) -> str:
    # Mirrors how moto itself routes: by the service in the SigV4 credential scope.
    scope = ""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth.startswith("AWS4-"):
        with contextlib.suppress(IndexError):
            scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
    elif "X-Amz-Credential" in query:  # presigned URL
        scope = query["X-Amz-Credential"]
    parts = scope.split("/")
    return parts[3].lower() if len(parts) >= 5 else "s3"


def _form_action(environ: Dict[str, Any]) -> Optional[str]:
    return _form_params(environ).get("Action")


def _read_body(environ: Dict[str, Any]) -> bytes:
    """The request body, put back so moto can read it again."""
    try:
        size = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return b""
    body = environ["wsgi.input"].read(size) if size else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _form_params(environ: Dict[str, Any]) -> Dict[str, str]:
    # Query-protocol services (STS) name the operation in a form-encoded body;
    # read it and put it back so moto can read it again.
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return {}
    try:
        size = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return {}
    body = environ["wsgi.input"].read(size) if size else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return dict(parse_qsl(body.decode("utf-8", "replace")))


def _describe(environ: Dict[str, Any]) -> Request:
    method, path, query = request_target(environ)
    headers = {}
    for name in _RECORDED_HEADERS:
        envname = name.upper().replace("-", "_")
        if envname not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            envname = "HTTP_" + envname
        if environ.get(envname):
            headers[name] = environ[envname]
    service = _service_of(environ, query)
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if not auth and "X-Amz-Credential" not in query and method == "POST" and path == "/":
        # STS AssumeRoleWithWebIdentity / AssumeRoleWithSAML are sent unsigned (moto routes them the same way).
        if _form_action(environ) in ("AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"):
            service = "sts"
    rec = Request(method=method, path=path, query=query, headers=headers, service=service)
    if auth.startswith("AWS4-") and "Credential=" in auth:
        rec.access_key = auth.split("Credential=", 1)[1].split("/", 1)[0]
    elif "X-Amz-Credential" in query:
        rec.access_key = query["X-Amz-Credential"].split("/", 1)[0]
    rec.security_token = bool(environ.get("HTTP_X_AMZ_SECURITY_TOKEN") or query.get("X-Amz-Security-Token"))

    op = None
    if path.startswith("/moto-api"):
        op = None
    elif service == "s3":
        if path != "/":
            bucket, _, key = path[1:].partition("/")
            rec.bucket = bucket
            rec.key = key if key else None
            op = s3_operation(method, rec.key, query, headers)
        elif method == "GET":
            op = "ListBuckets"
    elif service == "cloudfront":
        op = cloudfront_operation(method, path)
        if method == "POST":
            rec.body = _read_body(environ).decode("utf-8", "replace")
    elif service == "sts":
        rec.form = _form_params(environ) or dict(query)
        op = rec.form.get("Action")
    rec.op = op or f"{method} {path}"
    return rec


def _is_lock_request(rec: Request) -> bool:
    key = rec.key or ""
    return key.endswith(".drone-s3-sync-lock") or (rec.op == "HeadObject" and key.endswith(".drone-s3-sync-state.json.gz"))


def _is_write(rec: Request) -> bool:
    if rec.op.startswith(_WRITE_PREFIXES):
        return True
    # An op we could not name is counted as a write when its method can mutate,
    # so an unexpected request shows up instead of being silently ignored.
    return rec.op == f"{rec.method} {rec.path}" and rec.method in _WRITE_METHODS


_ACL_SETTING_OPS = ("PutObject", "CopyObject", "CreateMultipartUpload", "PutObjectAcl", "PutBucketAcl")
_ACL_DISABLED_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>AccessControlListNotSupported</Code>"
    b"<Message>The bucket does not allow ACLs</Message>"
    b"<RequestId>0000000000000000</RequestId><HostId>emulated-by-conftest</HostId></Error>"
)


def _ownership_rule(bucket: str) -> Optional[str]:
    try:
        from moto.s3.models import s3_backends

        for account_id in list(s3_backends.keys()):
            found = s3_backends[account_id]["aws"].buckets.get(bucket)
            if found is not None:
                rule = found.ownership_rule
                return rule.get("ObjectOwnership") if isinstance(rule, dict) else rule
    except Exception:
        return None
    return None


def _copy_precondition_fails(rec: Request) -> bool:
    """Would S3 refuse this CopyObject because its source no longer has the
    ETag named in x-amz-copy-source-if-match? moto ignores that header; S3
    answers 412 PreconditionFailed, and the product relies on it."""
    wanted = rec.headers.get("x-amz-copy-source-if-match")
    if rec.op != "CopyObject" or not wanted:
        return False
    from urllib.parse import unquote

    from moto.s3.models import s3_backends

    source = unquote(rec.headers.get("x-amz-copy-source", "").split("?", 1)[0]).lstrip("/")
    bucket, _, key = source.partition("/")
    for account_id in list(s3_backends.keys()):
        found = s3_backends[account_id]["aws"].buckets.get(bucket)
        if found is not None:
            current = found.keys.get(key)
            return current is None or current.etag.strip('"') != wanted.strip('"')
    return True


_PRECONDITION_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>'
    b"<Message>At least one of the pre-conditions you specified did not hold</Message>"
    b"<RequestId>0000000000000000</RequestId><HostId>emulated-by-conftest</HostId></Error>"
)


def _acl_refusal(rec: Request) -> bool:
    """Would real S3 refuse this request because the bucket has ACLs disabled?

    moto stores BucketOwnerEnforced but still applies ACLs. Real S3 answers
    400 AccessControlListNotSupported to any ACL-setting request other than
    bucket-owner-full-control, and the product has to cope with that, so the
    server emulates it. Reading ACLs stays allowed, as on S3.
    """
    if rec.service != "s3" or rec.bucket is None or rec.op not in _ACL_SETTING_OPS:
        return False
    canned = rec.headers.get("x-amz-acl")
    grants = any(h.startswith("x-amz-grant-") for h in rec.headers)
    if rec.op in ("PutObjectAcl", "PutBucketAcl"):
        sets_acl = True  # a body ACL counts too; only the owner-full-control header passes
    else:
        sets_acl = grants or canned is not None
    if not sets_acl or (canned == "bucket-owner-full-control" and not grants):
        return False
    return _ownership_rule(rec.bucket) == "BucketOwnerEnforced"


def _drain(environ: Dict[str, Any]) -> None:
    # The client has sent (or will send) a body; it must be consumed before
    # answering or the kept-alive connection would read it as the next request.
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):
        while stream.read(1 << 20):
            pass
        return
    try:
        left = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            break
        left -= len(chunk)


@dataclass
class Fault:
    """A fault the server injects into the requests that match it.

    `op` is an operation name as the recorder classifies it ("UploadPart",
    "ListObjectsV2", "CreateInvalidation", ...) or "*"; `key` an exact object
    key or a compiled regex; `times` how many matching requests fail (None:
    every one, a persistent fault). What the fault does, in this order:
    `delay` seconds of sleep (alone it only slows the answer down), then
    `reset` (the connection is dropped without an answer, mid-request) or an
    error answer with `status` and `code`.
    """

    op: str
    key: Union[None, str, Pattern[str]] = None
    bucket: Optional[str] = None
    access_key: Optional[str] = None  # only requests signed with this key id: one run among several
    status: int = 500
    code: str = "InternalError"
    times: Optional[int] = 1
    delay: float = 0.0
    reset: bool = False
    answer: bool = True  # False with only `delay`: slow down, then let moto answer
    message: str = "injected fault"  # the <Message> of the error answer
    hits: int = field(default=0, compare=False)
    seen: List[str] = field(default_factory=list, compare=False)  # keys (or ops) it hit

    def matches(self, rec: "Request") -> bool:
        if self.op != "*" and rec.op != self.op:
            return False
        if self.bucket is not None and rec.bucket != self.bucket:
            return False
        if self.access_key is not None and rec.access_key != self.access_key:
            return False
        if self.key is None:
            return True
        if rec.key is None:
            return False
        if isinstance(self.key, str):
            return rec.key == self.key
        return self.key.search(rec.key) is not None

    @property
    def spent(self) -> bool:
        return self.times is not None and self.hits >= self.times


def _error_body(code: str, message: str, service: str) -> bytes:
    if service in ("cloudfront", "sts"):  # both answer errors in an <ErrorResponse>
        inner = f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        return (f'<?xml version="1.0"?><ErrorResponse>{inner}<RequestId>injected</RequestId></ErrorResponse>').encode()
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>0000000000000000</RequestId><HostId>injected-fault</HostId></Error>").encode()


def _drop_connection(environ: Dict[str, Any]) -> None:
    """Cut the client off mid-request: no answer, the request body left unread.

    With SO_LINGER 0 the kernel answers the close with a TCP reset; werkzeug
    treats the ConnectionResetError as a dropped client and closes quietly.
    """
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.shutdown(socket.SHUT_RDWR)
    raise ConnectionResetError("fault injected: connection dropped")


class RecordingMotoServer:
    """moto's ThreadedMotoServer with a server-side log of every request."""

    def __init__(self) -> None:
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        recorder = self

        class _Server(ThreadedMotoServer):
            # ThreadedMotoServer has no hook to wrap its WSGI app, so its
            # (four-line) _server_entry is repeated here with the app wrapped.
            def _server_entry(self) -> None:
                from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
                from werkzeug.serving import make_server

                app = recorder._wrap(DomainDispatcherApplication(create_backend_app))
                self._server = make_server(self._ip_address, self._port, app, True)
                self._server_ready_event.set()
                self._server.serve_forever()

        self._lock = threading.Lock()
        self._log: List[Request] = []
        # Request headers the server ignores on writes, as some S3-compatible
        # servers do (SeaweedFS: x-amz-acl, x-amz-website-redirect-location).
        self.dropped_headers: set = set()
        self._paused = 0
        self._faults: List[Fault] = []
        # Port 0: werkzeug binds a free port and reports it in server_address.
        self._moto = _Server(ip_address=HOST, port=0, verbose=False)
        self.endpoint = ""

    def _wrap(self, app: Callable[..., Any]) -> Callable[..., Any]:
        def recording_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
            with self._lock:
                paused = self._paused > 0
            # Requests are parsed even while paused: the ACL emulation below is
            # server behaviour and must not depend on whether anyone is logging.
            try:
                rec = _describe(environ)
            except Exception as exc:  # the log must never break the server
                rec = Request(
                    method=environ.get("REQUEST_METHOD", "?"),
                    path=environ.get("PATH_INFO", "?"),
                    query={},
                    headers={},
                    service="?",
                    op=f"UNPARSED {exc!r}",
                )
            # Appended before the app runs: the client cannot see the response
            # (and so cannot assert) before the record exists.
            if not paused:
                with self._lock:
                    self._log.append(rec)

            fault = self._fault_for(rec)
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.reset:
                    rec.status, rec.emulated = 0, True
                    _drop_connection(environ)
                if fault.answer:
                    _drain(environ)
                    body = _error_body(fault.code, fault.message, rec.service)
                    rec.status, rec.emulated = fault.status, True
                    start_response(f"{fault.status} Injected", [("Content-Type", "application/xml"),
                                                               ("Content-Length", str(len(body)))])
                    return [body]

            if rec.op in ("PutObject", "CopyObject", "CreateMultipartUpload"):
                for name in self.dropped_headers:  # a server that takes the request and ignores these
                    environ.pop("HTTP_" + name.upper().replace("-", "_"), None)

            if _copy_precondition_fails(rec):
                _drain(environ)
                rec.status, rec.emulated = 412, True
                start_response("412 Precondition Failed", [("Content-Type", "application/xml"),
                                                           ("Content-Length", str(len(_PRECONDITION_BODY)))])
                return [_PRECONDITION_BODY]

            if _acl_refusal(rec):
                _drain(environ)
                rec.status, rec.emulated = 400, True
                start_response(
                    "400 Bad Request",
                    [("Content-Type", "application/xml"), ("Content-Length", str(len(_ACL_DISABLED_BODY)))],
                )
                return [_ACL_DISABLED_BODY]

            def recording_start_response(status: str, *args: Any) -> Any:
                with contextlib.suppress(ValueError):
                    rec.status = int(status.split(None, 1)[0])
                rec.answered = time.monotonic()
                return start_response(status, *args)

            return app(environ, recording_start_response)

        return recording_app

    def _fault_for(self, rec: Request) -> Optional[Fault]:
        with self._lock:
            for fault in self._faults:
                if not fault.spent and fault.matches(rec):
                    fault.hits += 1
                    fault.seen.append(rec.key or rec.op)
                    return fault
        return None

    def inject(self, op: str, key: Union[None, str, Pattern[str]] = None, **kwargs: Any) -> Fault:
        """Add a fault (see `Fault`); returns it so a test can read `.hits`.

        Faults are checked in the order added; the first matching one that is
        not spent applies. The `clear_faults` autouse fixture removes them all
        after each test. `inject("PutObject", delay=2, answer=False)` slows the
        requests down without failing them.
        """
        fault = Fault(op=op, key=key, **kwargs)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self.dropped_headers = set()

    def start(self) -> None:
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def stop(self) -> None:
        self._moto.stop()

    @property
    def port(self) -> int:
        return self._moto.get_host_and_port()[1]

    @property
    def all_requests(self) -> List[Request]:
        """Every request recorded, the deploy lock's included."""
        with self._lock:
            return list(self._log)

    @property
    def requests(self) -> List[Request]:
        """The requests recorded, without the deploy lock's: taking, testing,
        renewing and giving back the lock object, and the look at the state
        object that confirms a plan (the only HeadObject of a state object).
        Those are asserted where the lock is the subject (test_overlap_e2e.py);
        everywhere else they would only add the same few requests to every
        count of a writing run."""
        return [r for r in self.all_requests if not _is_lock_request(r)]

    def reset(self) -> None:
        with self._lock:
            self._log.clear()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Suspend recording, e.g. while a test reads objects back to assert.

        Server-wide: requests from anyone else arriving meanwhile are not
        recorded either, so do not pause while the command under test runs.
        """
        with self._lock:
            self._paused += 1
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1

    def age_object(self, bucket: str, key: str, seconds: float) -> None:
        """Make an object look written `seconds` earlier, as if that much time had passed."""
        import datetime

        from moto.s3.models import s3_backends

        for account_id in list(s3_backends.keys()):
            found = s3_backends[account_id]["aws"].buckets.get(bucket)
            if found is not None and key in found.keys:
                stored = found.keys[key]
                stored.last_modified = stored.last_modified - datetime.timedelta(seconds=seconds)
                return
        raise KeyError(f"no object {key} in {bucket}")

    @contextlib.contextmanager
    def clock_ahead(self, seconds: float) -> Iterator[None]:
        """Objects written in the block are stamped `seconds` later than now:
        moves the server's clock forward instead of sleeping (S3 keeps times
        to the second)."""
        import datetime

        import moto.s3.models as models

        real = models.utcnow
        models.utcnow = lambda: real() + datetime.timedelta(seconds=seconds)
        try:
            yield
        finally:
            models.utcnow = real

    def ops(self, bucket: Optional[str] = None) -> "collections.Counter[str]":
        return collections.Counter(r.op for r in self.requests if bucket is None or r.bucket == bucket)

    def writes(self, bucket: Optional[str] = None) -> List[Request]:
        return [r for r in self.requests if _is_write(r) and (bucket is None or r.bucket == bucket)]


def _give_multipart_objects_an_acl() -> None:
    """An object completed from a multipart upload begun without an ACL header
    gets no ACL at all in moto, and GetObjectAcl on it then fails with 500.
    S3 gives it the private ACL, as for PutObject without one."""
    from moto.s3.models import S3Backend, get_canned_acl

    original = S3Backend.complete_multipart_upload
    if getattr(original, "gives_private_acl", False):
        return

    def complete_multipart_upload(self: Any, *args: Any, **kwargs: Any) -> Any:
        key = original(self, *args, **kwargs)
        if key is not None and key.acl is None:
            key.set_acl(get_canned_acl("private"))
        return key

    complete_multipart_upload.gives_private_acl = True  # type: ignore[attr-defined]
    S3Backend.complete_multipart_upload = complete_multipart_upload  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[RecordingMotoServer]:
    # werkzeug logs one INFO line per request; thousands of them would bury
    # the output of a failing test.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    _give_multipart_objects_an_acl()
    server = RecordingMotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def clear_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """No injected fault outlives the test that added it."""
    yield
    if "s3_server" in request.fixturenames:
        request.getfixturevalue("s3_server").clear_faults()


_SCRUBBED_PREFIXES = ("PLUGIN_", "AWS_", "DRONE_", "CI_", "S3_")
_SCRUBBED_NAMES = ("DRY_RUN", "DEBUG", "NO_COLOR", "S3_SYNC_ENDPOINT")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Make in-process code blind to the developer's environment and ~/.aws."""
    for name in list(os.environ):
        if name.startswith(_SCRUBBED_PREFIXES) or name in _SCRUBBED_NAMES:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    # Without credentials botocore would probe the EC2 metadata address.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return home


_boto_session: Optional[boto3.session.Session] = None


def _client(service: str, endpoint: str, **config: Any) -> Any:
    # One boto3 session for the whole run keeps its loaded service models
    # (creating clients becomes cheap) and is pinned to non-existent config
    # files so the real ~/.aws can never be read.
    global _boto_session
    if _boto_session is None:
        core = botocore.session.Session()
        core.set_config_variable("config_file", os.devnull + ".no-aws-config")
        core.set_config_variable("credentials_file", os.devnull + ".no-aws-credentials")
        _boto_session = boto3.session.Session(botocore_session=core)
    session = _boto_session
    return session.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


@pytest.fixture
def s3(s3_server: RecordingMotoServer) -> Any:
    return _client("s3", s3_server.endpoint, s3={"addressing_style": "path"})


@pytest.fixture
def cloudfront(s3_server: RecordingMotoServer) -> Any:
    return _client("cloudfront", s3_server.endpoint)


@pytest.fixture
def bucket(s3_server: RecordingMotoServer, s3: Any) -> Iterator[str]:
    """A fresh empty bucket; the request log is empty when the test starts."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    with s3_server.paused():
        s3.create_bucket(Bucket=name)
    s3_server.reset()
    yield name
    # moto keeps object bodies in this process's memory for the whole session;
    # emptying the bucket keeps large tests from piling up.
    with s3_server.paused():
        with contextlib.suppress(Exception):
            _empty_and_delete_bucket(s3, name)


@pytest.fixture
def acl_disabled_bucket(s3_server: RecordingMotoServer, s3: Any, bucket: str) -> str:
    """Like `bucket`, but with Object Ownership BucketOwnerEnforced (ACLs
    disabled, the default for new buckets on AWS since 2023): ACL-setting
    requests other than bucket-owner-full-control get 400
    AccessControlListNotSupported."""
    with s3_server.paused():
        s3.put_bucket_ownership_controls(
            Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        )
    return bucket


def _empty_and_delete_bucket(s3: Any, name: str) -> None:
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
        for up in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=name)


@pytest.fixture
def distribution(s3_server: RecordingMotoServer, cloudfront: Any) -> str:
    """Id of a new minimal CloudFront distribution (created unrecorded)."""
    ref = uuid.uuid4().hex
    # The fields botocore requires; moto 5 accepts exactly this.
    config = {
        "CallerReference": ref,
        "Comment": "",
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "origin",
                    "DomainName": "origin.s3.amazonaws.com",
                    "S3OriginConfig": {"OriginAccessIdentity": ""},
                }
            ],
        },
        "DefaultCacheBehavior": {"TargetOriginId": "origin", "ViewerProtocolPolicy": "allow-all"},
    }
    with s3_server.paused():
        resp = cloudfront.create_distribution(DistributionConfig=config)
    return resp["Distribution"]["Id"]


# The state object the product keeps next to the files (see drone_s3_sync/state.py).
# Spelled out here, not imported, so a renamed or moved state object fails the tests.
STATE_NAME = ".drone-s3-sync-state.json.gz"


def state_key(prefix: str = "") -> str:
    """The state object's key for a normalised target prefix: "" or "site/"."""
    return prefix + STATE_NAME


def is_state_key(key: Optional[str]) -> bool:
    """True for the state object of any target (bucket root or "<prefix>/")."""
    return bool(key) and (key == STATE_NAME or key.endswith("/" + STATE_NAME))


def read_state(s3: Any, bucket: str, key: str) -> Dict[str, Any]:
    """The decoded state document (call inside s3_server.paused())."""
    raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(gzip.decompress(raw).decode("utf-8"))


FileContent = Union[bytes, str]


@pytest.fixture
def make_tree(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """make_tree({"a/b.txt": "hi", "c.bin": b"\\0"}, root=None) -> directory."""

    def make(files: Mapping[str, FileContent], root: Optional[Path] = None) -> Path:
        base = Path(root) if root is not None else tmp_path_factory.mktemp("tree")
        base.mkdir(parents=True, exist_ok=True)
        for rel, content in files.items():
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise ValueError(f"make_tree path must stay inside the tree: {rel!r}")
            target = base / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return base

    return make


def _command() -> List[str]:
    script = Path(sys.executable).parent / "drone-s3-sync"
    if script.exists():
        return [str(script)]
    found = shutil.which("drone-s3-sync", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "drone_s3_sync"]


def command_env(s3_server: RecordingMotoServer, home: str,
                env: Optional[Mapping[str, Optional[str]]] = None) -> Dict[str, str]:
    """The command's whole environment: the fake account and the local server,
    then `env` (a None value removes a variable)."""
    full_env: Dict[str, str] = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": home,
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(Path(home) / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(Path(home) / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_CLOUDFRONT": s3_server.endpoint,
        "AWS_ENDPOINT_URL_STS": s3_server.endpoint,
        "PLUGIN_ENDPOINT": s3_server.endpoint,
    }
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    return full_env


@pytest.fixture
def run_sync(s3_server: RecordingMotoServer, clean_env: Path) -> Callable[..., "subprocess.CompletedProcess[str]"]:
    """Run the installed command the way Drone would: env only, no inherited state."""

    def run(
        env: Optional[Mapping[str, Optional[str]]] = None,
        *,
        cwd: Union[str, Path],
        args: Sequence[str] = (),
        timeout: float = 120,
        wrapper: Sequence[str] = (),
    ) -> "subprocess.CompletedProcess[str]":
        full_env = command_env(s3_server, os.environ.get("HOME", str(clean_env)), env)
        # `wrapper`: a command line that runs the command, e.g. with fewer privileges.
        cmd = [str(w) for w in wrapper] + _command() + [str(a) for a in args]
        proc = subprocess.run(
            cmd,
            cwd=str(cwd),
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
        # pytest shows captured stdout only for failing tests: exactly when
        # the command's own output is needed.
        shown = {k: v for k, v in full_env.items() if k.startswith(("PLUGIN_", "DRONE_", "DRY_RUN", "DEBUG"))}
        print(f"$ {' '.join(cmd)}  (cwd={cwd}, env={shown}) -> exit {proc.returncode}")
        print(f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}--- end ---")
        return proc

    return run
