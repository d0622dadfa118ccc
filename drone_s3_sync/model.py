"""The values that flow between the pipeline stages. Nothing else lives here."""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

# A run holds several of these per file (100,000 files is a normal site):
# __slots__ (Python 3.10+) keeps each instance to a fraction of a dict-backed one.
SLOTS = {"slots": True} if sys.version_info >= (3, 10) else {}


@dataclass(frozen=True, **SLOTS)
class LocalFile:
    """A file under the source; `rel` is its NFC, POSIX path relative to the source.
    `encoding`: "gzip" or "br" when the `compress` setting compresses it for upload."""

    rel: str
    key: str
    path: str
    size: int
    mtime_ns: int
    encoding: Optional[str] = None


@dataclass(frozen=True, **SLOTS)
class RemoteObject:
    """An object as the bucket listing describes it (no per-object request)."""

    key: str
    size: int
    etag: str  # without quotes, lower case
    storage_class: str = "STANDARD"  # as listed; S3 lists every object's class
    # When it was last written, by the server's clock, to the second, as
    # "YYYY-MM-DDTHH:MM:SS" (UTC; compares as text); "" when the server did not say.
    modified: str = ""


@dataclass(frozen=True, **SLOTS)
class ObjectHeaders:
    """What a settings rule set says an object should carry; compared by value.

    `metadata` is a sorted tuple of (lower-case name, value) so that two header
    sets compare equal regardless of how S3 cased the names. For the fields in
    KEPT_WHEN_UNSET, None in a wanted header set means "whatever the object has"
    (a lifecycle rule's storage class, the bucket's default encryption); for
    the others None means "no such header".
    """

    content_type: str
    content_encoding: Optional[str] = None
    cache_control: Optional[str] = None
    metadata: Tuple[Tuple[str, str], ...] = ()
    acl: str = "private"
    redirect: Optional[str] = None
    content_disposition: Optional[str] = None
    content_language: Optional[str] = None
    expires: Optional[str] = None  # an HTTP-date, as S3 returns it
    storage_class: Optional[str] = None
    encryption: Optional[str] = None  # "AES256", "aws:kms", "aws:kms:dsse"
    kms_key_id: Optional[str] = None

    def differences(self, other: "ObjectHeaders") -> List[str]:
        """Names of the fields in which `other` differs from what this one wants."""
        names = []
        for name in HEADER_FIELDS:
            wanted = getattr(self, name)
            if wanted is None and name in KEPT_WHEN_UNSET:
                continue
            if wanted != getattr(other, name):
                names.append(name)
        return names


HEADER_FIELDS = tuple(ObjectHeaders.__dataclass_fields__)
KEPT_WHEN_UNSET = frozenset({"storage_class", "encryption", "kms_key_id"})


@dataclass(frozen=True, **SLOTS)
class RemoteDetails:
    """What a HeadObject (and GetObjectAcl) told about one object."""

    headers: ObjectHeaders
    sse: Optional[str] = None  # "aws:kms", "AES256", "SSE-C", ...
    md5: Optional[str] = None  # hex MD5 recorded in metadata by an earlier upload
    kms_key: Optional[str] = None
    storage_class: Optional[str] = None


class Kind(enum.Enum):
    UPLOAD = "upload"
    UPDATE = "update"  # metadata-only copy onto itself
    REDIRECT = "redirect"
    DELETE = "delete"
    SKIP = "skip"


class Reason(enum.Enum):
    NEW = "new"
    CONTENT = "content changed"
    # A multipart ETag that no part size tried reproduces, with nothing else to
    # compare: the bytes may be the same, uploaded by a tool with other parts.
    PART_SIZE = "part size unknown"
    SIZE = "size changed"
    HEADERS = "headers changed"
    ACL = "acl changed"
    REDIRECT_CHANGED = "redirect changed"
    ORPHAN = "not in source"
    GRACE = "kept for delete_grace"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, **SLOTS)
class Action:
    kind: Kind
    key: str
    reason: Reason
    local: Optional[LocalFile] = None
    headers: Optional[ObjectHeaders] = None
    size: int = 0
    detail: str = ""  # e.g. which header fields differ
    md5: Optional[str] = None  # recorded as metadata when the ETag will not be an MD5
    # For header changes (a copy, or an upload where a copy cannot be made): what
    # the object has that the write must keep.
    remote: Optional[RemoteDetails] = None
    # The ETag the listing showed for a header update: the copy applies only to
    # that very object (CopySourceIfMatch), not to one another run wrote since.
    listed_etag: str = ""

    @property
    def writes(self) -> bool:
        return self.kind is not Kind.SKIP


@dataclass(frozen=True)
class Plan:
    """Every key the run looked at, each in exactly one action, sorted by key.
    Immutable: a stage that changes what is to be done makes a new plan."""

    actions: Tuple[Action, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", tuple(self.actions))

    def of(self, *kinds: Kind) -> List[Action]:
        return [a for a in self.actions if a.kind in kinds]

    def counts(self) -> Dict[Kind, int]:
        result = {kind: 0 for kind in Kind}
        for action in self.actions:
            result[action.kind] += 1
        return result


@dataclass(frozen=True, **SLOTS)
class Outcome:
    action: Action
    ok: bool
    error: str = ""
    seconds: float = 0.0
    etag: str = ""  # what S3 returned for a write that succeeded ("" if it returned none)


class Stage(enum.Enum):
    """The stage a run is in; the write stages decide what an interruption means."""

    START = "start"
    PLAN = "plan"
    TRANSFER = "transfer"
    DELETE = "delete"
    FINISH = "finish"


@dataclass
class Summary:
    plan: Plan
    outcomes: List[Outcome] = field(default_factory=list)
    skipped_deletes: int = 0
    delete_blocked_reason: str = ""
    invalidation_paths: List[str] = field(default_factory=list)
    invalidation_ids: List[str] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False
    started: float = 0.0  # when the run began, seconds since the epoch
    # Seconds spent in each stage that ran: scan, list, hash, plan, transfer,
    # delete, state, invalidate (scan and list run at the same time).
    timings: Dict[str, float] = field(default_factory=dict)
    stage: Stage = Stage.START
    waves: List[str] = field(default_factory=list)  # the write waves, "name (writes)", in order
    wave: str = ""  # the last wave begun
    removed: Dict[str, float] = field(default_factory=dict)  # delete_grace: key -> when first seen removed

    @property
    def failures(self) -> List[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def exit_code(self) -> int:
        return 1 if (self.failures or self.errors) else 0
