"""Helpers for end-to-end tests: Drone-encoded settings and the command's output.

Shared by the integration test modules; no fixtures here (see conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

# One action line: "upload   site/a.css  (content changed, 1.2 KiB)", "would " in a dry run.
ACTION_RE = re.compile(r"^(?:would )?(upload|update|redirect|delete) +(\S.*?)  \((.*)\)$")


# aws-cli's layout, multipart from 8 MiB in 8 MiB parts: lets a few MiB of test
# data exercise multipart uploads (the product's defaults are 100 MiB / 16 MiB).
EIGHT_MIB_PARTS = {"multipart_threshold": "8MiB", "part_size": "8MiB"}


def plugin_env(bucket: str, source: str = ".", target: str = "/", **settings: Any) -> Dict[str, str]:
    """PLUGIN_* variables the way Drone encodes a step's settings (maps as JSON)."""
    env = {"PLUGIN_BUCKET": bucket, "PLUGIN_SOURCE": str(source), "PLUGIN_TARGET": target}
    for name, value in settings.items():
        if value is None:
            continue
        if isinstance(value, (dict, list)):
            text = json.dumps(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env["PLUGIN_" + name.upper()] = text
    return env


def ok(proc: Any) -> Any:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def actions(stdout: str) -> List[tuple]:
    """(verb, key, reason) of each action line."""
    return [match.groups() for match in map(ACTION_RE.match, stdout.splitlines()) if match]


def action_map(stdout: str) -> Dict[str, tuple]:
    result = {}
    for verb, key, reason in actions(stdout):
        assert key not in result, f"{key} appears in two action lines"
        result[key] = (verb, reason)
    return result


def summary_line(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("Done:")]
    assert len(lines) == 1, stdout
    return lines[0]


def summary_counts(stdout: str) -> Dict[str, int]:
    words = r"(\d+) (uploaded|updated|redirects?|deleted|unchanged|failed|errors?)"
    plural = {"redirect": "redirects", "error": "errors"}  # "1 redirect", "0 redirects"
    return {plural.get(word, word): int(num) for num, word in re.findall(words, summary_line(stdout))}


def keys_of(requests: Iterable[Any], op: Optional[str] = None) -> List[str]:
    return sorted(r.key for r in requests if op is None or r.op == op)


def invalidations(s3_server: Any, cloudfront: Any, distribution: str) -> List[List[str]]:
    """Paths of each invalidation of the distribution, as CloudFront stored them, oldest first."""
    with s3_server.paused():
        items = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"].get("Items", [])
        found = []
        for item in items:
            inv = cloudfront.get_invalidation(DistributionId=distribution, Id=item["Id"])["Invalidation"]
            found.append((inv["CreateTime"], list(inv["InvalidationBatch"]["Paths"].get("Items", []))))
    return [paths for _, paths in sorted(found, key=lambda f: f[0])]


def fresh_checkout(src: Path, dest: Path) -> Path:
    """A copy of `src` as a new CI checkout makes it: the same bytes, every file
    with a new mtime (three days later than now, so later than any object)."""
    shutil.copytree(str(src), str(dest), copy_function=shutil.copyfile)
    future = time.time() + 3 * 24 * 3600
    for path in dest.rglob("*"):
        os.utime(str(path), (future, future))
    return dest


def assert_refused(proc: Any, s3_server: Any, *names: str) -> None:
    """Exit 2, the setting named on stderr, no traceback, and not one request sent."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    for name in names:
        assert name in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert s3_server.requests == [], s3_server.requests
