"""Ordered header rules: which Content-Type, ACL, ... a file gets. Pure.

A rule key that is "" or starts with a dot (".svg", ".tar.gz") matches by
extension, "" meaning a name without one. Any other key is a glob on the path
relative to the source, where `*` also matches "/" (so "public/*" covers all
of public/, and "*.png" any PNG at any depth). For patterns written for the
original plugin, which matched against the absolute local path ("*/public/*"),
the glob is also tried on the absolute path. The first matching rule in the
order written wins.

`include` and `exclude` use the same patterns (`Selection`), matched against
the path relative to the source only (never the absolute path), and also
against each folder of it, so that `node_modules` or `.git` name a whole folder.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .config import Settings
from .contenttypes import guess_content_type
from .model import LocalFile, ObjectHeaders
from .s3vocab import KMS_ENCRYPTIONS

Matcher = Callable[[str, str], bool]


def _basename(rel: str) -> str:
    return rel.rsplit("/", 1)[-1]


def _compile(pattern: str) -> Matcher:
    if pattern == "":
        return lambda rel, abs_path: "." not in _basename(rel)
    if pattern.startswith(".") and not any(c in pattern for c in "*?[/"):
        suffix = pattern.lower()
        return lambda rel, abs_path: _basename(rel).lower().endswith(suffix)
    rel_regex = re.compile(fnmatch.translate(pattern.lstrip("/")))
    abs_regex = re.compile(fnmatch.translate(pattern))

    def match(rel: str, abs_path: str) -> bool:
        return bool(rel_regex.match(rel)) or bool(abs_path and abs_regex.match(abs_path))

    return match


class RuleSet:
    """Compiled ordered rules; `first(rel, abs_path)` returns the first match's value."""

    def __init__(self, rules: Sequence[Tuple[str, object]]):
        self._rules = [(_compile(pattern), value) for pattern, value in rules]

    def first(self, rel: str, abs_path: str = ""):
        for match, value in self._rules:
            if match(rel, abs_path):
                return value
        return None

    def __bool__(self) -> bool:
        return bool(self._rules)


class HeaderRules:
    """All header rule sets of a Settings, compiled once."""

    def __init__(self, settings: Settings):
        self.acl = RuleSet(settings.acl)
        self.content_type = RuleSet(settings.content_type)
        self.content_encoding = RuleSet(settings.content_encoding)
        self.compress = RuleSet(settings.compress)
        self.cache_control = RuleSet(settings.cache_control)
        self.metadata = RuleSet(settings.metadata)
        self.content_disposition = RuleSet(settings.content_disposition)
        self.content_language = RuleSet(settings.content_language)
        self.expires = RuleSet(settings.expires)
        self.storage_class = RuleSet(settings.storage_class)
        self.encryption = RuleSet(settings.encryption)
        self.kms_key_id = settings.kms_key_id or None
        self._interned: Dict[tuple, ObjectHeaders] = {}

    def encoding_for(self, rel: str, abs_path: str = "") -> Optional[str]:
        """"gzip" or "br" when the `compress` rules compress this file, else None."""
        encoding = self.compress.first(rel, abs_path)
        return None if encoding in (None, "none") else encoding

    def with_encodings(self, files: Sequence[LocalFile]) -> Tuple[List[LocalFile], List[LocalFile]]:
        """The files, each with the encoding the `compress` rules give it, and
        those of them that a `content_encoding` rule matches as well (for a
        warning: the compression decides their Content-Encoding)."""
        if not self.compress:
            return list(files), []
        result, conflicts = [], []
        for local in files:
            encoding = self.encoding_for(local.rel, local.path)
            if encoding != local.encoding:
                local = replace(local, encoding=encoding)
            if encoding and self.content_encoding.first(local.rel, local.path) is not None:
                conflicts.append(local)
            result.append(local)
        return result, conflicts

    def headers_for(self, rel: str, abs_path: str = "", *, redirect: Optional[str] = None,
                    encoding: Optional[str] = None) -> ObjectHeaders:
        """`encoding`: the compression the file is uploaded with, which is its
        Content-Encoding whatever the content_encoding rules say."""
        encryption = self.encryption.first(rel, abs_path)
        values = (
            self.content_type.first(rel, abs_path) or guess_content_type(rel),
            encoding or self.content_encoding.first(rel, abs_path),
            self.cache_control.first(rel, abs_path),
            self.metadata.first(rel, abs_path) or (),
            self.acl.first(rel, abs_path) or "private",
            redirect,
            self.content_disposition.first(rel, abs_path),
            self.content_language.first(rel, abs_path),
            self.expires.first(rel, abs_path),
            self.storage_class.first(rel, abs_path),
            encryption,
            self.kms_key_id if encryption in KMS_ENCRYPTIONS else None,
        )
        # A site has a handful of distinct header sets: share one object per set
        # instead of holding one per file.
        headers = self._interned.get(values)
        if headers is None:
            headers = self._interned[values] = ObjectHeaders(*values)
        return headers


