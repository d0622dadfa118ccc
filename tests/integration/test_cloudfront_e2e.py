"""CloudFront end to end, against the local server's CloudFront:

* `invalidation_paths` replaces the computed paths, on every distribution,
  only when the run changed something; a dry run shows it.
* TooManyInvalidationsInProgress is retried with the same CallerReference
  until CloudFront accepts; past the retry time the run fails (exit 1).
* `cloudfront_wait`: every invalidation is created first, then each is
  polled with GetInvalidation until Completed. The local server reports
  Completed at once, so these tests prove the request sequence and the
  output; the polling schedule and the timeout are proven in
  tests/unit/test_cloudfront_waits.py with a fake clock.
"""

from __future__ import annotations

import io
import re
import uuid
from typing import Any, List

import pytest
from drone_run import invalidations, ok, plugin_env, summary_counts

from drone_s3_sync import config, invalidate
from drone_s3_sync import sources
from drone_s3_sync.pipeline import sync
from drone_s3_sync.report import Reporter


@pytest.fixture
def second_distribution(s3_server, cloudfront, distribution) -> str:
    with s3_server.paused():
        config = cloudfront.get_distribution_config(Id=distribution)["DistributionConfig"]
        config["CallerReference"] = uuid.uuid4().hex
        return cloudfront.create_distribution(DistributionConfig=config)["Distribution"]["Id"]


def sent_batches(s3_server: Any) -> List[dict]:
    """Distribution, paths and CallerReference of each CreateInvalidation request the server received."""
    batches = []
    for rec in s3_server.requests:
        if rec.op == "CreateInvalidation":
            batches.append({
                "distribution": rec.path.split("/")[3],
                "paths": re.findall(r"<Path>(.*?)</Path>", rec.body),
                "ref": re.findall(r"<CallerReference>(.*?)</CallerReference>", rec.body),
            })
    return batches


def cloudfront_ops(s3_server: Any) -> List[str]:
    return [r.op for r in s3_server.requests if r.service == "cloudfront"]


SITE = {"index.html": "<h1>home</h1>", "docs/a.html": "a", "my file.html": "f"}
GIVEN = "/index.html, /docs/*,/my file.html"  # how Drone sends a YAML list: comma-joined
SENT = ["/index.html", "/docs/*", "/my%20file.html"]


def test_invalidation_paths_replace_the_changed_paths_on_every_distribution(
        run_sync, s3_server, bucket, make_tree, distribution, second_distribution, cloudfront):
    tree = make_tree(SITE)
    env = plugin_env(bucket, cloudfront_distribution=f"{distribution},{second_distribution}",
                     invalidation_paths=GIVEN)
    proc = ok(run_sync(env, cwd=tree))
    assert [(b["distribution"], b["paths"]) for b in sent_batches(s3_server)] == [
        (distribution, SENT), (second_distribution, SENT)]
    assert invalidations(s3_server, cloudfront, distribution) == [SENT]
    assert invalidations(s3_server, cloudfront, second_distribution) == [SENT]
    assert f"CloudFront: invalidated 3 path(s): {' '.join(SENT)}" in proc.stdout

    # A change: the given paths again, whatever changed.
    (tree / "docs" / "a.html").write_text("A")
    s3_server.reset()
    ok(run_sync(env, cwd=tree))
    assert [b["paths"] for b in sent_batches(s3_server)] == [SENT, SENT]


def test_no_invalidation_when_nothing_changed(run_sync, s3_server, bucket, make_tree, distribution, cloudfront):
    tree = make_tree(SITE)
    env = plugin_env(bucket, cloudfront_distribution=distribution, invalidation_paths="/*", cloudfront_wait=True)
    ok(run_sync(env, cwd=tree))
    assert invalidations(s3_server, cloudfront, distribution) == [["/*"]]

    s3_server.reset()
    proc = ok(run_sync(env, cwd=tree))
    assert cloudfront_ops(s3_server) == []  # no CreateInvalidation, no GetInvalidation
    assert "CloudFront" not in proc.stdout
    assert invalidations(s3_server, cloudfront, distribution) == [["/*"]]


