"""End-to-end: secret keys and session tokens never appear in what the command
prints, at any log level, whether the run succeeds, fails, is refused for its
settings or hits an internal error; also when an error message quotes a secret.
The access key id is not a secret (AWS calls it public): it is shown as it is."""

from __future__ import annotations

from typing import Any, Dict, Iterable

import pytest
from drone_run import plugin_env

ACCESS = "AKIDDISTINCT7Q2XWZ"
SECRET = "sEcReT/Distinct+Value9876qwerty"
TOKEN = "FwoGZXIvYXdzTOKEN-distinct-5544xyz"


def secret_env(bucket: str, source: Any, debug: bool = True, **settings: Any) -> Dict[str, str]:
    env = plugin_env(bucket, source, **settings)
    env.update({"PLUGIN_ACCESS_KEY": ACCESS, "PLUGIN_SECRET_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN})
    if debug:
        env["DEBUG"] = "1"
    return env


def assert_no_secrets(proc: Any, secrets: Iterable[str] = (SECRET, TOKEN)) -> None:
    for text in (proc.stdout, proc.stderr):
        for secret in secrets:
            assert secret not in text
            for part in (secret[:8], secret[-8:]):  # no fragment either
                assert part not in text


@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG=1", "plain"])
def test_successful_run(run_sync, s3_server, bucket, make_tree, debug):
    src = make_tree({"a.txt": "a", "b/c.txt": "c"})
    proc = run_sync(secret_env(bucket, src, debug, delete=True), cwd=src)
    assert proc.returncode == 0, proc.stderr
    assert s3_server.ops(bucket)["PutObject"] >= 2
    if debug:
        assert "DEBUG" in proc.stderr  # the debug log is there, and clean
    assert_no_secrets(proc)


def test_failed_uploads_whose_error_message_echoes_the_key(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"a.txt": "a", "b.txt": "b"})
    fault = s3_server.inject("PutObject", key="a.txt", status=403, code="AccessDenied", times=None,
                             message=f"Access key {ACCESS} may not write here (secret {SECRET})")
    proc = run_sync(secret_env(bucket, src), cwd=src)
    assert proc.returncode == 1, proc.stderr
    assert fault.hits >= 1
    assert f"failed: a.txt: AccessDenied: Access key {ACCESS} may not write here (secret ****)" in proc.stdout
    assert_no_secrets(proc)


def test_listing_failure_whose_error_message_echoes_the_key(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"a.txt": "a"})
    s3_server.inject("ListObjectsV2", status=403, code="AllAccessDisabled", times=None,
                     message=f"All access to this object has been disabled for {ACCESS} with {TOKEN}")
    proc = run_sync(secret_env(bucket, src), cwd=src)
    assert proc.returncode == 1, proc.stderr
    assert f'cannot list bucket "{bucket}": AllAccessDisabled: All access to this object has been disabled ' \
           f"for {ACCESS} with ****" in proc.stderr
    assert_no_secrets(proc)
    assert s3_server.writes(bucket) == []


def test_session_token_with_a_line_break_is_refused_unseen(run_sync, s3_server, bucket, make_tree):
    # Sent as a header, such a token would make the HTTP client quote it, escaped
    # (b'...\\n...'), in its error; it is refused as a setting before any request
    # instead, naming the variable and not the value.
    src = make_tree({"a.txt": "a"})
    token = "IQoJb3JpZ2luX2VjEDISTINCT\nTOKENSECONDHALF"
    env = {**plugin_env(bucket, src), "AWS_SESSION_TOKEN": token, "DEBUG": "1"}  # keys from the AWS chain
    proc = run_sync(env, cwd=src)
    assert proc.returncode == 2, proc.stderr
    assert "AWS_SESSION_TOKEN: contains a line break" in proc.stderr
    assert_no_secrets(proc, ["IQoJb3JpZ2luX2VjEDISTINCT", "TOKENSECONDHALF"])
    assert s3_server.requests == []


def test_settings_error_with_a_secret_pasted_into_the_wrong_setting(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"a.txt": "a"})
    proc = run_sync({**secret_env(bucket, src), "PLUGIN_ACL": SECRET}, cwd=src)
    assert proc.returncode == 2, proc.stderr
    assert "PLUGIN_ACL: '****' is not a canned ACL" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert_no_secrets(proc)
    assert s3_server.ops(bucket) == {}


# Loaded by the command's Python at start-up (sitecustomize on PYTHONPATH): plants
# a bug in the scan whose exception text quotes every secret, and logs it too.
_PLANTED_BUG = """
import logging
import drone_s3_sync.pipeline as pipeline

def scan(*args, **kwargs):
    try:
        raise KeyError("ACCESS")
    except KeyError:
        logging.getLogger("drone_s3_sync").debug("about to fail with SECRET", exc_info=True)
    raise RuntimeError("planted bug: ACCESS SECRET\\nTOKEN")

pipeline.scan = scan
"""


@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG=1", "plain"])
def test_internal_error_is_one_redacted_line_traceback_only_with_debug(run_sync, s3_server, bucket, make_tree,
                                                                       tmp_path, debug):
    src = make_tree({"a.txt": "a"})
    plant = tmp_path / "plant"
    plant.mkdir()
    code = _PLANTED_BUG.replace("ACCESS", ACCESS).replace("SECRET", SECRET).replace("TOKEN", TOKEN)
    (plant / "sitecustomize.py").write_text(code, encoding="utf-8")
    proc = run_sync({**secret_env(bucket, src, debug), "PYTHONPATH": str(plant)}, cwd=src)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("drone-s3-sync:")]
    assert lines == [f"drone-s3-sync: internal error: RuntimeError: planted bug: {ACCESS} **** ****"
                     + ("" if debug else " (set DEBUG=1 for the traceback)")]
    if debug:
        assert proc.stderr.count("Traceback (most recent call last)") == 2  # the logged one and the final one
        assert "about to fail with ****" in proc.stderr and f"KeyError: '{ACCESS}'" in proc.stderr
        assert f"RuntimeError: planted bug: {ACCESS} ****\n****" in proc.stderr
    else:
        assert "Traceback" not in proc.stderr
    assert_no_secrets(proc)
    assert s3_server.writes(bucket) == []
