"""MD5 and multipart ETags of local files: one streaming read per file.

S3's ETag of a single-part upload is the MD5 of the bytes. A multipart upload's
ETag is `md5(md5(part1) + md5(part2) + ...)-N`, so it depends on the part size
the uploader used. We upload with a fixed rule (`PART_SIZE`, doubled by
s3transfer until the file fits in 10,000 parts), and for objects other tools
wrote we infer the part size from the part count N (common defaults first).
hashlib releases the GIL on large buffers, so a thread pool hashes on all cores.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import xxhash
from s3transfer.utils import ChunksizeAdjuster

from .config import PART_SIZE  # noqa: F401 (the default `part_size`, re-exported for diff and pipeline)
from .model import SLOTS

MiB = 1024 * 1024
READ_SIZE = 4 * MiB
# Part sizes other uploaders use by default: s3transfer/aws-cli 8 MiB, rclone 5 MiB,
# s3cmd 15 MiB, MinIO mc and many SDKs 16 MiB, s5cmd 50 MiB, and round powers of two.
COMMON_PART_SIZES = tuple(n * MiB for n in (8, 5, 16, 15, 10, 32, 50, 64, 100, 128, 256, 512))
MAX_CANDIDATES = 4


def adjusted_part_size(part_size: int, size: int) -> int:
    """The part size s3transfer really uses for `size` bytes (doubled past 10,000 parts)."""
    return ChunksizeAdjuster().adjust_chunksize(part_size, size)


def our_part_size(size: int, part_size: int = PART_SIZE) -> int:
    """The part size s3transfer uses for a file of `size` bytes with `part_size` configured."""
    return adjusted_part_size(part_size, size)


def parse_etag(etag: str) -> tuple:
    """('<hex>', parts) for a multipart ETag, ('<hex>', 0) for a plain one."""
    etag = etag.strip('"').lower()
    digest, _, parts = etag.partition("-")
    return digest, int(parts) if parts.isdigit() else 0


def candidate_part_sizes(size: int, parts: int, part_size: int = PART_SIZE) -> List[int]:
    """Part sizes that give exactly `parts` parts for `size` bytes, likeliest
    first: ours (`part_size`), then other tools' defaults."""
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
    # Otherwise try whole MiB sizes in the feasible range, the way most tools round.
    first_mib = math.ceil(lowest / MiB)
    for mib in range(first_mib, first_mib + MAX_CANDIDATES):
        add(mib * MiB)
    if parts == 1:
        add(size)
    return found[:MAX_CANDIDATES]


_local = threading.local()


def _read_buffer() -> bytearray:
    """One read buffer per hashing thread: allocating (and zeroing) 4 MiB per file
    would cost more than hashing a typical web page."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = bytearray(READ_SIZE)
    return buffer


@dataclass(**SLOTS)
class Digest:
    md5: Optional[str] = None  # hex, of the whole file
    multipart: Dict[int, str] = field(default_factory=dict)  # part size -> "hex-N"
    xxh: Optional[str] = None  # xxh3-128 hex: ~20x faster than MD5, compared with the state object


def file_digest(path: str, *, md5: bool = True, part_sizes: Sequence[int] = ()) -> Digest:
    """Read `path` once, computing its xxh3-128, and its MD5 and/or its multipart
    ETag for each part size when asked."""
    fast = xxhash.xxh3_128()
    whole = hashlib.md5() if md5 else None
    parts = {size: [] for size in part_sizes}
    current = {size: hashlib.md5() for size in part_sizes}
    filled = {size: 0 for size in part_sizes}
    buffer = _read_buffer()
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            chunk = view[:count]
            fast.update(chunk)
            if whole is not None:
                whole.update(chunk)
            for size in part_sizes:
                offset = 0
                while offset < count:
                    take = min(size - filled[size], count - offset)
                    current[size].update(chunk[offset:offset + take])
                    filled[size] += take
                    offset += take
                    if filled[size] == size:
                        parts[size].append(current[size].digest())
                        current[size] = hashlib.md5()
                        filled[size] = 0
    result = Digest(md5=whole.hexdigest() if whole is not None else None, xxh=fast.hexdigest())
    for size in part_sizes:
        digests = parts[size]
        if filled[size] or not digests:
            digests = digests + [current[size].digest()]
        result.multipart[size] = f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
    return result
