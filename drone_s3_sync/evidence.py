"""The evidence stage: what must be known about each key before the plan can
decide, gathered in bounded passes over the files and the bucket.

What to hash and which objects to HEAD is decided by the pure functions in
diff (`hash_needs`, `md5_needs`, `detail_needs`); this module only meets those
needs, on the executors it is given, and returns one frozen `Evidence`.
Rounds follow each other only where a need depends on an earlier answer: an
MD5 recorded in an object's metadata (known after its HEAD) can settle what
its ETag could not, and needs the whole-file MD5 of a file hashed by parts.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import Dict, FrozenSet, Mapping, Optional, Sequence, Set, Tuple

from . import diff
from .digest import PART_SIZE, SPOOL_SIZE, Digest, compressed_digest, file_digest, fingerprint
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


def hash_files(locals_: Sequence[LocalFile], remotes: Mapping[str, RemoteObject], pool,
               *, state: Mapping[str, Entry] = {}, force_md5: Set[str] = frozenset(),
               everything: bool = False, part_size: int = PART_SIZE, known: Mapping[str, str] = {},
               cache: Optional[CompressedCache] = None) -> Tuple[Dict[str, Digest], Dict[str, str]]:
    """Hash only the files whose remote copy has the same size: nothing else can
    match. `everything` hashes all given files (xxh3 only unless asked).
    `known`: xxh3 already read (`source_hashes`), enough for files that need
    no MD5 or part ETags; they are not read again, and are in the result.
    A compressed file is compressed when its MD5 is needed (see
    diff.hash_needs); its bytes are offered to `cache` for the upload.
    Returns the digests and, for each file that could not be read, why."""
    paths = {}
    digests: Dict[str, Digest] = {}

    def jobs():
        for local in locals_:
            need = diff.hash_needs(local, remotes.get(local.key), state.get(local.key), part_size)
            md5 = local.key in force_md5
            if (need is None or need == (False, [])) and not md5 and local.key in known:
                digests[local.key] = Digest(xxh=fingerprint(known[local.key], local.encoding))
                continue
            if need is None:
                if not everything:
                    continue
                need = (False, [])
            md5, part_sizes = need[0] or md5, need[1]
            paths[local.key] = local.path
            if local.encoding is not None and (md5 or part_sizes):
                yield local.key, partial(_compress_job, local, part_sizes, cache)
            else:
                yield local.key, partial(file_digest, local.path, md5=md5, part_sizes=part_sizes,
                                         encoding=local.encoding)

    errors: Dict[str, str] = {}
    for key, digest, error in bounded(pool, jobs(), (OSError,)):
        if error is not None:
            errors[key] = read_error_text(error, paths[key])
        else:
            digests[key] = digest
    return digests, errors


def fetch_details(store: RemoteStore, keys: Set[str], pool) -> Tuple[Dict[str, RemoteDetails], Dict[str, str]]:
    """HeadObject + GetObjectAcl for each key; (details, {key: error})."""
    details: Dict[str, RemoteDetails] = {}
    errors: Dict[str, str] = {}
    jobs = ((key, partial(store.details, key)) for key in sorted(keys))
    for key, result, error in bounded(pool, jobs, (StoreError,)):
        if error is not None:
            errors[key] = str(error)
        else:
            details[key] = result
    return details, errors


def gather(files: Sequence[LocalFile], remotes: Mapping[str, RemoteObject], state: Mapping[str, Entry], *,
           settings, rules: HeaderRules, store: RemoteStore, executors: Executors,
           cache: Optional[CompressedCache] = None, known: Mapping[str, str] = {}) -> Evidence:
    """Digests of the files that could be unchanged, and the headers of their
    objects: from the state where it vouches for them, else from S3. `known`:
    the files' xxh3 read before (`source_hashes`)."""
    part_size = settings.part_size
    with executors.pool(hash_workers(), "hash") as hasher:
        digests, read_errors = hash_files(files, remotes, hasher, state=state, part_size=part_size, cache=cache,
                                          known=known)
        if settings.compress:
            _compress_changed(files, digests, read_errors, remotes, state, hasher, part_size, cache)
        kms = diff.md5_needs(files, remotes, rules)
        if kms:  # new files whose upload records their MD5 (SSE-KMS ETags are no MD5)
            more, failed = hash_files([f for f in files if f.key in kms], {}, hasher, force_md5=kms,
                                      everything=True, part_size=part_size)
            digests.update(more)
            read_errors.update(failed)
        details = diff.known_details(remotes, state)
        with executors.pool(settings.max_concurrency, "head") as heads:
            fetched, detail_errors = fetch_details(
                store, diff.detail_needs(files, remotes, settings, details, digests), heads)
        vouched = frozenset(details) - frozenset(fetched)
        details.update(fetched)
        recheck = {f.key for f in files if f.key in fetched and fetched[f.key].md5
                   and f.key in digests and digests[f.key].md5 is None}
        if recheck:
            more, failed = hash_files([f for f in files if f.key in recheck], remotes, hasher, force_md5=recheck,
                                      part_size=part_size)
            digests.update(more)
            read_errors.update(failed)
    return Evidence(digests=digests, details=details, vouched=vouched, read_errors=read_errors,
                    detail_errors=detail_errors)


def _compress_changed(files: Sequence[LocalFile], digests: Dict[str, Digest], read_errors: Dict[str, str],
                      remotes: Mapping[str, RemoteObject], state: Mapping[str, Entry], hasher,
                      part_size: int, cache: Optional[CompressedCache]) -> None:
    """Compressed files the state vouched for (so only their source was
    read) whose source changed are compressed now: the plan shows their
    compressed size, and the upload takes the bytes from the cache."""
    changed = {f.key for f in files if f.encoding and f.key in digests and digests[f.key].size is None
               and (entry := state.get(f.key)) is not None and entry.xxh != digests[f.key].xxh}
    if changed:
        more, failed = hash_files([f for f in files if f.key in changed], remotes, hasher, state=state,
                                  force_md5=changed, part_size=part_size, cache=cache)
        digests.update(more)
        read_errors.update(failed)
    encoded = [f for f in files if f.encoding]
    compressed = [digests[f.key] for f in encoded if f.key in digests and digests[f.key].size is not None]
    log.debug("compress: %d of %d file(s) with a compress rule compressed to compare (%d bytes of output); "
              "the state settled the rest", len(compressed), len(encoded), sum(d.size for d in compressed))


def state_digests(files: Sequence[LocalFile], evidence: Evidence, executors: Executors) -> Dict[str, Digest]:
    """The digests the state records for `files`: the evidence's, and for
    those it lacks (new files, files of another size, when no `source_hashes`
    were read) read after their upload, when they are in the page cache."""
    digests = dict(evidence.digests)
    missing = [f for f in files if f.key not in digests]
    if missing:
        with executors.pool(hash_workers(), "hash") as hasher:
            digests.update(hash_files(missing, {}, hasher, everything=True)[0])
    return digests


@dataclass(frozen=True)
class Planned:
    """What a plan was made from, and the plan."""

    listing: Listing
    evidence: Evidence
    plan: Plan
    refusal: Optional[str]
    cache: Optional[CompressedCache]
