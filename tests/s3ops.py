"""Which S3 or CloudFront operation an HTTP request to a local server is.

Shared by the test suite's recording server (conftest.py) and scripts/bench,
which both count requests per operation on the server side. No pytest here.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple
from urllib.parse import parse_qsl, unquote, urlsplit


def request_target(environ: Mapping[str, Any]) -> Tuple[str, str, dict]:
    """(method, decoded path, query) of a WSGI request."""
    method = environ.get("REQUEST_METHOD", "GET").upper()
    # RAW_URI is the request target exactly as sent; PATH_INFO has already been
    # unquoted as latin-1, which mangles UTF-8 keys.
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
    split = urlsplit(raw)
    path = unquote(split.path or "/", encoding="utf-8", errors="replace")
    query = dict(parse_qsl(split.query or environ.get("QUERY_STRING", ""), keep_blank_values=True))
    return method, path, query


_BUCKET_PUT_SUBRESOURCES = {
    "acl": "PutBucketAcl",
    "ownershipControls": "PutBucketOwnershipControls",
    "policy": "PutBucketPolicy",
    "website": "PutBucketWebsite",
    "versioning": "PutBucketVersioning",
    "cors": "PutBucketCors",
    "tagging": "PutBucketTagging",
    "publicAccessBlock": "PutPublicAccessBlock",
    "encryption": "PutBucketEncryption",
    "lifecycle": "PutBucketLifecycleConfiguration",
    "notification": "PutBucketNotificationConfiguration",
    "logging": "PutBucketLogging",
}
_BUCKET_GET_SUBRESOURCES = {
    "uploads": "ListMultipartUploads",
    "versions": "ListObjectVersions",
    "location": "GetBucketLocation",
    "acl": "GetBucketAcl",
    "ownershipControls": "GetBucketOwnershipControls",
    "policy": "GetBucketPolicy",
    "website": "GetBucketWebsite",
    "versioning": "GetBucketVersioning",
    "cors": "GetBucketCors",
    "tagging": "GetBucketTagging",
    "publicAccessBlock": "GetPublicAccessBlock",
    "encryption": "GetBucketEncryption",
    "lifecycle": "GetBucketLifecycleConfiguration",
}
_BUCKET_DELETE_SUBRESOURCES = {
    "ownershipControls": "DeleteBucketOwnershipControls",
    "policy": "DeleteBucketPolicy",
    "website": "DeleteBucketWebsite",
    "cors": "DeleteBucketCors",
    "tagging": "DeleteBucketTagging",
    "publicAccessBlock": "DeletePublicAccessBlock",
    "encryption": "DeleteBucketEncryption",
    "lifecycle": "DeleteBucketLifecycle",
}


def s3_operation(method: str, key: Optional[str], query: Mapping[str, str], headers: Mapping[str, str]) -> Optional[str]:
    """The S3 operation a path-style request is, or None when unknown.
    `key` is None for bucket-level requests; `headers` lower-case names."""
    copy = "x-amz-copy-source" in headers
    if key is None:  # bucket level
        if method == "PUT":
            for sub, name in _BUCKET_PUT_SUBRESOURCES.items():
                if sub in query:
                    return name
            return "CreateBucket"
        if method == "GET":
            if query.get("list-type") == "2":
                return "ListObjectsV2"
            for sub, name in _BUCKET_GET_SUBRESOURCES.items():
                if sub in query:
                    return name
            return "ListObjects"
        if method == "HEAD":
            return "HeadBucket"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        if method == "DELETE":
            for sub, name in _BUCKET_DELETE_SUBRESOURCES.items():
                if sub in query:
                    return name
            return "DeleteBucket"
        return None
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        if "acl" in query:
            return "PutObjectAcl"
        if "tagging" in query:
            return "PutObjectTagging"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        if "restore" in query:
            return "RestoreObject"
        return None
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload"
        if "tagging" in query:
            return "DeleteObjectTagging"
        return "DeleteObject"
    if method == "GET":
        if "acl" in query:
            return "GetObjectAcl"
        if "tagging" in query:
            return "GetObjectTagging"
        if "uploadId" in query:
            return "ListParts"
        if "attributes" in query:
            return "GetObjectAttributes"
        return "GetObject"
    if method == "HEAD":
        return "HeadObject"
    return None


def cloudfront_operation(method: str, path: str) -> Optional[str]:
    # /2020-05-31/distribution[/<id>[/config|/invalidation[/<inv-id>]]]
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2 or parts[1] != "distribution":
        return None
    rest = parts[2:]
    if not rest:
        return {"POST": "CreateDistribution", "GET": "ListDistributions"}.get(method)
    if len(rest) == 1:
        return {"GET": "GetDistribution", "DELETE": "DeleteDistribution"}.get(method)
    if rest[1] == "config":
        return {"GET": "GetDistributionConfig", "PUT": "UpdateDistribution"}.get(method)
    if rest[1] == "invalidation":
        if len(rest) == 2:
            return {"POST": "CreateInvalidation", "GET": "ListInvalidations"}.get(method)
        return "GetInvalidation" if method == "GET" else None
    return None
