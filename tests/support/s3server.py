"""The recording S3/CloudFront/STS test server: moto's ThreadedMotoServer on
127.0.0.1 behind a WSGI layer that records every request (operation, key,
headers, status, arrival and answer times), injects faults (error answers,
dropped connections, slow answers) by operation, key and signing key, and
emulates what moto leaves out (ACL refusals of buckets with ACLs disabled,
CopySourceIfMatch, servers that ignore chosen headers). tests/conftest.py
makes it a session fixture."""

from __future__ import annotations

import collections
import contextlib
import io
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Pattern, Union
from urllib.parse import parse_qsl

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
    meta: Dict[str, str] = field(default_factory=dict)  # x-amz-meta-* headers, names lower-case
    user_agent: str = ""  # which client sent it: botocore ("Boto3/..."), or the CRT ("CRTS3NativeClient/...")
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
    rec.user_agent = environ.get("HTTP_USER_AGENT", "")
    rec.meta = {name[5:].lower().replace("_", "-"): value for name, value in environ.items()
                if name.startswith("HTTP_X_AMZ_META_")}

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
        # key -> the ETag the server answers a PutObject of that key with, in
        # place of moto's (an MD5 the client could have computed itself).
        self.answer_etags: Dict[str, str] = {}
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
                etag = self.answer_etags.get(rec.key or "") if rec.op == "PutObject" else None
                if etag is not None and args:
                    args = ([(k, f'"{etag}"' if k.lower() == "etag" else v) for k, v in args[0]],) + args[1:]
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
            self.answer_etags = {}

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




def _read_acls_of_archived_objects() -> None:
    """moto refuses GetObjectAcl of a GLACIER or DEEP_ARCHIVE object that was
    not restored (InvalidObjectState), as it does GetObject; S3 refuses only
    reading the bytes, an archived object's ACL is read like any other's."""
    from moto.s3.responses import S3Response

    original = S3Response._get_key
    if getattr(original, "reads_archived_acls", False):
        return

    def _get_key(self: Any, validate_storage_class: bool = True) -> Any:
        if "acl" in self.querystring:
            validate_storage_class = False
        return original(self, validate_storage_class=validate_storage_class)

    _get_key.reads_archived_acls = True  # type: ignore[attr-defined]
    S3Response._get_key = _get_key  # type: ignore[method-assign]