class _Patterns:
    """Patterns that cover a path when they match it or one of its folders."""

    def __init__(self, patterns: Sequence[str]):
        self._matchers = [_compile(pattern) for pattern in patterns]
        self._folders: Dict[str, bool] = {"": False}  # folder -> covered; a site has few folders

    def __bool__(self) -> bool:
        return bool(self._matchers)

    def _match(self, path: str) -> bool:
        return any(match(path, "") for match in self._matchers)

    def _folder(self, folder: str) -> bool:
        covered = self._folders.get(folder)
        if covered is None:
            covered = self._folders[folder] = self._folder(folder.rpartition("/")[0]) or self._match(folder)
        return covered

    def cover(self, rel: str) -> bool:
        return self._folder(rel.rpartition("/")[0]) or self._match(rel)


# Never published unless `include` names them: version-control folders (a
# repository's whole history) and .env files (its secrets). Both are in every
# CI workspace, and `source: .` is the default.
VCS_FOLDERS = (".git", ".hg", ".svn")


def default_excluded(name: str) -> bool:
    """A file or folder name left out by default: .git, .hg, .svn, .env, .env.*."""
    return name in VCS_FOLDERS or name == ".env" or name.startswith(".env.")


class Selection:
    """`include` / `exclude`: which paths relative to the source (the same as keys
    relative to the target) a run syncs. A path is selected when no include is
    given or one covers it, and no exclude covers it. With `defaults` (as for a
    run), a path that is or is in a default-excluded entry (see
    `default_excluded`) is left out too, unless an include pattern that names
    such an entry (".env", ".git/*", "**/.env.production") covers it. Not
    thread-safe (it caches per folder); the pipeline uses it from one thread."""

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = (), defaults: bool = False):
        self._include = _Patterns(include)
        self._exclude = _Patterns(exclude)
        self._defaults = defaults
        self._naming = _Patterns([p for p in include if any(name in p for name in VCS_FOLDERS + (".env",))])
        self._hidden: Dict[str, bool] = {"": False}  # folder -> it is or is in a default-excluded entry

    @classmethod
    def of(cls, settings: Settings) -> "Selection":
        return cls(settings.include, settings.exclude, defaults=True)

    def __bool__(self) -> bool:
        return bool(self._include) or bool(self._exclude) or self._defaults

    def _hidden_folder(self, folder: str) -> bool:
        hidden = self._hidden.get(folder)
        if hidden is None:
            parent, _, name = folder.rpartition("/")
            hidden = self._hidden[folder] = self._hidden_folder(parent) or default_excluded(name)
        return hidden

    def left_out_by_default(self, rel: str) -> bool:
        """True when only the default excludes leave `rel` out: it is (or is in)
        a .git, .hg, .svn, .env or .env.* entry, no exclude covers it (then
        that is the reason), and no include that names such an entry covers it."""
        if not self._defaults or self._exclude.cover(rel):
            return False
        folder, _, name = rel.rpartition("/")
        if not (self._hidden_folder(folder) or default_excluded(name)):
            return False
        return not self._naming.cover(rel)

    @staticmethod
    def default_entry(rel: str) -> str:
        """The default-excluded entry `rel` is or is in, as shown: ".git/", "app/.env"."""
        parts = rel.split("/")
        for index, name in enumerate(parts):
            if default_excluded(name):
                return "/".join(parts[:index + 1]) + ("/" if index < len(parts) - 1 else "")
        return rel

    def selects(self, rel: str) -> bool:
        if self._include and not self._include.cover(rel):
            return False
        return not self._exclude.cover(rel) and not self.left_out_by_default(rel)

    def excludes_all_below(self, rel: str) -> bool:
        """True when an exclude, or a default exclude, covers `rel` itself: no
        path below it can be selected. A default-excluded folder is still
        entered when an include names such entries (include: .git/config)."""
        if self._exclude and self._exclude.cover(rel):
            return True
        return not self._naming and self.left_out_by_default(rel)
