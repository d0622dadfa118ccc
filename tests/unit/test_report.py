"""report.py, pure: colors (only on a terminal, never with NO_COLOR or
TERM=dumb), the periodic progress line, and the JSON report's document."""

from __future__ import annotations

import io
import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Dict, List

import pytest

from drone_s3_sync import config, jsonreport, parsers, report, sources
from drone_s3_sync.config import Settings
from drone_s3_sync.errors import ConfigError
from drone_s3_sync.model import Action, Kind, ObjectHeaders, Outcome, Plan, Reason, Summary
from drone_s3_sync.redact import MASK, Redactor
from drone_s3_sync.report import Reporter, color_wanted, report_document

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FakeTTY(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return True


def upload(key: str, size: int = 10, reason: Reason = Reason.NEW) -> Action:
    return Action(Kind.UPLOAD, key, reason, size=size)


HEADERS = ObjectHeaders(content_type="text/html", redirect="/new/")


# ---------------------------------------------------------------- colors


@pytest.mark.parametrize("environ, tty, expected", [
    ({}, True, True),
    ({}, False, False),
    ({"NO_COLOR": "1"}, True, False),
    ({"NO_COLOR": "0"}, True, False),  # any non-empty value, as no-color.org says
    ({"NO_COLOR": ""}, True, True),  # an empty one does not count
    ({"TERM": "dumb"}, True, False),
    ({"TERM": "xterm-256color"}, True, True),
    ({"FORCE_COLOR": "1"}, False, True),
    ({"FORCE_COLOR": "0"}, True, False),
    ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False, False),
    ({"FORCE_COLOR": "1", "TERM": "dumb"}, False, True),
], ids=lambda v: repr(v))
def test_color_wanted(environ: Dict[str, str], tty: bool, expected: bool) -> None:
    stream = FakeTTY() if tty else io.StringIO()
    assert color_wanted(stream, environ) is expected


def test_color_wanted_on_a_stream_without_isatty_or_closed() -> None:
    closed = FakeTTY()
    closed.close()
    assert color_wanted(closed, {}) is False
    assert color_wanted(object(), {}) is False


def colored_run(out: io.StringIO, err: io.StringIO, environ: Dict[str, str]) -> None:
    reporter = Reporter(out, err, progress=False, environ=environ)
    reporter.done(Outcome(upload("a.css"), ok=True))
    reporter.done(Outcome(Action(Kind.UPDATE, "b.html", Reason.HEADERS, detail="cache_control"), ok=True))
    reporter.done(Outcome(Action(Kind.REDIRECT, "old", Reason.NEW, headers=HEADERS), ok=True))
    reporter.done(Outcome(Action(Kind.DELETE, "gone.txt", Reason.ORPHAN), ok=True))
    reporter.done(Outcome(upload("c.js"), ok=False, error="AccessDenied: no"))
    reporter.warn("something odd")


def test_action_verbs_failures_and_warnings_are_colored_on_a_terminal() -> None:
    out, err = FakeTTY(), FakeTTY()
    colored_run(out, err, {"TERM": "xterm"})
    lines = out.getvalue().splitlines()
    assert lines[0] == "\x1b[32mupload\x1b[0m   a.css  (new, 10 B)"
    assert lines[1] == "\x1b[36mupdate\x1b[0m   b.html  (headers changed: cache_control)"
    assert lines[2] == "\x1b[36mredirect\x1b[0m old -> /new/  (new)"
    assert lines[3] == "\x1b[33mdelete\x1b[0m   gone.txt  (not in source)"
    assert lines[4] == "\x1b[1;31mFAILED\x1b[0m upload   c.js  (new, 10 B): AccessDenied: no"
    assert err.getvalue() == "\x1b[33mwarning:\x1b[0m something odd\n"
    # Without the codes, the lines are exactly the plain ones (alignment kept).
    plain_out, plain_err = io.StringIO(), io.StringIO()
    colored_run(plain_out, plain_err, {})
    assert ANSI.sub("", out.getvalue()) == plain_out.getvalue()
    assert ANSI.sub("", err.getvalue()) == plain_err.getvalue()


@pytest.mark.parametrize("environ, tty", [({}, False), ({"NO_COLOR": "1"}, True), ({"TERM": "dumb"}, True)],
                         ids=["not-a-terminal", "NO_COLOR", "TERM=dumb"])
