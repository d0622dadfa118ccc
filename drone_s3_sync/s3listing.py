"""ListObjectsV2 pages read straight from their XML, before botocore's parser:
for a large bucket, botocore's shape-by-shape parsing of every <Contents>
costs more client time than anything else in a run with nothing to do.
Imports nothing of the SDK: `remote.py` registers `_take_listing` as a hook."""

from __future__ import annotations

from typing import Dict, Optional
from urllib.parse import unquote_plus
from xml.etree import ElementTree

from .s3vocab import STANDARD

_LISTED = "DroneS3SyncListed"  # where _take_listing leaves a page's (key, size, etag, class, modified) rows

_CLASSES: Dict[str, str] = {}


def storage_class(listed: Optional[str]) -> str:
    """A listed storage class, one shared string per class (absent means STANDARD)."""
    if not listed:
        return STANDARD
    return _CLASSES.setdefault(listed, listed)


def _take_listing(response_dict, customized_response_dict, **kwargs):
    """Reads the objects of a ListObjectsV2 page before botocore's parser does.

    botocore turns each <Contents> into a dict shape by shape, which for large
    buckets costs more client time than anything else in a no-change run. Here
    the rows become (key, size, etag, storage class) tuples in one pass and are removed from the
    body, so botocore parses only the page's few remaining fields (continuation
    token, truncation flag). Anything unexpected is left to botocore untouched.
    """
    if response_dict.get("status_code") != 200:
        return
    try:
        root = ElementTree.fromstring(response_dict["body"])
    except (ElementTree.ParseError, TypeError, KeyError):
        return
    ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag != ns + "ListBucketResult":
        return
    url_encoded = root.findtext(ns + "EncodingType") == "url"
    rows = []
    contents = root.findall(ns + "Contents")
    for item in contents:
        key = item.findtext(ns + "Key")
        if key is None:
            return
        rows.append((unquote_plus(key) if url_encoded else key, int(item.findtext(ns + "Size") or 0),
                     (item.findtext(ns + "ETag") or "").strip('"').lower(),
                     storage_class(item.findtext(ns + "StorageClass")), listed_time(item.findtext(ns + "LastModified"))))
    for item in contents:
        root.remove(item)
    response_dict["body"] = ElementTree.tostring(root)
    customized_response_dict[_LISTED] = rows


def listed_time(text: Optional[str]) -> str:
    """A listing's LastModified ("2026-12-04T03:47:21.000Z") to the second, as
    RemoteObject.modified keeps it; "" when it is not in that form."""
    if not text or len(text) < 19 or text[10] != "T":
        return ""
    return text[:19]
