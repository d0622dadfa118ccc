"""Version-control folders and .env files are not published unless `include`
names them (rules.Selection with defaults, and the scan's one line about them)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import pytest

from drone_s3_sync.rules import Selection, default_excluded
from drone_s3_sync.scan import scan

TREE = {
    "index.html": "h",
    ".well-known/security.txt": "s",
    ".htaccess": "a",
    ".gitignore": "g",
    ".github/workflows/ci.yml": "c",
    ".git/HEAD": "ref",
    ".git/objects/ab/cdef": "o",
    "sub/.hg/store": "x",
    "sub/.svn/entries": "x",
    ".env": "SECRET=1",
    ".env.production": "SECRET=2",
    "app/.env.local": "SECRET=3",
    ".environment.txt": "not an env file",
    "config.env": "not an env file",
}


def tree(root: Path, files: Dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def keys(root: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()):
    result = scan(str(root), "", selection=Selection(include, exclude, defaults=True))
    return [f.key for f in result.files], result.warnings


@pytest.mark.parametrize("name, excluded", [
    (".git", True), (".hg", True), (".svn", True), (".env", True), (".env.production", True),
    (".gitignore", False), (".github", False), (".well-known", False), (".environment", False),
    ("config.env", False), ("git", False), ("env", False),
])
def test_default_excluded_names(name: str, excluded: bool) -> None:
    assert default_excluded(name) is excluded


def test_left_out_with_one_line_that_counts_them(tmp_path: Path) -> None:
    found, warnings = keys(tree(tmp_path, TREE))
    assert found == [".environment.txt", ".github/workflows/ci.yml", ".gitignore", ".htaccess",
                     ".well-known/security.txt", "config.env", "index.html"]
    assert warnings == ["not published: 6 entries left out by default (.env, .env.production, .git/, app/.env.local, "
                        "sub/.hg/, ...): version-control folders (.git, .hg, .svn) and .env files are published only "
                        "when include names them; their objects are not deleted (exclude them to silence this line)"]


def test_an_explicit_exclude_silences_the_line(tmp_path: Path) -> None:
    found, warnings = keys(tree(tmp_path, TREE), exclude=[".git", ".hg", ".svn", ".env", ".env.*", "*/.env.*"])
    assert ".git/HEAD" not in found and ".env" not in found and warnings == []


def test_no_line_when_nothing_was_left_out(tmp_path: Path) -> None:
    assert keys(tree(tmp_path, {"index.html": "h", ".well-known/a": "a"})) == (
        [".well-known/a", "index.html"], [])


def test_include_that_names_them_brings_them_back(tmp_path: Path) -> None:
    root = tree(tmp_path, TREE)
    found, warnings = keys(root, include=["*", ".env.production"])
    assert ".env.production" in found and "index.html" in found
    assert ".env" not in found and ".git/HEAD" not in found  # "*" names neither
    assert "5 entries left out by default (.env, .git/, app/.env.local, sub/.hg/, sub/.svn/)" in warnings[0]
    found, _ = keys(root, include=[".git/HEAD"])
    assert found == [".git/HEAD"]  # a folder named by an include is walked
    found, warnings = keys(root, include=["*", ".env", ".env.*", ".git", ".hg", ".svn"])
    # ".env.*" is a glob on the whole relative path: it names .env.production, not app/.env.local.
    assert sorted(found) == sorted(set(TREE) - {"app/.env.local"})
    assert "1 entry left out by default (app/.env.local)" in warnings[0]


def test_a_glob_source_counts_only_what_it_would_publish(tmp_path: Path) -> None:
    root = tree(tmp_path, {"dist/index.html": "h", "dist/.env": "s", "dist/a.txt": "t"})
    result = scan(str(root / "dist" / "*.html"), "", selection=Selection(defaults=True))
    assert [f.key for f in result.files] == ["index.html"] and result.warnings == []


def test_selection_without_defaults_is_unchanged() -> None:
    selection = Selection()
    assert not selection and selection.selects(".git/HEAD") and selection.selects(".env")
    assert not selection.excludes_all_below(".git")
