"""Walking the source (scan.py): keys, order, globs, links, normalisation."""

from __future__ import annotations

import os
import sys
import unicodedata
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from drone_s3_sync.errors import ConfigError
from drone_s3_sync.scan import check_source, files_named, glob_regex, key_for, printable, scan, split_glob

needs_symlinks = pytest.mark.skipif(sys.platform == "win32", reason="symlinks")


def tree(root: Path, files: Dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


def keys(source: Path, target: str = "", pattern: Optional[str] = None) -> List[str]:
    path = str(source) if pattern is None else f"{source}/{pattern}"
    return [f.key for f in scan(path, target).files]


# ---------------------------------------------------------------- keys and order


def test_keys_are_target_plus_relative_posix_path(tmp_path: Path) -> None:
    src = tree(tmp_path / "site", {"index.html": "<h1>", "css/site.css": "a{}", "img/icons/x.svg": "<svg/>"})
    result = scan(str(src), "deploy/")
    by_key = {f.key: f for f in result.files}
    assert sorted(by_key) == ["deploy/css/site.css", "deploy/img/icons/x.svg", "deploy/index.html"]
    f = by_key["deploy/img/icons/x.svg"]
    assert f.rel == "img/icons/x.svg"
    assert f.path == str(src / "img" / "icons" / "x.svg")
    assert f.size == len("<svg/>")
    assert f.mtime_ns == os.stat(f.path).st_mtime_ns
    assert result.root == str(src)
    assert result.problems == []


def test_bucket_root_target(tmp_path: Path) -> None:
    src = tree(tmp_path / "site", {"a.txt": "a", "b/c.txt": "c"})
    assert keys(src, "") == ["a.txt", "b/c.txt"]


def test_sorted_by_utf8_key_not_walk_order(tmp_path: Path) -> None:
    # Walk order visits a folder's files before its subfolders ("a-b", "a0", then
    # "a/b"); S3 lists by UTF-8 byte order: "-" (0x2d) < "/" (0x2f) < "0" (0x30).
    src = tree(tmp_path / "s", {"a0": "", "a-b": "", "a/b": "", "B": "", "\u00e9": "", "z": "", "a.b": ""})
    got = keys(src)
    assert got == ["B", "a-b", "a.b", "a/b", "a0", "z", "\u00e9"]
    assert got == sorted(got, key=lambda k: k.encode("utf-8"))


def test_hidden_files_are_included(tmp_path: Path) -> None:
    src = tree(tmp_path / "s", {".htaccess": "x", ".well-known/security.txt": "y", "index.html": "z"})
    assert keys(src) == [".htaccess", ".well-known/security.txt", "index.html"]


def test_folders_are_not_files(tmp_path: Path) -> None:
    src = tree(tmp_path / "s", {"a/file.txt": "x"})
    (src / "empty").mkdir()
    (src / "a" / "also-empty").mkdir()
    assert keys(src) == ["a/file.txt"]


def test_nfd_file_name_becomes_nfc_key(tmp_path: Path) -> None:
    src = tmp_path / "s"
    src.mkdir()
    nfd = unicodedata.normalize("NFD", "caf\u00e9.txt")
    assert nfd != "caf\u00e9.txt"
    (src / nfd).write_text("x", encoding="utf-8")
    (src / unicodedata.normalize("NFD", "r\u00e9sum\u00e9")).mkdir()
    (src / unicodedata.normalize("NFD", "r\u00e9sum\u00e9") / "a.txt").write_text("y", encoding="utf-8")
    files = scan(str(src), "t/").files
    assert [f.key for f in files] == ["t/caf\u00e9.txt", "t/r\u00e9sum\u00e9/a.txt"]
    assert all(unicodedata.is_normalized("NFC", f.rel) for f in files)
    # the local path is still the name on disk, so the file can be read
    assert all(os.path.exists(f.path) for f in files)


def test_empty_folder_gives_no_files(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    assert scan(str(tmp_path / "s"), "").files == []


# ---------------------------------------------------------------- source forms


def test_single_file_source(tmp_path: Path) -> None:
    src = tree(tmp_path / "s", {"report.pdf": "%PDF", "other.txt": "no"})
    result = scan(str(src / "report.pdf"), "docs/")
    assert [(f.rel, f.key) for f in result.files] == [("report.pdf", "docs/report.pdf")]
    assert result.files[0].size == 4


@pytest.mark.parametrize("missing", ["nope", "nope/**/*.html", "nope/file.txt"])
def test_missing_source_is_a_config_error_naming_source(tmp_path: Path, missing: str) -> None:
    with pytest.raises(ConfigError) as info:
        scan(str(tmp_path / missing), "")
    assert info.value.setting == "source"
    assert "nope" in str(info.value)


def test_glob_source_keys_relative_to_fixed_base(tmp_path: Path) -> None:
    tree(tmp_path / "dist", {"index.html": "", "a/page.html": "", "a/b/deep.html": "", "a/app.js": "", "x.css": ""})
    assert keys(tmp_path / "dist", "site/", "**/*.html") == ["site/a/b/deep.html", "site/a/page.html", "site/index.html"]


def test_glob_source_star_stays_in_one_folder(tmp_path: Path) -> None:
    tree(tmp_path / "dist", {"index.html": "", "a/page.html": ""})
    assert keys(tmp_path / "dist", "", "*.html") == ["index.html"]
    assert keys(tmp_path / "dist", "", "*/*.html") == ["a/page.html"]


def test_glob_source_question_mark_and_class(tmp_path: Path) -> None:
    tree(tmp_path / "dist", {"a1.txt": "", "a22.txt": "", "b1.txt": "", "c1.txt": ""})
    assert keys(tmp_path / "dist", "", "a?.txt") == ["a1.txt"]
    assert keys(tmp_path / "dist", "", "[ab]1.txt") == ["a1.txt", "b1.txt"]
    assert keys(tmp_path / "dist", "", "[!ab]1.txt") == ["c1.txt"]


def test_glob_with_wildcard_folder_keeps_base_before_it(tmp_path: Path) -> None:
    tree(tmp_path / "out", {"v1/index.html": "", "v2/index.html": "", "v2/other.html": ""})
    result = scan(f"{tmp_path}/out/v*/index.html", "")
    assert [f.key for f in result.files] == ["v1/index.html", "v2/index.html"]
    assert result.root == str(tmp_path / "out")


# ---------------------------------------------------------------- links


@needs_symlinks
def test_symlinked_file_inside_the_source_is_followed(tmp_path: Path) -> None:
    src = tree(tmp_path / "s", {"real.txt": "hello", "data/shared.txt": "shared content"})
    (src / "link.txt").symlink_to(src / "data" / "shared.txt")
    (src / "relative.txt").symlink_to("data/shared.txt")
    result = scan(str(src), "")
    files = {f.key: f for f in result.files}
    assert set(files) == {"data/shared.txt", "link.txt", "real.txt", "relative.txt"}
    assert files["link.txt"].size == len("shared content")
    assert result.problems == result.warnings == []


@needs_symlinks
def test_symlinked_folder_inside_the_source_is_followed(tmp_path: Path) -> None:
    src = tree(tmp_path / "s", {"a.txt": "", "releases/v2/lib.js": ""})
    (src / "latest").symlink_to("releases/v2", target_is_directory=True)
    result = scan(str(src), "")
    assert [f.key for f in result.files] == ["a.txt", "latest/lib.js", "releases/v2/lib.js"]
    assert result.warnings == []


@needs_symlinks
def test_source_that_is_itself_a_link_follows_links_inside_its_target(tmp_path: Path) -> None:
    real = tree(tmp_path / "build" / "public", {"index.html": "x", "assets/app.js": "y"})
    (real / "app.js").symlink_to("assets/app.js")
    (tmp_path / "public").symlink_to(real, target_is_directory=True)
    result = scan(str(tmp_path / "public"), "")
    assert [f.key for f in result.files] == ["app.js", "assets/app.js", "index.html"]
    assert result.warnings == []


@needs_symlinks
def test_symlinked_file_outside_the_source_is_skipped_with_a_warning(tmp_path: Path) -> None:
    src = tree(tmp_path / "s", {"real.txt": "hello"})
    outside = tmp_path / "outside.txt"
    outside.write_text("outside content", encoding="utf-8")
    (src / "link.txt").symlink_to(outside)
    (src / "up.txt").symlink_to("../outside.txt")
    result = scan(str(src), "site/")
    assert [f.key for f in result.files] == ["site/real.txt"]
    assert result.problems == []  # not an error
    assert len(result.warnings) == 2
    for name, warning in zip(("link.txt", "up.txt"), result.warnings):
        assert str(src / name) in warning and str(outside) in warning
        assert "allow_external_symlinks" in warning and "not deleted" in warning
    # neither uploaded nor deleted: like an excluded file
    assert result.kept_keys == {"site/link.txt", "site/up.txt"}
    assert result.kept_prefixes == []


@needs_symlinks
def test_symlinked_folder_outside_the_source_is_skipped_whole(tmp_path: Path) -> None:
    src = tree(tmp_path / "s", {"a.txt": ""})
    tree(tmp_path / "shared", {"lib.js": "", "deep/x.js": ""})
    (src / "vendor").symlink_to(tmp_path / "shared", target_is_directory=True)
    (src / "etc").symlink_to("/etc", target_is_directory=True)
    result = scan(str(src), "t/")
    assert [f.key for f in result.files] == ["t/a.txt"]
    assert result.problems == []
    assert [w.split(":")[0] for w in result.warnings] == [str(src / "etc"), str(src / "vendor")]
    assert "/etc" in result.warnings[0] and str(tmp_path / "shared") in result.warnings[1]
    assert sorted(result.kept_prefixes) == ["t/etc/", "t/vendor/"]


@needs_symlinks
def test_external_links_followed_when_allowed(tmp_path: Path) -> None:
    src = tree(tmp_path / "s", {"a.txt": ""})
    tree(tmp_path / "shared", {"lib.js": "x"})
    (tmp_path / "outside.txt").write_text("out", encoding="utf-8")
    (src / "vendor").symlink_to(tmp_path / "shared", target_is_directory=True)
    (src / "link.txt").symlink_to(tmp_path / "outside.txt")
    result = scan(str(src), "", allow_external_symlinks=True)
    assert [f.key for f in result.files] == ["a.txt", "link.txt", "vendor/lib.js"]
    assert result.warnings == result.problems == []
    assert not result.kept_keys and not result.kept_prefixes


@needs_symlinks
def test_link_inside_a_followed_link_is_judged_by_where_it_really_leads(tmp_path: Path) -> None:
    # latest -> v2 (inside); v2/escape.txt -> ../../secret.txt (outside, whichever way it is reached)
    src = tree(tmp_path / "s", {"v2/index.html": "x"})
    (tmp_path / "secret.txt").write_text("nope", encoding="utf-8")
    (src / "v2" / "escape.txt").symlink_to("../../secret.txt")
    (src / "latest").symlink_to("v2", target_is_directory=True)
    result = scan(str(src), "")
    assert [f.key for f in result.files] == ["latest/index.html", "v2/index.html"]
    assert result.kept_keys == {"latest/escape.txt", "v2/escape.txt"}


@needs_symlinks
def test_external_link_outside_a_glob_is_not_mentioned(tmp_path: Path) -> None:
    src = tree(tmp_path / "dist", {"index.html": "x"})
    (tmp_path / "notes.txt").write_text("n", encoding="utf-8")
    (src / "notes.txt").symlink_to(tmp_path / "notes.txt")
    (src / "page.html").symlink_to(tmp_path / "notes.txt")
    result = scan(f"{src}/*.html", "")
    assert [f.key for f in result.files] == ["index.html"]
    assert len(result.warnings) == 1 and "page.html" in result.warnings[0]


@needs_symlinks
def test_source_file_given_by_name_is_published_wherever_it_links(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.pdf").write_text("%PDF", encoding="utf-8")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "report.pdf").symlink_to(tmp_path / "elsewhere.pdf")
    result = scan(str(tmp_path / "s" / "report.pdf"), "")
    assert [f.key for f in result.files] == ["report.pdf"] and result.warnings == []


@needs_symlinks
def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    src = tree(tmp_path / "s", {"a/file.txt": "x"})
    (src / "a" / "loop").symlink_to(src, target_is_directory=True)
    (src / "self").symlink_to(src / "self")  # a link to itself
    result = scan(str(src), "")
    assert [f.key for f in result.files] == ["a/file.txt"]
    assert any("self" in problem for problem in result.problems)


@needs_symlinks
def test_broken_symlink_is_reported(tmp_path: Path) -> None:
    src = tree(tmp_path / "s", {"ok.txt": "x"})
    (src / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    result = scan(str(src), "t/")
    assert [f.key for f in result.files] == ["t/ok.txt"]
    assert len(result.problems) == 1
    assert str(src / "dangling.txt") in result.problems[0]
    assert "broken symbolic link" in result.problems[0] and str(tmp_path / "gone.txt") in result.problems[0]
    assert result.kept_keys == {"t/dangling.txt"}  # its object is not deleted


def test_names_that_are_not_utf8_are_reported_escaped_and_the_rest_is_scanned(tmp_path: Path) -> None:
    src = tree(tmp_path / "s", {"a.txt": "a", "z/ok.txt": "z"})
    raw = os.fsencode(str(src))
    with open(raw + b"/bad\xff.txt", "wb") as handle:
        handle.write(b"x")
    os.mkdir(raw + b"/dir\xe9")
    with open(raw + b"/dir\xe9/inner.txt", "wb") as handle:
        handle.write(b"y")
    with open(raw + b"/z/caf\xe9.txt", "wb") as handle:  # Latin-1, not UTF-8
        handle.write(b"z")
    result = scan(str(src), "t/")
    assert [f.key for f in result.files] == ["t/a.txt", "t/z/ok.txt"]
    assert len(result.problems) == 3
    text = "\n".join(result.problems)
    for shown in ("bad\\xff.txt", "dir\\xe9/", "z/caf\\xe9.txt"):
        assert shown in text
    assert "UTF-8" in text
    text.encode("utf-8")  # printable: no surrogate escapes left
    assert not result.kept_keys  # no key can name them


def test_printable_escapes_bytes_and_control_characters() -> None:
    assert printable("plain/caf\u00e9.txt") == "plain/caf\u00e9.txt"
    assert printable(os.fsdecode(b"bad\xff.txt")) == "bad\\xff.txt"
    assert printable("two\nlines\t.txt") == "two\\nlines\\t.txt"


def test_unreadable_file_and_folder_are_reported_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tree(tmp_path / "s", {"ok.txt": "x", "secret.txt": "s", "private/a.txt": "a", "b.txt": "b"})
    # Root can read anything: pretend the way an unprivileged user would see it.
    real_access, real_scandir = os.access, os.scandir

    def access(path, mode, *args, **kwargs):
        return not str(path).endswith("secret.txt") and real_access(path, mode, *args, **kwargs)

    def scandir(path="."):
        if str(path).endswith("private"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "scandir", scandir)
    result = scan(str(src), "t/")
    assert [f.key for f in result.files] == ["t/b.txt", "t/ok.txt"]
    assert len(result.problems) == 2
    assert any(str(src / "secret.txt") in p and "cannot read the file: Permission denied" in p for p in result.problems)
    assert any(str(src / "private") in p and "Permission denied" in p for p in result.problems)
    assert result.kept_keys == {"t/secret.txt"}
    assert result.kept_prefixes == ["t/private/"]


def test_unreadable_source_folder_keeps_the_whole_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tree(tmp_path / "s", {"a.txt": "x"})

    def scandir(path="."):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", scandir)
    result = scan(str(src), "t/")
    assert result.files == [] and len(result.problems) == 1
    assert result.kept_prefixes == ["t/"]


def test_file_vanished_between_listing_and_stat_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tree(tmp_path / "s", {"a.txt": "x", "gone.txt": "y"})
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if str(path).endswith("gone.txt"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    result = scan(str(src), "")
    assert [f.key for f in result.files] == ["a.txt"]
    assert result.problems == [f"{src / 'gone.txt'}: No such file or directory"]
    assert result.kept_keys == {"gone.txt"}


# ---------------------------------------------------------------- keys never leave the target


@pytest.mark.parametrize("target", ["", "site/", "a/b/"])
def test_every_key_starts_with_the_target(tmp_path: Path, target: str) -> None:
    # Names that look like path tricks are plain names on disk; links of every
    # kind are followed or skipped; no key can leave the target prefix.
    names = ["..a", "a..", "...", ".hidden", "back\\slash", "sp ace", "%2e%2e", "q?x", "dot.", "-"]
    src = tree(tmp_path / "s", {f"{n}/{n}.txt": n for n in names})
    (src / "up").symlink_to("..", target_is_directory=True)
    (src / "root-link").symlink_to("/", target_is_directory=True)
    (src / "self").symlink_to(".", target_is_directory=True)
    result = scan(str(src), target)
    assert len(result.files) == len(names)
    for local in result.files:
        assert local.key.startswith(target)
        rest = local.key[len(target):]
        assert not rest.startswith("/")
        assert all(part not in ("", ".", "..") for part in rest.split("/"))
    allowed = scan(str(src / "..a"), target, allow_external_symlinks=True)
    assert all(f.key.startswith(target) for f in allowed.files)


@pytest.mark.parametrize("rel", ["", "/a", "a//b", "../a", "a/../b", "./a", "a/.", "a/"])
def test_key_for_refuses_paths_that_are_not_inside(rel: str) -> None:
    with pytest.raises(ValueError):
        key_for("site/", rel)


# ---------------------------------------------------------------- split_glob and glob_regex


@pytest.mark.parametrize(
    "source, expected",
    [
        ("dist", ("dist", None)),
        ("/abs/dist", ("/abs/dist", None)),
        ("dist/**/*.html", ("dist", "**/*.html")),
        ("/abs/dist/*.css", ("/abs/dist", "*.css")),
        ("*.html", (".", "*.html")),
        ("/*.html", ("/", "*.html")),
        ("a/b?/c", ("a", "b?/c")),
        ("a/[xy]/c", ("a", "[xy]/c")),
        ("out/v*/index.html", ("out", "v*/index.html")),
    ],
)
def test_split_glob(source: str, expected: tuple) -> None:
    assert split_glob(source) == expected


@pytest.mark.parametrize(
    "pattern, path, matches",
    [
        ("**/*.html", "index.html", True),
        ("**/*.html", "a/b/c.html", True),
        ("**/*.html", "a/b/c.htm", False),
        ("*.html", "index.html", True),
        ("*.html", "a/index.html", False),
        ("a/**", "a/b/c", True),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("?.txt", "/.txt", False),
        ("[ab].txt", "b.txt", True),
        ("[ab].txt", "c.txt", False),
        ("[!ab].txt", "c.txt", True),
        ("[!ab].txt", "a.txt", False),
        ("file[.txt", "file[.txt", True),  # an unclosed class is literal
        ("a+b(1).txt", "a+b(1).txt", True),  # regex characters are literal
        ("a.txt", "abtxt", False),
        ("*.html", "index.html.bak", False),
    ],
)
def test_glob_regex(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is matches


def test_two_links_to_one_folder_publish_it_under_both_names(tmp_path):
    # A second link must not hide the real folder: with delete on, its objects
    # would be removed from the bucket.
    (tmp_path / "docs" / "v2").mkdir(parents=True)
    (tmp_path / "docs" / "v2" / "index.html").write_text("v2")
    (tmp_path / "docs" / "latest").symlink_to("v2")
    (tmp_path / "docs" / "v2" / "up").symlink_to("..")  # a loop, still cut
    keys = [f.key for f in scan(str(tmp_path), "site/").files]
    assert keys == ["site/docs/latest/index.html", "site/docs/v2/index.html"]


# ---------------------------------------------------------------- checks before any request


@pytest.mark.parametrize("source, words", [
    ("missing", ["does not exist"]),
    ("missing/**/*.html", ["does not exist"]),
    ("file.txt/*.html", ["not a folder or a file"]),
])
def test_check_source_names_the_setting_and_the_accepted_forms(tmp_path: Path, source: str, words: list) -> None:
    tree(tmp_path, {"file.txt": "x"})
    with pytest.raises(ConfigError) as info:
        check_source(str(tmp_path / source), "PLUGIN_SOURCE")
    assert info.value.setting == "PLUGIN_SOURCE"
    for word in words + ["use a folder, a single file, or a glob"]:
        assert word in str(info.value)


@pytest.mark.skipif(not os.path.exists("/dev/null") or sys.platform == "win32", reason="needs /dev/null")
def test_check_source_refuses_a_device() -> None:
    with pytest.raises(ConfigError, match="not a folder or a file"):
        check_source("/dev/null")


def test_check_source_accepts_folder_file_and_glob(tmp_path: Path) -> None:
    tree(tmp_path, {"site/a.html": "a"})
    for source in ("site", "site/a.html", "site/**/*.html", "site/*.txt"):
        check_source(str(tmp_path / source))


def test_files_named(tmp_path: Path) -> None:
    src = tree(tmp_path / "site", {"old.html": "o", "docs/page.html": "p", "notes.txt": "n"})
    rels = ["old.html", "docs/page.html", "notes.txt", "gone.html", "docs"]
    assert files_named(str(src), rels) == ["old.html", "docs/page.html", "notes.txt"]
    assert files_named(f"{src}/**/*.html", rels) == ["old.html", "docs/page.html"]
    assert files_named(f"{src}/old.html", rels) == ["old.html"]
