"""MD5 and multipart ETags (digest.py)."""

from __future__ import annotations

import hashlib
import math
import os
import random
from pathlib import Path
from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drone_s3_sync import digest
from drone_s3_sync.digest import (
    MiB,
    adjusted_part_size,
    PART_SIZE,
    candidate_limit,
    candidate_part_sizes,
    file_digest,
    our_part_size,
    parse_etag,
)

GiB = 1024 * MiB
COMMON = [8 * MiB, 5 * MiB, 16 * MiB, 15 * MiB, 50 * MiB, 64 * MiB]


def reference_multipart_etag(data: bytes, part_size: int) -> str:
    """S3's rule, written independently: md5 of the parts' binary md5s, then -N."""
    parts = [data[i:i + part_size] for i in range(0, len(data), part_size)] or [b""]
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f"{hashlib.md5(joined).hexdigest()}-{len(parts)}"


def write(path: Path, size: int, seed: int = 7) -> bytes:
    data = random.Random(seed).randbytes(size) if hasattr(random.Random, "randbytes") else os.urandom(size)
    path.write_bytes(data)
    return data


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    path = tmp_path_factory.mktemp("digest") / "big.bin"
    data = write(path, 18 * MiB + 12345)
    return str(path), data


# ---------------------------------------------------------------- file_digest


@pytest.mark.parametrize("size", [0, 1, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 1000003])
def test_md5_equals_hashlib(tmp_path: Path, size: int) -> None:
    data = write(tmp_path / "f", size)
    digest = file_digest(str(tmp_path / "f"))
    assert digest.md5 == hashlib.md5(data).hexdigest()
    assert digest.multipart == {}


def test_multipart_etags_of_a_large_file(big_file: tuple) -> None:
    path, data = big_file
    digest = file_digest(path, part_sizes=[8 * MiB, 5 * MiB])
    assert digest.md5 == hashlib.md5(data).hexdigest()
    assert digest.multipart[8 * MiB] == reference_multipart_etag(data, 8 * MiB)
    assert digest.multipart[5 * MiB] == reference_multipart_etag(data, 5 * MiB)
    assert digest.multipart[8 * MiB].endswith("-3")
    assert digest.multipart[5 * MiB].endswith("-4")


def test_multipart_without_md5(big_file: tuple) -> None:
    path, data = big_file
    digest = file_digest(path, md5=False, part_sizes=[6 * MiB + 7])
    assert digest.md5 is None
    assert digest.multipart == {6 * MiB + 7: reference_multipart_etag(data, 6 * MiB + 7)}


@pytest.mark.parametrize("part", [5 * MiB, 8 * MiB])
def test_file_exactly_two_parts_long(tmp_path: Path, part: int) -> None:
    data = write(tmp_path / "f", 2 * part)
    etag = file_digest(str(tmp_path / "f"), part_sizes=[part]).multipart[part]
    assert etag == reference_multipart_etag(data, part)
    assert etag.endswith("-2")  # no empty third part


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    digest = file_digest(str(tmp_path / "empty"), part_sizes=[8 * MiB])
    assert digest.md5 == "d41d8cd98f00b204e9800998ecf8427e"
    assert digest.multipart[8 * MiB] == reference_multipart_etag(b"", 8 * MiB)
    assert digest.multipart[8 * MiB].endswith("-1")


# ---------------------------------------------------------------- part sizes


@pytest.mark.parametrize(
    "size, expected",
    [
        (1, PART_SIZE),
        (18 * MiB, 16 * MiB),
        (16 * MiB * 10000, 16 * MiB),
        (16 * MiB * 10000 + 1, 32 * MiB),
        (200 * GiB, 32 * MiB),
        (400 * GiB, 64 * MiB),
    ],
)
def test_our_part_size(size: int, expected: int) -> None:
    assert PART_SIZE == 16 * MiB
    assert our_part_size(size) == expected
    assert math.ceil(size / our_part_size(size)) <= 10000