def test_no_colors_off_a_terminal_or_when_turned_off(environ: Dict[str, str], tty: bool) -> None:
    out, err = (FakeTTY(), FakeTTY()) if tty else (io.StringIO(), io.StringIO())
    colored_run(out, err, environ)
    assert "\x1b" not in out.getvalue() + err.getvalue()
    assert "upload   a.css  (new, 10 B)" in out.getvalue()


def test_colors_are_decided_per_stream() -> None:
    out, err = io.StringIO(), FakeTTY()  # stdout piped to a file, stderr on the terminal
    colored_run(out, err, {})
    assert "\x1b" not in out.getvalue()
    assert err.getvalue().startswith("\x1b[33mwarning:")


def test_summary_colors_failures_and_errors_only() -> None:
    out = FakeTTY()
    reporter = Reporter(out, io.StringIO(), progress=False, environ={})
    failed = Outcome(upload("c.js"), ok=False, error="boom")
    reporter.summary(Summary(plan=Plan([failed.action]), outcomes=[failed], errors=["x: bad"],
                             delete_blocked_reason="1 delete(s) not done"))
    text = out.getvalue()
    assert "\x1b[33mDeletes skipped:\x1b[0m 1 delete(s) not done" in text
    assert ("Done: 0 uploaded, 0 updated, 0 redirects, 0 deleted, 0 unchanged, \x1b[1;31m1 failed\x1b[0m, "
            "\x1b[31m1 error\x1b[0m;") in text
    assert "  \x1b[31mfailed:\x1b[0m c.js: boom" in text
    assert "  \x1b[31merror:\x1b[0m x: bad" in text


def test_dry_run_plan_lines_color_the_verb() -> None:
    out = FakeTTY()
    Reporter(out, io.StringIO(), progress=False, environ={}).plan([upload("a"), Action(Kind.SKIP, "b", Reason.UNCHANGED)])
    assert out.getvalue() == "would \x1b[32mupload\x1b[0m   a  (new, 10 B)\n"


# ---------------------------------------------------------------- progress line


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(report.time, "monotonic", fake)
    return fake


def progress_lines(err: io.StringIO) -> List[str]:
    return [line for line in err.getvalue().splitlines() if line.startswith("progress:")]


def test_progress_line_at_most_once_per_interval(clock: Clock) -> None:
    err = io.StringIO()
    reporter = Reporter(io.StringIO(), err, progress=False, progress_interval=30)
    reporter.begin_transfer(total_bytes=80 * (1 << 20), total_actions=5000)
    for _ in range(100):  # a short transfer: nothing
        clock.now += 0.1
        reporter.advance(1000)
    assert progress_lines(err) == []
    for _ in range(1203):
        reporter.done(Outcome(upload("a"), ok=True))
    reporter.advance(12 * (1 << 20) + 100_000 - 100 * 1000)
    assert progress_lines(err) == []
    clock.now += 21  # 31 s in: the next event prints
    reporter.done(Outcome(upload("a"), ok=True))
    assert progress_lines(err) == ["progress: 1,204/5,000 objects, 12.1/80.0 MiB (15%), 31 s"]
    for _ in range(50):  # many events within the next interval: still one line
        clock.now += 0.5
        reporter.advance(1)
    assert len(progress_lines(err)) == 1
    clock.now += 5.1  # 30 s after the first line
    reporter.advance(1)
    assert len(progress_lines(err)) == 2
    reporter.end_transfer()
    clock.now += 100
    reporter.advance(1)  # after the transfer: nothing
    reporter.done(Outcome(Action(Kind.DELETE, "x", Reason.ORPHAN), ok=True))
    assert len(progress_lines(err)) == 2


def test_progress_line_without_bytes_counts_objects(clock: Clock) -> None:
    err = io.StringIO()
    reporter = Reporter(io.StringIO(), err, progress=False, progress_interval=1)
    reporter.begin_transfer(total_bytes=0, total_actions=4)  # header updates only
    clock.now += 2
    reporter.done(Outcome(Action(Kind.UPDATE, "b", Reason.HEADERS), ok=True))
    assert progress_lines(err) == ["progress: 1/4 objects (25%), 2 s"]


@pytest.mark.parametrize("kwargs", [{"progress_interval": 0}, {"progress_interval": 1, "quiet": True},
                                    {"progress_interval": 1, "progress": True}],
                         ids=["interval-0", "quiet", "progress-bar"])
