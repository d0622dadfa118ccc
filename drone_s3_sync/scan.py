"""Walk the source and list its files with their keys, sorted in S3 key order.

The source is a folder, a single file, or a glob such as `dist/**/*.html`:
keys are then relative to the glob's fixed base folder (`dist/`). Local names
are normalised to Unicode NFC so that a macOS checkout (NFD names) and a Linux
one publish the same keys.

Links are followed while they stay inside the source; one leading outside is
skipped with a warning unless `allow_external_symlinks`. What cannot be read
(permissions, broken links, names that are not UTF-8, files gone meanwhile)
is reported by name; the keys of everything left out are returned so that no
object is deleted for it. Files that `include`/`exclude` do not select are
left out as if they were not there (no warning, no error); a folder an
exclude pattern covers is not even entered. Version-control folders and .env
files (see rules.default_excluded) are left out the same way unless include
names them, with one warning line that counts them.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from .errors import ConfigError
from .model import LocalFile

if TYPE_CHECKING:
    from .rules import Selection

GLOB_CHARS = "*?["


@dataclass
class ScanResult:
    files: List[LocalFile]
    root: str  # the folder keys are relative to
    problems: List[str] = field(default_factory=list)  # what could not be read: each fails the run
    warnings: List[str] = field(default_factory=list)  # what was skipped on purpose (links leaving the source)
    # Keys, and key prefixes of folders, of local entries that were not synced:
    # their objects must never be deleted as "not in source".
    kept_keys: Set[str] = field(default_factory=set)
    kept_prefixes: List[str] = field(default_factory=list)
    # The xxh3-128 of each file's bytes (of the source, for a compressed one),
    # when the run records them in the state: read while the bucket is listed.
    hashes: Dict[str, str] = field(default_factory=dict)


def printable(name: str) -> str:
    """A local name as it can be shown on one line: bytes that are not UTF-8 as
    \\xNN, control characters escaped."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def is_utf8(name: str) -> bool:
    """False for a name whose bytes are not UTF-8 (Python holds them as surrogate escapes)."""
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    """The key of a relative path: always inside the target prefix."""
    if rel.startswith("/") or any(part in ("", ".", "..") for part in rel.split("/")):
        raise ValueError(f"not a relative path inside the source: {rel!r}")
    return target + rel


SOURCE_FORMS = "use a folder, a single file, or a glob such as 'dist/**/*.html'"


def check_source(source_path: str, setting: str = "source") -> None:
    """Refuse a missing source up front, before any request is sent."""
    base, pattern = split_glob(source_path)
    if not os.path.exists(base):
        raise ConfigError(setting, f"{base} does not exist; {SOURCE_FORMS}")
    if not os.path.isdir(base) and (pattern is not None or not os.path.isfile(base)):
        raise ConfigError(setting, f"{base} is not a folder or a file; {SOURCE_FORMS}")


def files_named(source_path: str, rels: Sequence[str], selection: Optional["Selection"] = None) -> List[str]:
    """Which of these paths (relative to the source) name a file the source
    would publish: a cheap check that needs no walk of the tree."""
    if selection:
        rels = [rel for rel in rels if selection.selects(rel)]
    base, pattern = split_glob(source_path)
    if pattern is None and os.path.isfile(base):
        return [rel for rel in rels if rel == os.path.basename(base)]
    regex = glob_regex(pattern) if pattern is not None else None
    return [rel for rel in rels
            if (regex is None or regex.match(rel)) and os.path.isfile(os.path.join(base, *rel.split("/")))]


class _Note(NamedTuple):
    """Something the walk could not, or would not, publish."""

    rel: str  # relative path of the entry ("" for the source folder itself)
    folder: bool  # a whole folder: everything below `rel/`
    text: str
    error: bool  # a problem that fails the run, or only a warning


