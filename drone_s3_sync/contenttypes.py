"""Content-Type for uploaded objects, from a built-in table.

The table is deliberately self-contained: ``mimetypes`` reads
/etc/mime.types, the Windows registry and other host files, so the same
sync would label objects differently depending on the CI image it ran on
(``.js`` as ``application/javascript`` on one host and ``text/plain`` on
a Windows runner, for instance). A static site must not change behaviour
because the build agent changed.

Types follow the IANA registry and what browsers expect today, e.g.
``text/javascript`` for scripts (RFC 9239, HTML standard) and
``image/x-icon`` for favicons. Textual types get ``; charset=utf-8`` so
S3 and CloudFront serve them with an explicit encoding instead of leaving
browsers to sniff it.
"""

from __future__ import annotations

__all__ = ["guess_content_type"]

DEFAULT_CONTENT_TYPE = "application/octet-stream"

_CHARSET_SUFFIX = "; charset=utf-8"

# Keyed by lower-case extension without the dot; kept in sorted order so
# additions land in an obvious place and duplicates are easy to spot.
_BY_EXTENSION = {
    "7z": "application/x-7z-compressed",
    "aac": "audio/aac",
    "apk": "application/vnd.android.package-archive",
    "apng": "image/apng",
    "asc": "application/pgp-signature",
    "atom": "application/atom+xml",
    "avi": "video/x-msvideo",
    "avif": "image/avif",
    "bmp": "image/bmp",
    "bz2": "application/x-bzip2",
    "cjs": "text/javascript",
    "css": "text/css",
    "csv": "text/csv",
    "deb": "application/vnd.debian.binary-package",
    "dmg": "application/x-apple-diskimage",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "eot": "application/vnd.ms-fontobject",
    "epub": "application/epub+zip",
    "exe": "application/vnd.microsoft.portable-executable",
    "flac": "audio/flac",
    "geojson": "application/geo+json",
    "gif": "image/gif",
    "glb": "model/gltf-binary",
    "gltf": "model/gltf+json",
    "gz": "application/gzip",
    "heic": "image/heic",
    "heif": "image/heif",
    "htm": "text/html",
    "html": "text/html",
    "ico": "image/x-icon",
    "ics": "text/calendar",
    "iso": "application/x-iso9660-image",
    "jar": "application/java-archive",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "js": "text/javascript",
    "json": "application/json",
    "jsonld": "application/ld+json",
    "jxl": "image/jxl",
    "log": "text/plain",
    "m3u8": "application/vnd.apple.mpegurl",
    "m4a": "audio/mp4",
    "map": "application/json",
    "markdown": "text/markdown",
    "md": "text/markdown",
    "md5": "text/plain",
    "mjs": "text/javascript",
    "mkv": "video/x-matroska",
    "mov": "video/quicktime",
    "mp3": "audio/mpeg",
    "mp4": "video/mp4",
    "mpd": "application/dash+xml",
    "mpeg": "video/mpeg",
    "mpg": "video/mpeg",
    "msi": "application/x-msi",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odt": "application/vnd.oasis.opendocument.text",
    "oga": "audio/ogg",
    "ogg": "audio/ogg",
    "ogv": "video/ogg",
    # RFC 7845: Opus files are Ogg containers; audio/opus is the RTP type.
    "opus": "audio/ogg",
    "otf": "font/otf",
    "pdf": "application/pdf",
    "png": "image/png",
    "ppt": "application/vnd.ms-powerpoint",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "rar": "application/vnd.rar",
    "rpm": "application/x-rpm",
    "rss": "application/rss+xml",
    "rtf": "application/rtf",
    "sh": "text/x-shellscript",
    "sha1": "text/plain",
    "sha256": "text/plain",
    "sha512": "text/plain",
    "sig": "application/pgp-signature",
    "svg": "image/svg+xml",
    "tar": "application/x-tar",
    "tgz": "application/gzip",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "toml": "application/toml",
    # Web servers (nginx, Apache) map .ts to MPEG-TS because HLS segments
    # are what gets streamed; TypeScript sources are rarely served raw.
    "ts": "video/mp2t",
    "tsv": "text/tab-separated-values",
    "ttf": "font/ttf",
    "txt": "text/plain",
    "vtt": "text/vtt",
    "wasm": "application/wasm",
    "wav": "audio/wav",
    "weba": "audio/webm",
    "webm": "video/webm",
    "webmanifest": "application/manifest+json",
    "webp": "image/webp",
    # A wheel is a zip archive; there is no registered wheel type.
    "whl": "application/zip",
    "woff": "font/woff",
    "woff2": "font/woff2",
    "xhtml": "application/xhtml+xml",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xml": "application/xml",
    "xz": "application/x-xz",
    "yaml": "application/yaml",
    "yml": "application/yaml",
    "zip": "application/zip",
    "zst": "application/zstd",
}

# Types outside text/* whose bodies are text; without a charset parameter
# some clients fall back to Latin-1 for them.
_TEXTUAL_NON_TEXT_TYPES = frozenset(
    {
        "application/atom+xml",
        "application/dash+xml",
        "application/geo+json",
        "application/json",
        "application/ld+json",
        "application/manifest+json",
        "application/rss+xml",
        "application/toml",
        "application/xhtml+xml",
        "application/xml",
        "application/yaml",
        "image/svg+xml",
        "model/gltf+json",
    }
)


def _with_charset(media_type: str) -> str:
    if media_type.startswith("text/") or media_type in _TEXTUAL_NON_TEXT_TYPES:
        return media_type + _CHARSET_SUFFIX
    return media_type


def guess_content_type(name: str) -> str:
    """Return the Content-Type for a file name or relative POSIX path.

    Only the last path segment's last suffix counts, case-insensitively
    (``a.tar.gz`` is gzip data). Names without an extension, dotfiles
    such as ``.htaccess`` and unknown extensions get
    ``application/octet-stream`` so the header is never empty.
    """
    basename = name.rpartition("/")[2]
    # A leading dot marks a hidden file, not an extension.
    stem, dot, extension = basename.lstrip(".").rpartition(".")
    if not dot or not stem or not extension:
        return DEFAULT_CONTENT_TYPE
    media_type = _BY_EXTENSION.get(extension.lower())
    if media_type is None:
        return DEFAULT_CONTENT_TYPE
    return _with_charset(media_type)
