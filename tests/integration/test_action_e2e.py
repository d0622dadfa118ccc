"""The GitHub Action end to end: action.yml's sync step, its `env:` rendered the
way the runner renders it from `with:` inputs, runs the real command against
the local server.

The runner turns every `${{ inputs.x }}` into the input's text, or "" for an
input the workflow does not set, so an unset setting arrives as an empty
PLUGIN_* variable: the command must treat it as unset. The install step
(pip from the action's checkout, needs the network) is not run here; its
output, the command's path, is this venv's command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, Mapping

import pytest
import yaml
from drone_run import action_map, ok, summary_counts, summary_line

from conftest import FAKE_KEY_ID, FAKE_SECRET, REGION, _command

ROOT = Path(__file__).resolve().parents[2]
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def sync_step() -> Dict[str, Any]:
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    (step,) = [s for s in action["runs"]["steps"] if s.get("id") == "sync"]
    return step


def render_env(inputs: Mapping[str, str], *, debug: str = "") -> Dict[str, str]:
    """The sync step's env with every ${{ }} expression evaluated as the runner does."""
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    unknown = set(inputs) - set(action["inputs"])
    assert not unknown, f"the action has no input {unknown}"
    context = {f"inputs.{name}": inputs.get(name, "") for name in action["inputs"]}
    context["runner.debug"] = debug
    context["steps.install.outputs.command"] = _command()[0]

    def evaluate(match: "re.Match[str]") -> str:
        expr = match.group(1)
        assert expr in context, f"teach render_env about ${{{{ {expr} }}}}"
        return context[expr]

    return {k: re.sub(r"\$\{\{\s*(.*?)\s*\}\}", evaluate, str(v)) for k, v in sync_step()["env"].items()}


def test_inputs_configure_the_sync(run_sync, s3_server, s3, bucket, make_tree):
    """A realistic `with:` block: every kind of value (text, boolean, number,
    JSON map, secret) set through its input, everything else left unset."""
    ws = make_tree({"public/index.html": "<h1>hi</h1>", "public/app.js": "x()", "README.md": "not published"})
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key="www/gone.html", Body=b"old")
    s3_server.reset()
    inputs = {
        "bucket": bucket,
        "source": "public",
        "target": "/www",
        "delete": "true",
        "acl": "public-read",
        "cache_control": json.dumps({".html": "max-age=60", "*": "max-age=3600"}),
        "metadata": json.dumps({"team": "web"}),
        "redirects": json.dumps({"old.html": "/www/index.html"}),
        "max_concurrency": "4",
        "path_style": "true",
        "endpoint": s3_server.endpoint,
        # Keys given as inputs (from secrets), not in the job's AWS_* variables.
        "access_key": "AKIAACTIONTEST0001",
        "secret_key": "action/Secret+Value0123456789abcdefgh",
    }
    env = render_env(inputs)
    assert env["PLUGIN_REGION"] == "" and env["PLUGIN_DRY_RUN"] == ""  # unset inputs: empty, as on GitHub
    env.update({"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "PLUGIN_ENDPOINT": s3_server.endpoint,
                "GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_WORKSPACE": str(ws)})
    proc = ok(run_sync(env, cwd=ws))  # steps run in the workspace: `source` is relative to it
    verbs = {key.split(" -> ")[0]: verb for key, (verb, _) in action_map(proc.stdout).items()}
    assert verbs == {"www/index.html": "upload", "www/app.js": "upload", "www/old.html": "redirect",
                     "www/gone.html": "delete"}
    assert inputs["secret_key"] not in proc.stdout + proc.stderr
    assert s3_server.ops(bucket)["PutObject"] >= 3
    with s3_server.paused():
        page = s3.head_object(Bucket=bucket, Key="www/index.html")
        script = s3.head_object(Bucket=bucket, Key="www/app.js")
        redirect = s3.head_object(Bucket=bucket, Key="www/old.html")
        grants = s3.get_object_acl(Bucket=bucket, Key="www/app.js")["Grants"]
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="www/").get("Contents", []))
    assert page["CacheControl"] == "max-age=60" and script["CacheControl"] == "max-age=3600"
    assert page["Metadata"] == {"team": "web"}
    assert redirect["WebsiteRedirectLocation"] == "/www/index.html"
    assert any(g["Grantee"].get("URI") == ALL_USERS and g["Permission"] == "READ" for g in grants)
    assert "www/gone.html" not in keys and "www/README.md" not in keys

    # The same `with:` again: nothing to do.
    s3_server.reset()
    again = ok(run_sync(env, cwd=ws))
    assert summary_counts(again.stdout) == {"uploaded": 0, "updated": 0, "redirects": 0, "deleted": 0, "unchanged": 3}
    assert s3_server.writes(bucket) == []


