"""Drone and Woodpecker run the same image the same way: the step's `settings:`
become PLUGIN_* variables and the step runs in the workspace. They differ in
how they spell those variables and in what else they set:

- Drone: PLUGIN_ + the key upper-cased (a dashed key stays dashed, so only
  snake_case keys reach the plugin), lists comma-joined, maps as JSON with
  sorted keys; DRONE_* variables (and a few legacy CI_* ones).
- Woodpecker: PLUGIN_ + the key upper-cased with '-' and '.' turned into '_'
  (`cache-control:` is PLUGIN_CACHE_CONTROL), lists comma-joined, maps as
  JSON with sorted keys; CI_* variables instead of DRONE_*.

The command reads neither DRONE_* nor CI_*, so one `.drone.yml` step and its
`.woodpecker.yml` twin give the same result, checked here end to end.
"""

from __future__ import annotations

import ast
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any, Dict, Mapping

import pytest
from drone_run import action_map, ok, summary_counts

from conftest import _empty_and_delete_bucket, is_state_key

PACKAGE = Path(__file__).resolve().parents[2] / "drone_s3_sync"
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _encode(value: Any) -> str:
    """A setting's value as both systems encode it (Go: yaml -> JSON, map keys sorted)."""
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return ",".join(_scalar(v) for v in value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return _scalar(value)


def drone_env(settings: Mapping[str, Any], workspace: Path) -> Dict[str, str]:
    """A plugin step's environment under Drone (drone-runner-docker)."""
    env = {"PLUGIN_" + key.upper(): _encode(value) for key, value in settings.items()}
    env.update({
        "CI": "true", "DRONE": "true",
        "DRONE_WORKSPACE": str(workspace), "DRONE_WORKSPACE_BASE": str(workspace.parent),
        "DRONE_REPO": "acme/website", "DRONE_REPO_BRANCH": "main", "DRONE_BRANCH": "main",
        "DRONE_COMMIT": SHA, "DRONE_COMMIT_SHA": SHA, "DRONE_COMMIT_BRANCH": "main",
        "DRONE_BUILD_NUMBER": "42", "DRONE_BUILD_EVENT": "push", "DRONE_STAGE_NAME": "default",
        "DRONE_STEP_NAME": "publish", "DRONE_SYSTEM_HOST": "drone.example.com",
        # Drone's legacy CI_* variables.
        "CI_WORKSPACE": str(workspace), "CI_BUILD_NUMBER": "42", "CI_COMMIT_SHA": SHA, "CI_REPO": "acme/website",
    })
    return env


def woodpecker_env(settings: Mapping[str, Any], workspace: Path) -> Dict[str, str]:
    """A plugin step's environment under Woodpecker (settings.ParamsToEnv and the CI_* set)."""
    env = {"PLUGIN_" + key.replace(".", "_").replace("-", "_").upper(): _encode(value)
           for key, value in settings.items()}
    env.update({
        "CI": "woodpecker", "CI_SYSTEM_NAME": "woodpecker", "CI_SYSTEM_URL": "https://ci.example.com",
        "CI_WORKSPACE": str(workspace), "CI_REPO": "acme/website", "CI_REPO_OWNER": "acme",
        "CI_REPO_NAME": "website", "CI_COMMIT_SHA": SHA, "CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF": "refs/heads/main",
        "CI_PIPELINE_NUMBER": "42", "CI_PIPELINE_EVENT": "push", "CI_WORKFLOW_NAME": "deploy",
        "CI_STEP_NAME": "publish", "CI_MACHINE": "agent-1",
    })
    return env


SITE = {
    "public/index.html": "<h1>home</h1>",
    "public/about/index.html": "<h1>about</h1>",
    "public/assets/app.3f2a.css": "body{}",
    "public/downloads/tool.zip": b"PK\x03\x04",
    "public/site.webmanifest": "{}",
    "notes.txt": "not published",
}


def settings_for(bucket: str, endpoint: str, distribution: str, *, dashed: bool) -> Dict[str, Any]:
    """The same step settings, with keys as a Drone user (snake_case) or a
    Woodpecker user (dashes, as its docs show) would write them."""
    settings = {
        "bucket": bucket,
        "source": "public",
        "target": "/site",
        "delete": True,
        "acl": {"downloads/*": "public-read"},
        "cache_control": {".html": "no-cache", "assets/*": "max-age=31536000, immutable"},
        "content_type": {".webmanifest": "application/manifest+json"},
        "metadata": {"team": "web"},
        "redirects": {"old/index.html": "/site/about/"},
        "cloudfront_distribution": [distribution],
        "max_concurrency": 4,
        "path_style": True,
        "endpoint": endpoint,
    }
    if dashed:
        settings = {key.replace("_", "-"): value for key, value in settings.items()}
    return settings


def snapshot(s3: Any, bucket: str) -> Dict[str, tuple]:
    """Every object's key, body, headers and public-read flag (call paused)."""
    result = {}
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        key = obj["Key"]
        if is_state_key(key):
            continue
        got = s3.get_object(Bucket=bucket, Key=key)
        grants = s3.get_object_acl(Bucket=bucket, Key=key)["Grants"]
        public = any(g["Grantee"].get("URI") == ALL_USERS and g["Permission"] == "READ" for g in grants)
        result[key] = (got["Body"].read(), got.get("ContentType"), got.get("CacheControl"),
                       got.get("Metadata"), got.get("WebsiteRedirectLocation"), public)
    return result


@pytest.fixture
def second_bucket(s3_server: Any, s3: Any) -> Any:
    name = f"t-{uuid.uuid4().hex[:12]}"
    with s3_server.paused():
        s3.create_bucket(Bucket=name)
    yield name
    with s3_server.paused(), contextlib.suppress(Exception):
        _empty_and_delete_bucket(s3, name)


def test_drone_and_woodpecker_steps_give_the_same_result(run_sync, s3_server, s3, bucket, second_bucket,
                                                         distribution, make_tree, tmp_path):
    drone_ws = make_tree(SITE, root=tmp_path / "drone" / "src")
    woodpecker_ws = make_tree(SITE, root=tmp_path / "woodpecker" / "src" / "git.example.com" / "acme" / "website")
    with s3_server.paused():
        for name in (bucket, second_bucket):
            s3.put_object(Bucket=name, Key="site/stale.html", Body=b"old")
    s3_server.reset()

    drone = drone_env(settings_for(bucket, s3_server.endpoint, distribution, dashed=False), drone_ws)
    woodpecker = woodpecker_env(settings_for(second_bucket, s3_server.endpoint, distribution, dashed=True),
                                woodpecker_ws)
    assert woodpecker["PLUGIN_CACHE_CONTROL"] == drone["PLUGIN_CACHE_CONTROL"]
    assert "PLUGIN_CACHE-CONTROL" not in woodpecker and "DRONE_WORKSPACE" not in woodpecker

    # Each runs the step in its workspace; `source: public` is relative to it.
    by_drone = ok(run_sync(drone, cwd=drone_ws))
    by_woodpecker = ok(run_sync(woodpecker, cwd=woodpecker_ws))

    expected = {
        "site/index.html": "upload", "site/about/index.html": "upload", "site/assets/app.3f2a.css": "upload",
        "site/downloads/tool.zip": "upload", "site/site.webmanifest": "upload",
        "site/old/index.html -> /site/about/": "redirect", "site/stale.html": "delete",
    }
    for proc in (by_drone, by_woodpecker):
        assert {key: verb for key, (verb, _) in action_map(proc.stdout).items()} == expected
        assert summary_counts(proc.stdout) == {"uploaded": 5, "updated": 0, "redirects": 1, "deleted": 1,
                                               "unchanged": 0}
    invalidations = [[line for line in p.stdout.splitlines() if line.startswith("CloudFront:")]
                     for p in (by_drone, by_woodpecker)]
    assert invalidations[0] == invalidations[1] and len(invalidations[0]) == 1, invalidations
    assert s3_server.ops()["CreateInvalidation"] == 2

    with s3_server.paused():
        drone_objects, woodpecker_objects = snapshot(s3, bucket), snapshot(s3, second_bucket)
    assert drone_objects == woodpecker_objects
    # ... and both are what the settings say, so neither is equally wrong.
    body, ctype, cache, meta, redirect, public = drone_objects["site/index.html"]
    assert (ctype, cache, meta, public) == ("text/html; charset=utf-8", "no-cache", {"team": "web"}, False)
    assert drone_objects["site/assets/app.3f2a.css"][2] == "max-age=31536000, immutable"
    assert drone_objects["site/site.webmanifest"][1] == "application/manifest+json"
    assert drone_objects["site/downloads/tool.zip"][5] is True
    assert drone_objects["site/old/index.html"][4] == "/site/about/"
    assert "site/stale.html" not in drone_objects and "site/notes.txt" not in drone_objects

    # The Woodpecker step pointed at the bucket the Drone step published: nothing to do.
    s3_server.reset()
    switched = woodpecker_env(settings_for(bucket, s3_server.endpoint, distribution, dashed=True), woodpecker_ws)
    again = ok(run_sync(switched, cwd=woodpecker_ws))
    assert summary_counts(again.stdout)["unchanged"] == 6 and not action_map(again.stdout)
    assert s3_server.writes() == []


def test_the_command_reads_no_drone_or_woodpecker_variables():
    """Settings come from PLUGIN_* (and AWS_*) only: no module names a DRONE_*
    or CI_* variable, so nothing depends on which CI system ran the step. The
    one exception only describes the holder of the deploy lock (which build
    holds it) and is outside the settings: lock.py's CI_VARIABLES."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        described = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "CI_VARIABLES" for t in node.targets):
                described = {n for n in ast.walk(node.value)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node not in described:
                if node.value.startswith(("DRONE_", "CI_")) or node.value in ("DRONE", "CI", "WOODPECKER"):
                    found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert found == []
