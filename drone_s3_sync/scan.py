"""Walk the source and list its files with their keys, sorted in S3 key order.

The source is a folder, a single file, or a glob such as `dist/**/*.html`:
keys are then relative to the glob's fixed base folder (`dist/`). Local names
are normalised to Unicode NFC so that a macOS checkout (NFD names) and a Linux
one publish the same keys.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from .errors import ConfigError
from .model import LocalFile

GLOB_CHARS = "*?["


@dataclass
class ScanResult:
    files: List[LocalFile]
    root: str  # the folder keys are relative to
    problems: List[str] = field(default_factory=list)  # files that could not be read


def split_glob(source: str) -> Tuple[str, Optional[str]]:
    """('dist', '**/*.html') for 'dist/**/*.html'; (source, None) without wildcards."""
    parts = source.replace(os.sep, "/").split("/")
    for index, part in enumerate(parts):
        if any(c in part for c in GLOB_CHARS):
            base = "/".join(parts[:index]) or ("/" if source.startswith("/") else ".")
            return base, "/".join(parts[index:])
    return source, None


def glob_regex(pattern: str) -> "re.Pattern[str]":
    """`**` spans folders, `*` and `?` stay within one name, `[...]` is a class."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape("["))
                i += 1
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def key_for(target: str, rel: str) -> str:
    return target + rel


SOURCE_FORMS = "use a folder, a single file, or a glob such as 'dist/**/*.html'"


def check_source(source_path: str, setting: str = "source") -> None:
    """Refuse a missing source up front, before any request is sent."""
    base, pattern = split_glob(source_path)
    if not os.path.exists(base):
        raise ConfigError(setting, f"{base} does not exist; {SOURCE_FORMS}")
    if not os.path.isdir(base) and (pattern is not None or not os.path.isfile(base)):
        raise ConfigError(setting, f"{base} is not a folder or a file; {SOURCE_FORMS}")


def files_named(source_path: str, rels: Sequence[str]) -> List[str]:
    """Which of these paths (relative to the source) name a file the source
    would publish: a cheap check that needs no walk of the tree."""
    base, pattern = split_glob(source_path)
    if pattern is None and os.path.isfile(base):
        return [rel for rel in rels if rel == os.path.basename(base)]
    regex = glob_regex(pattern) if pattern is not None else None
    return [rel for rel in rels
            if (regex is None or regex.match(rel)) and os.path.isfile(os.path.join(base, *rel.split("/")))]


def scan(source_path: str, target: str) -> ScanResult:
    """List the files of `source_path` (already made absolute) for the `target` prefix."""
    check_source(source_path)
    base, pattern = split_glob(source_path)
    if pattern is None and os.path.isfile(base):
        root = os.path.dirname(base)
        found = [(os.path.basename(base), base)]
        problems: List[str] = []
    elif not os.path.isdir(base):
        raise ConfigError("source", f"{base} is not a folder or a file; {SOURCE_FORMS}")
    else:
        root = base
        found, problems = _walk(base)
        if pattern is not None:
            regex = glob_regex(pattern)
            found = [(rel, path) for rel, path in found if regex.match(rel)]
    files: List[LocalFile] = []
    seen = {}
    for rel, path in found:
        nfc = unicodedata.normalize("NFC", rel)
        if nfc in seen:
            problems.append(f"{path}: same key as {seen[nfc]} after Unicode normalisation; skipped")
            continue
        try:
            info = os.stat(path)
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror}")
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        seen[nfc] = path
        files.append(LocalFile(rel=nfc, key=key_for(target, nfc), path=path, size=info.st_size, mtime_ns=info.st_mtime_ns))
    files.sort(key=lambda f: f.key.encode("utf-8"))
    return ScanResult(files=files, root=root, problems=problems)


def _walk(base: str) -> Tuple[List[Tuple[str, str]], List[str]]:
    """(relative POSIX path, absolute path) of every file below `base`.

    Symbolic links are followed. A folder is skipped only when it is its own
    ancestor (a link loop); two links to the same folder publish it under both
    names, as `aws s3 sync` and `rsync -L` do.
    """
    found: List[Tuple[str, str]] = []
    problems: List[str] = []
    stack = [(base, "", frozenset({os.path.realpath(base)}))]
    while stack:
        folder, prefix, ancestors = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            problems.append(f"{exc.filename or folder}: {exc.strerror}")
            continue
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                real = os.path.realpath(entry.path)
                if real not in ancestors:
                    subfolders.append((entry.path, prefix + entry.name + "/", ancestors | {real}))
            elif entry.is_symlink() and not os.path.exists(entry.path):
                problems.append(f"{entry.path}: broken symbolic link")
            else:
                found.append((prefix + entry.name, entry.path))
        stack.extend(reversed(subfolders))
    return found, problems
