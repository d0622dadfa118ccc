#!/usr/bin/env python3
"""A cheap in-memory S3 endpoint for the benchmark: stdlib asyncio, 127.0.0.1 only.

moto spends about as much CPU per request as the clients it serves; on a small
machine that hides what users see against real S3, where the server costs the
client nothing and each request waits a round trip. This server does the least
S3 work that aws-cli, s5cmd, rclone, s3cmd and drone-s3-sync need for sync
runs, and can add a fixed latency to every request (`asyncio.sleep`, so waiting
costs no CPU).

Supported, path-style only (`http://127.0.0.1:PORT/BUCKET/KEY`):

- ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation
- ListObjectsV2 and ListObjects (V1): prefix, delimiter, max-keys, pagination
  (continuation-token / start-after, marker), encoding-type=url
- PutObject, GetObject (with a single byte range), HeadObject, DeleteObject,
  DeleteObjects, CopyObject (x-amz-metadata-directive COPY or REPLACE)
- CreateMultipartUpload, UploadPart, CompleteMultipartUpload (ETag
  md5-of-part-md5s-N), AbortMultipartUpload, ListMultipartUploads
- GetObjectAcl / PutObjectAcl (canned ACLs; a body is stored as it is)

Signatures are not checked. Bodies may come with Content-Length, HTTP chunked
transfer encoding, and/or aws-chunked content encoding (STREAMING-* payloads,
signed or not, with trailers); what is stored is the decoded payload.
Object headers kept: Content-Type, Cache-Control, Content-Encoding,
Content-Disposition, Content-Language, Expires, x-amz-meta-*,
x-amz-website-redirect-location, x-amz-storage-class, and the ACL.

Bounded: it listens on 127.0.0.1 only, refuses objects once the stored bytes
would exceed --max-bytes, stops when its parent process goes away (--parent)
and after --max-seconds.

Requests are counted by operation (tests/s3ops.py, shared with the test
suite's recording server and the moto layer of scripts/bench.py) and served
as JSON at /__bench__/stats and /__bench__/reset, like the moto layer.

Run: python scripts/fast_s3.py [--port 0] [--port-file FILE] [--latency-ms N]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import json
import os
import sys
import time
import uuid
from email.utils import formatdate
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, quote, unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from s3ops import s3_operation  # noqa: E402  (shared with the test suite's server)

HOST = "127.0.0.1"
ADMIN = "/__bench__"
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
OWNER_ID = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
KEPT_HEADERS = ("content-type", "cache-control", "content-encoding", "content-disposition", "content-language",
                "expires", "x-amz-website-redirect-location", "x-amz-storage-class")
MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_BYTES = 8 << 30


class Obj:
    __slots__ = ("data", "etag", "headers", "modified", "acl")

    def __init__(self, data: bytes, etag: str, headers: Dict[str, str], modified: float, acl: str):
        self.data, self.etag, self.headers, self.modified, self.acl = data, etag, headers, modified, acl


class Bucket:
    __slots__ = ("objects", "_sorted", "uploads", "created")

    def __init__(self) -> None:
        self.objects: Dict[str, Obj] = {}
        self._sorted: Optional[List[str]] = []
        self.uploads: Dict[str, "Upload"] = {}
        self.created = time.time()

    def put(self, key: str, obj: Obj) -> None:
        if key not in self.objects:
            self._sorted = None  # sorted again at the next listing: one sort per batch of writes
        self.objects[key] = obj

    def delete(self, key: str) -> bool:
        if self.objects.pop(key, None) is None:
            return False
        self._sorted = None
        return True

    def keys(self) -> List[str]:
        if self._sorted is None:
            self._sorted = sorted(self.objects)
        return self._sorted


class Upload:
    __slots__ = ("key", "headers", "acl", "parts", "started")

    def __init__(self, key: str, headers: Dict[str, str], acl: str):
        self.key, self.headers, self.acl = key, headers, acl
        self.parts: Dict[int, Tuple[bytes, bytes]] = {}  # number -> (data, md5 digest)
        self.started = time.time()


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str = "", resource: str = ""):
        super().__init__(code)
        self.status, self.code, self.message, self.resource = status, code, message or code, resource


REASONS = {200: "OK", 204: "No Content", 206: "Partial Content", 304: "Not Modified", 400: "Bad Request",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
           411: "Length Required", 413: "Payload Too Large", 416: "Range Not Satisfiable",
           500: "Internal Server Error", 501: "Not Implemented", 507: "Insufficient Storage"}


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def http_date(t: float) -> str:
    return formatdate(t, usegmt=True)


def decode_aws_chunked(body: bytes) -> bytes:
    """The payload of an aws-chunked body: `hex-size[;ext]\\r\\n data \\r\\n` ...
    ending with a 0-size chunk, then optional trailers."""
    out = []
    pos = 0
    end = len(body)
    while pos < end:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise S3Error(400, "IncompleteBody", "aws-chunked chunk header without CRLF")
        size = int(body[pos:eol].split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            break
        start = eol + 2
        out.append(body[start:start + size])
        pos = start + size + 2
    return b"".join(out)


def acl_xml(acl: str) -> bytes:
    grants = [f'<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">'
              f"<ID>{OWNER_ID}</ID><DisplayName>bench</DisplayName></Grantee>"
              f"<Permission>FULL_CONTROL</Permission></Grant>"]

    def group(uri: str, permission: str) -> str:
        return (f'<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group">'
                f"<URI>{uri}</URI></Grantee><Permission>{permission}</Permission></Grant>")

    if acl in ("public-read", "public-read-write"):
        grants.append(group(ALL_USERS, "READ"))
    if acl == "public-read-write":
        grants.append(group(ALL_USERS, "WRITE"))
    if acl == "authenticated-read":
        grants.append(group(AUTH_USERS, "READ"))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<AccessControlPolicy xmlns="{XMLNS}"><Owner>'
            f"<ID>{OWNER_ID}</ID><DisplayName>bench</DisplayName></Owner><AccessControlList>"
            + "".join(grants) + "</AccessControlList></AccessControlPolicy>").encode()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def xml_children(body: bytes, name: str) -> List[ElementTree.Element]:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise S3Error(400, "MalformedXML", str(exc))
    return [el for el in root.iter() if _local(el.tag) == name]


def xml_text(el: ElementTree.Element, name: str) -> Optional[str]:
    for child in el:
        if _local(child.tag) == name:
            return child.text or ""
    return None


class Store:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.buckets: Dict[str, Bucket] = {}
        self.max_bytes = max_bytes
        self.stored = 0  # bytes of objects and parts held

    # -- helpers
    def bucket(self, name: str) -> Bucket:
        b = self.buckets.get(name)
        if b is None:
            raise S3Error(404, "NoSuchBucket", "The specified bucket does not exist", name)
        return b

    def reserve(self, size: int) -> None:
        if self.stored + size > self.max_bytes:
            raise S3Error(507, "InsufficientStorage", f"server limit of {self.max_bytes} bytes reached")
        self.stored += size

    def release(self, size: int) -> None:
        self.stored = max(0, self.stored - size)

    def put(self, b: Bucket, key: str, obj: Obj) -> None:
        old = b.objects.get(key)
        freed = len(old.data) if old is not None else 0
        self.release(freed)
        try:
            self.reserve(len(obj.data))
        except S3Error:
            self.stored += freed  # the old object stays
            raise
        b.put(key, obj)

    def remove(self, b: Bucket, key: str) -> None:
        old = b.objects.get(key)
        if old is not None:
            self.release(len(old.data))
            b.delete(key)


def object_headers(headers: Dict[str, str]) -> Dict[str, str]:
    kept = {}
    for name, value in headers.items():
        if name in KEPT_HEADERS or name.startswith("x-amz-meta-"):
            kept[name] = value
    enc = kept.get("content-encoding")
    if enc is not None and "aws-chunked" in enc:
        rest = ",".join(p.strip() for p in enc.split(",") if p.strip() and p.strip() != "aws-chunked")
        if rest:
            kept["content-encoding"] = rest
        else:
            del kept["content-encoding"]
    kept.setdefault("content-type", "binary/octet-stream")
    return kept


def canned_acl(headers: Dict[str, str]) -> str:
    return headers.get("x-amz-acl", "private")


def _page(keys: List[str], start: int, prefix: str, delimiter: str,
          max_keys: int) -> Tuple[List[str], List[str], bool, str]:
    """(keys, common prefixes, truncated, last key or prefix returned) from sorted `keys[start:]`."""
    contents: List[str] = []
    prefixes: List[str] = []
    last = ""
    i = start
    n = len(keys)
    while i < n:
        key = keys[i]
        if prefix and not key.startswith(prefix):
            break
        if len(contents) + len(prefixes) >= max_keys:
            return contents, prefixes, True, last
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[:cut + len(delimiter)]
                prefixes.append(common)
                last = common
                # Skip every key under this common prefix.
                i = bisect.bisect_left(keys, common + "\U0010ffff", i)
                continue
        contents.append(key)
        last = key
        i += 1
    return contents, prefixes, False, last


def list_objects(store: Store, name: str, query: Dict[str, str], v2: bool) -> bytes:
    b = store.bucket(name)
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter", "")
    try:
        max_keys = max(0, min(1000, int(query.get("max-keys", "1000"))))
    except ValueError:
        raise S3Error(400, "InvalidArgument", "max-keys")
    url = query.get("encoding-type") == "url"
    keys = b.keys()
    if v2:
        after = query.get("continuation-token") or query.get("start-after") or ""
    else:
        after = query.get("marker", "")
    start = bisect.bisect_left(keys, prefix)
    if after:
        start = max(start, bisect.bisect_right(keys, after))
        if delimiter and after.endswith(delimiter):
            start = max(start, bisect.bisect_left(keys, after + "\U0010ffff"))
    contents, prefixes, truncated, last = _page(keys, start, prefix, delimiter, max_keys)

    def enc(text: str) -> str:
        return quote(text, safe="/") if url else escape(text)

    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{XMLNS}"><Name>{escape(name)}</Name>'
           f"<Prefix>{enc(prefix)}</Prefix><MaxKeys>{max_keys}</MaxKeys>"]
    if delimiter:
        out.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    if url:
        out.append("<EncodingType>url</EncodingType>")
    out.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if v2:
        out.append(f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>")
        if query.get("continuation-token"):
            out.append(f"<ContinuationToken>{escape(query['continuation-token'])}</ContinuationToken>")
        if query.get("start-after"):
            out.append(f"<StartAfter>{enc(query['start-after'])}</StartAfter>")
        if truncated:
            out.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
    else:
        out.append(f"<Marker>{enc(after)}</Marker>")
        if truncated:
            out.append(f"<NextMarker>{enc(last)}</NextMarker>")
    owner = (f"<Owner><ID>{OWNER_ID}</ID><DisplayName>bench</DisplayName></Owner>"
             if not v2 or query.get("fetch-owner") == "true" else "")
    objects = b.objects
    for key in contents:
        o = objects[key]
        out.append(f"<Contents><Key>{enc(key)}</Key><LastModified>{iso(o.modified)}</LastModified>"
                   f"<ETag>&quot;{o.etag}&quot;</ETag><Size>{len(o.data)}</Size>{owner}"
                   f"<StorageClass>{o.headers.get('x-amz-storage-class', 'STANDARD')}</StorageClass></Contents>")
    for p in prefixes:
        out.append(f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>")
    out.append("</ListBucketResult>")
    return "".join(out).encode()


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int = 200, headers: Optional[List[Tuple[str, str]]] = None, body: bytes = b""):
        self.status, self.headers, self.body = status, headers or [], body


def xml_response(body: bytes, status: int = 200, headers: Optional[List[Tuple[str, str]]] = None) -> Response:
    return Response(status, [("Content-Type", "application/xml")] + (headers or []), body)


def error_response(err: S3Error, head: bool) -> Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{err.code}</Code>'
            f"<Message>{escape(err.message)}</Message><Resource>{escape(err.resource)}</Resource>"
            f"<RequestId>fast</RequestId></Error>").encode()
    return Response(err.status, [("Content-Type", "application/xml"), ("x-amz-error-code", err.code)],
                    b"" if head else body)


def object_response(o: Obj, head: bool, headers: Dict[str, str]) -> Response:
    data = o.data
    status = 200
    out = [("ETag", f'"{o.etag}"'), ("Last-Modified", http_date(o.modified)), ("Accept-Ranges", "bytes")]
    rng = headers.get("range")
    if rng and rng.startswith("bytes=") and "," not in rng:
        first, _, last = rng[6:].partition("-")
        size = len(data)
        try:
            if first:
                lo, hi = int(first), (int(last) if last else size - 1)
            else:
                lo, hi = max(0, size - int(last)), size - 1
        except ValueError:
            lo, hi = 0, size - 1
        hi = min(hi, size - 1)
        if lo > hi or lo >= size:
            raise S3Error(416, "InvalidRange", "The requested range is not satisfiable")
        out.append(("Content-Range", f"bytes {lo}-{hi}/{size}"))
        data = data[lo:hi + 1]
        status = 206
    for name, value in o.headers.items():
        out.append((name, value))
    if head:
        return Response(status, out + [("Content-Length", str(len(data)))], b"")
    return Response(status, out, data)


class Handler:
    """One S3 request -> Response; the store is shared by all connections."""

    def __init__(self, store: Store):
        self.store = store

    def handle(self, method: str, bucket: str, key: Optional[str], query: Dict[str, str],
               headers: Dict[str, str], body: bytes) -> Response:
        store = self.store
        if not bucket:
            if method == "GET":
                items = "".join(f"<Bucket><Name>{escape(n)}</Name><CreationDate>{iso(b.created)}</CreationDate>"
                                "</Bucket>" for n, b in sorted(store.buckets.items()))
                return xml_response((f'<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult '
                                     f'xmlns="{XMLNS}"><Owner><ID>{OWNER_ID}</ID><DisplayName>bench</DisplayName>'
                                     f"</Owner><Buckets>{items}</Buckets></ListAllMyBucketsResult>").encode())
            raise S3Error(405, "MethodNotAllowed")
        if key is None:
            return self.bucket_level(method, bucket, query, headers, body)
        return self.object_level(method, bucket, key, query, headers, body)

    def bucket_level(self, method: str, name: str, query: Dict[str, str], headers: Dict[str, str],
                     body: bytes) -> Response:
        store = self.store
        if method == "PUT":
            if "acl" in query or "ownershipControls" in query or "policy" in query or "website" in query:
                store.bucket(name)
                return Response(200)
            if name in store.buckets:
                raise S3Error(409, "BucketAlreadyOwnedByYou", "Your previous request to create the named "
                              "bucket succeeded and you already own it.", name)
            store.buckets[name] = Bucket()
            return Response(200, [("Location", "/" + name)])
        if method == "HEAD":
            store.bucket(name)
            return Response(200, [("x-amz-bucket-region", "us-east-1")])
        if method == "DELETE":
            b = store.bucket(name)
            if b.objects:
                raise S3Error(409, "BucketNotEmpty", "The bucket you tried to delete is not empty", name)
            for up in b.uploads.values():
                store.release(sum(len(d) for d, _ in up.parts.values()))
            del store.buckets[name]
            return Response(204)
        if method == "POST" and "delete" in query:
            return self.delete_objects(store.bucket(name), body)
        if method == "GET":
            if "location" in query:
                store.bucket(name)
                return xml_response(f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint '
                                    f'xmlns="{XMLNS}"></LocationConstraint>'.encode())
            if "uploads" in query:
                b = store.bucket(name)
                items = "".join(f"<Upload><Key>{escape(u.key)}</Key><UploadId>{uid}</UploadId>"
                                f"<Initiated>{iso(u.started)}</Initiated></Upload>"
                                for uid, u in b.uploads.items() if u.key.startswith(query.get("prefix", "")))
                return xml_response(f'<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult '
                                    f'xmlns="{XMLNS}"><Bucket>{escape(name)}</Bucket><IsTruncated>false'
                                    f"</IsTruncated>{items}</ListMultipartUploadsResult>".encode())
            if "acl" in query:
                store.bucket(name)
                return xml_response(acl_xml("private"))
            if "versioning" in query:
                store.bucket(name)
                return xml_response(f'<VersioningConfiguration xmlns="{XMLNS}"/>'.encode())
            if query.get("list-type") == "2":
                return xml_response(list_objects(store, name, query, v2=True))
            if any(sub in query for sub in ("policy", "website", "cors", "tagging", "lifecycle", "encryption",
                                            "ownershipControls", "publicAccessBlock")):
                store.bucket(name)
                raise S3Error(404, "NoSuchConfiguration", "not configured on this server", name)
            return xml_response(list_objects(store, name, query, v2=False))
        raise S3Error(405, "MethodNotAllowed")

    def delete_objects(self, b: Bucket, body: bytes) -> Response:
        quiet = any((el.text or "").strip().lower() == "true" for el in xml_children(body, "Quiet"))
        out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="{XMLNS}">']
        for el in xml_children(body, "Object"):
            key = xml_text(el, "Key")
            if key is None:
                continue
            self.store.remove(b, key)
            if not quiet:
                out.append(f"<Deleted><Key>{escape(key)}</Key></Deleted>")
        out.append("</DeleteResult>")
        return xml_response("".join(out).encode())

    def object_level(self, method: str, name: str, key: str, query: Dict[str, str], headers: Dict[str, str],
                     body: bytes) -> Response:
        store = self.store
        b = store.bucket(name)
        if method in ("GET", "HEAD"):
            if "uploadId" in query:
                up = self.upload(b, query["uploadId"], key)
                items = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>&quot;{md5.hex()}&quot;</ETag>"
                                f"<Size>{len(data)}</Size></Part>" for n, (data, md5) in sorted(up.parts.items()))
                return xml_response(f'<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult xmlns="{XMLNS}">'
                                    f"<Bucket>{escape(name)}</Bucket><Key>{escape(key)}</Key>"
                                    f"<UploadId>{query['uploadId']}</UploadId><IsTruncated>false</IsTruncated>"
                                    f"{items}</ListPartsResult>".encode())
            o = b.objects.get(key)
            if o is None:
                raise S3Error(404, "NoSuchKey", "The specified key does not exist.", key)
            if "acl" in query:
                return xml_response(o.acl.encode() if o.acl.startswith("<") else acl_xml(o.acl))
            if "tagging" in query:
                return xml_response(f'<Tagging xmlns="{XMLNS}"><TagSet/></Tagging>'.encode())
            return object_response(o, method == "HEAD", headers)
        if method == "PUT":
            if "acl" in query:
                o = b.objects.get(key)
                if o is None:
                    raise S3Error(404, "NoSuchKey", "The specified key does not exist.", key)
                o.acl = body.decode("utf-8", "replace") if body.strip() else canned_acl(headers)
                return Response(200)
            if "uploadId" in query and "partNumber" in query:
                up = self.upload(b, query["uploadId"], key)
                try:
                    number = int(query["partNumber"])
                except ValueError:
                    raise S3Error(400, "InvalidArgument", "partNumber")
                if not 1 <= number <= 10000:
                    raise S3Error(400, "InvalidArgument", "partNumber must be 1-10000")
                if "x-amz-copy-source" in headers:
                    raise S3Error(501, "NotImplemented", "UploadPartCopy")
                store.reserve(len(body))
                old = up.parts.get(number)
                if old is not None:
                    store.release(len(old[0]))
                digest = hashlib.md5(body).digest()
                up.parts[number] = (body, digest)
                return Response(200, [("ETag", f'"{digest.hex()}"')])
            if "x-amz-copy-source" in headers:
                return self.copy(b, key, headers)
            o = Obj(body, hashlib.md5(body).hexdigest(), object_headers(headers), time.time(), canned_acl(headers))
            store.put(b, key, o)
            return Response(200, [("ETag", f'"{o.etag}"')])
        if method == "POST":
            if "uploads" in query:
                uid = uuid.uuid4().hex
                b.uploads[uid] = Upload(key, object_headers(headers), canned_acl(headers))
                return xml_response(f'<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult '
                                    f'xmlns="{XMLNS}"><Bucket>{escape(name)}</Bucket><Key>{escape(key)}</Key>'
                                    f"<UploadId>{uid}</UploadId></InitiateMultipartUploadResult>".encode())
            if "uploadId" in query:
                return self.complete(b, name, key, query["uploadId"], body)
            raise S3Error(405, "MethodNotAllowed")
        if method == "DELETE":
            if "uploadId" in query:
                up = self.upload(b, query["uploadId"], key)
                store.release(sum(len(d) for d, _ in up.parts.values()))
                del b.uploads[query["uploadId"]]
                return Response(204)
            store.remove(b, key)
            return Response(204)
        raise S3Error(405, "MethodNotAllowed")

    @staticmethod
    def upload(b: Bucket, uid: str, key: str) -> Upload:
        up = b.uploads.get(uid)
        if up is None or up.key != key:
            raise S3Error(404, "NoSuchUpload", "The specified upload does not exist.", key)
        return up

    def complete(self, b: Bucket, name: str, key: str, uid: str, body: bytes) -> Response:
        up = self.upload(b, uid, key)
        wanted = []
        for el in xml_children(body, "Part"):
            number = xml_text(el, "PartNumber")
            etag = (xml_text(el, "ETag") or "").strip().strip('"').lower()
            try:
                n = int(number or "")
            except ValueError:
                raise S3Error(400, "MalformedXML", "PartNumber")
            part = up.parts.get(n)
            if part is None or (etag and etag != part[1].hex()):
                raise S3Error(400, "InvalidPart", f"part {n} was not uploaded or its ETag differs", key)
            if wanted and n <= wanted[-1]:
                raise S3Error(400, "InvalidPartOrder", "parts must be in ascending order", key)
            wanted.append(n)
        if not wanted:
            raise S3Error(400, "MalformedXML", "no parts", key)
        data = b"".join(up.parts[n][0] for n in wanted)
        etag = f"{hashlib.md5(b''.join(up.parts[n][1] for n in wanted)).hexdigest()}-{len(wanted)}"
        held = sum(len(d) for d, _ in up.parts.values())
        del b.uploads[uid]
        self.store.release(held)
        self.store.put(b, key, Obj(data, etag, up.headers, time.time(), up.acl))
        return xml_response(f'<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult '
                            f'xmlns="{XMLNS}"><Location>/{escape(name)}/{escape(key)}</Location>'
                            f"<Bucket>{escape(name)}</Bucket><Key>{escape(key)}</Key>"
                            f"<ETag>&quot;{etag}&quot;</ETag></CompleteMultipartUploadResult>".encode())

    def copy(self, b: Bucket, key: str, headers: Dict[str, str]) -> Response:
        source = unquote(headers["x-amz-copy-source"].split("?", 1)[0]).lstrip("/")
        src_bucket, _, src_key = source.partition("/")
        src = self.store.bucket(src_bucket).objects.get(src_key)
        if src is None:
            raise S3Error(404, "NoSuchKey", "The specified key does not exist.", src_key)
        directive = headers.get("x-amz-metadata-directive", "COPY").upper()
        if directive == "REPLACE":
            kept = object_headers(headers)
        else:
            if src_bucket and b is self.store.buckets.get(src_bucket) and src_key == key:
                raise S3Error(400, "InvalidRequest", "This copy request is illegal because it is trying to copy "
                              "an object to itself without changing the object's metadata.", key)
            kept = dict(src.headers)
        o = Obj(src.data, src.etag, kept, time.time(), canned_acl(headers))
        self.store.put(b, key, o)
        return xml_response(f'<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult xmlns="{XMLNS}">'
                            f"<LastModified>{iso(o.modified)}</LastModified><ETag>&quot;{o.etag}&quot;</ETag>"
                            "</CopyObjectResult>".encode())


class Counters:
    def __init__(self) -> None:
        self.ops: Dict[str, int] = {}
        self.failed: Dict[str, int] = {}
        self.bytes: Dict[str, int] = {}
        self.requests = 0

    def snapshot(self) -> dict:
        usage = os.times()
        return {"ops": dict(self.ops), "failed": dict(self.failed), "bytes": dict(self.bytes),
                "requests": self.requests, "cpu_s": usage.user + usage.system}

    def reset(self) -> None:
        self.ops.clear()
        self.failed.clear()
        self.bytes.clear()
        self.requests = 0


def split_target(target: str) -> Tuple[str, Optional[str], Dict[str, str], str]:
    """(bucket, key or None, query, decoded path) of a path-style request target."""
    raw_path, _, raw_query = target.partition("?")
    if raw_path.startswith(("http://", "https://")):  # absolute form
        raw_path = "/" + raw_path.split("/", 3)[3] if raw_path.count("/") >= 3 else "/"
    path = unquote(raw_path, encoding="utf-8", errors="replace")
    query = dict(parse_qsl(raw_query, keep_blank_values=True)) if raw_query else {}
    bucket, slash, key = path[1:].partition("/")
    return bucket, (key if slash and key else None), query, path


class Server:
    """What all connections share: the store, the counters, the latency."""

    def __init__(self, store: Store, latency_s: float = 0.0, max_body: int = 5 << 30):
        self.handler = Handler(store)
        self.counters = Counters()
        self.latency_s = latency_s
        self.max_body = max_body

    def protocol(self) -> "Connection":
        return Connection(self)

    def respond(self, method: str, target: str, headers: Dict[str, str], body: bytes) -> Response:
        """Count the request and answer it (everything but the socket)."""
        if target.startswith(ADMIN):
            snap = self.counters.snapshot()
            if target.startswith(ADMIN + "/reset"):
                self.counters.reset()
            return Response(200, [("Content-Type", "application/json")], json.dumps(snap).encode())
        bucket, key, query, path = split_target(target)
        op = (("ListBuckets" if method == "GET" else f"{method} /") if not bucket else
              s3_operation(method, key, query, headers) or f"{method} {path}")
        counters = self.counters
        counters.requests += 1
        counters.ops[op] = counters.ops.get(op, 0) + 1
        counters.bytes[op] = counters.bytes.get(op, 0) + len(body)
        try:
            if ("aws-chunked" in headers.get("content-encoding", "")
                    or headers.get("x-amz-content-sha256", "").startswith("STREAMING-")):
                body = decode_aws_chunked(body)
            response = self.handler.handle(method, bucket, key, query, headers, body)
        except S3Error as err:
            response = error_response(err, method == "HEAD")
        except Exception as exc:  # a bug here must not kill the connection silently
            response = error_response(S3Error(500, "InternalError", f"{type(exc).__name__}: {exc}"),
                                      method == "HEAD")
        if response.status >= 400:
            counters.failed[op] = counters.failed.get(op, 0) + 1
        return response


def encode_response(response: Response, keep: bool, head: bool) -> List[bytes]:
    lines = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}",
             "x-amz-request-id: fast", "Server: fast-s3"]
    has_length = False
    for name, value in response.headers:
        if name == "Content-Length":
            has_length = True
        lines.append(f"{name}: {value}")
    if not has_length:
        lines.append(f"Content-Length: {len(response.body)}")
    if not keep:
        lines.append("Connection: close")
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    if head or not response.body:
        return [head_bytes]
    if len(response.body) < 65536:
        return [head_bytes + response.body]
    return [head_bytes, response.body]


class Connection(asyncio.Protocol):
    """HTTP/1.1 keep-alive, one request at a time (S3 clients do not pipeline):
    the request is parsed from what has arrived, answered synchronously, and the
    answer written at once or after the injected latency."""

    def __init__(self, server: Server):
        self.server = server
        self.transport: Optional[asyncio.Transport] = None
        self.buffer = bytearray()
        self.request: Optional[Tuple[str, str, str, Dict[str, str]]] = None  # parsed head awaiting its body
        self.need = 0  # body bytes still expected (Content-Length)
        self.chunked = False
        self.pieces: List[bytes] = []
        self.busy = False  # an answer is waiting out the latency
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        if self.request is not None and not self.chunked and not self.buffer and len(data) <= self.need:
            self.pieces.append(data)  # the common case of a large body: no copy into the buffer
            self.need -= len(data)
            if self.need == 0:
                self.finish(b"".join(self.pieces))
            return
        self.buffer += data
        self.process()

    def fail(self, status: int, text: str) -> None:
        self.transport.write(f"HTTP/1.1 {status} {text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                             .encode())
        self.transport.close()
        self.closed = True

    def process(self) -> None:
        buf = self.buffer
        while not self.busy and not self.closed:
            if self.request is None:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEADER_BYTES:
                        self.fail(431, "Request Header Fields Too Large")
                    return
                lines = buf[:end].decode("latin-1").split("\r\n")
                del buf[:end + 4]
                try:
                    method, target, version = lines[0].split(" ", 2)
                except ValueError:
                    self.fail(400, "Bad Request")
                    return
                headers: Dict[str, str] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                self.request = (method.upper(), target, version, headers)
                self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
                try:
                    self.need = 0 if self.chunked else int(headers.get("content-length") or 0)
                except ValueError:
                    self.fail(400, "Bad Request")
                    return
                if self.need > self.server.max_body:
                    self.fail(413, "Payload Too Large")
                    return
                self.pieces = []
                if headers.get("expect", "").lower() == "100-continue":
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if self.chunked:
                body = self.take_chunks()
                if body is None:
                    return
            else:
                if len(buf) < self.need:
                    if buf:
                        self.pieces.append(bytes(buf))
                        self.need -= len(buf)
                        buf.clear()
                    return
                tail = bytes(buf[:self.need])
                del buf[:self.need]
                self.need = 0
                body = b"".join(self.pieces + [tail]) if self.pieces else tail
            self.finish(body, resume=False)

    def take_chunks(self) -> Optional[bytes]:
        """The body of a chunked request once all of it is in the buffer (chunks
        already complete are moved to `pieces`), else None."""
        buf = self.buffer
        while True:
            eol = buf.find(b"\r\n")
            if eol < 0:
                return None
            try:
                size = int(bytes(buf[:eol]).split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                self.fail(400, "Bad Request")
                return None
            if size == 0:
                end = buf.find(b"\r\n\r\n", eol)  # after the trailers, if any
                if end < 0:
                    if buf[eol:eol + 4] == b"\r\n\r\n":
                        end = eol
                    else:
                        return None
                del buf[:end + 4]
                body = b"".join(self.pieces)
                self.pieces = []
                return body
            if len(buf) < eol + 2 + size + 2:
                return None
            self.need += size
            if self.need > self.server.max_body:
                self.fail(413, "Payload Too Large")
                return None
            self.pieces.append(bytes(buf[eol + 2:eol + 2 + size]))
            del buf[:eol + 2 + size + 2]

    def finish(self, body: bytes, resume: bool = True) -> None:
        method, target, version, headers = self.request
        self.request, self.pieces, self.need, self.chunked = None, [], 0, False
        keep = not (headers.get("connection", "").lower() == "close" or version == "HTTP/1.0")
        response = self.server.respond(method, target, headers, body)
        data = encode_response(response, keep, head=method == "HEAD")
        if self.server.latency_s:
            self.busy = True
            asyncio.get_running_loop().call_later(self.server.latency_s, self.send, data, keep)
        else:
            self.send(data, keep, resume=resume)

    def send(self, data: List[bytes], keep: bool, resume: bool = True) -> None:
        self.busy = False
        if self.closed:
            return
        self.transport.writelines(data)
        if not keep:
            self.transport.close()
            self.closed = True
        elif resume and self.buffer:
            self.process()


async def serve(port: int, port_file: Optional[str], latency_ms: float, max_bytes: int,
                parent: Optional[int], max_seconds: float) -> None:
    server = Server(Store(max_bytes), latency_ms / 1000.0)
    listener = await asyncio.get_running_loop().create_server(server.protocol, HOST, port, backlog=512)
    bound = listener.sockets[0].getsockname()[1]
    if port_file:
        tmp = port_file + ".tmp"
        Path(tmp).write_text(str(bound))
        os.replace(tmp, port_file)
    else:
        print(f"fast_s3: listening on http://{HOST}:{bound} (latency {latency_ms:g} ms)", flush=True)
    deadline = time.monotonic() + max_seconds if max_seconds > 0 else None
    async with listener:
        while True:
            await asyncio.sleep(1)
            if parent is not None and os.getppid() != parent:
                return  # never outlive the benchmark
            if deadline is not None and time.monotonic() > deadline:
                return


class Background:
    """The server on its own event loop in a daemon thread of this process (tests, measurements)."""

    def __init__(self, latency_ms: float = 0.0, max_bytes: int = DEFAULT_MAX_BYTES):
        import threading

        self.server = Server(Store(max_bytes), latency_ms / 1000.0)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.port = 0

        async def start() -> None:
            self.listener = await asyncio.get_running_loop().create_server(self.server.protocol, HOST, 0)
            self.port = self.listener.sockets[0].getsockname()[1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(start())
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="fast-s3", daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("fast_s3 did not start")
        self.endpoint = f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        async def close() -> None:
            self.listener.close()
            await self.listener.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="fast_s3", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    p.add_argument("--port-file", help="write the bound port to this file once listening")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added to every request (asyncio.sleep)")
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                   help=f"refuse writes past this many stored bytes (default {DEFAULT_MAX_BYTES})")
    p.add_argument("--parent", type=int, help="exit when this process is no longer the parent")
    p.add_argument("--max-seconds", type=float, default=6 * 3600, help="exit after this long (default 6 h)")
    args = p.parse_args(argv)
    if args.latency_ms < 0:
        p.error("--latency-ms must be at least 0")
    try:
        asyncio.run(serve(args.port, args.port_file, args.latency_ms, args.max_bytes, args.parent,
                          args.max_seconds))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
