"""Load: a tree of many small files syncs to the local server, then the run with
nothing to do, each within a memory bound.

LOAD_FILES sets the number of files: 3,000 by default, so the suite covers it
in seconds; `scripts/load` runs it with 100,000 (the size issue 5 asks for).
Each run of the command goes through a small helper process that reports the
command's peak resident set size (getrusage of its waited-for child), which
must stay under 300 MB at any size: the pipeline holds a few small records per
file and keeps a bounded window of jobs in flight.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Tuple

from drone_run import ok, plugin_env, summary_counts

from conftest import _command, command_env, state_key

FILES = int(os.environ.get("LOAD_FILES", "3000"))
PER_FOLDER = 250
RSS_LIMIT_MB = 300

# Runs the command as its child and writes the child's peak RSS (KiB on Linux) to argv[1].
_MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def make_site(root: Path, count: int) -> Path:
    for i in range(count):
        folder = root / f"section-{i // PER_FOLDER:03d}"
        if i % PER_FOLDER == 0:
            folder.mkdir(parents=True)
        (folder / f"page-{i:06d}.html").write_text(f"<p>page {i}</p>\n")
    return root


def measured_run(s3_server: Any, env: Dict[str, str], cwd: Path, rss_file: Path,
                 timeout: float) -> Tuple["subprocess.CompletedProcess[str]", float, float]:
    """(process, wall seconds, peak RSS in MB) of one run of the command."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(rss_file)] + _command(), cwd=str(cwd),
                          env=command_env(s3_server, os.environ["HOME"], env), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    seconds = time.monotonic() - started
    peak_mb = int(rss_file.read_text()) / 1024
    tail = "\n".join(proc.stdout.splitlines()[-3:])
    print(f"--- exit {proc.returncode}, {seconds:.1f} s, peak RSS {peak_mb:.0f} MB; stdout ends:\n{tail}\n"
          f"--- stderr ---\n{proc.stderr}--- end ---")
    return proc, seconds, peak_mb


def test_many_small_files_sync_then_no_change_rerun_within_memory_bound(s3_server, s3, bucket, tmp_path):
    count = FILES
    src = make_site(tmp_path / "site", count)
    env = plugin_env(bucket, source=src, quiet=True)
    timeout = 600 + count * 0.05

    first, first_s, first_mb = measured_run(s3_server, env, src, tmp_path / "rss1", timeout)
    ok(first)
    assert summary_counts(first.stdout)["uploaded"] == count
    ops = s3_server.ops(bucket)
    assert ops["PutObject"] == count + 1  # every file, then the state object
    assert ops["ListObjectsV2"] == 1
    assert ops["HeadObject"] == 1  # the one object read back to see that the server kept its headers
    assert not {"CreateMultipartUpload", "GetObjectAcl", "CopyObject", "DeleteObjects"} & set(ops)

    s3_server.reset()
    again, again_s, again_mb = measured_run(s3_server, env, src, tmp_path / "rss2", timeout)
    ok(again)
    assert summary_counts(again.stdout) == {"uploaded": 0, "updated": 0, "redirects": 0, "deleted": 0,
                                            "unchanged": count}
    # One listing of count + 1 objects (the state object too), 1,000 a page,
    # and one GET of the state object; nothing written.
    assert s3_server.ops(bucket) == {"ListObjectsV2": math.ceil((count + 1) / 1000), "GetObject": 1}
    assert [r.key for r in s3_server.requests if r.op == "GetObject"] == [state_key()]

    report = {"files": count, "first_run_s": round(first_s, 1), "first_run_peak_rss_mb": round(first_mb),
              "no_change_run_s": round(again_s, 1), "no_change_run_peak_rss_mb": round(again_mb)}
    print("load: " + json.dumps(report))
    if os.environ.get("LOAD_REPORT"):
        Path(os.environ["LOAD_REPORT"]).write_text(json.dumps(report) + "\n")
    assert first_mb < RSS_LIMIT_MB
    assert again_mb < RSS_LIMIT_MB