def run_step_script(env: Dict[str, str], cwd: Path, runner_temp: Path) -> "subprocess.CompletedProcess[str]":
    """The sync step's `run:` script, as the runner runs a `shell: bash` step."""
    output = runner_temp / "github_output"
    output.write_text("")
    full = {
        "PATH": os.environ.get("PATH", os.defpath), "HOME": os.environ["HOME"], "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": FAKE_KEY_ID, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true", "RUNNER_TEMP": str(runner_temp), "GITHUB_OUTPUT": str(output),
        "GITHUB_ACTIONS": "true", "CI": "true",
    }
    full.update(env)
    script = runner_temp / "step.sh"
    script.write_text(sync_step()["run"])
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=str(cwd),
                          env=full, capture_output=True, text=True, timeout=120)


def step_outputs(runner_temp: Path) -> Dict[str, str]:
    lines = (runner_temp / "github_output").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


@pytest.mark.parametrize("dry_run", ["", "true"], ids=["sync", "dry-run"])
def test_step_script_passes_output_through_and_sets_the_summary_output(s3_server, bucket, make_tree,
                                                                      tmp_path, dry_run):
    ws = make_tree({"a.txt": "a", "b/c.txt": "c"})
    env = render_env({"bucket": bucket, "endpoint": s3_server.endpoint, "path_style": "true", "dry_run": dry_run})
    proc = run_step_script(env, ws, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {k for k, (verb, _) in action_map(proc.stdout).items() if verb == "upload"} == {"a.txt", "b/c.txt"}  # the log shows the command's output
    summary = step_outputs(tmp_path)["summary"]
    if dry_run:
        assert summary.startswith("Dry run, would do: 2 uploaded,"), summary
        assert s3_server.writes(bucket) == []
    else:
        assert summary == summary_line(proc.stdout) and summary.startswith("Done: 2 uploaded,")


def test_with_json_the_summary_output_is_still_set(s3_server, bucket, make_tree, tmp_path):
    """json: true puts the JSON report alone on standard output and the log on
    standard error: the step's `summary` output comes from the report."""
    ws = make_tree({"a.txt": "a", "b/c.txt": "c"})
    env = render_env({"bucket": bucket, "endpoint": s3_server.endpoint, "path_style": "true", "json": "true"})
    proc = run_step_script(env, ws, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    summary = step_outputs(tmp_path)["summary"]
    assert summary.startswith("Done: 2 uploaded, 0 updated, 0 redirects, 0 deleted, 0 unchanged;"), summary
    assert summary == report["summary"] == summary_line(proc.stderr)


def test_step_script_fails_the_step_with_the_commands_exit_code(s3_server, bucket, make_tree, tmp_path):
    ws = make_tree({"a.txt": "a"})
    env = render_env({"bucket": bucket, "endpoint": s3_server.endpoint, "max_concurrency": "lots"})
    proc = run_step_script(env, ws, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "max_concurrency" in proc.stderr or "PLUGIN_MAX_CONCURRENCY" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert step_outputs(tmp_path) == {"summary": ""}
    assert s3_server.ops(bucket) == {}