def test_configured_part_size_is_tried_first() -> None:
    size, odd = 100 * MiB, 12 * MiB + 512 * 1024  # 12.5 MiB: no tool's default, not whole MiB
    assert odd not in candidate_part_sizes(size, 8)
    assert candidate_part_sizes(size, 8, part_size=odd)[0] == odd
    assert our_part_size(size, odd) == odd


@pytest.mark.parametrize(
    "size, parts, must_include",
    [
        (18 * MiB + 12345, 3, [8 * MiB]),  # aws-cli / s3transfer default
        (18 * MiB + 12345, 4, [5 * MiB]),  # rclone default
        (9 * MiB, 2, [8 * MiB, 5 * MiB]),  # both consistent
        (16 * MiB, 2, [8 * MiB]),  # exactly two parts
        (100 * GiB, 6400, [16 * MiB]),  # ours, doubled past 10,000 parts
        (100 * GiB, 2048, [50 * MiB]),  # s5cmd
        (3 * MiB, 1, [3 * MiB]),
    ],
)
def test_candidate_part_sizes(size: int, parts: int, must_include: List[int]) -> None:
    found = candidate_part_sizes(size, parts)
    for part in must_include:
        assert part in found
    assert found, "at least one candidate"
    assert len(found) == len(set(found)) <= candidate_limit(size)
    for part in found:
        assert math.ceil(size / part) == parts


def test_our_part_size_is_tried_first() -> None:
    for size in (18 * MiB + 1, 40 * MiB, 100 * GiB, 700 * GiB + 3):
        ours = our_part_size(size)
        assert candidate_part_sizes(size, math.ceil(size / ours))[0] == ours


@pytest.mark.parametrize("size, parts", [(0, 1), (10, 0), (-1, 2), (10 * MiB, -3)])
def test_candidate_part_sizes_nonsense(size: int, parts: int) -> None:
    assert candidate_part_sizes(size, parts) == []


@settings(max_examples=300, deadline=None)
@given(size=st.integers(min_value=1, max_value=5 * 1024 * GiB), parts=st.integers(min_value=1, max_value=10000))
def test_candidates_always_give_exactly_that_many_parts(size: int, parts: int) -> None:
    for part in candidate_part_sizes(size, parts):
        assert math.ceil(size / part) == parts


@settings(max_examples=500, deadline=None)
@given(part=st.sampled_from(COMMON), data=st.data())
def test_common_part_size_is_inferred_from_the_part_count(part: int, data: st.DataObject) -> None:
    parts = data.draw(st.integers(min_value=2, max_value=10000), label="parts")
    size = data.draw(st.integers(min_value=(parts - 1) * part + 1, max_value=parts * part), label="size")
    assert math.ceil(size / part) == parts
    assert part in candidate_part_sizes(size, parts)


# ---------------------------------------------------------------- parse_etag


@pytest.mark.parametrize(
    "etag, expected",
    [
        ('"d41d8cd98f00b204e9800998ecf8427e"', ("d41d8cd98f00b204e9800998ecf8427e", 0)),
        ("D41D8CD98F00B204E9800998ECF8427E", ("d41d8cd98f00b204e9800998ecf8427e", 0)),
        ('"9b2cf535f27731c974343645a3985328-3"', ("9b2cf535f27731c974343645a3985328", 3)),
        ("ABCDEF-10000", ("abcdef", 10000)),
        ("abc-", ("abc", 0)),
        ("abc-x", ("abc", 0)),
    ],
)
def test_parse_etag(etag: str, expected: tuple) -> None:
    assert parse_etag(etag) == expected


@pytest.mark.parametrize("part_size", [5 * MiB, 8 * MiB, 16 * MiB, 100 * MiB])
@pytest.mark.parametrize("size", [0, 1, 5 * MiB, 16 * MiB * 10_000, 16 * MiB * 10_000 + 1, 80 * 1024 ** 3,
                                  5 * 1024 ** 4])
