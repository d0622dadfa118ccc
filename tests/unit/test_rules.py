"""Ordered header rules (rules.py, pure)."""

from __future__ import annotations

from typing import Optional

import pytest

from drone_s3_sync.config import Settings, build_settings
from drone_s3_sync.model import ObjectHeaders
from drone_s3_sync.rules import HeaderRules, RuleSet

ABS_ROOT = "/drone/src/dist"


def make(**raw) -> Settings:
    raw.setdefault("bucket", "my-bucket")
    return build_settings(raw)


# ---------------------------------------------------------------- extension keys


@pytest.mark.parametrize(
    "pattern, rel, matches",
    [
        (".svg", "logo.svg", True),
        (".svg", "img/deep/logo.svg", True),
        (".svg", "logo.svgz", False),
        (".svg", "svg", False),
        (".svg", "logo.png", False),
        (".JS", "app.js", True),
        (".js", "APP.JS", True),
        (".js", "app.min.js", True),
        (".js", "data.json", False),
        (".tar.gz", "release.tar.gz", True),
        (".tar.gz", "release.gz", False),
        (".gz", "release.tar.gz", True),
        ("", "README", True),
        ("", "docs/LICENSE", True),
        ("", "v1.2/CHANGES", True),  # a dot in a folder name is not an extension
        ("", "index.html", False),
        ("", "docs/a.txt", False),
        # dotfiles: the whole name is the extension, as Go's filepath.Ext (the original plugin) says
        (".htaccess", ".htaccess", True),
        (".htaccess", "sub/.htaccess", True),
        ("", ".htaccess", False),
    ],
)
def test_extension_keys(pattern: str, rel: str, matches: bool) -> None:
    rules = RuleSet([(pattern, "hit")])
    assert (rules.first(rel, f"{ABS_ROOT}/{rel}") == "hit") is matches


# ---------------------------------------------------------------- glob keys


@pytest.mark.parametrize(
    "pattern, rel, matches",
    [
        ("public/*", "public/a.png", True),
        ("public/*", "public/a/b.png", True),  # `*` also matches "/"
        ("public/*", "publicity/a.png", False),
        ("public/*", "notpublic/a.png", False),
        ("public/*", "private/public/a.png", False),
        ("*.png", "a.png", True),
        ("*.png", "img/deep/a.png", True),
        ("*.png", "a.png.txt", False),
        ("img/*.png", "img/a/b.png", True),
        ("img/?.png", "img/a.png", True),
        ("img/?.png", "img/ab.png", False),
        ("img/[ab].png", "img/b.png", True),
        ("img/[ab].png", "img/c.png", False),
        ("*", "anything/at/all", True),
        ("index.html", "index.html", True),
        ("index.html", "sub/index.html", False),
        ("/public/*", "public/a.png", True),  # a leading slash is the source root
        ("Public/*", "public/a.png", False),  # globs are case-sensitive, like keys
    ],
)
def test_glob_keys_on_the_relative_path(pattern: str, rel: str, matches: bool) -> None:
    rules = RuleSet([(pattern, "hit")])
    assert (rules.first(rel, f"{ABS_ROOT}/{rel}") == "hit") is matches


@pytest.mark.parametrize(
    "pattern, rel, abs_path, matches",
    [
        ("*/public/*", "public/x.png", "/drone/src/dist/public/x.png", True),
        ("*/public/*", "private/x.png", "/drone/src/dist/private/x.png", False),
        ("*.png", "x.png", "/drone/src/dist/x.png", True),
        ("/drone/src/dist/public/*", "public/x.png", "/drone/src/dist/public/x.png", True),
    ],
)
def test_patterns_written_for_the_original(pattern: str, rel: str, abs_path: str, matches: bool) -> None:
    rules = RuleSet([(pattern, "hit")])
    assert (rules.first(rel, abs_path) == "hit") is matches


def test_first_match_in_written_order_wins() -> None:
    rel, abs_path = "public/a.png", f"{ABS_ROOT}/public/a.png"
    assert RuleSet([("public/*", "first"), ("*.png", "second")]).first(rel, abs_path) == "first"
    assert RuleSet([("*.png", "first"), ("public/*", "second")]).first(rel, abs_path) == "first"
    assert RuleSet([(".png", "ext"), ("public/*", "glob")]).first(rel, abs_path) == "ext"
    assert RuleSet([("public/*", "glob"), (".png", "ext")]).first(rel, abs_path) == "glob"


