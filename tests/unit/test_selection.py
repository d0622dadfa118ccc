"""`include` / `exclude`: parsing, matching (rules.Selection), the scan and the
listing they narrow, and the plan and guards that follow. Pure, no server."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest

from drone_s3_sync import diff, guards
from drone_s3_sync.config import Settings, build_settings
from drone_s3_sync.sources import from_sources, load_config_file
from drone_s3_sync.errors import ConfigError
from drone_s3_sync.model import Kind, LocalFile, RemoteObject
from drone_s3_sync.rules import Selection
from drone_s3_sync.scan import files_named, scan


def make(**raw) -> Settings:
    raw.setdefault("bucket", "my-bucket")
    return build_settings(raw)


def tree(root: Path, files: Dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize("raw, expected", [
    ("drafts/*", ("drafts/*",)),
    # How Drone and Woodpecker pass a YAML list: joined with commas.
    ("drafts/*,.map, *.psd ,", ("drafts/*", ".map", "*.psd")),
    ('["drafts/*", "*.psd"]', ("drafts/*", "*.psd")),
    ("[]", ()),
    ("[!_]*.html", ("[!_]*.html",)),  # a glob that starts with a bracket is no JSON list
    ("/private/*", ("/private/*",)),
    ("a,a,b", ("a", "b")),
    ("cafe\u0301/*", ("caf\u00e9/*",)),  # NFC, like the keys
])
def test_patterns_from_a_variable(raw, expected):
    assert from_sources([], {"PLUGIN_BUCKET": "bkt", "PLUGIN_EXCLUDE": raw}).exclude == expected
    assert from_sources([], {"PLUGIN_BUCKET": "bkt", "PLUGIN_INCLUDE": raw}).include == expected


def test_patterns_from_a_yaml_list_and_a_flag(tmp_path):
    (tmp_path / "deploy.yml").write_text("bucket: bkt\nexclude:\n  - drafts/*\n  - '*.psd'\ninclude: docs\n")
    values, _ = load_config_file(str(tmp_path / "deploy.yml"))
    settings = build_settings(values)
    assert settings.exclude == ("drafts/*", "*.psd") and settings.include == ("docs",)
    assert from_sources(["--exclude", "a/*,b"], {"PLUGIN_BUCKET": "bkt"}).exclude == ("a/*", "b")


@pytest.mark.parametrize("raw, words", [
    ('{"drafts": true}', "got a map"),
    ('["a", ["b"]]', "got a list"),
    ('["a",', "invalid JSON"),
    ("../secret/*", "'.' or '..' segments"),
    ("./drafts/*", "'.' or '..' segments"),
    ("a\tb", "control character"),
])
def test_bad_patterns_name_the_setting(raw, words):
    with pytest.raises(ConfigError) as err:
        from_sources([], {"PLUGIN_BUCKET": "bkt", "PLUGIN_EXCLUDE": raw})
    assert str(err.value).startswith("PLUGIN_EXCLUDE: ") and words in str(err.value)
    assert "relative to the source like 'drafts/*'" in str(err.value)


# ---------------------------------------------------------------- matching


@pytest.mark.parametrize("rel, selected", [
    ("index.html", True),
    ("js/app.js.map", False),  # ".map": by extension, as in the header rules
    (".git/config", False),  # ".git" ends the folder's name
    ("sub/.git/HEAD", False),
    ("drafts/post.md", False),  # "drafts": the folder itself
    ("drafts", True),  # a file named drafts: "drafts/*" matches only what is inside a folder of that name
    ("blog/drafts/post.md", True),  # "drafts" is rooted at the source
    ("img/a/b/big.psd", False),  # "*" also matches "/"
    ("README", True),
])
def test_exclude_matches_the_path_and_its_folders(rel, selected):
    selection = Selection(exclude=[".map", ".git", "drafts/*", "*.psd"])
    assert selection.selects(rel) is selected


def test_include_selects_matching_paths_and_folders_less_the_excluded():
    selection = Selection(include=["docs", "*.html"], exclude=["docs/private/*"])
    assert selection.selects("docs/a/b.txt")
    assert selection.selects("blog/post.html")
    assert not selection.selects("docs/private/key.txt")
    assert not selection.selects("notes.txt")
    assert not Selection(include=["docs"]).selects("documents/x")


def test_patterns_see_only_the_relative_path():
    # The header rules also try a pattern on the absolute path (for the original
    # plugin's "*/public/*" style); a selection never does: "*/src/*" must not
    # exclude everything because the source happens to be under /drone/src.
    selection = Selection(exclude=["*/src/*"])
    assert selection.selects("index.html")
    assert not selection.selects("app/src/main.js")


def test_no_patterns_select_everything():
    selection = Selection()
    assert not selection and selection.selects("anything/at/all") and selection.selects(".git/HEAD")


def test_a_run_without_patterns_selects_everything_but_the_default_excludes():
    selection = Selection.of(make())
    assert selection and selection.selects("anything/at/all")
    assert not selection.selects(".git/HEAD") and not selection.selects("sub/.env")


# ---------------------------------------------------------------- scan and listing


def test_scan_leaves_out_unselected_files_without_a_word(tmp_path):
    src = tree(tmp_path, {"index.html": "i", "a.js": "a", "a.js.map": "m", "drafts/x.md": "x",
                          "node_modules/p/index.js": "p"})
    (tmp_path / "drafts" / "locked.md").write_text("l")
    (tmp_path / "drafts" / "locked.md").chmod(0)
    result = scan(str(src), "site/", selection=Selection(exclude=[".map", "drafts", "node_modules"]))
    assert [f.key for f in result.files] == ["site/a.js", "site/index.html"]
    assert result.problems == [] and result.warnings == []  # the unreadable file is excluded: no problem
    assert not result.kept_keys and not result.kept_prefixes


def test_scan_does_not_enter_an_excluded_folder(tmp_path, monkeypatch):
    src = tree(tmp_path, {"a.txt": "a", "node_modules/deep/x.js": "x"})
    entered = []
    import os
    real = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: entered.append(os.path.relpath(path, src)) or real(path))
    assert [f.key for f in scan(str(src), "", selection=Selection(exclude=["node_modules"])).files] == ["a.txt"]
    assert entered == ["."]


def test_scan_with_include_and_a_glob_source(tmp_path):
    src = tree(tmp_path, {"dist/a.html": "a", "dist/docs/b.html": "b", "dist/docs/c.txt": "c", "dist/x.html": "x"})
    result = scan(str(src / "dist" / "**" / "*.html"), "", selection=Selection(include=["docs"]))
    assert [f.key for f in result.files] == ["docs/b.html"]  # relative to the glob's base, as keys are


def test_files_named_respects_the_selection(tmp_path):
    src = tree(tmp_path, {"old.html": "o", "keep.html": "k"})
    assert files_named(str(src), ["old.html", "keep.html"], Selection(exclude=["old.html"])) == ["keep.html"]


def test_selected_remotes_keep_redirects_and_drop_the_rest():
    settings = make(target="site", exclude="drafts,*.psd", redirects='{"drafts/old.html": "/new.html"}')
    remotes = {k: RemoteObject(k, 1, "e") for k in
               ("site/index.html", "site/drafts/x.md", "site/drafts/old.html", "site/art.psd", "site/drafts")}
    kept = diff.selected_remotes(remotes, settings, Selection.of(settings))
    # "site/drafts" is a file named drafts: its key relative to the target matches the folder pattern
    assert sorted(kept) == ["site/drafts/old.html", "site/index.html"]
    assert diff.selected_remotes(remotes, make(target="site"), Selection()) == remotes


def test_plan_never_deletes_unselected_objects_and_max_delete_counts_only_selected():
    settings = make(delete="true", exclude="keep/*", max_delete="50%")
    remotes = {k: RemoteObject(k, 1, "e") for k in
               ("a.txt", "gone.txt", "keep/1", "keep/2", "keep/3", "keep/4", "keep/5", "keep/6")}
    managed = diff.selected_remotes(remotes, settings, Selection.of(settings))
    files = [LocalFile(rel="a.txt", key="a.txt", path="/src/a.txt", size=1, mtime_ns=0)]
    plan = diff.make_plan(files, managed, {}, {}, settings)
    assert [a.key for a in plan.of(Kind.DELETE)] == ["gone.txt"]
    # 1 delete of the 2 objects the run manages is 50%: allowed. Had the 6
    # excluded objects counted, 25% would have allowed deleting all managed ones.
    assert guards.refusal(plan, settings, local_files=1, remote_objects=len(managed)) is None
    tight = settings.with_changes(max_delete=make(max_delete="49%").max_delete)
    assert "would delete 1 object of the 2" in guards.refusal(plan, tight, local_files=1, remote_objects=len(managed))


def test_empty_selection_is_refused_with_delete_and_says_why():
    settings = make(delete="true", include="nothing/*")
    reason = guards.refusal(diff.make_plan([], {"a": RemoteObject("a", 1, "e")}, {}, {}, settings), settings,
                            local_files=0, remote_objects=1)
    assert "or include/exclude select none of its files" in reason
