"""Start-up: what `--help` and building the argument parser import.

Every run builds the parser; boto3, botocore and s3transfer cost a large share
of a run with nothing to do, so their versions for --version come from the
installed packages' metadata (tests/unit/test_config.py::test_cli_version
checks that text)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("boto3", "botocore", "s3transfer", "urllib3")


def imported_after(code: str) -> list:
    """Top-level packages from HEAVY that a fresh interpreter has imported after `code`."""
    probe = (code + "\nimport json, sys\n"
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_building_the_parser_imports_no_aws_library() -> None:
    assert imported_after("from drone_s3_sync.sources import build_parser\nbuild_parser().parse_args([])") == []


def test_help_imports_no_aws_library() -> None:
    code = ("import contextlib, io\nfrom drone_s3_sync import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    assert cli.run(['--help'], {}) == 0")
    assert imported_after(code) == []