def test_no_progress_line(clock: Clock, kwargs: Dict[str, Any]) -> None:
    err = io.StringIO()
    reporter = Reporter(io.StringIO(), err, **{"progress": False, **kwargs})
    reporter.begin_transfer(total_bytes=100, total_actions=2)
    for _ in range(10):
        clock.now += 5
        reporter.advance(10)
    reporter.end_transfer()
    assert progress_lines(err) == []


# ---------------------------------------------------------------- the document


def document_for(summary: Summary, exit_code: int = 0, settings: Settings = Settings(bucket="b"), **kwargs: Any
                 ) -> Dict[str, Any]:
    doc = report_document(settings, summary, exit_code=exit_code, finished=1_700_000_010.5, **kwargs)
    return json.loads(jsonreport.dumps(doc))  # what a reader gets


def test_document_of_a_run_with_a_failure() -> None:
    new, changed = upload("a.html", 100), upload("b.css", 7, Reason.CONTENT)
    update = Action(Kind.UPDATE, "c.html", Reason.HEADERS, size=55, detail="cache_control, acl")
    redirect = Action(Kind.REDIRECT, "old.html", Reason.NEW, headers=HEADERS)
    delete = Action(Kind.DELETE, "gone.txt", Reason.ORPHAN, size=4)
    skip = Action(Kind.SKIP, "same.txt", Reason.UNCHANGED, size=3)
    summary = Summary(plan=Plan([new, changed, update, redirect, delete, skip]),
                      outcomes=[Outcome(changed, ok=False, error="InternalError: boom", seconds=0.25),
                                Outcome(new, ok=True, seconds=0.5), Outcome(update, ok=True),
                                Outcome(redirect, ok=True)],
                      errors=["x.txt: cannot read x.txt: Permission denied"],
                      delete_blocked_reason="1 delete(s) not done because 2 operation(s) failed",
                      started=1_700_000_000.25, seconds=10.125, timings={"scan": 0.5, "list": 0.25, "transfer": 9.0})
    doc = document_for(summary, 1, warnings=["w"])
    assert doc["format"] == 1 and doc["tool"] == "drone-s3-sync" and doc["version"]
    assert (doc["status"], doc["exit_code"], doc["dry_run"]) == ("failed", 1, False)
    assert (doc["bucket"], doc["target"], doc["region"], doc["endpoint"]) == ("b", "", "us-east-1", None)
    assert doc["started"] == "2023-11-14T22:13:20.250Z" and doc["finished"] == "2023-11-14T22:13:30.500Z"
    assert doc["seconds"] == 10.125
    assert doc["actions"] == [
        {"kind": "upload", "key": "a.html", "reason": "new", "detail": "", "redirect": None, "bytes": 100,
         "result": "done", "ok": True, "error": None, "seconds": 0.5},
        {"kind": "upload", "key": "b.css", "reason": "content_changed", "detail": "", "redirect": None, "bytes": 7,
         "result": "failed", "ok": False, "error": "InternalError: boom", "seconds": 0.25},
        {"kind": "update", "key": "c.html", "reason": "headers_changed", "detail": "cache_control, acl",
         "redirect": None, "bytes": 0, "result": "done", "ok": True, "error": None, "seconds": 0.0},
        {"kind": "redirect", "key": "old.html", "reason": "new", "detail": "", "redirect": "/new/", "bytes": 0,
         "result": "done", "ok": True, "error": None, "seconds": 0.0},
        {"kind": "delete", "key": "gone.txt", "reason": "not_in_source", "detail": "", "redirect": None,
         "bytes": 0, "result": "not_done", "ok": None, "error": None, "seconds": None},
    ]
    assert doc["totals"] == {"upload": 1, "update": 1, "redirect": 1, "delete": 0, "skip": 1, "failed": 1,
                             "not_done": 1, "bytes": 100}
    assert doc["failures"] == [{"kind": "upload", "key": "b.css", "error": "InternalError: boom"}]
    assert doc["errors"] == ["x.txt: cannot read x.txt: Permission denied"]
    assert doc["warnings"] == ["w"]
    assert doc["delete_blocked"].startswith("1 delete(s) not done")
    assert doc["refused"] is None and doc["interrupted"] is None and doc["invalidation"] is None
    assert doc["timings"] == {"scan": 0.5, "list": 0.25, "hash": None, "plan": None, "lock": None, "transfer": 9.0,
                              "delete": None, "state": None, "invalidate": None}


