"""MD5 and multipart ETags of local files: one streaming read per file.

S3's ETag of a single-part upload is the MD5 of the bytes. A multipart upload's
ETag is `md5(md5(part1) + md5(part2) + ...)-N`, so it depends on the part size
the uploader used. We upload with a fixed rule (`PART_SIZE`, doubled by
s3transfer until the file fits in 10,000 parts), and for objects other tools
wrote we infer the part size from the part count N (common defaults first,
then every whole-MiB size from 5 MiB that gives exactly N parts, within a
hashing budget: see `candidate_part_sizes`).
hashlib releases the GIL on large buffers, so a thread pool hashes on all cores.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import xxhash

from .compress import READ_SIZE, compressor
from .model import SLOTS
from .s3vocab import MIN_PART, MiB, PART_SIZE, adjusted_part_size  # MIN_PART: S3 refuses smaller parts but the last

# Part sizes other uploaders use by default: s3transfer/aws-cli 8 MiB, rclone 5 MiB,
# s3cmd 15 MiB, MinIO mc and many SDKs 16 MiB, s5cmd 50 MiB, and round powers of two.
COMMON_PART_SIZES = tuple(n * MiB for n in (8, 5, 16, 15, 10, 32, 50, 64, 100, 128, 256, 512))

# Each candidate costs one more MD5 over the file's bytes (in the same single
# read): MD5 does not compose, so parts with different boundaries share no work.
# So at most MAX_CANDIDATES, and no more than HASH_BUDGET bytes of MD5 per file
# (about 3 s of one core), but always the first MIN_CANDIDATES. 32 covers every
# whole-MiB size for 3 parts up to 192 MiB, 4 parts up to 384 MiB, 2 parts up to 64 MiB.
MAX_CANDIDATES = 32
MIN_CANDIDATES = 4
HASH_BUDGET = 2 * 1024 * MiB


def our_part_size(size: int, part_size: int = PART_SIZE) -> int:
    """The part size s3transfer uses for a file of `size` bytes with `part_size` configured."""
    return adjusted_part_size(part_size, size)


def parse_etag(etag: str) -> tuple:
    """('<hex>', parts) for a multipart ETag, ('<hex>', 0) for a plain one."""
    etag = etag.strip('"').lower()
    digest, _, parts = etag.partition("-")
    return digest, int(parts) if parts.isdigit() else 0


def candidate_limit(size: int) -> int:
    """How many part sizes are tried for a file of `size` bytes (see HASH_BUDGET)."""
    return max(MIN_CANDIDATES, min(MAX_CANDIDATES, HASH_BUDGET // max(size, 1)))


def candidate_part_sizes(size: int, parts: int, part_size: int = PART_SIZE) -> List[int]:
    """Part sizes that give exactly `parts` parts for `size` bytes, likeliest
    first: ours (`part_size`), then other tools' defaults, then every whole-MiB
    size from 5 MiB up, as far as `candidate_limit` allows."""
    if parts <= 0 or size <= 0:
        return []
    lowest = math.ceil(size / parts)  # smallest part size giving at most `parts` parts
    highest = size if parts == 1 else (size - 1) // (parts - 1)
    found: List[int] = []

    def add(value: int) -> None:
        if lowest <= value <= highest and value not in found and math.ceil(size / value) == parts:
            found.append(value)

    add(our_part_size(size, part_size))
    for base in COMMON_PART_SIZES:
        add(base)
        add(adjusted_part_size(base, size))
    if parts == 1:
        add(size)
    # Otherwise whole-MiB sizes in the feasible range, the way most tools round
    # (17 MiB parts: 35 MiB in 3 parts). Smaller than 5 MiB only for a single part.
    limit = candidate_limit(size)
    first_mib = math.ceil(max(lowest, MIN_PART if parts > 1 else 1) / MiB)
    mib = first_mib
    while len(found) < limit and mib * MiB <= highest:
        add(mib * MiB)
        mib += 1
    return found[:limit]


_free_buffers: List[bytearray] = []
_buffers_lock = threading.Lock()


@contextlib.contextmanager
def _read_buffer() -> Iterator[bytearray]:
    """A read buffer, lent for one file: allocating (and zeroing) 4 MiB per
    file would cost more than hashing a typical web page. There are as many
    as files are ever read at once (the hashing slots, the compressing uploads)."""
    with _buffers_lock:
        buffer = _free_buffers.pop() if _free_buffers else None
    if buffer is None:
        buffer = bytearray(READ_SIZE)
    try:
        yield buffer
    finally:
        with _buffers_lock:
            _free_buffers.append(buffer)


@dataclass(**SLOTS)
class Digest:
    """Digests of what an object made from a local file would hold.

    For a file uploaded as it is, `md5` and `multipart` are those of its bytes
    and `xxh` is their xxh3-128. For a file the `compress` setting compresses,
    `md5`, `multipart` and `size` are those of the compressed bytes, and `xxh`
    is `<encoding>:<xxh3-128 of the source file>` (see `fingerprint`): what the
    state object records, so that an unchanged file is settled without being
    compressed at all.
    """

    md5: Optional[str] = None  # hex, of the whole file (of the compressed bytes for a compressed file)
    multipart: Dict[int, str] = field(default_factory=dict)  # part size -> "hex-N"
    xxh: Optional[str] = None  # xxh3-128 hex: ~20x faster than MD5, compared with the state object
    size: Optional[int] = None  # a compressed file's compressed size; None: not compressed (yet)


def fingerprint(xxh: str, encoding: Optional[str]) -> str:
    """What the state records for the bytes an object was made from: the source
    file's xxh3-128, prefixed with the compression applied to it. An entry for
    a gzip object never matches the same file compressed with br or uploaded
    as it is (nor is taken for it by an older release, which compares plain digests)."""
    return f"{encoding}:{xxh}" if encoding else xxh


class _Etags:
    """The MD5 of a byte stream and its multipart ETag for each part size."""

    def __init__(self, md5: bool, part_sizes: Sequence[int]):
        self.whole = hashlib.md5() if md5 else None
        self.part_sizes = tuple(part_sizes)
        self.parts: Dict[int, List[bytes]] = {size: [] for size in self.part_sizes}
        self.current = {size: hashlib.md5() for size in self.part_sizes}
        self.filled = {size: 0 for size in self.part_sizes}
        self.size = 0

    def update(self, chunk) -> None:
        count = len(chunk)
        self.size += count
        if self.whole is not None:
            self.whole.update(chunk)
        for size in self.part_sizes:
            offset = 0
            while offset < count:
                take = min(size - self.filled[size], count - offset)
                self.current[size].update(chunk[offset:offset + take])
                self.filled[size] += take
                offset += take
                if self.filled[size] == size:
                    self.parts[size].append(self.current[size].digest())
                    self.current[size] = hashlib.md5()
                    self.filled[size] = 0

    def into(self, result: Digest) -> Digest:
        result.md5 = self.whole.hexdigest() if self.whole is not None else None
        for size in self.part_sizes:
            digests = self.parts[size]
            if self.filled[size] or not digests:
                digests = digests + [self.current[size].digest()]
            result.multipart[size] = f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
        return result


def file_digest(path: str, *, md5: bool = True, part_sizes: Sequence[int] = (),
                encoding: Optional[str] = None) -> Digest:
    """Read `path` once, computing its xxh3-128, and its MD5 and/or its multipart
    ETag for each part size when asked. With `encoding` (a file the `compress`
    setting compresses, read here only for the state's fingerprint) only the
    fingerprint is computed: see `compressed_digest` for the rest."""
    fast = xxhash.xxh3_128()
    etags = _Etags(md5 and not encoding, () if encoding else part_sizes)
    with _read_buffer() as buffer, open(path, "rb", buffering=0) as handle:
        view = memoryview(buffer)
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            chunk = view[:count]
            fast.update(chunk)
            etags.update(chunk)
    if encoding:
        return Digest(xxh=fingerprint(fast.hexdigest(), encoding))
    return etags.into(Digest(xxh=fast.hexdigest()))


def _read_full(handle, buffer: bytearray, view: memoryview) -> int:
    """Fill `buffer` unless the file ends first: compressed output must not
    depend on how the OS happens to split reads."""
    filled = 0
    while filled < len(buffer):
        count = handle.readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


def _compress(path: str, encoding: str, sink: Callable[[bytes], None]) -> str:
    """Compress `path` in one read, handing each piece of output to `sink`;
    returns the fingerprint of the source."""
    engine = compressor(encoding)
    fast = xxhash.xxh3_128()
    with _read_buffer() as buffer, open(path, "rb", buffering=0) as handle:
        view = memoryview(buffer)
        while True:
            count = _read_full(handle, buffer, view)
            if not count:
                break
            chunk = view[:count]
            fast.update(chunk)
            out = engine.compress(chunk)
            if out:
                sink(out)
            if count < len(buffer):
                break
    out = engine.finish()
    if out:
        sink(out)
    return fingerprint(fast.hexdigest(), encoding)


def compressed_digest(path: str, encoding: str, *, part_sizes: Sequence[int] = (),
                      keep: int = 0) -> Tuple[Digest, Optional[bytes]]:
    """Compress `path` in one read: the fingerprint of the source, and the MD5,
    multipart ETags (for `part_sizes`) and size of the compressed bytes. Those
    bytes are returned too when there are at most `keep` of them (else None)."""
    etags = _Etags(True, part_sizes)
    kept: Optional[List[bytes]] = [] if keep > 0 else None

    def sink(out: bytes) -> None:
        nonlocal kept
        etags.update(out)
        if kept is not None:
            if etags.size <= keep:
                kept.append(out)
            else:
                kept = None  # too big to keep: compressed again for the upload

    xxh = _compress(path, encoding, sink)
    digest = etags.into(Digest(xxh=xxh, size=etags.size))
    return digest, (b"".join(kept) if kept is not None else None)


SPOOL_SIZE = 8 * MiB  # compressed output up to this size stays in memory while it is uploaded


def compressed_file(path: str, encoding: str) -> "tempfile.SpooledTemporaryFile":
    """The compressed bytes of `path` in a file object at position 0, for an
    upload: in memory up to SPOOL_SIZE, in a temporary file beyond. The caller closes it."""
    body = tempfile.SpooledTemporaryFile(max_size=SPOOL_SIZE, prefix="drone-s3-sync-")
    try:
        _compress(path, encoding, body.write)
        body.seek(0)
    except BaseException:
        body.close()
        raise
    return body
