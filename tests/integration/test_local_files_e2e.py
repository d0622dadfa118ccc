"""End-to-end: local files that cannot be read, and symbolic links.

Files that cannot be read (permissions, vanished during the run, broken links,
names that are not UTF-8) are reported by name, every other file is synced,
the run exits 1 and deletes nothing. Links leading outside the source are
skipped with a warning (neither uploaded nor deleted) unless
`allow_external_symlinks` is set.

Permission tests need a process for which permission bits count. The suite
often runs as root (CI containers), where they do not: the command then runs
through a small trampoline that drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
from its capability bounding set before exec'ing it, so it is still root and
owns the test's files, but reads them under their mode bits.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from drone_run import action_map, actions, keys_of, plugin_env

from conftest import is_state_key

# Runs argv[1:] without the capabilities that let root read any file.
_DROP_READ_OVERRIDE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
    if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
        sys.exit("cannot drop capability %d: %s" % (cap, os.strerror(ctypes.get_errno())))
os.execvp(sys.argv[1], sys.argv[1:])
"""
_wrapper_cache: Dict[str, Any] = {}


@pytest.fixture
def unprivileged(tmp_path_factory: pytest.TempPathFactory) -> List[str]:
    """A command prefix under which the command cannot read a mode-000 file; skips if none works."""
    if "wrapper" not in _wrapper_cache:
        wrapper = [] if os.geteuid() != 0 else [sys.executable, "-c", _DROP_READ_OVERRIDE]
        probe = tmp_path_factory.mktemp("probe") / "locked"
        probe.write_text("x")
        probe.chmod(0)
        proc = subprocess.run(wrapper + [sys.executable, "-c", f"open({str(probe)!r}).read()"],
                              capture_output=True, text=True)
        if proc.returncode != 0 and "PermissionError" in proc.stderr:
            _wrapper_cache["wrapper"] = wrapper
        else:
            _wrapper_cache["wrapper"] = None
            _wrapper_cache["why"] = (
                "a mode-000 file stays readable: running as root and cannot drop CAP_DAC_OVERRIDE "
                f"(exit {proc.returncode}: {proc.stderr.strip()[-200:]})")
    if _wrapper_cache["wrapper"] is None:
        pytest.skip(_wrapper_cache["why"])
    return _wrapper_cache["wrapper"]


def upload(s3_server: Any, s3: Any, bucket: str, objects: Dict[str, bytes]) -> None:
    with s3_server.paused():
        for key, data in objects.items():
            s3.put_object(Bucket=bucket, Key=key, Body=data)
    s3_server.reset()


def bucket_contents(s3_server: Any, s3: Any, bucket: str) -> Dict[str, bytes]:
    with s3_server.paused():
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for o in page.get("Contents", [])]
        return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys if not is_state_key(k)}


def errors_of(stdout: str) -> List[str]:
    return [line[len("  error: "):] for line in stdout.splitlines() if line.startswith("  error: ")]


def failed(proc: Any) -> Any:
    """Exit 1, and no traceback whatever went wrong."""
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    return proc


def while_listing(s3_server: Any, change: Callable[[], None], delay: float = 3.0) -> Callable[[], None]:
    """Slow the bucket listing down; once it has started (the scan runs alongside
    it and is over by then), apply `change` to the files. Returns a join function."""
    fault = s3_server.inject("ListObjectsV2", delay=delay, answer=False)
    done: List[BaseException] = []

    def worker() -> None:
        deadline = time.monotonic() + 30
        while fault.hits == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # the scan of a handful of files took well under this
        try:
            change()
        except BaseException as exc:  # surfaced by join()
            done.append(exc)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()

    def join() -> None:
        thread.join(30)
        assert fault.hits >= 1, "the listing never started"
        if done:
            raise done[0]

    return join


# ---------------------------------------------------------------- permissions


def test_unreadable_file_and_folder_are_reported_the_rest_synced_nothing_deleted(
        run_sync, s3_server, s3, bucket, make_tree, unprivileged):
    src = make_tree({"ok.txt": "fresh", "new.txt": "new", "secret.txt": "locked!", "new-secret.txt": "locked",
                     "private/a.txt": "a", "public/b.txt": "b"})
    remote_before = {"ok.txt": b"stale", "secret.txt": b"remote!", "private/a.txt": b"a", "orphan.txt": b"o"}
    upload(s3_server, s3, bucket, remote_before)
    (src / "secret.txt").chmod(0)
    (src / "new-secret.txt").chmod(0)
    (src / "private").chmod(0)
    try:
        dry = failed(run_sync(plugin_env(bucket, src, delete=True, dry_run=True), cwd=src, wrapper=unprivileged))
        proc = failed(run_sync(plugin_env(bucket, src, delete=True), cwd=src, wrapper=unprivileged))
    finally:
        (src / "private").chmod(0o755)

    errors = errors_of(proc.stdout)
    assert len(errors) == 3, proc.stdout
    assert f"{src / 'secret.txt'}: cannot read the file: Permission denied" in errors
    assert f"{src / 'new-secret.txt'}: cannot read the file: Permission denied" in errors
    assert f"{src / 'private'}: cannot read the folder: Permission denied" in errors
    for error in errors:  # each also warned about on stderr as it is found
        assert error in proc.stderr
    # every other file is synced; nothing is deleted, the unreadable ones least of all
    assert action_map(proc.stdout) == {"new.txt": ("upload", "new, 3 B"), "ok.txt": ("upload", "content changed, 5 B"),
                                       "public/b.txt": ("upload", "new, 1 B")}
    assert "Deletes skipped: 1 delete(s) not done" in proc.stdout
    assert "DeleteObjects" not in s3_server.ops(bucket)
    assert bucket_contents(s3_server, s3, bucket) == {**remote_before, "ok.txt": b"fresh", "new.txt": b"new",
                                                     "public/b.txt": b"b"}
    # The dry run says the same and plans no delete at all.
    assert errors_of(dry.stdout) == errors
    assert not [a for a in actions(dry.stdout) if a[0] == "delete"], dry.stdout
    assert "Deletes skipped: 1 delete(s) would not be done because of 3 problem(s)" in dry.stdout


