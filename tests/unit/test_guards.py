"""The delete guards (guards.py): a pure function of the plan, the settings and two counts."""

from __future__ import annotations

from typing import Optional

import pytest

from drone_s3_sync import guards
from drone_s3_sync.config import Settings, build_settings
from drone_s3_sync.model import Action, Kind, Plan, Reason


def make(**raw) -> Settings:
    raw.setdefault("bucket", "my-bucket")
    raw.setdefault("delete", True)
    return build_settings(raw)


def plan_with(deletes: int, uploads: int = 0) -> Plan:
    actions = [Action(Kind.DELETE, f"old/{i}", Reason.ORPHAN) for i in range(deletes)]
    actions += [Action(Kind.UPLOAD, f"new/{i}", Reason.NEW) for i in range(uploads)]
    return Plan(actions)


def refusal(settings: Settings, deletes: int, remote_objects: int, local_files: int = 5) -> Optional[str]:
    return guards.refusal(plan_with(deletes), settings, local_files=local_files, remote_objects=remote_objects)


# ---------------------------------------------------------------- empty source


def test_empty_source_with_delete_is_refused() -> None:
    message = refusal(make(source="public", target="/site"), deletes=40, remote_objects=40, local_files=0)
    assert message is not None
    for words in ("'public'", "no files", "s3://my-bucket/site/", "40 objects", "Nothing was written",
                  "allow_empty_source", "PLUGIN_ALLOW_EMPTY_SOURCE=true"):
        assert words in message, message


def test_empty_source_with_delete_is_refused_even_when_the_target_is_empty() -> None:
    # What a broken build looks like does not depend on what is in the bucket.
    assert refusal(make(), deletes=0, remote_objects=0, local_files=0) is not None


def test_empty_source_allowed() -> None:
    assert refusal(make(allow_empty_source=True), deletes=40, remote_objects=40, local_files=0) is None


def test_empty_source_without_delete_is_not_refused() -> None:
    assert refusal(make(delete=False), deletes=0, remote_objects=40, local_files=0) is None


def test_allow_empty_source_does_not_lift_max_delete() -> None:
    message = refusal(make(allow_empty_source=True, max_delete="10"), deletes=40, remote_objects=40, local_files=0)
    assert message is not None and "max_delete" in message


# ---------------------------------------------------------------- max_delete


@pytest.mark.parametrize(
    "limit, deletes, total, refused",
    [
        ("10", 10, 100, False),
        ("10", 11, 100, True),
        ("0", 0, 100, False),
        ("0", 1, 100, True),
        ("10%", 10, 100, False),
        ("10%", 11, 100, True),
        ("10%", 1, 9, True),  # 10% of 9 is 0.9: not even one delete
        ("10%", 1, 10, False),
        ("12.5%", 1, 8, False),
        ("12.5%", 2, 8, True),
        ("0%", 1, 1000, True),
        ("100%", 1000, 1000, False),
        ("50%", 0, 0, False),
    ],
)
def test_max_delete_limits(limit: str, deletes: int, total: int, refused: bool) -> None:
    assert (refusal(make(max_delete=limit), deletes, total) is not None) is refused


def test_no_limit_by_default() -> None:
    assert refusal(make(), deletes=100_000, remote_objects=100_000) is None


def test_max_delete_ignored_without_delete() -> None:
    assert refusal(make(delete=False, max_delete="0"), deletes=0, remote_objects=10) is None


def test_count_message_says_how_many_the_limit_the_share_and_how_to_override() -> None:
    message = refusal(make(max_delete="10", target="site"), deletes=60, remote_objects=80)
    assert message is not None
    for words in ("would delete 60 objects of the 80", "s3://my-bucket/site/", "(75%)", "max_delete is 10",
                  "Nothing was written", "raise max_delete (PLUGIN_MAX_DELETE, --max-delete) to 60 or 75%",
                  "or remove it"):
        assert words in message, message


def test_percentage_message_names_the_count_it_allows() -> None:
    message = refusal(make(max_delete="10%"), deletes=1, remote_objects=3)
    assert message is not None
    assert "1 object of the 3" in message and "(33.3%)" in message, message
    assert "max_delete is 10% (at most 0 objects of 3)" in message, message
    assert "to 1 or 34%" in message, message


def test_only_deletes_count() -> None:
    plan = plan_with(deletes=2, uploads=50)
    assert guards.refusal(plan, make(max_delete="2"), local_files=50, remote_objects=4) is None
    assert guards.refusal(plan, make(max_delete="1"), local_files=50, remote_objects=4) is not None