def test_adjusted_part_size_is_what_s3transfer_uses(part_size, size):
    from s3transfer.utils import ChunksizeAdjuster

    assert adjusted_part_size(part_size, size) == ChunksizeAdjuster().adjust_chunksize(part_size, size)


# ------------------------------------------- whole-MiB part sizes of other tools


@pytest.mark.parametrize(
    "size, parts",
    [
        (35 * MiB, 3),  # 17 MiB, 17 MiB, 1 MiB
        (17 * MiB + 100, 2),  # 17 MiB and 100 bytes
        (2 * 17 * MiB + 1, 3),  # 17 MiB, 17 MiB, 1 byte
        (9 * 17 * MiB + 5, 10),
    ],
)
def test_every_whole_mib_part_size_is_a_candidate(size: int, parts: int) -> None:
    found = candidate_part_sizes(size, parts)
    assert 17 * MiB in found
    whole = [m * MiB for m in range(5, size // MiB + 1) if math.ceil(size / (m * MiB)) == parts]
    assert whole, "the case has whole-MiB part sizes"
    assert set(whole) <= set(found)


def test_no_part_size_below_s3s_minimum() -> None:
    # 6 MiB in 2 parts could be 3, 4 or 5 MiB parts; S3 refuses parts below 5 MiB (but the last).
    assert candidate_part_sizes(6 * MiB, 2) == [5 * MiB]
    assert candidate_part_sizes(9 * MiB, 3) == []
    assert candidate_part_sizes(3 * MiB, 1) == [3 * MiB]  # a single part may be small


def test_candidates_are_bounded_by_the_hashing_budget() -> None:
    # 1 GiB in 2 parts: 512 whole-MiB sizes would fit; each costs one MD5 pass.
    found = candidate_part_sizes(1024 * MiB, 2)
    assert len(found) == candidate_limit(1024 * MiB) == 4
    assert len(candidate_part_sizes(100 * MiB, 2)) == candidate_limit(100 * MiB) == 20
    assert len(candidate_part_sizes(60 * MiB, 2)) == 30  # all of 30..59 MiB: under the cap of 32


def _recognised(tmp_path: Path, size: int, part: int) -> None:
    data = write(tmp_path / "f", size, seed=17)
    etag = reference_multipart_etag(data, part)  # what the other tool's upload left in S3
    _, parts = parse_etag(etag)
    candidates = candidate_part_sizes(size, parts)
    digest = file_digest(str(tmp_path / "f"), md5=False, part_sizes=candidates)
    assert [p for p, e in digest.multipart.items() if e == etag] == [part]


def test_17_mib_parts_of_17_mib_and_100_bytes_are_recognised(tmp_path: Path) -> None:
    _recognised(tmp_path, 17 * MiB + 100, 17 * MiB)


@pytest.mark.slow
def test_17_mib_parts_of_35_mib_are_recognised(tmp_path: Path) -> None:
    _recognised(tmp_path, 35 * MiB, 17 * MiB)


def test_read_buffers_are_lent_so_there_are_only_as_many_as_concurrent_reads(tmp_path) -> None:
    """Hashing runs on pools as wide as max_concurrency: buffers are lent per
    file, not kept per thread, so 4 MiB is not multiplied by the thread count."""
    from concurrent.futures import ThreadPoolExecutor

    paths = []
    for i in range(40):
        path = tmp_path / f"f{i}"
        path.write_bytes(bytes([i]) * 5000)
        paths.append(str(path))
    digest._free_buffers.clear()
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda p: digest.file_digest(p, md5=True), paths))
    assert [r.md5 for r in results] == [hashlib.md5(bytes([i]) * 5000).hexdigest() for i in range(40)]
    assert 1 <= len(digest._free_buffers) <= 3
