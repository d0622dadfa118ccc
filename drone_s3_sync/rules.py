"""Ordered header rules: which Content-Type, ACL, ... a file gets. Pure.

A rule key that is "" or starts with a dot (".svg", ".tar.gz") matches by
extension, "" meaning a name without one. Any other key is a glob on the path
relative to the source, where `*` also matches "/" (so "public/*" covers all
of public/, and "*.png" any PNG at any depth). For patterns written for the
original plugin, which matched against the absolute local path ("*/public/*"),
the glob is also tried on the absolute path. The first matching rule in the
order written wins.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .config import Settings
from .contenttypes import guess_content_type
from .model import LocalFile, ObjectHeaders

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
        values = (
            self.content_type.first(rel, abs_path) or guess_content_type(rel),
            encoding or self.content_encoding.first(rel, abs_path),
            self.cache_control.first(rel, abs_path),
            self.metadata.first(rel, abs_path) or (),
            self.acl.first(rel, abs_path) or "private",
            redirect,
        )
        # A site has a handful of distinct header sets: share one object per set
        # instead of holding one per file.
        headers = self._interned.get(values)
        if headers is None:
            headers = self._interned[values] = ObjectHeaders(*values)
        return headers
