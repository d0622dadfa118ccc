"""End-to-end: what a new user trips over, through the real command.

- Explicit settings (flags, PLUGIN_* variables, config-file keys, the region
  in a website host name) beat the fallback variables a shell or cron
  environment may hold (AWS_REGION, AWS_DEFAULT_REGION, S3_SYNC_ENDPOINT,
  S3_ENDPOINT, DRY_RUN); a value taken from one of those is named on the
  first line of the run.
- The access key id is not masked, nor a value too short to be a secret, and
  object keys are never rewritten.
- An unknown PLUGIN_* variable is a settings error, sent nowhere.
- Switches: --x / --no-x and --x=true / --x=false.
- Errors that say what to do: no credentials, an invalid bucket name, a bucket
  URL with a folder, the `SOURCE s3://BUCKET/PREFIX` habit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
from drone_run import action_map, assert_refused, keys_of, ok, plugin_env, summary_line

from conftest import is_state_key

DEAD_ENDPOINT = "http://127.0.0.1:9"  # nothing listens there: a run that used it would fail


def uploaded(s3_server: Any, bucket: str) -> list:
    """Keys written with PutObject, the state object left out."""
    return [key for key in keys_of(s3_server.writes(bucket), "PutObject") if not is_state_key(key)]


def report_of(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- precedence

# Each row: what the environment holds (a None value removes the variable),
# what is written explicitly (flags and a config file), and what the run must
# use. AWS_DEFAULT_REGION is removed from every row's environment unless the
# row sets it, so each row tests one thing.
PRECEDENCE = [
    # id, environment, flags, config file, region used, first line ("" = no fallback line), writes
    ("AWS_REGION-alone", {"AWS_REGION": "ap-south-1"}, [], None,
     "ap-south-1", "Using region ap-south-1 (from AWS_REGION)", True),
    ("AWS_DEFAULT_REGION-alone", {"AWS_DEFAULT_REGION": "ap-south-1"}, [], None,
     "ap-south-1", "Using region ap-south-1 (from AWS_DEFAULT_REGION)", True),
    ("AWS_REGION-over-AWS_DEFAULT_REGION", {"AWS_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "sa-east-1"}, [], None,
     "ap-south-1", "Using region ap-south-1 (from AWS_REGION)", True),
    ("config-region-beats-AWS_REGION", {"AWS_REGION": "ap-south-1"}, [], "region: eu-west-1\n",
     "eu-west-1", "", True),
    ("config-region-beats-AWS_DEFAULT_REGION", {"AWS_DEFAULT_REGION": "ap-south-1"}, [], "region: eu-west-1\n",
     "eu-west-1", "", True),
    ("PLUGIN_REGION-beats-AWS_REGION", {"AWS_REGION": "ap-south-1", "PLUGIN_REGION": "eu-west-1"}, [], None,
     "eu-west-1", "", True),
    ("flag-region-beats-AWS_DEFAULT_REGION", {"AWS_DEFAULT_REGION": "ap-south-1"}, ["--region", "eu-west-1"], None,
     "eu-west-1", "", True),
    ("website-host-beats-AWS_DEFAULT_REGION", {"AWS_DEFAULT_REGION": "ap-south-1", "PLUGIN_BUCKET": "{website}"}, [],
     None, "eu-west-1", "", True),
    ("website-host-beats-AWS_REGION", {"AWS_REGION": "ap-south-1", "PLUGIN_BUCKET": "{website}"}, [],
     None, "eu-west-1", "", True),
    ("S3_ENDPOINT-alone", {"PLUGIN_ENDPOINT": None, "S3_ENDPOINT": "{endpoint}"}, [], None,
     "us-east-1", "Using endpoint {endpoint} (from S3_ENDPOINT)", True),
    ("S3_SYNC_ENDPOINT-alone", {"PLUGIN_ENDPOINT": None, "S3_SYNC_ENDPOINT": "{endpoint}", "S3_ENDPOINT": DEAD_ENDPOINT},
     [], None, "us-east-1", "Using endpoint {endpoint} (from S3_SYNC_ENDPOINT)", True),
    ("config-endpoint-beats-S3_ENDPOINT", {"PLUGIN_ENDPOINT": None, "S3_ENDPOINT": DEAD_ENDPOINT}, [],
     "endpoint: {endpoint}\n", "us-east-1", "", True),
    ("config-endpoint-beats-S3_SYNC_ENDPOINT", {"PLUGIN_ENDPOINT": None, "S3_SYNC_ENDPOINT": DEAD_ENDPOINT}, [],
     "endpoint: {endpoint}\n", "us-east-1", "", True),
    ("PLUGIN_ENDPOINT-beats-both", {"S3_ENDPOINT": DEAD_ENDPOINT, "S3_SYNC_ENDPOINT": DEAD_ENDPOINT}, [], None,
     "us-east-1", "", True),
    ("flag-endpoint-beats-S3_ENDPOINT", {"PLUGIN_ENDPOINT": None, "S3_ENDPOINT": DEAD_ENDPOINT},
     ["--endpoint", "{endpoint}"], None, "us-east-1", "", True),
    ("DRY_RUN-alone", {"DRY_RUN": "1"}, [], None, "us-east-1", "Using dry_run true (from DRY_RUN)", False),
    ("config-dry_run-false-beats-DRY_RUN", {"DRY_RUN": "1"}, [], "dry_run: false\n", "us-east-1", "", True),
    ("PLUGIN_DRY_RUN-false-beats-DRY_RUN", {"DRY_RUN": "true", "PLUGIN_DRY_RUN": "false"}, [], None,
     "us-east-1", "", True),
    ("flag-dry-run-false-beats-DRY_RUN", {"DRY_RUN": "1"}, ["--dry-run=false"], None, "us-east-1", "", True),
]


@pytest.mark.parametrize("env, flags, config, region, first_line, writes",
                         [pytest.param(*row[1:], id=row[0]) for row in PRECEDENCE])
def test_explicit_settings_beat_fallback_variables(run_sync, s3_server, bucket, make_tree, tmp_path,
                                                   env, flags, config, region, first_line, writes):
    src = make_tree({"index.html": "<h1>home</h1>"})
    fill = {"{endpoint}": s3_server.endpoint, "{website}": f"{bucket}.s3-website-eu-west-1.amazonaws.com"}

    def filled(text: Optional[str]) -> Optional[str]:
        for placeholder, value in fill.items():
            text = text.replace(placeholder, value) if text is not None else None
        return text

    full_env = {**plugin_env(bucket, src), "AWS_DEFAULT_REGION": None, "PLUGIN_PATH_STYLE": "true",
                "PLUGIN_REPORT": str(tmp_path / "report.json")}
    full_env.update({name: filled(value) for name, value in env.items()})
    args = [filled(flag) for flag in flags]
    if config is not None:
        (tmp_path / "deploy.yml").write_text(filled(config), encoding="utf-8")
        args += ["--config", str(tmp_path / "deploy.yml")]
    proc = ok(run_sync(full_env, cwd=src, args=args))
    lines = proc.stdout.splitlines()
    if first_line:
        assert lines[0] == filled(first_line)
        assert proc.stdout.count("Using ") == 1
    else:
        assert "Using " not in proc.stdout and "(from " not in proc.stdout
        assert lines[0].startswith(f'Synchronizing with bucket "{bucket}"')
    report = report_of(tmp_path / "report.json")
    assert report["region"] == region
    assert report["dry_run"] is (not writes)
    assert uploaded(s3_server, bucket) == (["index.html"] if writes else [])
    assert s3_server.requests, "the run reached the test server"


def test_a_fallback_dry_run_is_announced_also_under_quiet(run_sync, s3_server, bucket, make_tree):
    # A DRY_RUN=1 left in a cron environment: the log says so, and says that nothing was published.
    src = make_tree({"index.html": "<h1>home</h1>", "a.css": "p{}"})
    env = {**plugin_env(bucket, src), "AWS_DEFAULT_REGION": None}
    proc = ok(run_sync({**env, "DRY_RUN": "1"}, cwd=src, args=["--quiet"]))
    assert proc.stdout.splitlines()[0] == "Using dry_run true (from DRY_RUN)"
    assert proc.stdout.splitlines()[-1].startswith("Dry run, would do: 2 uploaded,")
    assert s3_server.writes(bucket) == []
    # An explicit --dry-run under --quiet: no fallback line, the summary still says it.
    proc = ok(run_sync(env, cwd=src, args=["--quiet", "--dry-run"]))
    assert "Using " not in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith("Dry run, would do: 2 uploaded,")
    assert s3_server.writes(bucket) == []
    # A real run under --quiet with a fallback region: nothing but the summary.
    proc = ok(run_sync({**env, "AWS_REGION": "us-east-1"}, cwd=src, args=["--quiet"]))
    assert proc.stdout.splitlines() == [summary_line(proc.stdout)]
    assert summary_line(proc.stdout).startswith("Done: 2 uploaded,")


def test_the_fallback_line_never_shows_an_endpoint_password(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"index.html": "<h1>home</h1>"})
    endpoint = s3_server.endpoint.replace("http://", "http://admin:longpassword99@")
    proc = ok(run_sync({**plugin_env(bucket, src), "PLUGIN_ENDPOINT": None, "S3_ENDPOINT": endpoint,
                        "AWS_DEFAULT_REGION": None, "PLUGIN_PATH_STYLE": "true"}, cwd=src))
    assert proc.stdout.splitlines()[0] == f"Using endpoint {s3_server.endpoint} (from S3_ENDPOINT)"
    assert "longpassword99" not in proc.stdout + proc.stderr and "admin" not in proc.stdout


# ---------------------------------------------------------------- masking


def test_short_local_server_keys_do_not_garble_output_or_report(run_sync, s3_server, bucket, make_tree, tmp_path):
    # LocalStack's documented credentials are test / test.
    src = make_tree({"blog/latest/index.html": "new", "test.txt": "t"})
    env = {**plugin_env(bucket, src, delete=True), "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "PLUGIN_REPORT": str(tmp_path / "report.json")}
    proc = ok(run_sync(env, cwd=src))
    assert sorted(action_map(proc.stdout)) == ["blog/latest/index.html", "test.txt"]
    assert "****" not in proc.stdout + proc.stderr
    report = report_of(tmp_path / "report.json")
    assert sorted(a["key"] for a in report["actions"]) == ["blog/latest/index.html", "test.txt"]
    assert "****" not in (tmp_path / "report.json").read_text(encoding="utf-8")
    assert uploaded(s3_server, bucket) == ["blog/latest/index.html", "test.txt"]


def test_the_access_key_id_is_shown_and_the_secret_key_masked(run_sync, s3_server, bucket, make_tree, tmp_path):
    access, secret = "AKIDNEWCOMER42", "newcomer/Secret+Key=0123456789"
    src = make_tree({"a.txt": "a", "b.txt": "b"})
    s3_server.inject("PutObject", key="a.txt", status=403, code="AccessDenied", times=None,
                     message=f"{access} may not write; signature by {secret}")
    env = {**plugin_env(bucket, src), "PLUGIN_ACCESS_KEY": access, "PLUGIN_SECRET_KEY": secret,
           "PLUGIN_REPORT": str(tmp_path / "report.json")}
    proc = run_sync(env, cwd=src)
    assert proc.returncode == 1, proc.stderr
    assert f"failed: a.txt: AccessDenied: {access} may not write; signature by ****" in proc.stdout
    text = (tmp_path / "report.json").read_text(encoding="utf-8")
    assert secret not in proc.stdout + proc.stderr + text and "0123456789" not in text
    assert report_of(tmp_path / "report.json")["failures"] == [
        {"kind": "upload", "key": "a.txt", "error": f"AccessDenied: {access} may not write; signature by ****"}]


# ---------------------------------------------------------------- unknown PLUGIN_* variables


def test_a_misspelt_plugin_variable_is_refused_before_any_request(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"index.html": "h"})
    proc = run_sync({**plugin_env(bucket, src), "PLUGIN_CACHECONTROL": "max-age=60"}, cwd=src)
    assert_refused(proc, s3_server, "PLUGIN_CACHECONTROL")
    assert proc.stderr == ("drone-s3-sync: invalid setting PLUGIN_CACHECONTROL: is not a setting of drone-s3-sync; "
                           "did you mean cache_control (PLUGIN_CACHE_CONTROL)?\n")
    assert proc.stdout == ""


def test_an_unknown_plugin_variable_without_a_close_name_is_refused_too(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"index.html": "h"})
    proc = run_sync({**plugin_env(bucket, src), "PLUGIN_ZZZ": "1", "PLUGIN_YYY": "2"}, cwd=src)
    assert_refused(proc, s3_server, "PLUGIN_YYY", "also not settings: PLUGIN_ZZZ", "drone-s3-sync --help")


def test_tolerated_plugin_variables_and_ci_variables_only_warn(run_sync, s3_server, bucket, make_tree):
    # `debug: true` copied from another plugin, an empty unknown variable (sets
    # nothing), and what Drone and Woodpecker set around a step: the run goes on.
    src = make_tree({"index.html": "h"})
    env = {**plugin_env(bucket, src), "PLUGIN_DEBUG": "true", "PLUGIN_UNUSED": "", "DRONE": "true",
           "DRONE_STEP_NAME": "publish", "CI": "woodpecker", "CI_WORKSPACE": str(src)}
    proc = ok(run_sync(env, cwd=src))
    assert "warning: PLUGIN_DEBUG is not a setting of drone-s3-sync; set DEBUG=1 for detailed logs" in proc.stderr
    assert "warning: PLUGIN_UNUSED is not a setting of drone-s3-sync" in proc.stderr
    assert uploaded(s3_server, bucket) == ["index.html"]


# ---------------------------------------------------------------- switches


def test_switches_take_true_and_false_and_show_both_forms_in_help(run_sync, s3_server, s3, bucket, make_tree):
    src = make_tree({"index.html": "h"})
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="old.html", Body=b"old")
    s3_server.reset()
    env = plugin_env(bucket, src, delete=True)
    proc = ok(run_sync(env, cwd=src, args=["--delete=false"]))
    assert "old.html" not in action_map(proc.stdout)
    assert "DeleteObjects" not in s3_server.ops(bucket)
    s3_server.reset()
    proc = ok(run_sync(plugin_env(bucket, src), cwd=src, args=["--delete=true", "--dry-run=yes"]))
    assert action_map(proc.stdout)["old.html"][0] == "delete"
    assert s3_server.writes(bucket) == []

    s3_server.reset()
    proc = run_sync(env, cwd=src, args=["--delete=maybe"])
    assert_refused(proc, s3_server, "--delete: 'maybe' is not a boolean; use true or false")
    proc = run_sync(env, cwd=src, args=["--delete", "false"])
    assert_refused(proc, s3_server, "write --delete=false")
    assert "usage:" not in proc.stderr

    proc = ok(run_sync({}, cwd=src, args=["--help"]))
    for switch in ("--delete, --no-delete", "--dry-run, --no-dry-run", "--state, --no-state", "--quiet, --no-quiet"):
        assert switch in proc.stdout
    assert "--x=true / --x=false" in proc.stdout


# ---------------------------------------------------------------- errors that say what to do


def test_no_credentials_names_every_way_to_give_them(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"index.html": "h"})
    env = {**plugin_env(bucket, src), "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}
    proc = run_sync(env, cwd=src)
    assert proc.returncode == 1, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("drone-s3-sync: error:")]
    assert len(error) == 1, proc.stderr
    for words in (f'cannot list bucket "{bucket}": Unable to locate credentials', "access_key and secret_key",
                  "PLUGIN_ACCESS_KEY", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "assume_role"):
        assert words in error[0]
    assert "Traceback" not in proc.stderr
    assert s3_server.requests == []  # botocore refuses to send an unsigned request


@pytest.mark.parametrize("value, words", [
    ("My_Bucket", ["'My_Bucket' is not a valid bucket name", "did you mean 'my-bucket'?"]),
    ("site..name", ["'site..name' is not a valid bucket name", "3 to 63 lowercase letters"]),
    ("192.168.1.10", ["'192.168.1.10' is not a valid bucket name"]),
    ("s3://site/x", ["'s3://site/x' names a bucket and a folder in it", "PLUGIN_BUCKET site PLUGIN_TARGET x"]),
])
def test_a_bucket_name_s3_would_refuse_is_refused_first(run_sync, s3_server, make_tree, value, words):
    src = make_tree({"index.html": "h"})
    s3_server.reset()
    proc = run_sync(plugin_env(value, src), cwd=src)
    assert_refused(proc, s3_server, "PLUGIN_BUCKET", *words)
    assert "does not exist" not in proc.stderr


def test_a_bucket_url_with_a_folder_as_a_flag_suggests_target(run_sync, s3_server, make_tree):
    src = make_tree({"index.html": "h"})
    s3_server.reset()
    proc = run_sync({"PLUGIN_ENDPOINT": s3_server.endpoint}, cwd=src, args=["--bucket", "s3://site/x/"])
    assert_refused(proc, s3_server, "--bucket: 's3://site/x/' names a bucket and a folder in it; give them apart: "
                                    "--bucket site --target x")


def test_source_and_bucket_url_as_arguments(run_sync, s3_server, bucket, make_tree):
    # The aws s3 sync / s5cmd habit: drone-s3-sync SRC s3://bucket/prefix.
    work = make_tree({"public/index.html": "h", "public/css/a.css": "p{}", "notes.txt": "n"})
    proc = ok(run_sync({"PLUGIN_ENDPOINT": s3_server.endpoint}, cwd=work,
                       args=["public", f"s3://{bucket}/docs/v2", "--path-style"]))
    assert sorted(action_map(proc.stdout)) == ["docs/v2/css/a.css", "docs/v2/index.html"]
    assert uploaded(s3_server, bucket) == ["docs/v2/css/a.css", "docs/v2/index.html"]
    # The bucket root, with options after the arguments.
    proc = ok(run_sync({"PLUGIN_ENDPOINT": s3_server.endpoint}, cwd=work,
                       args=["public", f"s3://{bucket}", "--dry-run"]))
    assert sorted(action_map(proc.stdout)) == ["css/a.css", "index.html"]


@pytest.mark.parametrize("args, words", [
    (["s3://site/x", "public"], ["does not download", "write the folder first: public s3://site/x"]),
    (["public"], ["unexpected argument 'public'", "SOURCE s3://BUCKET[/PREFIX]"]),
    (["public", "site"], ["unexpected arguments 'public site'", "--source, --bucket and --target"]),
    (["public", "s3://site/x", "--bucket", "other"], ["--bucket: is given twice"]),
    (["--buckt", "site"], ["unrecognized arguments: --buckt", "did you mean --bucket?"]),
])
def test_bad_arguments_are_one_line_and_reach_nothing(run_sync, s3_server, make_tree, args, words):
    src = make_tree({"index.html": "h"})
    s3_server.reset()
    proc = run_sync({"PLUGIN_ENDPOINT": s3_server.endpoint}, cwd=src, args=args)
    assert_refused(proc, s3_server, *words)
    assert len(proc.stderr.splitlines()) == 1 and "usage:" not in proc.stderr


# ---------------------------------------------------------------- default excludes

CHECKOUT = {
    "index.html": "<h1>home</h1>",
    ".well-known/security.txt": "Contact: mailto:security@example.com",
    ".gitignore": "node_modules/",
    ".git/HEAD": "ref: refs/heads/main",
    ".git/config": "[core]",
    ".git/objects/3f/786850e387550fdab836ed7e6dc881de23001b": "blob",
    ".env": "API_TOKEN=do-not-publish",
    ".env.production": "API_TOKEN=do-not-publish-either",
}
LEFT_OUT = ("not published: 3 entries left out by default (.env, .env.production, .git/): version-control folders "
            "(.git, .hg, .svn) and .env files are published only when include names them; their objects are not "
            "deleted (exclude them to silence this line)")


def test_a_git_workspace_does_not_publish_its_history_or_env_files(run_sync, s3_server, s3, bucket, make_tree):
    src = make_tree(CHECKOUT)
    with s3_server.paused():  # published by an older version: kept, not deleted
        s3.put_object(Bucket=bucket, Key=".git/config", Body=b"[core]")
    s3_server.reset()
    proc = ok(run_sync(plugin_env(bucket, ".", delete=True), cwd=src))
    assert sorted(action_map(proc.stdout)) == [".gitignore", ".well-known/security.txt", "index.html"]
    assert proc.stderr.splitlines().count("warning: " + LEFT_OUT) == 1
    assert uploaded(s3_server, bucket) == [".gitignore", ".well-known/security.txt", "index.html"]
    assert "DeleteObjects" not in s3_server.ops(bucket)
    assert "do-not-publish" not in proc.stdout + proc.stderr

    # include brings back what it names, and only that.
    s3_server.reset()
    proc = ok(run_sync(plugin_env(bucket, ".", include="*,.env.production"), cwd=src))
    assert sorted(action_map(proc.stdout)) == [".env.production"]
    assert uploaded(s3_server, bucket) == [".env.production"]
    assert "2 entries left out by default (.env, .git/)" in proc.stderr

    # Excluding them explicitly silences the line.
    proc = ok(run_sync(plugin_env(bucket, ".", exclude=".git,.env,.env.*"), cwd=src))
    assert "left out by default" not in proc.stderr