def test_file_made_unreadable_during_the_run_fails_hash_and_upload(
        run_sync, s3_server, s3, bucket, make_tree, unprivileged):
    # same.txt has a same-size object: it is hashed. new.txt is only read by the upload.
    src = make_tree({"same.txt": "local", "new.txt": "new", "ok.txt": "ok"})
    upload(s3_server, s3, bucket, {"same.txt": b"REMOT", "orphan.txt": b"o"})
    join = while_listing(s3_server, lambda: [(src / n).chmod(0) for n in ("same.txt", "new.txt")])
    proc = failed(run_sync(plugin_env(bucket, src, delete=True), cwd=src, wrapper=unprivileged))
    join()

    assert f"same.txt: cannot read {src / 'same.txt'}: Permission denied" in errors_of(proc.stdout)
    assert f"failed: new.txt: cannot read {src / 'new.txt'}: Permission denied" in proc.stdout
    assert action_map(proc.stdout)["ok.txt"] == ("upload", "new, 2 B")
    assert [k for k in keys_of(s3_server.writes(bucket), "PutObject") if not is_state_key(k)] == ["ok.txt"]
    assert "DeleteObjects" not in s3_server.ops(bucket)
    assert bucket_contents(s3_server, s3, bucket) == {"same.txt": b"REMOT", "orphan.txt": b"o", "ok.txt": b"ok"}


# ---------------------------------------------------------------- vanished files


def test_files_vanishing_between_scan_and_hash_or_upload(run_sync, s3_server, s3, bucket, make_tree):
    src = make_tree({"hashed.txt": "local", "uploaded.txt": "new", "big.bin": b"b" * (9 * 1024 * 1024),
                     "ok.txt": "ok"})
    upload(s3_server, s3, bucket, {"hashed.txt": b"REMOT", "orphan.txt": b"o"})
    join = while_listing(s3_server, lambda: [(src / n).unlink() for n in ("hashed.txt", "uploaded.txt", "big.bin")])
    proc = failed(run_sync(plugin_env(bucket, src, delete=True), cwd=src))
    join()

    assert errors_of(proc.stdout) == [f"hashed.txt: cannot read {src / 'hashed.txt'}: No such file or directory"]
    for name in ("uploaded.txt", "big.bin"):  # a single PUT and a multipart upload
        assert f"failed: {name}: cannot read {src / name}: No such file or directory" in proc.stdout
    assert re.search(r"^Done: 1 uploaded, .* 2 failed", proc.stdout, re.M), proc.stdout
    assert "DeleteObjects" not in s3_server.ops(bucket)
    assert "CreateMultipartUpload" not in s3_server.ops(bucket)  # nothing to abort either
    assert bucket_contents(s3_server, s3, bucket) == {"hashed.txt": b"REMOT", "orphan.txt": b"o", "ok.txt": b"ok"}


# ---------------------------------------------------------------- links and names


