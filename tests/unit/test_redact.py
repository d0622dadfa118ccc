"""Secrets are masked wherever text is printed: log records with their
tracebacks, report lines, exception text, the CLI's last-resort message."""

from __future__ import annotations

import io
import logging
from typing import Iterator

import pytest

from drone_s3_sync import cli
from drone_s3_sync.config import Settings
from drone_s3_sync.errors import RemoteError
from drone_s3_sync.model import Action, Kind, Outcome, Plan, Reason, Summary
from drone_s3_sync.redact import MASK, Redactor, one_line
from drone_s3_sync.report import Reporter

ACCESS = "AKIDUNITTEST4242"
SECRET = "unit/Secret+Value=="
TOKEN = "unit-session\ntoken-value"


def test_masks_every_form_of_each_secret() -> None:
    redact = Redactor([ACCESS, SECRET, TOKEN, "", "abc", None])  # type: ignore[list-item]
    assert redact(f"key {ACCESS} and {SECRET}") == f"key {MASK} and {MASK}"
    assert redact("header b'unit-session\\ntoken-value'") == f"header b'{MASK}'"  # escaped in a repr
    assert redact(repr(TOKEN.encode())) == f"b'{MASK}'"
    assert redact("x-amz-security-token=unit-session%0Atoken-value") == f"x-amz-security-token={MASK}"  # URL
    assert redact("unit%2FSecret%2BValue%3D%3D") == MASK
    assert redact("abc stays: too short to be a secret") == "abc stays: too short to be a secret"


def test_secrets_are_trimmed_and_the_longest_is_masked_first() -> None:
    redact = Redactor([" AKIDUNIT ", "AKIDUNITTEST4242"])
    assert redact("AKIDUNITTEST4242 / AKIDUNIT") == f"{MASK} / {MASK}"


def test_add_learns_more_secrets() -> None:
    redact = Redactor([ACCESS])
    redact.add([SECRET])
    assert redact(f"{ACCESS}{SECRET}") == MASK + MASK


def test_one_line() -> None:
    assert one_line(ValueError("bad\n  value\r\nhere")) == "ValueError: bad value here"
    assert one_line(KeyboardInterrupt()) == "KeyboardInterrupt"


# ---------------------------------------------------------------- logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, ours = logging.getLogger(), logging.getLogger("drone_s3_sync")
    saved = (root.handlers[:], root.level, ours.level)
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    ours.setLevel(saved[2])


def test_log_records_are_masked_with_their_traceback_and_stack(restore_logging, capsys) -> None:
    cli.setup_logging(True, Redactor([ACCESS, SECRET]))
    log = logging.getLogger("drone_s3_sync")
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        log.debug("key %s", ACCESS, exc_info=True, stack_info=True)
    logging.getLogger("botocore").warning("echo %s", SECRET)  # any logger, not only ours
    err = capsys.readouterr().err
    assert f"key {MASK}" in err and f"RuntimeError: failed with {MASK}" in err
    assert "Stack (most recent call last)" in err and f"echo {MASK}" in err
    assert ACCESS not in err and SECRET not in err


# ---------------------------------------------------------------- the CLI's catch-all


@pytest.mark.parametrize("debug", ["1", ""])
def test_unexpected_exception_is_one_masked_line(restore_logging, monkeypatch, capsys, tmp_path, debug) -> None:
    import drone_s3_sync.pipeline as pipeline

    def broken(*args, **kwargs):
        raise KeyError(f"{ACCESS}\n{SECRET}")

    monkeypatch.setattr(pipeline, "sync", broken)
    environ = {"PLUGIN_BUCKET": "my-bucket", "PLUGIN_SOURCE": str(tmp_path), "DEBUG": debug,
               "PLUGIN_ACCESS_KEY": ACCESS, "PLUGIN_SECRET_KEY": SECRET}
    assert cli.run([], environ) == cli.EXIT_FAILED
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("drone-s3-sync:")]
    # The access key id is not a secret (see redact.py): only the secret key is masked.
    assert len(lines) == 1 and lines[0].startswith(f"drone-s3-sync: internal error: KeyError: '{ACCESS}\\n{MASK}'")
    assert ("Traceback (most recent call last)" in err) is bool(debug)
    assert SECRET not in out + err


def test_unexpected_exception_while_reading_settings(restore_logging, monkeypatch, capsys) -> None:
    from drone_s3_sync import sources

    def broken(*args, **kwargs):
        raise TypeError(f"cannot handle {SECRET}")

    monkeypatch.setattr(sources, "from_sources", broken)
    assert cli.run([], {"PLUGIN_SECRET_KEY": SECRET}) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith(f"drone-s3-sync: internal error: TypeError: cannot handle {MASK}")
    assert SECRET not in err


def test_secret_given_as_a_flag_is_masked_too(restore_logging, monkeypatch, capsys, tmp_path) -> None:
    import drone_s3_sync.pipeline as pipeline

    def broken(*args, **kwargs):
        raise RemoteError(f"refused {SECRET}")

    monkeypatch.setattr(pipeline, "sync", broken)
    code = cli.run(["--bucket", "my-bucket", "--source", str(tmp_path), "--access-key", ACCESS, "--secret-key", SECRET], {})
    assert code == 1
    assert capsys.readouterr().err == f"drone-s3-sync: error: refused {MASK}\n"


def test_keyboard_interrupt_is_not_an_internal_error(restore_logging, monkeypatch, capsys, tmp_path) -> None:
    import drone_s3_sync.pipeline as pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "sync", interrupted)
    assert cli.run([], {"PLUGIN_BUCKET": "my-bucket", "PLUGIN_SOURCE": str(tmp_path)}) == cli.EXIT_INTERRUPTED
    assert "internal error" not in capsys.readouterr().err


# ---------------------------------------------------------------- report and exceptions


def test_reporter_masks_failure_reasons_and_warnings() -> None:
    out, err = io.StringIO(), io.StringIO()
    reporter = Reporter(out, err, progress=False, redact=Redactor([ACCESS]))
    action = Action(Kind.UPLOAD, "a.txt", Reason.NEW, size=1)
    failure = Outcome(action, ok=False, error=f"AccessDenied: key {ACCESS} may not write")
    reporter.done(failure)
    reporter.warn(f"something about {ACCESS}")
    summary = Summary(plan=Plan([action]), outcomes=[failure], errors=[f"x: {ACCESS}"])
    reporter.summary(summary)
    assert ACCESS not in out.getvalue() + err.getvalue()
    assert f"failed: a.txt: AccessDenied: key {MASK} may not write" in out.getvalue()
    assert f"warning: something about {MASK}" in err.getvalue()
    assert f"error: x: {MASK}" in out.getvalue()


def test_python_api_masks_the_keys_in_its_exceptions(tmp_path) -> None:
    from drone_s3_sync.pipeline import sync

    class RefusingStore:
        def list(self, prefix):
            raise RemoteError(f'cannot list bucket "b": denied for {ACCESS} signed with {SECRET}')

    settings = Settings(bucket="b", source=str(tmp_path), access_key=ACCESS, secret_key=SECRET)
    with pytest.raises(RemoteError) as info:
        sync(settings, store=RefusingStore(), reporter=Reporter(io.StringIO(), io.StringIO(), progress=False))
    assert str(info.value) == f'cannot list bucket "b": denied for {ACCESS} signed with {MASK}'
