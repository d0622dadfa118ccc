"""An in-memory bucket that implements the product's `RemoteStore` protocol,
for the functional tier: `sync()` runs in process against it with serial
executors, so every test is deterministic and fast.

It records each call as the S3 operation(s) the real store would send
(`ops`), so that request economy is asserted here as it is against the HTTP
server. Faults are injected per operation and key with `fail(op, key, code)`.
Uploads end inside `upload` (serial): `on_done` is called before it returns.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Tuple

from drone_s3_sync.errors import RemoteError, StoreError
from drone_s3_sync.model import ObjectHeaders, RemoteDetails, RemoteObject
from drone_s3_sync.store import PRECONDITION_FAILED, Fetched

STANDARD = "STANDARD"


@dataclass
class StoredObject:
    body: bytes
    headers: ObjectHeaders
    etag: str
    modified: int  # the store's clock when it was written
    md5_metadata: Optional[str] = None  # hex MD5 recorded in metadata

    @property
    def size(self) -> int:
        return len(self.body)


class MemoryStore:
    def __init__(self, bucket: str = "bucket"):
        self.bucket = bucket
        self.objects: Dict[str, StoredObject] = {}
        self.now = 1_780_000_000  # the server's clock, in whole seconds; moves only when told to
        self.conditional = True  # False: a server that ignores If-Match / If-None-Match
        self.drops: Dict[str, object] = {}
        self.aborted: List[Tuple[str, str]] = []  # ObjectHeaders fields a careless server stores as this value instead
        self.ops: List[Tuple[str, str]] = []  # (operation, key) in the order they were sent
        self._faults: Dict[Tuple[str, str], str] = {}
        self._hooks: Dict[Tuple[str, str], Callable[[], None]] = {}

    # ---------------------------------------------------------------- test helpers
    def fail(self, op: str, key: str, code: str = "InternalError") -> None:
        """Make `op` on `key` fail with `code` ("KeyboardInterrupt" raises one instead)."""
        self._faults[(op, key)] = code

    def on(self, op: str, key: str, action: Callable[[], None]) -> None:
        """Run `action` once, just before `op` on `key` is answered: another
        writer acting at that very moment."""
        self._hooks[(op, key)] = action

    def op_counts(self) -> Counter:
        return Counter(op for op, _ in self.ops)

    def writes(self) -> List[Tuple[str, str]]:
        return [(op, key) for op, key in self.ops if op.startswith(("Put", "Copy", "Delete"))]

    def put(self, key: str, body: bytes, content_type: str = "binary/octet-stream", **fields) -> None:
        """An object written by another tool (no request recorded)."""
        self.objects[key] = StoredObject(body, ObjectHeaders(content_type=content_type, **fields), _md5(body), self.now)

    def edit(self, key: str, **fields) -> None:
        """Headers changed in place by another tool: the ETag stays, the time moves."""
        obj = self.objects[key]
        obj.headers, obj.modified = replace(obj.headers, **fields), self.now

    def _send(self, op: str, key: str = "") -> None:
        self.ops.append((op, key))
        hook = self._hooks.pop((op, key), None)
        if hook is not None:
            hook()
        code = self._faults.get((op, key))
        if code is None:
            return
        if code == "KeyboardInterrupt":
            raise KeyboardInterrupt
        raise StoreError(f"{code}: injected", code)

    # ---------------------------------------------------------------- RemoteStore
    def list(self, prefix: str) -> Dict[str, RemoteObject]:
        keys = sorted(k for k in self.objects if k.startswith(prefix))
        for _ in range(max(1, -(-len(keys) // 1000))):
            try:
                self._send("ListObjectsV2")
            except StoreError as exc:
                raise RemoteError(f'cannot list bucket "{self.bucket}": {exc}') from None
        return {k: RemoteObject(k, self.objects[k].size, self.objects[k].etag,
                                self.objects[k].headers.storage_class or STANDARD,
                                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.objects[k].modified)))
                for k in keys}

    def _object(self, key: str) -> StoredObject:
        obj = self.objects.get(key)
        if obj is None:
            raise StoreError("404: not found", "404")
        return obj

    def details(self, key: str, with_acl: bool = True) -> RemoteDetails:
        self._send("HeadObject", key)
        if with_acl:
            self._send("GetObjectAcl", key)
        obj = self._object(key)
        stored_class = obj.headers.storage_class or STANDARD
        headers = replace(obj.headers, storage_class=stored_class, acl=obj.headers.acl if with_acl else "private")
        return RemoteDetails(headers=headers, sse=obj.headers.encryption, md5=obj.md5_metadata,
                             kms_key=obj.headers.kms_key_id, storage_class=stored_class)

    def acl(self, key: str) -> str:
        self._send("GetObjectAcl", key)
        return self._object(key).headers.acl

    def get_bytes(self, key: str) -> bytes:
        return self.fetch(key).body

    def fetch(self, key: str) -> Fetched:
        self._send("GetObject", key)
        obj = self._object(key)
        return Fetched(obj.body, obj.etag, float(self.now - obj.modified))

    def head_etag(self, key: str) -> Optional[str]:
        self._send("HeadObject", key)
        obj = self.objects.get(key)
        return obj.etag if obj is not None else None

    def _check(self, key: str, if_match: Optional[str], if_none_match: bool) -> None:
        current = self.objects.get(key)
        if (if_none_match and current is not None) or \
                (if_match is not None and (current is None or current.etag != if_match)):
            raise StoreError(f"{PRECONDITION_FAILED}: At least one of the pre-conditions did not hold",
                             PRECONDITION_FAILED)

    def put_bytes(self, key: str, body: bytes, content_type: str, headers: Optional[ObjectHeaders] = None, *,
                  if_match: Optional[str] = None, if_none_match: bool = False) -> str:
        self._send("PutObject", key)
        if self.conditional:
            self._check(key, if_match, if_none_match)
        return self._store(key, body, ObjectHeaders(content_type=content_type))

    def put_redirect(self, key: str, headers: ObjectHeaders) -> str:
        self._send("PutObject", key)
        return self._store(key, b"", headers)

    def copy_headers(self, key: str, headers: ObjectHeaders, details: Optional[RemoteDetails],
                     md5: Optional[str] = None, *, if_match: Optional[str] = None) -> str:
        self._send("CopyObject", key)
        if self.conditional:
            self._check(key, if_match, False)
        obj = self._object(key)
        kept = headers
        if details is not None and not headers.storage_class and details.storage_class != STANDARD:
            kept = replace(kept, storage_class=details.storage_class)
        obj.headers, obj.modified = kept, self.now
        obj.md5_metadata = md5 or (details.md5 if details else None)
        return obj.etag

    def upload(self, body, key: str, headers: ObjectHeaders, md5: Optional[str] = None, *, keep=None,
               on_progress=None, on_done) -> None:
        try:
            self._send("PutObject", key)
            if isinstance(body, str):
                with open(body, "rb") as handle:
                    data = handle.read()
            else:
                data = body.read()
        except (StoreError, OSError) as exc:
            on_done("", exc)
            return
        etag = self._store(key, data, headers, md5)
        if on_progress is not None:
            on_progress(len(data))
        on_done(etag, None)

    def _store(self, key: str, body: bytes, headers: ObjectHeaders, md5: Optional[str] = None) -> str:
        headers = replace(headers, **self.drops)
        etag = _md5(body) if headers.encryption not in ("aws:kms", "aws:kms:dsse") else hashlib.sha1(body).hexdigest()[:32]
        self.objects[key] = StoredObject(body, headers, etag, self.now, md5)
        return etag

    def wait_uploads(self) -> None:
        pass

    def stop_uploads(self, reason: BaseException, wait: float) -> List[Tuple[str, str]]:
        return []

    def delete(self, keys: List[str]) -> List[Tuple[str, str]]:
        failures = []
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            self._send("DeleteObjects", ",".join(batch))
            for key in batch:
                if (("DeleteObject", key)) in self._faults:
                    failures.append((key, f"{self._faults[('DeleteObject', key)]}: injected"))
                else:
                    self.objects.pop(key, None)
        return failures

    def open_uploads(self) -> List[Tuple[str, str]]:
        return []  # uploads end within `upload` here

    def watch_uploads(self, opened) -> None:
        pass

    def abort_upload(self, key: str, upload_id: str) -> None:
        self._send("AbortMultipartUpload", key)
        self.aborted.append((key, upload_id))

    def remove(self, key: str) -> None:
        self._send("DeleteObject", key)
        self.objects.pop(key, None)

    def cloudfront(self, quick: bool = False):
        raise AssertionError("the functional tests pass their own CloudFront client")


def _md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()