def scan(source_path: str, target: str, *, allow_external_symlinks: bool = False,
         selection: Optional["Selection"] = None) -> ScanResult:
    """List the files of `source_path` (already made absolute) for the `target` prefix.

    Links are followed inside the source; a link that leads outside it is
    skipped with a warning unless `allow_external_symlinks`. What cannot be
    read is reported in `problems`; the keys of everything left out are in
    `kept_keys`/`kept_prefixes`, so that no object is deleted for it.
    """
    check_source(source_path)
    base, pattern = split_glob(source_path)
    notes: List[_Note] = []
    hidden: List[str] = []  # entries only the default excludes left out
    if pattern is None and os.path.isfile(base):
        # A file named as the source is published whatever it links to.
        root = os.path.dirname(base)
        found = [(os.path.basename(base), base)]
    elif not os.path.isdir(base):
        raise ConfigError("source", f"{base} is not a folder or a file; {SOURCE_FORMS}")
    else:
        root = base
        skip = None
        if selection:
            def skip(rel: str) -> bool:
                nfc = unicodedata.normalize("NFC", rel)
                if not selection.excludes_all_below(nfc):
                    return False
                if selection.left_out_by_default(nfc):
                    hidden.append(nfc + "/" if os.path.isdir(os.path.join(base, rel)) else nfc)
                return True
        found, notes = _walk(base, allow_external_symlinks, skip)
        if pattern is not None:
            regex = glob_regex(pattern)
            found = [(rel, path) for rel, path in found if regex.match(rel)]
            # A folder that could not be entered may hold matching files: keep its notes.
            notes = [note for note in notes if note.folder or regex.match(note.rel)]
            hidden = [rel for rel in hidden if rel.endswith("/") or regex.match(rel)]
    if selection:
        # A folder that could not be entered may hold selected files: keep its notes.
        hidden += [selection.default_entry(unicodedata.normalize("NFC", rel)) for rel, _ in found
                   if selection.left_out_by_default(unicodedata.normalize("NFC", rel))]
        found = [(rel, path) for rel, path in found if selection.selects(unicodedata.normalize("NFC", rel))]
        notes = [note for note in notes if note.folder or selection.selects(unicodedata.normalize("NFC", note.rel))]
    result = ScanResult(files=[], root=root)
    if hidden:
        result.warnings.append(default_excludes_note(sorted(set(hidden))))

    def leave_out(rel: str, text: str, error: bool = True, folder: bool = False) -> None:
        (result.problems if error else result.warnings).append(text)
        if not is_utf8(rel):
            return  # no key can name it, so no object can be its copy
        nfc = unicodedata.normalize("NFC", rel)
        if folder:
            result.kept_prefixes.append(target + nfc + "/" if nfc else target)
        else:
            result.kept_keys.add(target + nfc)

    for note in notes:
        leave_out(note.rel, note.text, note.error, note.folder)
    seen = {}
    for rel, path in found:
        shown = printable(path)
        if not is_utf8(rel):
            leave_out(rel, f"{shown}: the name is not valid UTF-8, so it cannot be an S3 key; not synced")
            continue
        nfc = unicodedata.normalize("NFC", rel)
        if nfc in seen:
            leave_out(rel, f"{shown}: same key as {printable(seen[nfc])} after Unicode normalisation; skipped")
            continue
        try:
            info = os.stat(path)
        except OSError as exc:
            leave_out(rel, f"{shown}: {exc.strerror}")
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if not os.access(path, os.R_OK):
            leave_out(rel, f"{shown}: cannot read the file: {os.strerror(errno.EACCES)}")
            continue
        seen[nfc] = path
        result.files.append(LocalFile(rel=nfc, key=key_for(target, nfc), path=path, size=info.st_size,
                                      mtime_ns=info.st_mtime_ns))
    result.files.sort(key=lambda f: f.key.encode("utf-8"))
    return result


def default_excludes_note(entries: Sequence[str]) -> str:
    """The one line that says what the default excludes left out."""
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    return (f"not published: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} left out by default ({shown}): "
            "version-control folders (.git, .hg, .svn) and .env files are published only when include names them; "
            "their objects are not deleted (exclude them to silence this line)")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _walk(base: str, allow_external: bool, skip: Optional[Callable[[str], bool]] = None
          ) -> Tuple[List[Tuple[str, str]], List[_Note]]:
    """(relative POSIX path, absolute path) of every file below `base`, and
    notes on what was left out. Entries for which `skip(relative path)` is true
    are passed over without a look (nor a note), folders with all they hold.

    Symbolic links are followed when they stay inside `base` (or everywhere
    with `allow_external`). A folder is skipped only when it is its own
    ancestor (a link loop); two links to the same folder publish it under both
    names, as `aws s3 sync` and `rsync -L` do.
    """
    found: List[Tuple[str, str]] = []
    notes: List[_Note] = []
    root = os.path.realpath(base)
    # Each folder travels with its resolved path: a plain subfolder's is its
    # parent's plus its name, so only links cost a realpath() (one lstat per
    # path component, which dominated the scan of large trees).
    stack = [(base, root, "", frozenset({root}))]
    while stack:
        folder, folder_real, prefix, ancestors = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            notes.append(_Note(prefix.rstrip("/"), True,
                               f"{printable(folder)}: cannot read the folder: {exc.strerror}", True))
            continue
        subfolders = []
        for entry in entries:
            rel = prefix + entry.name
            if skip is not None and skip(rel):
                continue
            if not is_utf8(entry.name):
                is_dir = _is_dir(entry)
                kind = "folder" if is_dir else "name"
                notes.append(_Note(rel, False, f"{printable(entry.path)}{'/' if is_dir else ''}: the {kind} is not "
                                   f"valid UTF-8, so it cannot be part of an S3 key; not synced", True))
                continue
            real = None
            if _is_link(entry):
                real = os.path.realpath(entry.path)
                if not os.path.exists(entry.path):
                    notes.append(_Note(rel, False, f"{printable(entry.path)}: broken symbolic link "
                                       f"(to {printable(_readlink(entry.path))})", True))
                    continue
                if not allow_external and not _inside(real, root):
                    is_dir = _is_dir(entry)
                    notes.append(_Note(rel, is_dir, f"{printable(entry.path)}: symbolic link to {printable(real)}, "
                                       f"outside the source; skipped: not uploaded, and its object"
                                       f"{'s are' if is_dir else ' is'} not deleted (set allow_external_symlinks "
                                       f"to follow it)", False))
                    continue
            if _is_dir(entry):
                real = real or os.path.join(folder_real, entry.name)
                if real not in ancestors:
                    subfolders.append((entry.path, real, rel + "/", ancestors | {real}))
            else:
                found.append((rel, entry.path))
        stack.extend(reversed(subfolders))
    return found, notes


def _is_dir(entry: "os.DirEntry[str]") -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _is_link(entry: "os.DirEntry[str]") -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"
