"""S3's vocabulary and limits, as plain values: canned ACLs, storage classes,
server-side encryptions, part sizes. Imports nothing of the project, so that
every module (settings included) can use it."""

from __future__ import annotations

from typing import Iterable, Optional

MiB, GiB = 1 << 20, 1 << 30
MIN_PART, MAX_PART = 5 * MiB, 5 * GiB  # S3's limits for a part (and for a single PutObject)
# AWS advises multipart uploads from 100 MB: below that one PutObject is one
# request instead of a handful, and the ETag is the file's MD5. 16 MiB parts keep
# a 100 MiB file in 7 parallel requests.
MULTIPART_THRESHOLD = 100 * MiB
PART_SIZE = 16 * MiB
COPY_LIMIT = 5 * GiB  # CopyObject's largest source object

CANNED_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)
STANDARD = "STANDARD"  # the class S3 lists for objects written without one
STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "OUTPOSTS",
    "SNOW",
    "EXPRESS_ONEZONE",
)
# Storage classes whose objects CopyObject cannot read until they are restored:
# their headers are changed by uploading the bytes again.
ARCHIVED = frozenset({"GLACIER", "DEEP_ARCHIVE"})
ENCRYPTIONS = ("AES256", "aws:kms", "aws:kms:dsse")
KMS_ENCRYPTIONS = ("aws:kms", "aws:kms:dsse")
MAX_PARTS = 10_000  # parts of one multipart upload


def adjusted_part_size(part_size: int, size: int) -> int:
    """The part size an upload of `size` bytes really uses with `part_size`
    configured: doubled until the object fits in MAX_PARTS parts, then kept
    within S3's part limits (what s3transfer does; a unit test holds the two
    in step)."""
    chunk = part_size
    while -(-size // chunk) > MAX_PARTS:
        chunk *= 2
    return min(max(chunk, MIN_PART), MAX_PART)


ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


def canned_acl(owner_id: Optional[str], grants: Iterable[dict]) -> str:
    """The canned ACL a grant list corresponds to, or "custom"."""
    others = set()
    for grant in grants:
        grantee, permission = grant.get("Grantee", {}), grant.get("Permission")
        if grantee.get("Type") == "CanonicalUser" and grantee.get("ID") == owner_id and permission == "FULL_CONTROL":
            continue
        if grantee.get("Type") == "Group":
            others.add((grantee.get("URI"), permission))
        else:
            others.add(("account", permission))
    return {
        frozenset(): "private",
        frozenset({(ALL_USERS, "READ")}): "public-read",
        frozenset({(ALL_USERS, "READ"), (ALL_USERS, "WRITE")}): "public-read-write",
        frozenset({(AUTH_USERS, "READ")}): "authenticated-read",
        frozenset({("account", "READ")}): "bucket-owner-read",
        frozenset({("account", "FULL_CONTROL")}): "bucket-owner-full-control",
    }.get(frozenset(others), "custom")


# What a server may silently not keep, by the name `ignore_unsupported` uses:
# the ObjectHeaders field written for it.
KEPT_FIELDS = {
    "acl": "acl",
    "redirects": "redirect",
    "metadata": "metadata",
    "cache_control": "cache_control",
    "content_type": "content_type",
    "content_encoding": "content_encoding",
    "content_disposition": "content_disposition",
    "content_language": "content_language",
    "expires": "expires",
}
