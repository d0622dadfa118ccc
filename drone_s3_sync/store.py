"""The boundary to S3: what the stages may ask of a bucket.

`remote.S3Store` implements it with botocore and s3transfer; the tests' in-memory
store implements it too. Every method returns project types and raises
`StoreError` for a failed request (`RemoteError` from `list`, which the whole
run depends on); nothing of the SDK crosses this boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Callable, Dict, List, Optional, Protocol, Tuple, Union

from .model import ObjectHeaders, RemoteDetails, RemoteObject

PRECONDITION_FAILED = "PreconditionFailed"  # StoreError.code of a conditional write that did not hold


@dataclass(frozen=True)
class Fetched:
    """An object read whole: its bytes, its ETag, and its age in seconds by
    the server's clock (the time of the answer less the object's LastModified)."""

    body: bytes
    etag: str
    age: float


# Called once when an upload has ended: (the ETag S3 returned, None) or ("", the
# error): a StoreError, or an OSError when the local file could not be read.
UploadDone = Callable[[str, Optional[BaseException]], None]
Body = Union[str, IO[bytes]]  # a file's path, or a seekable file object (a compressed body)


class RemoteStore(Protocol):
    bucket: str

    def list(self, prefix: str) -> Dict[str, RemoteObject]:
        """Every object under `prefix`. Raises RemoteError: nothing can go on without it."""

    def details(self, key: str, with_acl: bool = True) -> RemoteDetails:
        """Headers, ACL and encryption of one object (HeadObject + GetObjectAcl)."""

    def get_bytes(self, key: str) -> bytes: ...

    def acl(self, key: str) -> str:
        """The object's canned ACL (GetObjectAcl; "custom" for other grants)."""

    def fetch(self, key: str) -> Fetched:
        """The object whole, with its ETag and age; StoreError with code "404" if none."""

    def head_etag(self, key: str) -> Optional[str]:
        """The object's ETag, None when there is no such object."""

    def put_bytes(self, key: str, body: bytes, content_type: str, headers: Optional[ObjectHeaders] = None, *,
                  if_match: Optional[str] = None, if_none_match: bool = False) -> str:
        """A small object of the tool's own; returns its ETag. `if_match`: only
        over the object with that ETag; `if_none_match`: only if there is no
        such object. A condition that does not hold raises StoreError with
        code PRECONDITION_FAILED."""

    def put_redirect(self, key: str, headers: ObjectHeaders) -> str:
        """A zero-byte object with a website redirect; returns its ETag."""

    def copy_headers(self, key: str, headers: ObjectHeaders, details: Optional[RemoteDetails],
                     md5: Optional[str] = None, *, if_match: Optional[str] = None) -> str:
        """Rewrites an object's headers in place; returns the ETag of the copy.
        `if_match`: only if the object still has that ETag (PRECONDITION_FAILED if not)."""

    def upload(self, body: Body, key: str, headers: ObjectHeaders, md5: Optional[str] = None, *,
               keep: Optional[RemoteDetails] = None, on_progress: Optional[Callable[[int], None]] = None,
               on_done: UploadDone) -> None:
        """Starts an upload and returns; `on_done` is called once when it ends,
        on any thread. Raises at once only for arguments it cannot take."""

    def wait_uploads(self) -> None:
        """Returns when every upload started has ended."""

    def stop_uploads(self, reason: BaseException, wait: float) -> List[Tuple[str, str]]:
        """Cancels unfinished uploads, aborting their multipart uploads;
        (key, reason) of each that could not be aborted."""

    def delete(self, keys: List[str]) -> List[Tuple[str, str]]:
        """Deletes `keys`; (key, reason) of each that failed."""

    def remove(self, key: str) -> None:
        """Deletes one object of the tool's own (DeleteObject)."""

    def open_uploads(self) -> List[Tuple[str, str]]:
        """(key, upload id) of this run's multipart uploads begun and not ended."""

    def watch_uploads(self, opened: Callable[[], None]) -> None:
        """`opened()` is called whenever one of this run's multipart uploads begins."""

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Aborts a multipart upload (one already gone is no error)."""