def test_no_match_is_none_and_empty_ruleset_is_falsy() -> None:
    assert RuleSet([(".css", "x")]).first("a.js", "/a.js") is None
    assert not RuleSet([])
    assert RuleSet([("*", "x")])


# ---------------------------------------------------------------- HeaderRules over Settings


def headers(settings: Settings, rel: str, abs_path: Optional[str] = None) -> ObjectHeaders:
    return HeaderRules(settings).headers_for(rel, abs_path if abs_path is not None else f"{ABS_ROOT}/{rel}")


def test_defaults_private_builtin_type_no_other_headers() -> None:
    h = headers(make(), "index.html")
    assert h == ObjectHeaders(content_type="text/html; charset=utf-8", content_encoding=None, cache_control=None,
                              metadata=(), acl="private", redirect=None)


@pytest.mark.parametrize(
    "rel, expected",
    [
        ("logo.svg", "image/svg+xml; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("photo.png", "image/png"),
        ("data.unknownext", "application/octet-stream"),
        ("README", "application/octet-stream"),
    ],
)
def test_builtin_content_type_when_no_rule_matches(rel: str, expected: str) -> None:
    h = headers(make(content_type={".css": "text/x-special"}), rel)
    assert h.content_type == expected


def test_explicit_content_type_overrides_builtin() -> None:
    s = make(content_type={".svg": "image/svg+xml", "": "text/plain", "downloads/*": "application/x-download"})
    assert headers(s, "logo.svg").content_type == "image/svg+xml"
    assert headers(s, "README").content_type == "text/plain"
    assert headers(s, "downloads/page.html").content_type == "application/x-download"
    assert headers(s, "page.html").content_type == "text/html; charset=utf-8"


def test_plain_string_rules_apply_to_every_file() -> None:
    s = make(acl="public-read", content_type="text/plain", content_encoding="gzip", cache_control="max-age=60")
    for rel in ("index.html", "a/b/c.png", "README", ".hidden"):
        h = headers(s, rel)
        assert (h.acl, h.content_type, h.content_encoding, h.cache_control) == (
            "public-read", "text/plain", "gzip", "max-age=60")


def test_docs_example_rules() -> None:
    s = make(
        acl={"public/*": "public-read", "private/*": "private"},
        content_type={".svg": "image/svg+xml"},
        content_encoding={".js": "gzip", ".css": "gzip"},
        cache_control="public, max-age: 31536000",
    )
    pub = headers(s, "public/img/logo.svg")
    assert (pub.acl, pub.content_type, pub.content_encoding, pub.cache_control) == (
        "public-read", "image/svg+xml", None, "public, max-age: 31536000")
    js = headers(s, "private/app.js")
    assert (js.acl, js.content_encoding) == ("private", "gzip")
    other = headers(s, "other/style.CSS")
    assert (other.acl, other.content_encoding) == ("private", "gzip")


def test_acl_default_is_private_when_no_rule_matches() -> None:
    s = make(acl={"public/*": "public-read"})
    assert headers(s, "public/a.txt").acl == "public-read"
    assert headers(s, "a.txt").acl == "private"


def test_content_encoding_and_cache_control_absent_without_match() -> None:
    s = make(content_encoding={".js": "gzip"}, cache_control={".html": "no-cache"})
    h = headers(s, "a.css")
    assert h.content_encoding is None and h.cache_control is None


def test_metadata_flat_map_for_all_files() -> None:
    s = make(metadata={"custom-meta": "abc123"})
    assert headers(s, "a.png").metadata == (("custom-meta", "abc123"),)
    assert headers(s, "deep/x.txt").metadata == (("custom-meta", "abc123"),)


def test_metadata_first_matching_glob_map_not_merged() -> None:
    s = make(metadata={"*.png": {"CustomMeta": "abc123"}, "img/*": {"folder": "img"}})
    assert headers(s, "img/a.png").metadata == (("custommeta", "abc123"),)
    assert headers(s, "img/a.jpg").metadata == (("folder", "img"),)
    assert headers(s, "a.txt").metadata == ()
    reordered = make(metadata={"img/*": {"folder": "img"}, "*.png": {"CustomMeta": "abc123"}})
    assert headers(reordered, "img/a.png").metadata == (("folder", "img"),)


def test_redirect_headers() -> None:
    s = make(cache_control="max-age=60", redirects={"old": "/new"})
    h = HeaderRules(s).headers_for("old", "", redirect="/new")
    assert h.redirect == "/new"
    assert h.cache_control == "max-age=60"
    assert h.acl == "private"
    assert h.content_type == "application/octet-stream"
