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

Paths a user gives (``invalidation_paths``) replace the computed ones and
are escaped by the same rule, with two differences: an escape already
written (``%20``) is kept as it is, so paths copied from a URL or from this
tool's own output work unchanged, and ``?`` is kept, since in a CloudFront
path it starts the query string of one cached version
(``/search?q=a``). CloudFront's documented limits are checked before any
request: a path starts with ``/``, has at most 4,000 characters, and ``*``
is a wildcard only as its last character.

Waiting and retrying (``create_invalidation_retrying``,
``wait_for_invalidations``) read their intervals from the module constants
below when called, and take ``sleep`` and ``clock`` arguments, so tests run
them without real time passing.
"""

from __future__ import annotations

import random
import secrets
import time
from typing import Any, Callable, Iterable, List, Sequence, Tuple

from .errors import error_code

__all__ = [
    "InvalidationError",
    "check_paths",
    "create_invalidation",
    "create_invalidation_retrying",
    "invalidation_paths",
    "new_caller_reference",
    "normalize_path",
    "wait_for_invalidations",
]

INDEX_DOCUMENT = "index.html"

# RFC 1738's unsafe characters, plus "?": unescaped it would start a query string.
_RFC1738_UNSAFE = frozenset(' "#%<>{}|\\^~[]`?')

_EXACT = 0
_WILDCARD = 1


def _escape_char(char: str) -> str:
    code = ord(char)
    if code < 0x20 or code == 0x7F or code > 0x7F or char in _RFC1738_UNSAFE:
        # surrogateescape restores the original byte for names that
        # came from a non-UTF-8 file system via os.fsdecode.
        encoded = char.encode("utf-8", "surrogateescape")
        return "".join("%{:02X}".format(byte) for byte in encoded)
    return char


def _escape(text: str) -> str:
    return "".join(_escape_char(char) for char in text)


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


# ---------------------------------------------------------------- paths given by the user

# CloudFront's documented limits (Developer Guide, "Invalidating files"):
# a path has at most 4,000 characters, and a distribution can have at
# most 3,000 file paths and 15 wildcard paths in progress at once, so a
# longer list could never be accepted.
MAX_PATH_LENGTH = 4000
MAX_FILE_PATHS = 3000
MAX_WILDCARD_PATHS = 15

_HEX = frozenset("0123456789abcdefABCDEF")


def normalize_path(text: str) -> str:
    """A CloudFront path as a user wrote it, escaped like the computed paths.

    Characters CloudFront wants encoded are encoded; ``%XX`` escapes that are
    already there and ``?`` (the query string) are kept. Raises ValueError
    saying what is wrong with the path.
    """
    if not text.startswith("/"):
        raise ValueError(f"{text!r} does not start with '/'")
    star = text.find("*")
    if star != -1 and star != len(text) - 1:
        raise ValueError(f"{text!r}: '*' is a wildcard only as the last character of a path")
    parts = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "%" and len(text) >= index + 3 and set(text[index + 1:index + 3]) <= _HEX:
            parts.append(text[index:index + 3])
            index += 3
            continue
        parts.append(char if char == "?" else _escape_char(char))
        index += 1
    path = "".join(parts)
    if len(path) > MAX_PATH_LENGTH:
        raise ValueError(f"a path of {len(path):,} characters{' once escaped' if path != text else ''} "
                         f"(starting {path[:40]!r}) is longer than CloudFront's limit of {MAX_PATH_LENGTH:,}")
    return path


def check_paths(paths: Iterable[str]) -> List[str]:
    """The normalized paths in the order given, each once; ValueError for a
    path CloudFront would refuse, or for more paths than it can have in
    progress."""
    result: List[str] = []
    seen = set()
    for text in paths:
        path = normalize_path(text)
        if path not in seen:
            seen.add(path)
            result.append(path)
    wildcards = sum(1 for path in result if path.endswith("*"))
    if wildcards > MAX_WILDCARD_PATHS:
        raise ValueError(f"{wildcards} wildcard paths: CloudFront accepts at most {MAX_WILDCARD_PATHS} in progress "
                         "per distribution")
    if len(result) - wildcards > MAX_FILE_PATHS:
        raise ValueError(f"{len(result) - wildcards:,} file paths: CloudFront accepts at most {MAX_FILE_PATHS:,} in "
                         "progress per distribution; use wildcards such as /docs/*")
    return result


# ---------------------------------------------------------------- retrying and waiting

TOO_MANY = "TooManyInvalidationsInProgress"

# CreateInvalidation answered TooManyInvalidationsInProgress: the quota frees
# up as running invalidations complete, which takes minutes. Retried with
# exponential backoff (1 s, 2 s, 4 s ... at most 60 s a wait, each wait
# between half and all of that) for at most RETRY_TIME seconds.
RETRY_FIRST_DELAY = 1.0
RETRY_MAX_DELAY = 60.0
RETRY_TIME = 300.0
# cloudfront_wait: GetInvalidation every POLL_INTERVAL seconds, a progress
# line for each invalidation still in progress after each poll.
POLL_INTERVAL = 15.0


class InvalidationError(Exception):
    """An invalidation that could not be made; the text says why."""


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 1 or value == 0 else f"{value:.1f} s"


def create_invalidation_retrying(
    client: Any,
    distribution_id: str,
    paths: List[str],
    *,
    caller_reference: str,
    notify: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    jitter: Callable[[], float] = random.random,
) -> str:
    """`create_invalidation`, retried while CloudFront answers
    TooManyInvalidationsInProgress (botocore does not retry that code).

    Every attempt sends the same ``caller_reference``: should an earlier
    attempt have been made after all, CloudFront answers with that
    invalidation instead of starting a second one. Other errors propagate;
    after RETRY_TIME seconds of refusals, InvalidationError.
    """
    started = clock()
    attempt = 0
    while True:
        try:
            return create_invalidation(client, distribution_id, paths, caller_reference=caller_reference)
        except Exception as exc:
            if error_code(exc) != TOO_MANY:
                raise
            elapsed = clock() - started
            left = RETRY_TIME - elapsed
            if left <= 0:
                raise InvalidationError(
                    f"{TOO_MANY}: still refused after retrying for {_seconds(elapsed)} (a distribution can have "
                    f"{MAX_FILE_PATHS:,} file paths and {MAX_WILDCARD_PATHS} wildcard paths in progress); the "
                    "files are in S3, invalidate again once the running invalidations have completed") from None
            ceiling = min(RETRY_MAX_DELAY, RETRY_FIRST_DELAY * 2 ** attempt)
            delay = min(left, ceiling / 2 + jitter() * ceiling / 2)
            notify(f"CloudFront: {distribution_id} has too many invalidations in progress ({TOO_MANY}); "
                   f"retrying in {_seconds(delay)}")
            sleep(delay)
            attempt += 1


def wait_for_invalidations(
    client: Any,
    invalidations: Sequence[Tuple[str, str]],
    *,
    timeout: float,
    notify: Callable[[str], None] = print,
    describe: Callable[[BaseException], str] = str,
    timeout_name: str = "cloudfront_wait_timeout",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> List[str]:
    """Poll GetInvalidation for each (distribution id, invalidation id) until
    it says Completed, for at most ``timeout`` seconds in all.

    Polls at once, then every POLL_INTERVAL seconds, with a progress line for
    each invalidation still in progress and one when it completes. Returns a
    problem text for each invalidation that did not complete in time or
    could not be read; [] when all completed.
    """
    started = clock()
    pending = list(invalidations)
    status = {key: "InProgress" for key in pending}
    problems: List[str] = []
    while True:
        elapsed = clock() - started
        still = []
        for distribution_id, invalidation_id in pending:
            key = (distribution_id, invalidation_id)
            try:
                answer = client.get_invalidation(DistributionId=distribution_id, Id=invalidation_id)
                status[key] = str(answer["Invalidation"]["Status"])
            except Exception as exc:  # botocore's errors, after its own retries
                problems.append(f"cannot check CloudFront invalidation {invalidation_id} of {distribution_id}: "
                                f"{describe(exc)}")
                continue
            # CloudFront says "Completed"; some emulators "COMPLETED".
            if status[key].lower() == "completed":
                notify(f"CloudFront: invalidation {invalidation_id} of {distribution_id} completed "
                       f"({elapsed:.0f} s)")
            else:
                still.append(key)
        pending = still
        if not pending:
            return problems
        if elapsed >= timeout:
            for distribution_id, invalidation_id in pending:
                problems.append(
                    f"CloudFront invalidation {invalidation_id} of {distribution_id} did not complete within "
                    f"{_seconds(timeout)} (still {status[(distribution_id, invalidation_id)]}); the files are in S3 "
                    f"and CloudFront goes on with the invalidation; raise {timeout_name} to wait longer")
            return problems
        for distribution_id, invalidation_id in pending:
            notify(f"CloudFront: waiting for invalidation {invalidation_id} of {distribution_id} "
                   f"({status[(distribution_id, invalidation_id)]}, {elapsed:.0f} s)")
        sleep(max(0.0, min(POLL_INTERVAL, timeout - elapsed)))
