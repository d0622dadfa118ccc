"""End-to-end: the output people and machines read, from the real command
against the recording moto server.

* `--json` (PLUGIN_JSON): standard output is exactly one JSON document, the
  report; the action lines and the summary go to standard error.
* `report: FILE` (PLUGIN_REPORT): the same document in a file, written for
  every run whose settings are valid: success, failures (exit 1), a guard's
  refusal (exit 3), an interruption (143); never for invalid settings (exit 2).
* No secret in the report, even when an S3 error message quotes one.
* The periodic progress line on standard error when it is not a terminal.
* Colors only on a terminal, and not with NO_COLOR or TERM=dumb.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
from drone_run import ACTION_RE, action_map, ok, plugin_env, summary_counts

from conftest import _command, command_env, is_state_key

SITE = {"index.html": "<h1>home</h1>", "css/site.css": "body{}", "img/logo.png": b"\x89PNG" + b"x" * 60,
        "about/index.html": "<p>about</p>"}
PROGRESS_RE = re.compile(r"^progress: (\d[\d,]*)/(\d[\d,]*) objects, (\d[\d,]*\.\d)/(\d[\d,]*\.\d) MiB "
                         r"\((\d{1,3})%\), (\d+) s$")


def json_run(run_sync: Any, env: Dict[str, str], cwd: Any, code: int = 0, args: tuple = ("--json",)) -> Dict[str, Any]:
    """Runs the command with --json; stdout must be one JSON document and nothing else."""
    proc = run_sync(env, cwd=cwd, args=args)
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    document = json.loads(proc.stdout)  # raises on anything but exactly one document
    assert proc.stdout.startswith("{") and proc.stdout.endswith("}\n")
    assert document["exit_code"] == code
    document["_stderr"] = proc.stderr
    document["_stdout"] = proc.stdout
    return document


def by_key(document: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {a["key"]: a for a in document["actions"]}


def assert_schema(document: Dict[str, Any]) -> None:
    assert document["format"] == 1 and document["tool"] == "drone-s3-sync"
    expected = {"format", "tool", "version", "status", "exit_code", "dry_run", "bucket", "target", "region",
                "endpoint", "started", "finished", "seconds", "actions", "totals", "failures", "errors", "warnings",
                "delete_blocked", "refused", "interrupted", "invalidation", "timings"}
    assert expected <= set(document), expected - set(document)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", document["started"])
    assert document["started"] <= document["finished"]
    assert set(document["timings"]) == {"scan", "list", "hash", "plan", "lock", "transfer", "delete", "state", "invalidate"}
    for action in document["actions"]:
        assert set(action) == {"kind", "key", "reason", "detail", "redirect", "bytes", "result", "ok", "error",
                               "seconds"}
        assert action["kind"] in ("upload", "update", "redirect", "delete")


# ---------------------------------------------------------------- --json


def test_json_first_run_then_no_change_run(run_sync, s3_server, bucket, make_tree, distribution):
    src = make_tree(SITE)
    env = plugin_env(bucket, src, redirects={"old.html": "/about/"}, cloudfront_distribution=distribution)

    first = json_run(run_sync, env, src)
    assert_schema(first)
    assert (first["status"], first["dry_run"], first["bucket"], first["target"]) == ("ok", False, bucket, "")
    assert first["endpoint"] == s3_server.endpoint
    actions = by_key(first)
    assert set(actions) == set(SITE) | {"old.html"}
    for key, content in SITE.items():
        assert actions[key]["kind"] == "upload" and actions[key]["reason"] == "new"
        assert actions[key]["bytes"] == len(content)
        assert (actions[key]["result"], actions[key]["ok"], actions[key]["error"]) == ("done", True, None)
        assert actions[key]["seconds"] >= 0
    assert actions["old.html"]["kind"] == "redirect" and actions["old.html"]["redirect"] == "/about/"
    assert first["totals"] == {"upload": 4, "update": 0, "redirect": 1, "delete": 0, "skip": 0, "failed": 0,
                               "not_done": 0, "bytes": sum(len(c) for c in SITE.values())}
    assert first["failures"] == [] and first["errors"] == [] and first["delete_blocked"] is None
    assert first["invalidation"]["distributions"] == [distribution]
    assert len(first["invalidation"]["ids"]) == 1 and "/index.html" in first["invalidation"]["paths"]
    timings = first["timings"]
    assert all(timings[stage] is not None and timings[stage] >= 0 for stage in timings)
    # What people read went to standard error.
    assert action_map(first["_stderr"])["index.html"] == ("upload", "new, 13 B")
    assert "Done: 4 uploaded, 0 updated, 1 redirect," in first["_stderr"]
    assert not any(ACTION_RE.match(line) for line in first["_stdout"].splitlines())

    s3_server.reset()
    second = json_run(run_sync, env, src)
    assert_schema(second)
    assert second["actions"] == [] and second["status"] == "ok"
    assert second["totals"] == {"upload": 0, "update": 0, "redirect": 0, "delete": 0, "skip": 5, "failed": 0,
                                "not_done": 0, "bytes": 0}
    assert second["invalidation"] == {"distributions": [distribution], "paths": [], "ids": []}
    assert s3_server.writes(bucket) == [] and s3_server.writes() == []  # the report costs no request


def test_json_dry_run_is_the_plan(run_sync, s3_server, bucket, make_tree, s3):
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="stale.txt", Body=b"old")
        s3.put_object(Bucket=bucket, Key="index.html", Body=b"other content")
    s3_server.reset()
    src = make_tree(SITE)
    document = json_run(run_sync, plugin_env(bucket, src, delete=True, dry_run=True), src)
    assert_schema(document)
    assert document["dry_run"] is True and document["status"] == "ok"
    actions = by_key(document)
    assert {k: (a["kind"], a["reason"], a["result"], a["ok"]) for k, a in actions.items()} == {
        "index.html": ("upload", "content_changed", "planned", None),
        "css/site.css": ("upload", "new", "planned", None),
        "img/logo.png": ("upload", "new", "planned", None),
        "about/index.html": ("upload", "new", "planned", None),
        "stale.txt": ("delete", "not_in_source", "planned", None),
    }
    assert document["totals"]["upload"] == 4 and document["totals"]["delete"] == 1
    assert document["timings"]["transfer"] is None and document["timings"]["hash"] is not None
    assert "would upload   css/site.css  (new, 6 B)" in document["_stderr"]
    assert s3_server.writes(bucket) == []


def test_json_run_with_a_persistent_fault_lists_the_failures(run_sync, s3_server, bucket, make_tree, s3):
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="stale.txt", Body=b"old")
    s3_server.reset()
    src = make_tree(SITE)
    fault = s3_server.inject("PutObject", key="css/site.css", status=403, code="AccessDenied", times=None,
                             message="no writes here")
    document = json_run(run_sync, plugin_env(bucket, src, delete=True), src, code=1)
    assert fault.hits >= 1
    assert_schema(document)
    assert document["status"] == "failed"
    assert document["failures"] == [{"kind": "upload", "key": "css/site.css",
                                     "error": "AccessDenied: no writes here"}]
    actions = by_key(document)
    assert (actions["css/site.css"]["result"], actions["css/site.css"]["ok"]) == ("failed", False)
    assert actions["index.html"]["result"] == "done"
    # The delete was held back, and the report says so.
    assert (actions["stale.txt"]["result"], actions["stale.txt"]["ok"]) == ("not_done", None)
    assert document["delete_blocked"] == "1 delete(s) not done because 1 operation(s) failed"
    assert document["totals"] == {"upload": 3, "update": 0, "redirect": 0, "delete": 0, "skip": 0, "failed": 1,
                                  "not_done": 1, "bytes": sum(len(c) for k, c in SITE.items() if k != "css/site.css")}
    assert "FAILED upload   css/site.css" in document["_stderr"]


def test_json_when_the_bucket_cannot_be_listed(run_sync, s3_server, bucket, make_tree):
    src = make_tree(SITE)
    s3_server.inject("ListObjectsV2", status=403, code="AccessDenied", times=None, message="denied")
    document = json_run(run_sync, plugin_env(bucket, src), src, code=1)
    assert document["status"] == "failed" and document["actions"] == []
    assert document["errors"] == [f'cannot list bucket "{bucket}": access denied (the credentials need '
                                  's3:ListBucket on it)']


def test_json_with_invalid_settings_prints_nothing_on_stdout(run_sync, s3_server, bucket, make_tree):
    src = make_tree(SITE)
    proc = run_sync(plugin_env(bucket, src, max_concurrency="lots", report=str(src / "r.json")), cwd=src,
                    args=("--json",))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "drone-s3-sync: invalid setting PLUGIN_MAX_CONCURRENCY" in proc.stderr
    assert not (src / "r.json").exists()
    assert s3_server.requests == []


# ---------------------------------------------------------------- report: FILE


def test_report_file_is_the_json_document(run_sync, s3_server, bucket, make_tree, tmp_path):
    src = make_tree(SITE)
    path = tmp_path / "out" / "report.json"
    path.parent.mkdir()
    env = plugin_env(bucket, src, report=str(path))

    proc = run_sync(env, cwd=src, args=("--json",))
    assert proc.returncode == 0, proc.stderr
    assert path.read_text(encoding="utf-8") == proc.stdout  # the same document, byte for byte
    assert sorted(os.listdir(path.parent)) == ["report.json"]  # no temporary file left

    # Without --json: the action lines on stdout as usual, the report in the file.
    (src / "index.html").write_text("<h1>HOME</h1>", encoding="utf-8")  # same size
    proc = ok(run_sync(env, cwd=src))
    assert action_map(proc.stdout) == {"index.html": ("upload", "content changed, 13 B")}
    assert summary_counts(proc.stdout)["uploaded"] == 1
    document = json.loads(path.read_text(encoding="utf-8"))
    assert_schema(document)
    assert [(a["key"], a["reason"], a["result"]) for a in document["actions"]] == [
        ("index.html", "content_changed", "done")]
    assert document["totals"]["skip"] == 3


def test_report_path_in_a_config_file_is_relative_to_the_file(run_sync, s3_server, bucket, make_tree, tmp_path):
    src = make_tree(SITE)
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "deploy.yml").write_text(f"bucket: {bucket}\nsource: {src}\nreport: reports/run.json\n",
                                       encoding="utf-8")
    (deploy / "reports").mkdir()
    ok(run_sync({"PLUGIN_SOURCE": None}, cwd=tmp_path, args=("--config", "deploy/deploy.yml")))
    assert json.loads((deploy / "reports" / "run.json").read_text())["totals"]["upload"] == 4


def test_report_on_a_guard_refusal(run_sync, s3_server, bucket, make_tree, s3, tmp_path):
    with s3_server.paused():
        for i in range(5):
            s3.put_object(Bucket=bucket, Key=f"old-{i}.txt", Body=b"x")
    s3_server.reset()
    src = make_tree({"index.html": "home"})
    path = tmp_path / "report.json"
    proc = run_sync(plugin_env(bucket, src, delete=True, max_delete=2, report=str(path)), cwd=src)
    assert proc.returncode == 3, proc.stderr
    assert s3_server.writes(bucket) == []
    document = json.loads(path.read_text())
    assert_schema(document)
    assert document["status"] == "refused" and document["exit_code"] == 3
    assert "this run would delete 5 objects" in document["refused"]
    results = {a["key"]: (a["kind"], a["result"]) for a in document["actions"]}
    assert results == {"index.html": ("upload", "not_done"),
                       **{f"old-{i}.txt": ("delete", "not_done") for i in range(5)}}
    assert document["timings"]["transfer"] is None


def test_report_on_an_interruption(s3_server, bucket, make_tree, s3, tmp_path):
    src = make_tree({f"page-{i:02d}.html": f"<p>{i}</p>" for i in range(30)})
    path = tmp_path / "report.json"
    env = plugin_env(bucket, src, report=str(path), max_concurrency=1)
    s3_server.inject("PutObject", delay=0.3, answer=False, times=None)
    proc = subprocess.Popen(_command(), cwd=str(src), env=command_env(s3_server, os.environ["HOME"], env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(r.op == "PutObject" and r.status == 200 for r in s3_server.requests):
        assert proc.poll() is None and time.monotonic() < deadline, "no upload reached the server"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    s3_server.clear_faults()
    print(out, err)
    assert proc.returncode == 143, err
    document = json.loads(path.read_text())
    assert_schema(document)
    assert (document["status"], document["exit_code"], document["interrupted"]) == ("interrupted", 143, "SIGTERM")
    results = [a["result"] for a in document["actions"]]
    assert len(results) == 30 and set(results) <= {"done", "not_done"}
    with s3_server.paused():
        written = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if not is_state_key(o["Key"])}
    assert {a["key"] for a in document["actions"] if a["result"] == "done"} == written
    assert 1 <= len(written) < 30


SECRET = "sEcReT/Distinct+Value9876qwerty"
ACCESS = "AKIDDISTINCT7Q2XWZ"


def test_no_secret_in_the_report(run_sync, s3_server, bucket, make_tree, tmp_path):
    src = make_tree(SITE)
    path = tmp_path / "report.json"
    env = plugin_env(bucket, src, report=str(path), endpoint=s3_server.endpoint.replace("://", "://user:pw-417x@"))
    env.update({"PLUGIN_ACCESS_KEY": ACCESS, "PLUGIN_SECRET_KEY": SECRET, "DEBUG": "1"})
    s3_server.inject("PutObject", key="index.html", status=403, code="AccessDenied", times=None,
                     message=f"Access key {ACCESS} may not write here (secret {SECRET})")
    proc = run_sync(env, cwd=src, args=("--json",))
    assert proc.returncode == 1, proc.stderr
    text = path.read_text()
    assert text == proc.stdout
    for secret in (SECRET, "pw-417x"):
        for part in (secret, secret[:8], secret[-8:]):
            assert part not in text
            assert part not in proc.stderr  # the debug log included
    document = json.loads(text)
    # The access key id is not a secret: shown as it is.
    assert document["failures"] == [{"kind": "upload", "key": "index.html",
                                     "error": f"AccessDenied: Access key {ACCESS} may not write here (secret ****)"}]
    assert document["endpoint"] == s3_server.endpoint


# ---------------------------------------------------------------- periodic progress line


def slow_site(make_tree: Any) -> Path:
    return make_tree({f"page-{i:02d}.html": os.urandom(2000) for i in range(10)})


def test_progress_lines_in_a_ci_log(run_sync, s3_server, bucket, make_tree):
    src = slow_site(make_tree)
    s3_server.inject("PutObject", delay=0.3, answer=False, times=None)  # about 3 s with one connection
    started = time.monotonic()
    proc = ok(run_sync(plugin_env(bucket, src, max_concurrency=1, progress_interval=0.5), cwd=src,
                       args=("--json",)))
    seconds = time.monotonic() - started
    json.loads(proc.stdout)  # the progress lines are not on stdout
    lines = [line for line in proc.stderr.splitlines() if line.startswith("progress:")]
    assert len(lines) >= 2, proc.stderr
    assert len(lines) <= seconds / 0.5 + 1  # never more than one per interval
    parsed = [PROGRESS_RE.match(line) for line in lines]
    assert all(parsed), lines
    done = [int(m.group(1)) for m in parsed]
    assert done == sorted(done) and all(int(m.group(2)) == 10 for m in parsed)
    assert all(m.group(4) == "0.0" for m in parsed)  # 20,000 bytes: 0.0 of 0.0 MiB
    percents = [int(m.group(5)) for m in parsed]
    assert percents == sorted(percents) and all(0 <= p <= 100 for p in percents)


@pytest.mark.parametrize("settings", [{"progress_interval": 0}, {"progress_interval": 0.2, "quiet": True}, {}],
                         ids=["interval-0", "quiet", "default-30s"])
def test_no_progress_lines(run_sync, s3_server, bucket, make_tree, settings):
    src = slow_site(make_tree)
    s3_server.inject("PutObject", delay=0.3, answer=False, times=None)
    proc = ok(run_sync(plugin_env(bucket, src, max_concurrency=1, **settings), cwd=src))
    assert "progress" not in proc.stderr
    assert s3_server.ops(bucket)["PutObject"] >= 10


# ---------------------------------------------------------------- colors on a terminal


@pytest.mark.parametrize("extra, colored", [({"TERM": "xterm"}, True), ({"TERM": "xterm", "NO_COLOR": "1"}, False),
                                            ({"TERM": "dumb"}, False)], ids=["terminal", "NO_COLOR", "TERM=dumb"])
def test_colors_only_on_a_terminal(s3_server, bucket, make_tree, extra, colored):
    pty = pytest.importorskip("pty")
    src = make_tree({"a.txt": "a"})
    primary, secondary = pty.openpty()
    try:
        env = command_env(s3_server, os.environ["HOME"], {**plugin_env(bucket, src), **extra})
        proc = subprocess.run(_command(), cwd=str(src), env=env, stdin=subprocess.DEVNULL, stdout=secondary,
                              stderr=subprocess.PIPE, timeout=120)
        os.close(secondary)
        chunks: List[bytes] = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
    out = b"".join(chunks).decode()
    assert proc.returncode == 0, out
    assert ("\x1b[32mupload\x1b[0m   a.txt  (new, 1 B)" in out) is colored, out
    assert "upload" in out
    if not colored:
        assert "\x1b" not in out


def test_no_colors_in_a_ci_log(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"a.txt": "a"})
    s3_server.inject("PutObject", key="a.txt", status=403, code="AccessDenied", times=None)
    proc = run_sync({**plugin_env(bucket, src), "TERM": "xterm-256color"}, cwd=src)
    assert proc.returncode == 1
    assert "\x1b" not in proc.stdout + proc.stderr
    assert "FAILED upload   a.txt" in proc.stdout


def test_a_real_run_prints_its_action_lines_in_the_order_of_its_dry_run(s3_server, bucket, make_tree, run_sync):
    files = {f"assets/{i:02d}.js": "x" * (i + 1) for i in range(10)}
    files.update({"index.html": "<p>i</p>", "about.html": "<p>a</p>"})
    src = make_tree(files)
    env = plugin_env(bucket, redirects='{"old.html": "/index.html"}', max_concurrency="4")
    dry = run_sync({**env, "PLUGIN_DRY_RUN": "true"}, cwd=src)
    assert dry.returncode == 0, dry.stderr
    planned = [line[len("would "):] for line in dry.stdout.splitlines() if line.startswith("would ")]
    s3_server.inject("PutObject", re.compile(r"^assets/00\.js$"), delay=1.0, answer=False)  # ends last
    real = run_sync(env, cwd=src)
    assert real.returncode == 0, real.stderr
    done = [line for line in real.stdout.splitlines() if line.split(" ", 1)[0] in ("upload", "redirect")]
    assert done == planned and len(done) == 13
    assert done[0].startswith("upload   assets/00.js") and done[-1].startswith("redirect old.html")
