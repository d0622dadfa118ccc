"""On-the-fly compression: the codecs, the digests of compressed output, the
`compress` setting, its rules and how the plan treats compressed files."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import brotli
import pytest
import xxhash

from drone_s3_sync import diff, needs
from drone_s3_sync.compress import BROTLI_QUALITY, compress_bytes, compressor
from drone_s3_sync.config import build_settings
from drone_s3_sync.ruleparsers import parse_compress
from drone_s3_sync.digest import (
    READ_SIZE,
    Digest,
    MiB,
    _read_full,
    compressed_digest,
    compressed_file,
    file_digest,
    fingerprint,
)
from drone_s3_sync.errors import ConfigError
from drone_s3_sync.model import Kind, LocalFile, ObjectHeaders, Reason, RemoteDetails, RemoteObject
from drone_s3_sync.evidence import CompressedCache
from drone_s3_sync.report import describe
from drone_s3_sync.rules import HeaderRules
from drone_s3_sync.state import Entry

TEXT = "".join(f"<li>item {i}: {'x' * (i % 17)}</li>\n" for i in range(3000)).encode()


def text_of(size: int, seed: int = 1) -> bytes:
    """Compressible bytes: 64 KiB of words from a small vocabulary, repeated."""
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"<div>", b"</div>", b"\n", b"class=", b"{", b"}"]
    block = b" ".join(rng.choice(words) for _ in range(12000))[:64 * 1024]
    return (block * (size // len(block) + 1))[:size]


# ---------------------------------------------------------------- codecs


@pytest.mark.parametrize("size", [0, 1, 1000, 100_000, READ_SIZE, READ_SIZE + 1, 2 * READ_SIZE + 12345])
def test_gzip_output_is_pythons_own_gzip_with_fixed_header(size: int) -> None:
    # Text, and past one read (the output must not depend on the chunks) random bytes: faster to deflate.
    data = text_of(size) if size < READ_SIZE else random.Random(size).randbytes(size)
    out = compress_bytes(data, "gzip")
    # Deflate, no FNAME/FEXTRA/comment, mtime 0, XFL 2 (level 9), OS 255: the same
    # header whatever the Python version (3.11 writes OS 3, other releases 255).
    assert out[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    assert out[10:] == gzip.compress(data, compresslevel=9, mtime=0)[10:]
    assert gzip.decompress(out) == data


@pytest.mark.parametrize("size", [0, 1, 5000])
def test_brotli_output_is_fixed_quality_and_round_trips(size: int) -> None:
    data = text_of(size)
    out = compress_bytes(data, "br")
    assert brotli.decompress(out) == data
    # One chunk: the same bytes as brotli's one-shot API at quality 11.
    assert out == brotli.compress(data, quality=BROTLI_QUALITY)
    assert compress_bytes(data, "br") == out


def test_unknown_encoding_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        compressor("zstd")


# ---------------------------------------------------------------- digests of compressed output


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_compressed_digest_describes_the_compressed_bytes(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "page.html"
    path.write_bytes(TEXT)
    expected = compress_bytes(TEXT, encoding)
    digest, data = compressed_digest(str(path), encoding, keep=1 << 20)
    assert data == expected
    assert digest.size == len(expected)
    assert digest.md5 == hashlib.md5(expected).hexdigest()
    assert digest.xxh == f"{encoding}:{xxhash.xxh3_128(TEXT).hexdigest()}"
    # Same input, same output: twice, and through the upload path.
    assert compressed_digest(str(path), encoding)[0] == Digest(md5=digest.md5, xxh=digest.xxh, size=digest.size)
    with compressed_file(str(path), encoding) as body:
        assert body.read() == expected
    # The source's fingerprint alone (what a state entry settles) reads the file once and compresses nothing.
    assert file_digest(str(path), md5=True, encoding=encoding) == Digest(xxh=digest.xxh)


def test_compressed_digest_keeps_bytes_only_up_to_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_bytes(TEXT)
    size = len(compress_bytes(TEXT, "gzip"))
    assert compressed_digest(str(path), "gzip", keep=size)[1] is not None
    assert compressed_digest(str(path), "gzip", keep=size - 1)[1] is None
    assert compressed_digest(str(path), "gzip")[1] is None


def test_multipart_etag_of_compressed_output(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(6 * MiB) if hasattr(random.Random, "randbytes") else bytes(6 * MiB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    digest, _ = compressed_digest(str(path), "gzip", part_sizes=[5 * MiB])
    out = tmp_path / "big.bin.gz"
    out.write_bytes(compress_bytes(data, "gzip"))
    assert digest.multipart == file_digest(str(out), part_sizes=[5 * MiB]).multipart
    assert digest.multipart[5 * MiB].endswith("-2")


def test_short_reads_do_not_change_the_chunks() -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes):
            self.data = io.BytesIO(data)

        def readinto(self, buffer) -> int:
            chunk = self.data.read(min(len(buffer), 1000))
            buffer[:len(chunk)] = chunk
            return len(chunk)

    buffer = bytearray(4096)
    handle = Trickle(b"a" * 5000)
    assert _read_full(handle, buffer, memoryview(buffer)) == 4096
    assert _read_full(handle, buffer, memoryview(buffer)) == 904
    assert _read_full(handle, buffer, memoryview(buffer)) == 0


def test_fingerprint() -> None:
    assert fingerprint("abc", None) == "abc"
    assert fingerprint("abc", "gzip") == "gzip:abc" != fingerprint("abc", "br")


def test_cache_budget_and_limit() -> None:
    cache = CompressedCache(budget=10, limit=6)
    cache.offer("a", b"123456")
    cache.offer("b", b"1234567")  # above the per-file limit
    cache.offer("c", b"12345")  # would pass the budget
    cache.offer("d", b"1234")
    assert (cache.take("a"), cache.take("b"), cache.take("c"), cache.take("d")) == (b"123456", None, None, b"1234")
    assert cache.take("a") is None  # taken once


# ---------------------------------------------------------------- the setting


@pytest.mark.parametrize("raw, rules", [
    ("gzip", (("*", "gzip"),)),
    ("BR", (("*", "br"),)),
    ("none", (("*", "none"),)),
    ('{".html": "br", ".css": "gzip", "*.min.js": "none"}', ((".html", "br"), (".css", "gzip"), ("*.min.js", "none"))),
    ({".svg": "gzip"}, ((".svg", "gzip"),)),
    (".html,.css, .js", ((".html", "gzip"), (".css", "gzip"), (".js", "gzip"))),
    (".tar.gz", ((".tar.gz", "gzip"),)),
    ([".html", ".xml"], ((".html", "gzip"), (".xml", "gzip"))),
    ('[".html", ".xml"]', ((".html", "gzip"), (".xml", "gzip"))),
])
def test_compress_forms(raw, rules) -> None:
    assert parse_compress("compress", raw) == rules


@pytest.mark.parametrize("raw, words", [
    ("zip", "did you mean 'gzip'"),
    ("brotli", "brotli is 'br'"),
    (True, "for gzip write gzip"),
    ('{".html": "deflate"}', "rule '.html': 'deflate' is not a compression"),
    (".html,css", "'css' is not an extension like .html"),
    ('["gzip"]', "'gzip' is not an extension"),
    ("[]", "the list names no extension"),
    (",", "',' is not a compression"),
    ('{".html": "gzip"', "invalid JSON"),
    ('{".html": ""}', "rule '.html': empty value; give a value or leave the rule out"),
])
def test_compress_refusals(raw, words) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_compress("PLUGIN_COMPRESS", raw)
    assert caught.value.setting == "PLUGIN_COMPRESS"
    assert words in str(caught.value)
    if "empty value" not in words:
        assert "use gzip, br or none" in str(caught.value)


def test_br_without_the_brotli_package_is_refused(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "brotli", None)  # import brotli now raises ImportError
    with pytest.raises(ConfigError) as caught:
        parse_compress("PLUGIN_COMPRESS", '{".css": "gzip", ".html": "br"}')
    assert "pip install 'drone-s3-sync[brotli]'" in str(caught.value)
    assert parse_compress("PLUGIN_COMPRESS", "gzip") == (("*", "gzip"),)  # gzip needs nothing


# ---------------------------------------------------------------- rules


def local(rel: str, size: int = 100, encoding: Optional[str] = None) -> LocalFile:
    return LocalFile(rel=rel, key="site/" + rel, path="/src/" + rel, size=size, mtime_ns=1, encoding=encoding)


def test_first_matching_rule_decides_and_none_keeps_a_file_as_it_is() -> None:
    rules = HeaderRules(build_settings({"bucket": "my-bucket", "compress": {"*.min.js": "none", ".js": "br", "*": "gzip"}}))
    assert rules.encoding_for("app.min.js") is None
    assert rules.encoding_for("js/app.js") == "br"
    assert rules.encoding_for("index.html") == "gzip"
    assert HeaderRules(build_settings({"bucket": "my-bucket"})).encoding_for("index.html") is None


def test_compression_sets_content_encoding_and_keeps_content_type() -> None:
    settings = build_settings({"bucket": "my-bucket", "compress": {".html": "gzip"}, "content_encoding": {".html": "identity",
                                                                                                   ".gz": "gzip"}})
    rules = HeaderRules(settings)
    files, conflicts = rules.with_encodings([local("index.html"), local("a.txt"), local("x.gz")])
    assert [f.encoding for f in files] == ["gzip", None, None]
    assert [f.rel for f in conflicts] == ["index.html"]
    headers = rules.headers_for("index.html", encoding="gzip")
    assert (headers.content_type, headers.content_encoding) == ("text/html; charset=utf-8", "gzip")
    assert rules.headers_for("x.gz").content_encoding == "gzip"


# ---------------------------------------------------------------- the plan


SETTINGS = build_settings({"bucket": "my-bucket", "target": "site", "compress": "gzip"})
SOURCE_XXH = "0" * 32


def compressed(size: int = 30, md5: str = "c" * 32, encoding: str = "gzip") -> Digest:
    return Digest(md5=md5, xxh=fingerprint(SOURCE_XXH, encoding), size=size)


def gz_headers() -> ObjectHeaders:
    return HeaderRules(SETTINGS).headers_for("a.txt", encoding="gzip")


def plan_one(f: LocalFile, r: Optional[RemoteObject], digest: Optional[Digest] = None,
             detail: Optional[RemoteDetails] = None, entry: Optional[Entry] = None):
    plan = diff.make_plan([f], {r.key: r} if r else {}, {f.key: digest} if digest else {},
                          {f.key: detail} if detail else {}, SETTINGS, state={f.key: entry} if entry else {})
    (action,) = plan.actions
    return action


def test_hash_needs_for_compressed_files() -> None:
    f = local("a.txt", 100, "gzip")
    assert needs.hash_needs(f, None) == (True, [])  # new: compressed for the plan's size and the upload
    r = RemoteObject("site/a.txt", 30, "c" * 32)
    assert needs.hash_needs(f, r) == (True, [])  # any size: the compressed size decides
    entry = Entry(etag=r.etag, size=r.size, xxh=fingerprint(SOURCE_XXH, "gzip"), headers=gz_headers())
    assert needs.hash_needs(f, r, entry) == (False, [])  # the state settles it: the source's fingerprint only
    multipart = RemoteObject("site/a.txt", 20 * MiB, "d" * 32 + "-3")
    assert needs.hash_needs(f, multipart)[1][0] == 8 * MiB  # part sizes for the object's (compressed) size


def test_compressed_sizes_decide_and_the_action_carries_the_compressed_size() -> None:
    f = local("a.txt", 100, "gzip")
    a = plan_one(f, None, compressed(30))
    assert (a.kind, a.reason, a.size) == (Kind.UPLOAD, Reason.NEW, 30)
    assert describe(a) == "upload   site/a.txt  (new, 100 B -> 30 B gzip)"
    a = plan_one(f, RemoteObject(f.key, 100, "c" * 32), compressed(30))  # the source's size means nothing
    assert (a.kind, a.reason, a.size) == (Kind.UPLOAD, Reason.SIZE, 30)
    same = RemoteObject(f.key, 30, "c" * 32)
    a = plan_one(f, same, compressed(30), RemoteDetails(headers=gz_headers()))
    assert (a.kind, a.reason) == (Kind.SKIP, Reason.UNCHANGED)
    a = plan_one(f, same, compressed(30, md5="e" * 32), RemoteDetails(headers=gz_headers()))
    assert (a.kind, a.reason) == (Kind.UPLOAD, Reason.CONTENT)
    # The same bytes without Content-Encoding: a header fix, not an upload.
    plain = replace(gz_headers(), content_encoding=None)
    a = plan_one(f, same, compressed(30), RemoteDetails(headers=plain))
    assert (a.kind, a.detail) == (Kind.UPDATE, "content_encoding")


def test_state_settles_a_compressed_file_without_compressing_it() -> None:
    f = local("a.txt", 100, "gzip")
    r = RemoteObject(f.key, 30, "c" * 32)
    entry = Entry(etag=r.etag, size=30, xxh=fingerprint(SOURCE_XXH, "gzip"), headers=gz_headers())
    known = diff.known_details({r.key: r}, {r.key: entry})
    source_only = Digest(xxh=fingerprint(SOURCE_XXH, "gzip"))
    a = plan_one(f, r, source_only, known[r.key], entry)
    assert (a.kind, a.reason, a.size) == (Kind.SKIP, Reason.UNCHANGED, 30)
    # Another compression of the same source, or the plain file: never settled by the entry.
    for other in (Digest(xxh=fingerprint(SOURCE_XXH, "br")), Digest(xxh=SOURCE_XXH)):
        assert not diff.content_matches(r, other, known[r.key], entry)
    # Not compressed in this run, not same size as the source: no HeadObject needed either.
    assert needs.next_need(f, r, entry, source_only, known[r.key]) is None
    head = needs.Need(needs.HEAD)
    assert needs.next_need(f, r, None, compressed(30), None) == head  # compressed to the object's size
    assert needs.next_need(f, r, None, compressed(31), None) is None  # another size: uploaded, no HEAD
    # The source changed since the state vouched for it: compressed now.
    changed = Digest(xxh=fingerprint("another source", "gzip"))
    assert needs.next_need(f, r, entry, changed, known[r.key]) == needs.Need(needs.HASH, True)
