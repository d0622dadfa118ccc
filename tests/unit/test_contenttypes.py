from __future__ import annotations

import mimetypes

import pytest

from drone_s3_sync import contenttypes
from drone_s3_sync.contenttypes import guess_content_type

UTF8 = "; charset=utf-8"

MODERN_WEB = [
    ("index.html", "text/html" + UTF8),
    ("page.htm", "text/html" + UTF8),
    ("style.css", "text/css" + UTF8),
    ("app.js", "text/javascript" + UTF8),
    ("module.mjs", "text/javascript" + UTF8),
    ("common.cjs", "text/javascript" + UTF8),
    ("data.json", "application/json" + UTF8),
    ("app.js.map", "application/json" + UTF8),
    ("logo.svg", "image/svg+xml" + UTF8),
    ("module.wasm", "application/wasm"),
    ("font.woff", "font/woff"),
    ("font.woff2", "font/woff2"),
    ("font.ttf", "font/ttf"),
    ("font.otf", "font/otf"),
    ("font.eot", "application/vnd.ms-fontobject"),
    ("photo.webp", "image/webp"),
    ("photo.avif", "image/avif"),
    ("photo.png", "image/png"),
    ("photo.jpg", "image/jpeg"),
    ("photo.jpeg", "image/jpeg"),
    ("anim.gif", "image/gif"),
    ("favicon.ico", "image/x-icon"),
    ("old.bmp", "image/bmp"),
    ("scan.tif", "image/tiff"),
    ("scan.tiff", "image/tiff"),
    ("phone.heic", "image/heic"),
    ("next.jxl", "image/jxl"),
    ("site.webmanifest", "application/manifest+json" + UTF8),
    ("sitemap.xml", "application/xml" + UTF8),
    ("feed.rss", "application/rss+xml" + UTF8),
    ("feed.atom", "application/atom+xml" + UTF8),
    ("page.xhtml", "application/xhtml+xml" + UTF8),
    ("robots.txt", "text/plain" + UTF8),
    ("README.md", "text/markdown" + UTF8),
    ("table.csv", "text/csv" + UTF8),
    ("table.tsv", "text/tab-separated-values" + UTF8),
    ("events.ics", "text/calendar" + UTF8),
    ("captions.vtt", "text/vtt" + UTF8),
    ("paper.pdf", "application/pdf"),
    ("bundle.zip", "application/zip"),
    ("bundle.gz", "application/gzip"),
    ("release.tar.gz", "application/gzip"),
    ("release.tgz", "application/gzip"),
    ("release.tar.bz2", "application/x-bzip2"),
    ("release.tar.xz", "application/x-xz"),
    ("release.tar.zst", "application/zstd"),
    ("release.7z", "application/x-7z-compressed"),
    ("release.tar", "application/x-tar"),
    ("release.rar", "application/vnd.rar"),
    ("clip.mp4", "video/mp4"),
    ("clip.webm", "video/webm"),
    ("sound.ogg", "audio/ogg"),
    ("clip.ogv", "video/ogg"),
    ("sound.oga", "audio/ogg"),
    ("sound.mp3", "audio/mpeg"),
    ("sound.wav", "audio/wav"),
    ("sound.flac", "audio/flac"),
    ("sound.m4a", "audio/mp4"),
    ("sound.aac", "audio/aac"),
    ("sound.opus", "audio/ogg"),
    ("clip.mov", "video/quicktime"),
    ("stream.m3u8", "application/vnd.apple.mpegurl"),
    ("segment0.ts", "video/mp2t"),
    ("config.yaml", "application/yaml" + UTF8),
    ("config.yml", "application/yaml" + UTF8),
    ("config.toml", "application/toml" + UTF8),
    ("data.jsonld", "application/ld+json" + UTF8),
    ("map.geojson", "application/geo+json" + UTF8),
    ("book.epub", "application/epub+zip"),
    ("letter.doc", "application/msword"),
    ("letter.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("sheet.xls", "application/vnd.ms-excel"),
    ("sheet.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("slides.ppt", "application/vnd.ms-powerpoint"),
    ("slides.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    ("letter.odt", "application/vnd.oasis.opendocument.text"),
    ("letter.rtf", "application/rtf"),
    ("tool.deb", "application/vnd.debian.binary-package"),
    ("tool.rpm", "application/x-rpm"),
    ("tool.dmg", "application/x-apple-diskimage"),
    ("tool.exe", "application/vnd.microsoft.portable-executable"),
    ("tool.msi", "application/x-msi"),
    ("tool.apk", "application/vnd.android.package-archive"),
    ("tool.jar", "application/java-archive"),
    ("tool-1.0-py3-none-any.whl", "application/zip"),
    ("disk.iso", "application/x-iso9660-image"),
    ("tool.sha256", "text/plain" + UTF8),
    ("tool.sig", "application/pgp-signature"),
    ("tool.asc", "application/pgp-signature"),
    ("build.log", "text/plain" + UTF8),
    ("install.sh", "text/x-shellscript" + UTF8),
]


@pytest.mark.parametrize(("name", "expected"), MODERN_WEB)
def test_modern_web_types(name: str, expected: str) -> None:
    assert guess_content_type(name) == expected


@pytest.mark.parametrize("name", ["x.html", "x.css", "x.js", "x.txt", "x.csv", "x.md", "x.vtt", "x.sh"])
def test_text_types_carry_utf8_charset(name: str) -> None:
    result = guess_content_type(name)
    assert result.startswith("text/")
    assert result.endswith("; charset=utf-8")


@pytest.mark.parametrize(
    "name",
    ["x.json", "x.map", "x.webmanifest", "x.xml", "x.svg", "x.jsonld", "x.rss", "x.atom", "x.xhtml", "x.yaml"],
)
def test_textual_application_types_carry_utf8_charset(name: str) -> None:
    assert guess_content_type(name).endswith("; charset=utf-8")


@pytest.mark.parametrize(
    "name", ["x.png", "x.woff2", "x.wasm", "x.pdf", "x.zip", "x.mp4", "x.gz", "x.ico", "x.m3u8"]
)
def test_binary_types_have_no_charset(name: str) -> None:
    assert "charset" not in guess_content_type(name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("INDEX.HTML", "text/html; charset=utf-8"),
        ("Photo.JPG", "image/jpeg"),
        ("Photo.JpEg", "image/jpeg"),
        ("Font.WOFF2", "font/woff2"),
        ("Release.TAR.GZ", "application/gzip"),
    ],
)
def test_extension_is_case_insensitive(name: str, expected: str) -> None:
    assert guess_content_type(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "file.unknownext",
        "file.php",
        "LICENSE",
        "Makefile",
        ".htaccess",
        ".well-known/apple-app-site-association",
        "file.",
        "...",
        "",
        "dir.with.dots/noextension",
    ],
)
def test_unknown_or_missing_extension_is_octet_stream(name: str) -> None:
    assert guess_content_type(name) == "application/octet-stream"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("assets/css/site.css", "text/css; charset=utf-8"),
        ("v1.2/docs/index.html", "text/html; charset=utf-8"),
        ("a.b.c/image.png", "image/png"),
        (".config/settings.json", "application/json; charset=utf-8"),
        ("dir/.eslintrc.json", "application/json; charset=utf-8"),
    ],
)
def test_path_with_directories_uses_last_segment(name: str, expected: str) -> None:
    assert guess_content_type(name) == expected


def test_result_is_never_empty() -> None:
    for name in ["", "/", "a/", ".", "x", "x.y"]:
        assert guess_content_type(name)


def test_table_is_sorted_and_lower_case() -> None:
    extensions = list(contenttypes._BY_EXTENSION)
    assert extensions == sorted(extensions)
    assert all(ext == ext.lower() and not ext.startswith(".") for ext in extensions)


def test_host_tables_are_not_consulted(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [name for name, _ in MODERN_WEB] + ["unknown.zzz", "LICENSE"]
    before = {name: guess_content_type(name) for name in names}

    def garbage_guess_type(*args: object, **kwargs: object) -> tuple[str, None]:
        return ("garbage/garbage", None)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("host MIME tables must not be read")

    garbage_map = {"." + name.rpartition(".")[2].lower(): "garbage/garbage" for name in names}
    monkeypatch.setattr(mimetypes, "guess_type", garbage_guess_type)
    monkeypatch.setattr(mimetypes, "types_map", garbage_map)
    monkeypatch.setattr(mimetypes, "init", refuse)
    monkeypatch.setattr(mimetypes, "read_mime_types", refuse)

    after = {name: guess_content_type(name) for name in names}
    assert after == before
    assert all("garbage" not in value for value in after.values())
