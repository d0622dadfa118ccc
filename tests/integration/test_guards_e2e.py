"""End-to-end tests of the delete guards: the real `drone-s3-sync` command
against the recording moto server.

A broken build (an empty folder, a glob that matches nothing, `source`
pointing at the wrong folder) must never wipe a live site: with `delete` on,
such a run is refused before its first write, exit 3. Each test asserts what
the server received (not one write) and reads the bucket back to prove the
site is intact. The ordering test proves deletes are the last file writes of
a run.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List

import pytest
from drone_run import EIGHT_MIB_PARTS, action_map, actions, ok, plugin_env, summary_counts

from conftest import STATE_NAME, is_state_key, state_key

MiB = 1024 * 1024
EXIT_REFUSED = 3

SITE: Dict[str, str] = {f"page{i}.html": f"<p>page {i}</p>" for i in range(10)}


def all_keys(s3: Any, s3_server: Any, bucket: str, with_state: bool = False) -> List[str]:
    keys: List[str] = []
    with s3_server.paused():
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(k for k in keys if with_state or not is_state_key(k))


def deploy(run_sync: Any, s3_server: Any, bucket: str, src: Any, **settings: Any) -> None:
    """A first, successful deploy; the request log is cleared after it."""
    ok(run_sync(plugin_env(bucket, source=".", **settings), cwd=src))
    s3_server.reset()


def refused(proc: Any) -> str:
    """Exit 3, one `refused:` line on stderr, no traceback; returns that line."""
    assert proc.returncode == EXIT_REFUSED, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("drone-s3-sync: refused: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def assert_read_only(s3_server: Any, bucket: str) -> None:
    """Not one write anywhere (no CreateInvalidation either); only the listing and the state read."""
    assert s3_server.writes() == [], s3_server.writes()
    assert set(s3_server.ops(bucket)) <= {"ListObjectsV2", "GetObject"}, s3_server.ops(bucket)
    assert s3_server.ops(bucket)["ListObjectsV2"] == 1


# ---------------------------------------------------------------- empty source


def test_empty_folder_with_delete_is_refused_and_the_site_is_intact(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree(SITE)
    deploy(run_sync, s3_server, bucket, src)
    before = all_keys(s3, s3_server, bucket, with_state=True)
    empty = make_tree({})  # the build produced nothing

    proc = run_sync(plugin_env(bucket, source=str(empty), delete=True), cwd=src)

    line = refused(proc)
    for words in (repr(str(empty)), "has no files", f"would empty s3://{bucket}/", "(10 objects to delete)",
                  "Nothing was written", "allow_empty_source", "PLUGIN_ALLOW_EMPTY_SOURCE=true"):
        assert words in line, line
    assert_read_only(s3_server, bucket)
    assert all_keys(s3, s3_server, bucket, with_state=True) == before
    assert actions(proc.stdout) == []  # no action was reported as done
    assert "warning" not in proc.stderr  # the refusal says it all


def test_glob_matching_nothing_with_delete_is_refused(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree({"dist/" + rel: body for rel, body in SITE.items()})
    ok(run_sync(plugin_env(bucket, source="dist/**/*.html", target="/www"), cwd=src))
    s3_server.reset()
    before = all_keys(s3, s3_server, bucket, with_state=True)
    assert len(before) == len(SITE) + 1

    # The build now writes .htm files: the glob matches nothing.
    for path in (src / "dist").iterdir():
        path.rename(path.with_suffix(".htm"))
    proc = run_sync(plugin_env(bucket, source="dist/**/*.html", target="/www", delete=True), cwd=src)

    line = refused(proc)
    assert "'dist/**/*.html' has no files" in line and f"s3://{bucket}/www/" in line, line
    assert_read_only(s3_server, bucket)
    assert all_keys(s3, s3_server, bucket, with_state=True) == before


def test_allow_empty_source_deletes_everything(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree(SITE)
    deploy(run_sync, s3_server, bucket, src, target="/site")
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="elsewhere.txt", Body=b"not under the target")
    empty = make_tree({})

    proc = ok(run_sync(plugin_env(bucket, source=str(empty), target="/site", delete=True,
                                  allow_empty_source=True), cwd=src))

    assert "warning: the source" in proc.stderr and "has no files" in proc.stderr
    assert summary_counts(proc.stdout)["deleted"] == len(SITE)
    assert {k for k, (verb, _) in action_map(proc.stdout).items() if verb == "delete"} == {
        "site/" + rel for rel in SITE}
    assert s3_server.ops(bucket)["DeleteObjects"] == 1
    assert all_keys(s3, s3_server, bucket) == ["elsewhere.txt"]


def test_empty_source_without_delete_is_a_warning(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree(SITE)
    deploy(run_sync, s3_server, bucket, src)
    before = all_keys(s3, s3_server, bucket, with_state=True)
    empty = make_tree({})

    proc = ok(run_sync(plugin_env(bucket, source=str(empty)), cwd=src))

    assert f"warning: the source {str(empty)!r} has no files" in proc.stderr, proc.stderr
    assert "refused" not in proc.stderr
    # Nothing is uploaded or deleted; the state object may be rewritten (it
    # records only what the source has), nothing else is.
    assert [r for r in s3_server.writes() if not is_state_key(r.key)] == []
    assert all_keys(s3, s3_server, bucket, with_state=True) == before


# ---------------------------------------------------------------- max_delete


def shrunk_site(make_tree: Any) -> Any:
    """The site after a build that lost pages: 2 of 10 left, one of them changed, one new page."""
    return make_tree({"page0.html": SITE["page0.html"], "page1.html": "<p>changed 1</p>", "new.html": "<p>new</p>"})


@pytest.mark.parametrize(
    "limit, words",
    [
        ("3", ["would delete 8 objects of the 10", "(80%)", "max_delete is 3.", "to 8 or 80%"]),
        ("50%", ["would delete 8 objects of the 10", "(80%)", "max_delete is 50% (at most 5 objects of 10)",
                 "to 8 or 80%"]),
    ],
    ids=["count", "percentage"],
)
def test_max_delete_exceeded_refuses_before_any_write(s3_server, s3, bucket, make_tree, run_sync, limit, words):
    deploy(run_sync, s3_server, bucket, make_tree(SITE))
    with s3_server.paused():
        before = {k: s3.get_object(Bucket=bucket, Key=k)["ETag"]
                  for k in all_keys(s3, s3_server, bucket, with_state=True)}

    proc = run_sync(plugin_env(bucket, delete=True, max_delete=limit), cwd=shrunk_site(make_tree))

    line = refused(proc)
    for word in words + [f"s3://{bucket}/", "Nothing was written", "raise max_delete (PLUGIN_MAX_DELETE",
                         "or remove it"]:
        assert word in line, line
    # Not even the upload of the new page or the changed one: a plan that
    # deletes this much says the source is wrong.
    assert_read_only(s3_server, bucket)
    with s3_server.paused():
        after = {k: s3.get_object(Bucket=bucket, Key=k)["ETag"] for k in all_keys(s3, s3_server, bucket, with_state=True)}
    assert after == before


@pytest.mark.parametrize("limit", ["8", "80%", "100%"])
def test_max_delete_within_the_limit_syncs_and_deletes(s3_server, s3, bucket, make_tree, run_sync, limit):
    deploy(run_sync, s3_server, bucket, make_tree(SITE))

    proc = ok(run_sync(plugin_env(bucket, delete=True, max_delete=limit), cwd=shrunk_site(make_tree)))

    counts = summary_counts(proc.stdout)
    assert (counts["uploaded"], counts["deleted"]) == (2, 8), proc.stdout
    assert all_keys(s3, s3_server, bucket) == ["new.html", "page0.html", "page1.html"]
    assert STATE_NAME in all_keys(s3, s3_server, bucket, with_state=True)


def test_max_delete_counts_only_objects_under_the_target_and_not_the_state(s3_server, s3, bucket, make_tree,
                                                                           run_sync):
    # 4 objects under site/ (plus its state object) and 20 elsewhere: 2 deletes
    # are 50% of the target, within 50% -- and more than 50% if the state object
    # or the other keys counted differently.
    src = make_tree({f"p{i}.html": str(i) for i in range(4)})
    deploy(run_sync, s3_server, bucket, src, target="/site")
    with s3_server.paused():
        for i in range(20):
            s3.put_object(Bucket=bucket, Key=f"other/{i}.txt", Body=b"x")
    (src / "p0.html").unlink()
    (src / "p1.html").unlink()
    ok(run_sync(plugin_env(bucket, target="/site", delete=True, max_delete="50%"), cwd=src))
    assert all_keys(s3, s3_server, bucket, with_state=True) == sorted(
        ["site/p2.html", "site/p3.html", state_key("site/")] + [f"other/{i}.txt" for i in range(20)])

    (src / "p2.html").unlink()
    s3_server.reset()
    line = refused(run_sync(plugin_env(bucket, target="/site", delete=True, max_delete="49%"), cwd=src))
    assert "would delete 1 object of the 2 under" in line and "(50%)" in line, line
    assert_read_only(s3_server, bucket)


def test_dry_run_over_the_limit_prints_the_plan_and_the_refusal(s3_server, s3, bucket, make_tree, run_sync):
    deploy(run_sync, s3_server, bucket, make_tree(SITE))
    before = all_keys(s3, s3_server, bucket, with_state=True)

    proc = run_sync(plugin_env(bucket, delete=True, max_delete="3", dry_run=True), cwd=shrunk_site(make_tree))

    line = refused(proc)
    assert "would delete 8 objects of the 10" in line and "max_delete is 3" in line, line
    plan = action_map(proc.stdout)
    assert {k for k, (verb, _) in plan.items() if verb == "delete"} == {f"page{i}.html" for i in range(2, 10)}
    assert plan["new.html"][0] == "upload" and plan["page1.html"][0] == "upload"
    assert all(line.startswith("would ") for line in proc.stdout.splitlines() if re.match(r"^\w+ +\S", line)
               and not line.startswith(("Synchronizing", "Using ")))
    assert_read_only(s3_server, bucket)
    assert all_keys(s3, s3_server, bucket, with_state=True) == before


def test_dry_run_with_an_empty_source_and_delete_is_refused(s3_server, s3, bucket, make_tree, run_sync):
    deploy(run_sync, s3_server, bucket, make_tree(SITE))
    proc = run_sync(plugin_env(bucket, source=str(make_tree({})), delete=True, dry_run=True), cwd=make_tree({}))
    assert "has no files" in refused(proc)
    assert len([a for a in actions(proc.stdout) if a[0] == "delete"]) == len(SITE)
    assert_read_only(s3_server, bucket)


# ---------------------------------------------------------------- deletes run last


def test_deletes_come_after_every_other_write_of_the_run(s3_server, s3, bucket, make_tree, run_sync):
    big = b"\x01" * (8 * MiB + 1)  # a multipart upload: its Complete must precede the deletes too
    src = make_tree({"keep.html": "k", "changed.html": "v1", "headers.css": "c"})
    deploy(run_sync, s3_server, bucket, src, target="/site")
    with s3_server.paused():
        for i in range(5):
            s3.put_object(Bucket=bucket, Key=f"site/orphan{i}.txt", Body=b"o")
    (src / "changed.html").write_text("v2")
    (src / "new.txt").write_text("new")
    (src / "big.bin").write_bytes(big)

    proc = ok(run_sync(plugin_env(bucket, target="/site", delete=True, max_concurrency=4,
                                  cache_control={".css": "max-age=60"}, redirects={"old": "/keep.html"},
                                  **EIGHT_MIB_PARTS),
                       cwd=src))

    verbs = {key: verb for key, (verb, _) in action_map(proc.stdout).items()}
    assert verbs == {"site/changed.html": "upload", "site/new.txt": "upload", "site/big.bin": "upload",
                     "site/headers.css": "update", "site/old -> /keep.html": "redirect",
                     **{f"site/orphan{i}.txt": "delete" for i in range(5)}}, verbs
    writes = s3_server.writes(bucket)  # in the order the server received them
    ops = [r.op for r in writes]
    for op in ("PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
               "DeleteObjects"):
        assert op in ops, ops
    # After the (one) delete request comes nothing but the state object that records the run.
    first_delete = ops.index("DeleteObjects")
    after = [(r.op, r.key) for r in writes[first_delete:]]
    assert after == [("DeleteObjects", None), ("PutObject", state_key("site/"))], after
    assert all_keys(s3, s3_server, bucket) == sorted(
        ["site/keep.html", "site/changed.html", "site/headers.css", "site/new.txt", "site/big.bin", "site/old"])