def test_a_failed_upload_alone_invalidates_nothing(run_sync, s3_server, bucket, make_tree, distribution):
    tree = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, cloudfront_distribution=distribution, invalidation_paths="/*", max_attempts=1)
    s3_server.inject("PutObject", key="a.txt", bucket=bucket, times=None)
    proc = run_sync(env, cwd=tree)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert s3_server.ops()["CreateInvalidation"] == 0


def test_dry_run_shows_the_given_paths(run_sync, s3_server, bucket, make_tree, distribution):
    tree = make_tree(SITE)
    env = plugin_env(bucket, cloudfront_distribution=distribution, invalidation_paths=GIVEN, dry_run=True)
    proc = ok(run_sync(env, cwd=tree))
    assert f"CloudFront: would invalidate 3 path(s): {' '.join(SENT)}" in proc.stdout
    assert cloudfront_ops(s3_server) == []

    ok(run_sync({**env, "PLUGIN_DRY_RUN": "false"}, cwd=tree))
    s3_server.reset()
    proc = ok(run_sync(env, cwd=tree))  # nothing would change: nothing would be invalidated
    assert "CloudFront" not in proc.stdout
    assert cloudfront_ops(s3_server) == []


def test_too_many_invalidations_in_progress_is_retried(run_sync, s3_server, bucket, make_tree, distribution,
                                                       cloudfront):
    tree = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, cloudfront_distribution=distribution)
    fault = s3_server.inject("CreateInvalidation", status=400, code="TooManyInvalidationsInProgress", times=2)
    proc = ok(run_sync(env, cwd=tree))
    assert fault.hits == 2
    batches = sent_batches(s3_server)
    assert len(batches) == 3
    # The same batch each time, CallerReference included: CloudFront treats a
    # repeat as the same invalidation, never as a second one.
    assert len({b["ref"][0] for b in batches}) == 1 and all(b["paths"] == ["/a.txt"] for b in batches)
    retries = [line for line in proc.stdout.splitlines() if "too many invalidations in progress" in line]
    assert len(retries) == 2, proc.stdout  # retried by this tool, not by botocore
    assert retries[0].startswith(f"CloudFront: {distribution} has too many invalidations in progress "
                                 "(TooManyInvalidationsInProgress); retrying in ")
    assert invalidations(s3_server, cloudfront, distribution) == [["/a.txt"]]
    assert "CloudFront: invalidated 1 path(s): /a.txt" in proc.stdout


def test_too_many_invalidations_for_longer_than_the_retry_time_fails_the_run(
        s3_server, bucket, make_tree, distribution, second_distribution, cloudfront, monkeypatch):
    # In process (the Python API), to shorten the retry time (a module
    # constant, 5 minutes); the requests go to the local server all the same.
    monkeypatch.setattr(invalidate, "RETRY_FIRST_DELAY", 0.1)
    monkeypatch.setattr(invalidate, "RETRY_TIME", 2.0)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFRONT", s3_server.endpoint)
    tree = make_tree({"a.txt": "a"})
    monkeypatch.chdir(tree)
    fault = s3_server.inject("CreateInvalidation", status=400, code="TooManyInvalidationsInProgress", times=None,
                             message="Processing your request will cause you to exceed the maximum number of "
                                     "in-progress wildcard invalidations.")
    env = {**plugin_env(bucket, cloudfront_distribution=f"{distribution},{second_distribution}", cloudfront_wait=True),
           "PLUGIN_ENDPOINT": s3_server.endpoint}

    out = io.StringIO()
    summary = sync(sources.from_sources([], env), reporter=Reporter(out, io.StringIO(), progress=False))

    out = out.getvalue()
    assert summary.exit_code == 1, out
    assert summary_counts(out)["uploaded"] == 1  # the files are in S3
    for dist in (distribution, second_distribution):
        errors = [line for line in out.splitlines() if line.startswith(f"  error: CloudFront invalidation of {dist}")]
        assert len(errors) == 1, out
        assert errors[0].startswith(f"  error: CloudFront invalidation of {dist} failed: TooManyInvalidationsInProgress: "
                                    "still refused after retrying for ")
        assert "the files are in S3" in errors[0]
        refs = [b["ref"][0] for b in sent_batches(s3_server) if b["distribution"] == dist]
        assert len(refs) >= 2 and len(set(refs)) == 1, refs  # retried, with the same CallerReference
        assert invalidations(s3_server, cloudfront, dist) == []
    batches = sent_batches(s3_server)
    assert fault.hits == len(batches)
    assert "GetInvalidation" not in cloudfront_ops(s3_server)  # nothing was created to wait for


