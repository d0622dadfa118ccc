"""CloudFront invalidation paths for the objects a sync touched.

Why the defaults look the way they do (CloudFront quotas and pricing):

* A distribution may have at most 3,000 individual file paths in progress
  at once, and at most 15 wildcard paths in progress at once. Requests
  over either quota are rejected, which would fail a deploy that already
  uploaded everything.
* The first 1,000 paths each month are free, then every path is billed.
  A wildcard path counts as one path however many objects it matches.

So a sync invalidates exact paths while there are few of them
(``max_paths=50``: precise, keeps the rest of the cache warm, roughly
twenty such deploys a month stay in the free tier, far below the 3,000
in-progress quota even with parallel pipelines). Past that, exact paths
stop being worth their price and the quota risk, and the list is folded
into wildcards. ``max_wildcards=8`` keeps a single request at about half
of the 15-wildcard quota, leaving room for a concurrent deploy or a
manual invalidation; a folded request costs at most 8 paths.

Folding never goes above the sync target: a sync into ``site/`` only
emits ``/site/...`` wildcards, and in the worst case ``/site/*``. Only a
sync into the bucket root can produce ``/*``.

Escaping follows CloudFront's documented rule: percent-encode non-ASCII
characters and the characters RFC 1738 calls unsafe, and nothing else,
because CloudFront compares invalidation paths with cached request paths
literally and does not match a path whose other characters were encoded.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Iterable

__all__ = ["create_invalidation", "invalidation_paths", "new_caller_reference"]

INDEX_DOCUMENT = "index.html"

# RFC 1738's unsafe characters, plus "?": unescaped it would start a query string.
_RFC1738_UNSAFE = frozenset(' "#%<>{}|\\^~[]`?')

_EXACT = 0
_WILDCARD = 1


def _escape(text: str) -> str:
    parts = []
    for char in text:
        code = ord(char)
        if code < 0x20 or code == 0x7F or code > 0x7F or char in _RFC1738_UNSAFE:
            # surrogateescape restores the original byte for names that
            # came from a non-UTF-8 file system via os.fsdecode.
            encoded = char.encode("utf-8", "surrogateescape")
            parts.append("".join("%{:02X}".format(byte) for byte in encoded))
        else:
            parts.append(char)
    return "".join(parts)


def _directory(text: str) -> str:
    # Everything up to and including the last slash; "" for the top level.
    return text[: text.rfind("/") + 1]


def _depth(directory: str) -> int:
    return directory.count("/")


def _container(entry: tuple[int, str]) -> str:
    kind, text = entry
    if kind == _WILDCARD:
        # A wildcard for "a/b/" lives in "a/", one level up.
        return _directory(text[:-1])
    # An exact directory path "a/b/" lives in "a/b/" itself, so folding
    # "a/b/" into "/a/b/*" also covers it ("*" matches the empty string).
    return _directory(text)


def _render(entry: tuple[int, str]) -> str:
    kind, text = entry
    if kind == _WILDCARD:
        return "/" + _escape(text) + "*"
    return "/" + _escape(text)


def invalidation_paths(
    keys: Iterable[str],
    *,
    max_paths: int = 50,
    max_wildcards: int = 8,
    root: str = "",
) -> list[str]:
    """Return the sorted CloudFront paths that invalidate ``keys``.

    ``keys`` are S3 object keys (including the target prefix) that were
    created, changed or deleted; ``root`` is that target prefix (``""``
    or e.g. ``"site/"``). Each key becomes ``"/" + key``, and a key named
    ``index.html`` also becomes its directory path, which is what visitors
    request. Up to ``max_paths`` exact paths are returned as they are;
    beyond that, directories are folded into ``/dir/*`` wildcards from
    the deepest level up until at most ``max_wildcards`` entries remain,
    falling back to ``["/" + root + "*"]``.
    """
    if max_paths < 1 or max_wildcards < 1:
        raise ValueError("max_paths and max_wildcards must be at least 1")

    exact: set[str] = set()
    for key in keys:
        if not key:
            raise ValueError("empty object key")
        if not key.startswith(root):
            raise ValueError(f"key {key!r} is outside the sync root {root!r}")
        exact.add(key)
        directory, _, name = key.rpartition("/")
        if name == INDEX_DOCUMENT:
            exact.add(directory + "/" if directory else "")

    if len(exact) <= max_paths:
        return sorted(_render((_EXACT, text)) for text in exact)

    entries = {(_EXACT, text) for text in exact}
    # Directories at this depth or deeper lie strictly below ``root``;
    # folding ``root`` itself is the fallback, handled separately.
    shallowest = _depth(root) + 1
    level = max(_depth(_container(entry)) for entry in entries)
    while len(entries) > max_wildcards and level >= shallowest:
        folded = set()
        for entry in entries:
            container = _container(entry)
            if _depth(container) == level:
                folded.add((_WILDCARD, container))
            else:
                folded.add(entry)
        entries = folded
        level -= 1

    if len(entries) > max_wildcards:
        return [_render((_WILDCARD, root))]
    return sorted(_render(entry) for entry in entries)


def create_invalidation(
    client: Any,
    distribution_id: str,
    paths: list[str],
    *,
    caller_reference: str,
) -> str:
    """Submit one invalidation batch and return its id.

    ``client`` is a boto3 CloudFront client. Callers skip the call when
    nothing changed; an empty batch here signals a caller bug, and
    CloudFront would reject it anyway.
    """
    if not paths:
        raise ValueError("no paths to invalidate")
    if not distribution_id:
        raise ValueError("distribution_id must not be empty")
    items = list(paths)
    response = client.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={
            "Paths": {"Quantity": len(items), "Items": items},
            "CallerReference": caller_reference,
        },
    )
    return response["Invalidation"]["Id"]


def new_caller_reference() -> str:
    """Return a CallerReference that no other call will produce.

    CloudFront treats a repeated reference as a retry of the earlier
    request: it returns that invalidation instead of starting a new one,
    or rejects the batch if the paths differ. Parallel pipelines can read
    the same clock value, hence the random part.
    """
    return "drone-s3-sync-{}-{}".format(time.time_ns(), secrets.token_hex(6))
