"""On-the-fly compression (`compress` setting): deterministic gzip and brotli streams.

The same input always gives the same bytes, so the same MD5 and ETag, so an
unchanged file is never uploaded again: gzip with a fixed level, mtime 0, no file
name and a fixed OS byte in its header (the deflate stream of `gzip.compress(data,
9, mtime=0)`; its header differs between Python releases), brotli with a fixed quality, mode and window. Input is fed
in fixed-size chunks, so the output never depends on how the OS splits reads.

Levels, measured on a rustdoc book (45 files, 2.0 MiB of HTML/JS/CSS) and a
5.4 MiB JavaScript search index, one core:
  gzip 6: 22.0% / 14.5% at ~50 MiB/s     gzip 9: 21.6% / 13.8% at 9-14 MiB/s
  br 9:  18.9% /  8.9% at 6-27 MiB/s     br 11:  16.7% /  7.6% at 0.8 MiB/s
gzip 9 and brotli 11 (what precompressed static assets normally use): the
output is made once per changed file (the state object settles unchanged files
without compressing them), and every byte saved is saved on every download.

Brotli is the optional `Brotli` package (`pip install drone-s3-sync[brotli]`).
"""

from __future__ import annotations

import struct
import zlib

GZIP = "gzip"
BROTLI = "br"
ENCODINGS = (GZIP, BROTLI)
GZIP_LEVEL = 9
# Input is fed to a compressor in pieces of this size, by the streaming path
# (digest.py reads files in these) and by compress_bytes alike: the same output.
READ_SIZE = 4 << 20
BROTLI_QUALITY = 11
BROTLI_WINDOW = 22  # log2 of the window: brotli's default
BROTLI_HINT = "pip install 'drone-s3-sync[brotli]'"

# Magic, deflate, no flags, mtime 0, XFL 2 (level 9), OS 255 (unknown): Python's own gzip header.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


def brotli_module():
    """The brotli module, or None when the optional package is not installed."""
    try:
        import brotli
    except ImportError:
        return None
    return brotli


class _Gzip:
    """A gzip member written with zlib: header, raw deflate, CRC-32 and size."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, 0)
        self._crc = 0
        self._size = 0
        self._header = _GZIP_HEADER

    def _head(self, data: bytes) -> bytes:
        if self._header:
            data, self._header = self._header + data, b""
        return data

    def compress(self, data) -> bytes:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        return self._head(self._deflate.compress(data))

    def finish(self) -> bytes:
        trailer = struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)
        return self._head(self._deflate.flush()) + trailer


class _Brotli:
    def __init__(self, brotli) -> None:
        self._compressor = brotli.Compressor(mode=brotli.MODE_GENERIC, quality=BROTLI_QUALITY, lgwin=BROTLI_WINDOW)

    def compress(self, data) -> bytes:
        return self._compressor.process(bytes(data))

    def finish(self) -> bytes:
        return self._compressor.finish()


def compressor(encoding: str):
    """A fresh compressor for `encoding`: `.compress(chunk) -> bytes`, `.finish() -> bytes`."""
    if encoding == GZIP:
        return _Gzip()
    if encoding == BROTLI:
        brotli = brotli_module()
        if brotli is None:  # the settings refuse br without the package; stay clear anyway
            raise RuntimeError(f"compress: br needs the Brotli package: {BROTLI_HINT}")
        return _Brotli(brotli)
    raise ValueError(f"unknown encoding {encoding!r}")


def compress_bytes(data: bytes, encoding: str) -> bytes:
    """The whole output for `data` (tests and small inputs); the same bytes as the streaming path."""
    engine = compressor(encoding)
    view = memoryview(data)
    parts = [engine.compress(view[start:start + READ_SIZE]) for start in range(0, len(data), READ_SIZE)]
    parts.append(engine.finish())
    return b"".join(parts)

