"""The arguments of S3 writes for a set of headers: what PutObject and CopyObject
are sent so that an object ends with exactly these headers, and keeps what the
settings leave unset. Pure; the names are S3's (and boto3's) parameters."""

from __future__ import annotations

import base64
import binascii
from typing import Optional

from .model import ObjectHeaders, RemoteDetails
from .s3vocab import ENCRYPTIONS, KMS_ENCRYPTIONS, STANDARD

MD5_METADATA = "md5chksum"  # base64 MD5, the name rclone uses, for objects whose ETag is not an MD5

def md5_from_metadata(value: Optional[str]) -> Optional[str]:
    """The hex MD5 an earlier upload recorded in the object's metadata, or None."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


def header_args(headers: ObjectHeaders, md5: Optional[str] = None) -> dict:
    args = {"ContentType": headers.content_type}
    if headers.content_encoding:
        args["ContentEncoding"] = headers.content_encoding
    if headers.cache_control:
        args["CacheControl"] = headers.cache_control
    metadata = dict(headers.metadata)
    if md5:
        metadata[MD5_METADATA] = base64.b64encode(bytes.fromhex(md5)).decode("ascii")
    if metadata:
        args["Metadata"] = metadata
    # A new object is private by default, and buckets with ACLs disabled (the
    # AWS default since 2023) reject any ACL header but bucket-owner-full-control:
    # so "private" is expressed by sending no ACL at all.
    if headers.acl != "private":
        args["ACL"] = headers.acl
    if headers.redirect:
        args["WebsiteRedirectLocation"] = headers.redirect
    if headers.content_disposition:
        args["ContentDisposition"] = headers.content_disposition
    if headers.content_language:
        args["ContentLanguage"] = headers.content_language
    if headers.expires:
        args["Expires"] = headers.expires
    if headers.storage_class:
        args["StorageClass"] = headers.storage_class
    if headers.encryption:
        args["ServerSideEncryption"] = headers.encryption
        if headers.kms_key_id:
            args["SSEKMSKeyId"] = headers.kms_key_id
    return args


def kept_args(headers: ObjectHeaders, details: Optional[RemoteDetails]) -> dict:
    """Arguments that keep an object's encryption, KMS key and storage class where
    the settings leave them unset, for a write that only changes its headers: a
    copy with REPLACE (or a new upload) would otherwise drop them."""
    if details is None:
        return {}
    args = {}
    encryption = headers.encryption
    if not encryption and details.sse in ENCRYPTIONS:
        encryption = args["ServerSideEncryption"] = details.sse
    if encryption in KMS_ENCRYPTIONS and details.sse in KMS_ENCRYPTIONS and not headers.kms_key_id \
            and details.kms_key:
        args["SSEKMSKeyId"] = details.kms_key
    if not headers.storage_class and details.storage_class and details.storage_class != STANDARD:
        args["StorageClass"] = details.storage_class
    return args