def test_cloudfront_wait_creates_every_invalidation_then_waits_for_each(
        run_sync, s3_server, bucket, make_tree, distribution, second_distribution):
    tree = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, cloudfront_distribution=f"{distribution},{second_distribution}", cloudfront_wait=True)
    proc = ok(run_sync(env, cwd=tree))
    requests = [r for r in s3_server.requests if r.service == "cloudfront"]
    assert [r.op for r in requests] == ["CreateInvalidation", "CreateInvalidation", "GetInvalidation",
                                        "GetInvalidation"]
    assert [r.path.split("/")[3] for r in requests] == [distribution, second_distribution] * 2
    ids = [r.path.split("/")[5] for r in requests[2:]]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("CloudFront: invalidation ")]
    assert lines == [f"CloudFront: invalidation {ids[0]} of {distribution} completed (0 s)",
                     f"CloudFront: invalidation {ids[1]} of {second_distribution} completed (0 s)"]

    (tree / "a.txt").write_text("A")
    s3_server.reset()
    ok(run_sync({**env, "PLUGIN_CLOUDFRONT_WAIT": "false"}, cwd=tree))
    assert cloudfront_ops(s3_server) == ["CreateInvalidation", "CreateInvalidation"]  # no waiting by default


def test_cloudfront_wait_quiet_prints_no_progress(run_sync, s3_server, bucket, make_tree, distribution):
    tree = make_tree({"a.txt": "a"})
    proc = ok(run_sync(plugin_env(bucket, cloudfront_distribution=distribution, cloudfront_wait=True, quiet=True),
                       cwd=tree))
    assert "GetInvalidation" in cloudfront_ops(s3_server)
    assert "completed" not in proc.stdout and "waiting" not in proc.stdout


def test_cloudfront_wait_fails_when_the_invalidation_cannot_be_read(run_sync, s3_server, bucket, make_tree,
                                                                    distribution, cloudfront):
    # An IAM policy with cloudfront:CreateInvalidation but not GetInvalidation.
    tree = make_tree({"a.txt": "a"})
    fault = s3_server.inject("GetInvalidation", status=403, code="AccessDenied", times=None)
    proc = run_sync(plugin_env(bucket, cloudfront_distribution=distribution, cloudfront_wait=True), cwd=tree)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert fault.hits == 1  # AccessDenied is not retried
    [created] = [r.path.split("/")[5] for r in s3_server.requests if r.op == "GetInvalidation"]
    assert (f"  error: cannot check CloudFront invalidation {created} of {distribution}: AccessDenied: injected fault"
            in proc.stdout)
    s3_server.clear_faults()
    assert invalidations(s3_server, cloudfront, distribution) == [["/a.txt"]]  # it was made all the same


def test_cloudfront_settings_without_a_distribution_only_warn(run_sync, s3_server, bucket, make_tree):
    tree = make_tree({"a.txt": "a"})
    proc = ok(run_sync(plugin_env(bucket, invalidation_paths="/*", cloudfront_wait=True), cwd=tree))
    for var in ("PLUGIN_INVALIDATION_PATHS", "PLUGIN_CLOUDFRONT_WAIT"):
        assert f"warning: {var} has no effect without cloudfront_distribution" in proc.stderr
    assert cloudfront_ops(s3_server) == []
