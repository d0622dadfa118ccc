"""The README's settings reference names every setting with all its variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drone_s3_sync.config import OPTIONS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_every_setting_has_a_row_with_its_variables(option) -> None:
    row = re.search(r"^\| `%s` \| ([^|]*) \|" % re.escape(option.name), README, re.MULTILINE)
    assert row, f"README.md has no settings row for `{option.name}`"
    for var in option.env:
        assert f"`{var}`" in row.group(1), f"README.md's row for `{option.name}` does not name {var}"


def test_the_exit_code_table_lists_exactly_the_statuses_the_error_classes_define() -> None:
    from drone_s3_sync.errors import exit_statuses

    rows = re.findall(r"^\| (\d+(?: / \d+)?) \| ", README.split("| exit | meaning |", 1)[1].split("\n\n", 1)[0], re.M)
    assert rows == [code for code, _ in exit_statuses()]
    # One table: the exit codes are not listed again elsewhere.
    assert README.count("| exit | meaning |") == 1