def test_document_of_a_dry_run_is_the_plan() -> None:
    plan = Plan([upload("a", 5), Action(Kind.DELETE, "z", Reason.ORPHAN), Action(Kind.SKIP, "s", Reason.UNCHANGED)])
    settings = Settings(bucket="b", target="site/", dry_run=True, cloudfront_distribution=("E1",))
    doc = document_for(Summary(plan=plan, dry_run=True, invalidation_paths=["/site/a", "/site/z"]), 0, settings)
    assert doc["dry_run"] is True and doc["status"] == "ok" and doc["target"] == "site/"
    assert [(a["key"], a["result"], a["ok"]) for a in doc["actions"]] == [("a", "planned", None), ("z", "planned", None)]
    assert doc["totals"] == {"upload": 1, "update": 0, "redirect": 0, "delete": 1, "skip": 1, "failed": 0,
                             "not_done": 0, "bytes": 5}
    assert doc["invalidation"] == {"distributions": ["E1"], "paths": ["/site/a", "/site/z"], "ids": []}


@pytest.mark.parametrize("code, status", [(0, "ok"), (1, "failed"), (3, "refused"), (130, "interrupted"),
                                          (143, "interrupted")])
def test_status_follows_the_exit_code(code: int, status: str) -> None:
    assert document_for(Summary(plan=Plan()), code)["status"] == status


def test_refused_interrupted_and_fatal_errors_are_in_the_document() -> None:
    plan = Plan([Action(Kind.DELETE, "z", Reason.ORPHAN)])
    doc = document_for(Summary(plan=plan), 3, refused="this run would delete 1 object")
    assert doc["refused"] == "this run would delete 1 object" and doc["actions"][0]["result"] == "not_done"
    assert document_for(Summary(plan=Plan()), 143, interrupted="SIGTERM")["interrupted"] == "SIGTERM"
    doc = document_for(Summary(plan=Plan(), errors=["first"]), 1, error='cannot list bucket "b": denied')
    assert doc["errors"] == ["first", 'cannot list bucket "b": denied'] and doc["actions"] == []


def test_reason_codes_are_stable() -> None:
    assert {reason: jsonreport.reason_code(reason) for reason in Reason} == {
        Reason.NEW: "new", Reason.CONTENT: "content_changed", Reason.SIZE: "size_changed",
        Reason.HEADERS: "headers_changed", Reason.ACL: "acl_changed", Reason.REDIRECT_CHANGED: "redirect_changed",
        Reason.ORPHAN: "not_in_source", Reason.UNCHANGED: "unchanged", Reason.GRACE: "kept_for_delete_grace",
        Reason.PART_SIZE: "part_size_unknown"}


def test_endpoint_never_carries_credentials() -> None:
    settings = Settings(bucket="b", endpoint="https://minio:s3cr3t-pass@s3.example.com:9000")
    assert document_for(Summary(plan=Plan()), settings=settings)["endpoint"] == "https://s3.example.com:9000"
    out = io.StringIO()
    Reporter(out, io.StringIO(), progress=False).start("b", "", settings.endpoint)
    assert "s3cr3t" not in out.getvalue() and "https://s3.example.com:9000" in out.getvalue()


def test_the_document_is_ascii_json_even_for_odd_names() -> None:
    summary = Summary(plan=Plan([upload("caf\u00e9/\u65e5\u672c.html"), upload("bad-\udcff.txt")]), dry_run=True)
    text = jsonreport.dumps(report_document(Settings(bucket="b"), summary, exit_code=0, finished=0.0))
    text.encode("ascii")
    assert json.loads(text)["actions"][0]["key"] == "caf\u00e9/\u65e5\u672c.html"
    assert text.endswith("}\n") and text.count("\n}\n") == 1  # one document


# ---------------------------------------------------------------- finish: file and stdout


SECRET = "sEcReT/Value+9876qwerty"


