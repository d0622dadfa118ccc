"""What must be known about a key before the plan can decide it: one pure
function, `next_need`, asked again after each answer until it says nothing.

A file is hashed only when its object could hold the same bytes (same size),
or when the state or a KMS upload needs its digest; an object's headers are
read (HeadObject + GetObjectAcl) only when its content matches and the state
does not vouch for them. Some needs show only after an earlier answer: the
compressed size of a file decides whether its object's headers matter, and an
MD5 recorded in an object's metadata (known after its HEAD) settles what a
multipart or KMS ETag could not, once the file's whole MD5 is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Mapping, Optional, Tuple

from .config import Settings
from .diff import object_size, redirect_keys
from .digest import PART_SIZE, Digest, candidate_part_sizes, parse_etag
from .model import LocalFile, RemoteDetails, RemoteObject
from .s3vocab import KMS_ENCRYPTIONS
from .state import Entry

HEAD = "head"
HASH = "hash"


@dataclass(frozen=True)
class Need:
    """HASH: read the file for its xxh3, and its MD5 (`md5`) and multipart
    ETags (`part_sizes`); a compressed file is compressed when either is asked
    for. HEAD: read the object's headers and ACL."""

    kind: str
    md5: bool = False
    part_sizes: Tuple[int, ...] = ()


def hash_needs(local: LocalFile, remote: Optional[RemoteObject], entry: Optional[Entry] = None,
               part_size: int = PART_SIZE) -> Optional[Tuple[bool, List[int]]]:
    """(need the MD5?, multipart part sizes to try) or None when no hash can help
    the comparison. With a state entry that describes the object, the xxh3
    digest is all that is needed.

    For a compressed file "the MD5" means compressing it: its size, MD5 and
    multipart ETags are those of the compressed bytes. It is compressed unless
    the state settles it, new files included: the plan shows their compressed
    size, and the bytes are kept for the upload."""
    if local.encoding is not None:
        if entry is not None and entry.xxh and entry.describes(remote):
            return False, []  # the source's fingerprint decides; compressed only if it changed
        if remote is None:
            return True, []
        _, parts = parse_etag(remote.etag)
        # Part sizes that fit the object's size: if the compressed size differs, it changed anyway.
        return True, candidate_part_sizes(remote.size, parts, part_size) if parts else []
    if remote is None or remote.size != local.size:
        return None
    if entry is not None and entry.xxh and entry.describes(remote):
        return False, []
    _, parts = parse_etag(remote.etag)
    if parts:
        return False, candidate_part_sizes(local.size, parts, part_size)
    return True, []


def next_need(local: LocalFile, remote: Optional[RemoteObject], entry: Optional[Entry],
              digest: Optional[Digest], details: Optional[RemoteDetails], encryption: Optional[str] = None, *,
              fetched: bool = False, part_size: int = PART_SIZE) -> Optional[Need]:
    """What to learn next about `local` and its object, given what is known:
    its `digest` so far (perhaps only the xxh3 read with the listing), and the
    object's `details` (`fetched`: from S3, not from the state); `encryption`:
    what the settings give the file. None: the plan can decide it."""
    # A new file or one of another size that the settings encrypt with KMS:
    # its upload records the MD5, which its ETag will not be.
    kms_md5 = encryption in KMS_ENCRYPTIONS and (remote is None or remote.size != local.size)
    need = hash_needs(local, remote, entry, part_size)
    if need is not None or kms_md5:
        md5, part_sizes = need or (False, [])
        md5 = md5 or kms_md5
        if digest is None or (md5 and digest.md5 is None) or any(p not in digest.multipart for p in part_sizes):
            return Need(HASH, md5, tuple(part_sizes))
    if digest is None:
        return None
    if local.encoding is not None and digest.size is None and entry is not None and entry.xxh != digest.xxh:
        # Only its source was read (the state vouched for the object) and it
        # changed: compressed now, for the plan's size and the upload.
        return Need(HASH, True)
    if details is None and remote is not None and remote.size == object_size(local, digest):
        return Need(HEAD)  # the content may match: the headers and ACL decide
    if fetched and details is not None and details.md5 and digest.md5 is None:
        # The object records its MD5 (its ETag is none): the file's whole MD5 compares.
        need = hash_needs(local, remote, None, part_size)
        return Need(HASH, True, tuple(need[1]) if need else ())
    return None


def other_heads(remotes: Mapping[str, RemoteObject], settings: Settings, file_keys: "set",
                known: Mapping[str, RemoteDetails]) -> Iterator[str]:
    """Objects that are not files' and whose headers the plan needs: zero-byte
    redirects, and with `delete` zero-byte orphans (only their headers tell a
    redirect written by an earlier run or by hand, and redirects are never deleted)."""
    seen = set()
    for key, _, _ in redirect_keys(settings):
        remote = remotes.get(key)
        if remote is not None and remote.size == 0 and key not in known and key not in seen:
            seen.add(key)
            yield key
    if settings.delete:
        for key, remote in remotes.items():
            if remote.size == 0 and key not in file_keys and key not in known and key not in seen \
                    and not key.endswith("/"):
                seen.add(key)
                yield key
