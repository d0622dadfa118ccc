"""The evidence stage: what must be known about each key before the plan can
decide, gathered in one bounded pass over the files and the bucket.

What to learn about a key is decided by one pure function, `needs.next_need`,
asked again after each answer: hash the file (xxh3, MD5, multipart ETags,
compressed), read the object's headers. Each key's steps run in order in one
job, and the jobs of all keys at once on one pool, so a file's HEAD does not
wait for every other file to be hashed. Hashing takes one of a few slots (the
cores), reading headers does not. A key that needs nothing (a file the state
vouches for, whose xxh3 was read with the listing) costs no job.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import Dict, FrozenSet, Mapping, Optional, Sequence, Set

from . import diff
from .needs import HASH, Need, next_need, other_heads
from .digest import SPOOL_SIZE, Digest, compressed_digest, file_digest, fingerprint
from .errors import StoreError
from .executors import Executors, bounded, hash_workers
from .model import LocalFile, Plan, RemoteDetails, RemoteObject
from .rules import HeaderRules
from .scan import printable
from .state import Entry
from .statefile import Listing
from .store import RemoteStore

log = logging.getLogger("drone_s3_sync")

CACHE_BUDGET = 256 * 1024 * 1024  # compressed bytes kept from the comparison for the upload


class CompressedCache:
    """Compressed bytes kept from the comparison until the upload, so that a
    file is compressed once per run: each at most `limit` bytes, `budget` bytes
    in all. What is not kept is compressed again for its upload. Thread-safe."""

    def __init__(self, budget: int = CACHE_BUDGET, limit: int = SPOOL_SIZE):
        self.budget, self.limit = budget, limit
        self._data: Dict[str, bytes] = {}
        self._used = 0
        self._lock = threading.Lock()

    def offer(self, key: str, data: bytes) -> None:
        with self._lock:
            if len(data) <= self.limit and self._used + len(data) <= self.budget:
                self._data[key] = data
                self._used += len(data)

    def take(self, key: str) -> Optional[bytes]:
        with self._lock:
            data = self._data.pop(key, None)
            if data is not None:
                self._used -= len(data)
            return data


@dataclass(frozen=True)
class Evidence:
    """Everything the plan decides from, besides the files, listing and state.

    `digests`: of the files that could match their object (and of those the
    state needs); `details`: headers and ACL of objects, from the state where
    it vouches for them, else from S3; `vouched`: the keys whose details came
    from the state only (a header write first reads what the state does not
    record: storage class, KMS key, recorded MD5); `unreadable`: files that
    could not be read and objects whose headers could not be read, with why.
    """

    digests: Mapping[str, Digest] = field(default_factory=dict)
    details: Mapping[str, RemoteDetails] = field(default_factory=dict)
    vouched: FrozenSet[str] = frozenset()
    read_errors: Mapping[str, str] = field(default_factory=dict)
    detail_errors: Mapping[str, str] = field(default_factory=dict)


def read_error_text(exc: OSError, path: str) -> str:
    """`cannot read /src/a.txt: No such file or directory`"""
    return f"cannot read {printable(path)}: {exc.strerror or type(exc).__name__}"


def _compress_job(local: LocalFile, part_sizes: Sequence[int], cache: Optional[CompressedCache]) -> Digest:
    digest, data = compressed_digest(local.path, local.encoding, part_sizes=part_sizes,
                                     keep=cache.limit if cache is not None else 0)
    if data is not None and cache is not None:
        cache.offer(local.key, data)
    return digest


def source_hashes(files: Sequence[LocalFile], pool) -> Dict[str, str]:
    """The xxh3-128 of each file's bytes (of its source, for a compressed file).
    The state records one for every file, and for a file it vouches for that
    is all the comparison needs; so they are read at once, while the bucket is
    listed, not after the uploads. A file that cannot be read is left out: the
    pass that needs it reads it again and says why."""
    jobs = ((f.key, partial(file_digest, f.path, md5=False)) for f in files)
    return {key: digest.xxh for key, digest, error in bounded(pool, jobs, (OSError,)) if error is None}


@dataclass(frozen=True)
class _Learned:
    digest: Optional[Digest] = None
    details: Optional[RemoteDetails] = None  # read from S3 by this pass
    read_error: str = ""
    detail_error: str = ""


MAX_STEPS = 6  # a key's needs end after at most four steps; more would be a loop


def _hash(local: LocalFile, need: Need, cache: Optional[CompressedCache]) -> Digest:
    if local.encoding is not None and (need.md5 or need.part_sizes):
        return _compress_job(local, need.part_sizes, cache)
    return file_digest(local.path, md5=need.md5, part_sizes=need.part_sizes, encoding=local.encoding)


def _learn(local: LocalFile, remote: Optional[RemoteObject], entry: Optional[Entry], digest: Optional[Digest],
           details: Optional[RemoteDetails], encryption: Optional[str], need: Optional[Need], *,
           store: RemoteStore, slots: threading.Semaphore, part_size: int,
           cache: Optional[CompressedCache]) -> _Learned:
    """Meets one file's needs in turn, from `need` (the first, already asked)
    on: what `next_need` asks, until it asks nothing."""
    fetched = None
    for _ in range(MAX_STEPS):
        if need is None:
            return _Learned(digest=digest, details=fetched)
        if need.kind == HASH:
            try:
                with slots:
                    digest = _hash(local, need, cache)
            except OSError as exc:
                return _Learned(read_error=read_error_text(exc, local.path))
        else:
            read = _head(store, local.key)
            if read.detail_error:
                return _Learned(digest=digest, detail_error=read.detail_error)
            fetched = read.details
        need = next_need(local, remote, entry, digest, details if fetched is None else fetched, encryption,
                         fetched=fetched is not None, part_size=part_size)
    raise AssertionError(f"{local.key}: needs did not end: {need}")


def _head(store: RemoteStore, key: str) -> _Learned:
    try:
        return _Learned(details=store.details(key))
    except StoreError as exc:
        return _Learned(detail_error=str(exc))


def gather(files: Sequence[LocalFile], remotes: Mapping[str, RemoteObject], state: Mapping[str, Entry], *,
           settings, rules: HeaderRules, store: RemoteStore, executors: Executors,
           cache: Optional[CompressedCache] = None, known: Mapping[str, str] = {}) -> Evidence:
    """Digests of the files that could be unchanged, and the headers of their
    objects: from the state where it vouches for them, else from S3. `known`:
    the files' xxh3 read before (`source_hashes`)."""
    part_size = settings.part_size
    vouched = diff.known_details(remotes, state)
    slots = threading.BoundedSemaphore(hash_workers())
    digests: Dict[str, Digest] = {}

    def jobs():
        for local in files:
            remote, entry, details = remotes.get(local.key), state.get(local.key), vouched.get(local.key)
            xxh = known.get(local.key)
            digest = Digest(xxh=fingerprint(xxh, local.encoding)) if xxh else None
            encryption = rules.headers_for(local.rel, local.path).encryption if rules.encryption else None
            need = next_need(local, remote, entry, digest, details, encryption, part_size=part_size)
            if need is None:
                if digest is not None:  # settled here: no job
                    digests[local.key] = digest
                continue
            yield local.key, partial(_learn, local, remote, entry, digest, details, encryption, need, store=store,
                                     slots=slots, part_size=part_size, cache=cache)
        for key in other_heads(remotes, settings, {f.key for f in files}, vouched):
            yield key, partial(_head, store, key)

    details: Dict[str, RemoteDetails] = dict(vouched)
    fetched: Set[str] = set()
    read_errors: Dict[str, str] = {}
    detail_errors: Dict[str, str] = {}
    with executors.pool(settings.max_concurrency, "evidence") as pool:
        for key, learned, _ in bounded(pool, jobs()):
            if learned.read_error:
                read_errors[key] = learned.read_error
            if learned.detail_error:
                detail_errors[key] = learned.detail_error
            if learned.digest is not None:
                digests[key] = learned.digest
            if learned.details is not None:
                details[key] = learned.details
                fetched.add(key)
    if settings.compress:
        encoded = [f for f in files if f.encoding]
        compressed = [digests[f.key] for f in encoded if f.key in digests and digests[f.key].size is not None]
        log.debug("compress: %d of %d file(s) with a compress rule compressed to compare (%d bytes of output); "
                  "the state settled the rest", len(compressed), len(encoded), sum(d.size for d in compressed))
    return Evidence(digests=digests, details=details, vouched=frozenset(vouched) - fetched,
                    read_errors=read_errors, detail_errors=detail_errors)


def state_digests(files: Sequence[LocalFile], evidence: Evidence, executors: Executors) -> Dict[str, Digest]:
    """The digests the state records for `files`: the evidence's, and for
    those it lacks (new files, files of another size, when no `source_hashes`
    were read) read after their upload, when they are in the page cache."""
    digests = dict(evidence.digests)
    missing = [f for f in files if f.key not in digests]
    if missing:
        with executors.pool(hash_workers(), "hash") as hasher:
            hashes = source_hashes(missing, hasher)
        encodings = {f.key: f.encoding for f in missing}
        digests.update((key, Digest(xxh=fingerprint(xxh, encodings[key]))) for key, xxh in hashes.items())
    return digests


@dataclass(frozen=True)
class Planned:
    """What a plan was made from, and the plan."""

    listing: Listing
    evidence: Evidence
    plan: Plan
    refusal: Optional[str]
    cache: Optional[CompressedCache]