def test_finish_writes_the_same_redacted_document_to_the_file_and_the_stream(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    document = io.StringIO()
    reporter = Reporter(io.StringIO(), io.StringIO(), progress=False, redact=Redactor([SECRET]), document=document)
    reporter.warn(f"warned about {SECRET}")
    failed = Outcome(upload(f"key-{SECRET}"), ok=False, error=f"AccessDenied: {SECRET}")
    summary = Summary(plan=Plan([failed.action]), outcomes=[failed], errors=[f"e {SECRET}"])
    reporter.finish(Settings(bucket="b", report=str(path)), summary, 1, error=f"fatal {SECRET}")
    text = path.read_text(encoding="ascii")
    assert text == document.getvalue()
    doc = json.loads(text)
    # An object key is never rewritten (it is in the bucket as it is); every other text is masked.
    assert doc["failures"] == [{"kind": "upload", "key": f"key-{SECRET}", "error": f"AccessDenied: {MASK}"}]
    assert [a["key"] for a in doc["actions"]] == [f"key-{SECRET}"]
    assert text.count(SECRET) == 2
    assert doc["errors"] == [f"e {MASK}", f"fatal {MASK}"] and doc["warnings"] == [f"warned about {MASK}"]
    assert sorted(os.listdir(tmp_path)) == ["report.json"]  # no temporary file left


def test_nothing_without_report_or_document(tmp_path: Path) -> None:
    reporter = Reporter(io.StringIO(), io.StringIO(), progress=False)
    reporter.finish(Settings(bucket="b"), Summary(plan=Plan()), 0)
    assert os.listdir(tmp_path) == []


def test_report_replaces_the_old_file_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("old", encoding="utf-8")
    os.chmod(path, 0o640)
    report.write_atomically(str(path), '{"new": 1}\n')
    assert path.read_text() == '{"new": 1}\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.listdir(tmp_path) == ["r.json"]


def test_a_new_report_gets_the_umask_mode_not_0600(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        report.write_atomically(str(tmp_path / "r.json"), "{}\n")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "r.json").st_mode) == 0o644


def test_a_report_that_cannot_be_written_fails_the_run(tmp_path: Path) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    settings = Settings(bucket="b", report=str(folder / "report.json"))
    folder.rmdir()  # removed after the settings were checked
    err, document = io.StringIO(), io.StringIO()
    summary = Summary(plan=Plan())
    Reporter(io.StringIO(), err, progress=False, document=document).finish(settings, summary, summary.exit_code)
    assert summary.exit_code == 1
    assert f"drone-s3-sync: error: cannot write the report {folder / 'report.json'}: No such file or directory" \
        in err.getvalue()
    doc = json.loads(document.getvalue())  # stdout still gets the document, saying so
    assert doc["exit_code"] == 1 and doc["status"] == "failed"
    assert doc["errors"] == [f"cannot write the report {folder / 'report.json'}: No such file or directory"]


# ---------------------------------------------------------------- the settings


def test_report_path_checks(tmp_path: Path) -> None:
    assert parsers.parse_report_path("PLUGIN_REPORT", str(tmp_path / "r.json")) == str(tmp_path / "r.json")
    assert parsers.parse_report_path("PLUGIN_REPORT", "") == ""
    with pytest.raises(ConfigError, match=r"PLUGIN_REPORT: the folder of .* does not exist; create it first"):
        parsers.parse_report_path("PLUGIN_REPORT", str(tmp_path / "no" / "r.json"))
    with pytest.raises(ConfigError, match="is a folder; give a file name such as report.json"):
        parsers.parse_report_path("PLUGIN_REPORT", str(tmp_path))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        parsers.parse_report_path("PLUGIN_REPORT", str(tmp_path / "file" / "r.json"))


def test_report_path_in_a_config_file_is_relative_to_the_file(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "deploy.yml").write_text("bucket: my-bucket\nreport: out.json\njson: true\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    settings = sources.from_sources(["--config", "deploy/deploy.yml"], {})
    assert settings.report == str(tmp_path / "deploy" / "out.json") and settings.json is True
    flagged = sources.from_sources(["--report", "here.json", "--progress-interval", "0.5"], {"PLUGIN_BUCKET": "my-bucket"})
    assert flagged.report == "here.json" and flagged.progress_interval == 0.5


@pytest.mark.parametrize("raw, value", [("0", 0.0), ("2.5", 2.5), (30, 30.0), ("3600", 3600.0)])
def test_progress_interval_values(raw: Any, value: float) -> None:
    assert parsers.parse_interval("PLUGIN_PROGRESS_INTERVAL", raw) == value


@pytest.mark.parametrize("raw", ["-1", "soon", "nan", "3601", True])
def test_progress_interval_refused(raw: Any) -> None:
    with pytest.raises(ConfigError, match="PLUGIN_PROGRESS_INTERVAL: .*use 0 to 3600"):
        parsers.parse_interval("PLUGIN_PROGRESS_INTERVAL", raw)


def test_output_defaults() -> None:
    settings = Settings()
    assert (settings.progress_interval, settings.report, settings.json) == (30.0, "", False)
