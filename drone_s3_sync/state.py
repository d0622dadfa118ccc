"""The state object: what each object was given, so that a run with nothing to
do needs no request per object.

After each run that wrote something, one small object next to the files,
`<target>.drone-s3-sync-state.json.gz`, records the bucket and target it
describes and, for every key, the ETag and size S3 reported, an xxh3-128
digest of the local bytes (for a file the `compress` setting compresses: of
the source file, prefixed with the encoding, as in "br:<xxh3>"; the ETag and
size are those of the compressed object), and the headers and ACL the object
was written with. A later run trusts an entry only while the listing shows the
same ETag and size and the object not written after the state object (see
statefile.py): any write by another tool sends that object down the full check
(HeadObject, GetObjectAcl, MD5).
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from dataclasses import dataclass
from typing import Dict, Mapping, NamedTuple, Optional, Set, Tuple, TYPE_CHECKING

if TYPE_CHECKING:
    from .digest import Digest

import xxhash

from .keys import STATE_NAME, state_key  # noqa: F401 (re-exported)
from .model import SLOTS, Kind, ObjectHeaders, Plan, Reason, RemoteObject, Summary

log = logging.getLogger("drone_s3_sync")

FORMAT = 1
EMPTY_XXH = xxhash.xxh3_128(b"").hexdigest()


@dataclass(frozen=True, **SLOTS)
class Entry:
    etag: str
    size: int
    xxh: Optional[str]  # xxh3-128 of the local bytes that produced the object; "gzip:<xxh3>" when compressed
    headers: ObjectHeaders

    def describes(self, remote: Optional[RemoteObject]) -> bool:
        """True while the listing shows the object this entry was written for."""
        return remote is not None and remote.etag == self.etag and remote.size == self.size


# A headers row: the six fields every version writes, then the later ones in this
# order, written up to the last one that is set. A row written before they
# existed (or with them unset) is six long: missing fields are unset.
_LATER_FIELDS = ("content_disposition", "content_language", "expires", "storage_class", "encryption", "kms_key_id")


def _headers_row(h: ObjectHeaders) -> list:
    row = [h.content_type, h.content_encoding, h.cache_control, [list(p) for p in h.metadata], h.acl, h.redirect]
    row.extend(getattr(h, name) for name in _LATER_FIELDS)
    while len(row) > 6 and row[-1] is None:
        row.pop()
    return row


def _headers_of(row: list) -> ObjectHeaders:
    later = {name: (None if value is None else str(value)) for name, value in zip(_LATER_FIELDS, row[6:])}
    return ObjectHeaders(content_type=row[0], content_encoding=row[1], cache_control=row[2],
                         metadata=tuple((str(k), str(v)) for k, v in row[3]), acl=row[4], redirect=row[5], **later)


def encode(entries: Mapping[str, Entry], owner: Optional[Tuple[str, str]] = None,
           conditional_writes: bool = False, removed: Optional[Mapping[str, float]] = None,
           verified: Optional[Tuple[str, Tuple[str, ...]]] = None, scrub: int = 0) -> bytes:
    """Deterministic bytes: the same entries always give the same object.
    `owner`: the (bucket, target) the state describes, recorded so that a state
    object copied to another bucket or target is not trusted there.
    `conditional_writes`: the server was seen to honour If-None-Match, so that
    later runs need not test it again. `removed`: for delete_grace, when each
    object kept after its file was removed was first seen so (epoch seconds).
    `verified`: (endpoint, kinds) the server was seen to keep (readback.py)."""
    rows, index = [], {}
    objects = {}
    for key in sorted(entries):
        entry = entries[key]
        row = json.dumps(_headers_row(entry.headers))
        if row not in index:
            index[row] = len(rows)
            rows.append(_headers_row(entry.headers))
        objects[key] = [entry.etag, entry.size, entry.xxh, index[row]]
    document = {"format": FORMAT, "tool": "drone-s3-sync", "headers": rows, "objects": objects}
    if owner is not None:
        document["bucket"], document["target"] = owner
    if conditional_writes:
        document["conditional_writes"] = True
    if removed:
        document["removed"] = {key: int(removed[key]) for key in sorted(removed)}
    if scrub:
        document["scrub"] = scrub
    if verified is not None and verified[1]:
        document["verified"] = {"endpoint": verified[0], "kinds": sorted(verified[1])}
    raw = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return gzip.compress(raw, compresslevel=6, mtime=0)


def decode(data: bytes) -> Dict[str, Entry]:
    """Entries from a state object; an unreadable one is treated as absent."""
    return read(data)[0]


class Document(NamedTuple):
    entries: Dict[str, Entry]
    owner: Optional[Tuple[str, str]] = None  # (bucket, target); None: written by an earlier release
    conditional_writes: bool = False
    removed: Dict[str, float] = {}
    verified: Optional[Tuple[str, Tuple[str, ...]]] = None
    scrub: int = 0  # where the next ACL scrub begins, in the sorted keys


def encode_document(doc: Document) -> bytes:
    return encode(doc.entries, doc.owner, doc.conditional_writes, doc.removed, doc.verified, doc.scrub)


def read(data: bytes) -> Document:
    """Entries from a state object, the (bucket, target) it was written for,
    and whether the server is known to honour conditional writes."""
    try:
        document = json.loads(gzip.decompress(data).decode("utf-8"))
        if document.get("format") != FORMAT:
            log.warning("state object has format %r; ignoring it", document.get("format"))
            return Document({})
        headers = [_headers_of(row) for row in document["headers"]]
        owner = None
        if isinstance(document.get("bucket"), str) and isinstance(document.get("target"), str):
            owner = (document["bucket"], document["target"])
        return Document({key: Entry(etag=str(v[0]), size=int(v[1]), xxh=v[2], headers=headers[int(v[3])])
                         for key, v in document["objects"].items()}, owner,
                        document.get("conditional_writes") is True,
                        {str(k): float(v) for k, v in (document.get("removed") or {}).items()},
                        _verified(document.get("verified")), int(document.get("scrub") or 0))
    except (OSError, EOFError, zlib.error, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        log.warning("state object is unreadable (%s); checking every object instead", exc)
        return Document({})


def _verified(value) -> Optional[Tuple[str, Tuple[str, ...]]]:
    if not isinstance(value, dict):
        return None
    return str(value.get("endpoint", "")), tuple(sorted(str(k) for k in value.get("kinds") or ()))


def entries_at_risk(plan: Plan, stored: Mapping[str, Entry], remotes: Mapping[str, RemoteObject]) -> Set[str]:
    """Keys whose stored entry a write of this run could turn into a lie.

    An entry is trusted while the listing shows its ETag and size. A header
    copy or a rewritten redirect keeps the ETag; an upload of the bytes the
    object already has (a header change above the copy limit) recreates it;
    and an upload over an object that another tool replaced can recreate the
    very ETag a stale entry names. If the run then stopped before recording
    the new state, or that write failed, such an entry would vouch for headers
    the object no longer has. An upload of new bytes over the object an entry
    describes is safe (the new ETag differs), and so is one with the headers
    the entry records.
    """
    keys = set()
    for action in plan.actions:
        entry = stored.get(action.key)
        if entry is None or action.kind in (Kind.SKIP, Kind.DELETE):
            continue
        if action.kind is not Kind.UPLOAD:
            keys.add(action.key)
        elif entry.headers != action.headers and (action.reason in (Reason.HEADERS, Reason.ACL)
                                                  or not entry.describes(remotes.get(action.key))):
            keys.add(action.key)
    return keys


def next_state(summary: Summary, remotes: Mapping[str, RemoteObject],
               digests: Mapping[str, "Digest"]) -> Dict[str, Entry]:
    """Entries for every object the run left as the settings want it.

    Unchanged objects keep their listed ETag; written ones get the ETag S3
    returned for the write. Failed, deleted and unverified keys get no entry,
    so the next run checks them with S3.
    """
    outcomes = {o.action.key: o for o in summary.outcomes}
    entries: Dict[str, Entry] = {}
    for action in summary.plan.actions:
        if action.kind is Kind.DELETE or action.headers is None:
            continue
        if action.kind is Kind.SKIP:
            remote = remotes.get(action.key)
            if action.reason is not Reason.UNCHANGED or remote is None:
                continue
            etag, size = remote.etag, remote.size
        else:
            outcome = outcomes.get(action.key)
            if outcome is None or not outcome.ok or not outcome.etag:
                continue
            etag, size = outcome.etag, action.size
        if action.local is None:  # a redirect: zero bytes
            xxh: Optional[str] = EMPTY_XXH
        else:
            digest = digests.get(action.key)
            xxh = digest.xxh if digest is not None else None
        entries[action.key] = Entry(etag=etag, size=size, xxh=xxh, headers=action.headers)
    return entries