def test_broken_symlink_is_reported_and_its_object_kept(run_sync, s3_server, s3, bucket, make_tree, tmp_path):
    src = make_tree({"ok.txt": "ok"})
    (src / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    upload(s3_server, s3, bucket, {"dangling.txt": b"d", "orphan.txt": b"o"})
    dry = failed(run_sync(plugin_env(bucket, src, delete=True, dry_run=True), cwd=src))
    proc = failed(run_sync(plugin_env(bucket, src, delete=True), cwd=src))

    expected = f"{src / 'dangling.txt'}: broken symbolic link (to {tmp_path / 'gone.txt'})"
    assert errors_of(proc.stdout) == errors_of(dry.stdout) == [expected]
    assert action_map(proc.stdout) == {"ok.txt": ("upload", "new, 2 B")}
    assert not [a for a in actions(dry.stdout) if a[0] == "delete"], dry.stdout
    assert "DeleteObjects" not in s3_server.ops(bucket)
    assert bucket_contents(s3_server, s3, bucket) == {"dangling.txt": b"d", "orphan.txt": b"o", "ok.txt": b"ok"}


def test_names_that_are_not_utf8_are_reported_escaped(run_sync, s3_server, s3, bucket, make_tree):
    src = make_tree({"ok.txt": "ok", "sub/fine.txt": "f"})
    raw = os.fsencode(str(src))
    Path(os.fsdecode(raw + b"/bad\xff.txt")).write_bytes(b"x")
    os.mkdir(raw + b"/caf\xe9")  # Latin-1
    Path(os.fsdecode(raw + b"/caf\xe9/menu.txt")).write_bytes(b"m")
    upload(s3_server, s3, bucket, {"orphan.txt": b"o"})
    proc = failed(run_sync(plugin_env(bucket, src, delete=True), cwd=src))

    errors = errors_of(proc.stdout)
    assert errors == [f"{src}/bad\\xff.txt: the name is not valid UTF-8, so it cannot be part of an S3 key; not synced",
                      f"{src}/caf\\xe9/: the folder is not valid UTF-8, so it cannot be part of an S3 key; not synced"]
    assert action_map(proc.stdout) == {"ok.txt": ("upload", "new, 2 B"), "sub/fine.txt": ("upload", "new, 1 B")}
    assert "DeleteObjects" not in s3_server.ops(bucket)
    assert bucket_contents(s3_server, s3, bucket) == {"orphan.txt": b"o", "ok.txt": b"ok", "sub/fine.txt": b"f"}


def test_links_outside_the_source_are_skipped_neither_uploaded_nor_deleted(
        run_sync, s3_server, s3, bucket, make_tree, tmp_path):
    outside = make_tree({"passwd": "root:x:0:0", "lib/vendor.js": "v"}, root=tmp_path / "outside")
    src = make_tree({"index.html": "i", "assets/app.js": "a"}, root=tmp_path / "site")
    (src / "leak.txt").symlink_to(outside / "passwd")
    (src / "vendor").symlink_to(outside / "lib", target_is_directory=True)
    (src / "app.js").symlink_to("assets/app.js")  # inside: followed
    remote = {"site/leak.txt": b"published earlier", "site/vendor/vendor.js": b"v0", "site/orphan.txt": b"o"}
    upload(s3_server, s3, bucket, remote)
    env = plugin_env(bucket, src, target="site", delete=True)
    dry = run_sync({**env, "PLUGIN_DRY_RUN": "true"}, cwd=src)
    proc = run_sync(env, cwd=src)

    for run in (dry, proc):
        assert run.returncode == 0, run.stderr  # a warning, not an error
        assert f"warning: {src / 'leak.txt'}: symbolic link to {outside / 'passwd'}, outside the source; skipped: " \
               "not uploaded, and its object is not deleted (set allow_external_symlinks to follow it)" in run.stderr
        assert f"warning: {src / 'vendor'}: symbolic link to {outside / 'lib'}, outside the source; skipped: " \
               "not uploaded, and its objects are not deleted" in run.stderr
    assert [(v, k) for v, k, _ in actions(dry.stdout)] == [("upload", "site/app.js"), ("upload", "site/assets/app.js"),
                                                           ("upload", "site/index.html"), ("delete", "site/orphan.txt")]
    # Uploads end in any order: compare the sets of action lines.
    assert sorted((v, k) for v, k, _ in actions(proc.stdout)) == sorted((v, k) for v, k, _ in actions(dry.stdout))
    assert bucket_contents(s3_server, s3, bucket) == {
        "site/leak.txt": b"published earlier", "site/vendor/vendor.js": b"v0",
        "site/app.js": b"a", "site/assets/app.js": b"a", "site/index.html": b"i"}
    assert b"root:x" not in b"".join(r.path.encode() for r in s3_server.requests)

    # Allowed: followed like any other link.
    s3_server.reset()
    proc = run_sync({**env, "PLUGIN_ALLOW_EXTERNAL_SYMLINKS": "true"}, cwd=src)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    assert keys_of(s3_server.writes(bucket), "PutObject") == [
        "site/.drone-s3-sync-state.json.gz", "site/leak.txt", "site/vendor/vendor.js"]
    contents = bucket_contents(s3_server, s3, bucket)
    assert contents["site/leak.txt"] == b"root:x:0:0" and contents["site/vendor/vendor.js"] == b"v"


def test_allow_external_symlinks_flag_and_bad_value(run_sync, s3_server, s3, bucket, make_tree, tmp_path):
    outside = make_tree({"x.txt": "x"}, root=tmp_path / "outside")
    src = make_tree({"a.txt": "a"}, root=tmp_path / "site")
    (src / "x.txt").symlink_to(outside / "x.txt")
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_ALLOW_EXTERNAL_SYMLINKS": "maybe"}, cwd=src)
    assert proc.returncode == 2 and "PLUGIN_ALLOW_EXTERNAL_SYMLINKS" in proc.stderr, proc.stderr
    assert s3_server.ops(bucket) == {}
    proc = run_sync({"PLUGIN_BUCKET": bucket}, cwd=src, args=["--allow-external-symlinks"])
    assert proc.returncode == 0, proc.stderr
    assert set(action_map(proc.stdout)) == {"a.txt", "x.txt"}
