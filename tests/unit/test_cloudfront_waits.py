"""CreateInvalidation retried on TooManyInvalidationsInProgress, and the
`cloudfront_wait` polling, with a fake client and a fake clock: no real time
passes. (The end-to-end tests against the local server are in
tests/integration/test_cloudfront_e2e.py.)"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import pytest
from botocore.exceptions import ClientError

from drone_s3_sync import invalidate
from drone_s3_sync.invalidate import InvalidationError, create_invalidation_retrying, wait_for_invalidations


def client_error(code: str, operation: str = "CreateInvalidation") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} message"},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


TOO_MANY = client_error("TooManyInvalidationsInProgress")


class Clock:
    """monotonic() and sleep() of a clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: List[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        assert len(self.sleeps) < 1000, "still sleeping after 1000 waits: a loop without an end"
        self.sleeps.append(seconds)
        self.now += seconds


Answer = Union[BaseException, Dict[str, Any], str]


class FakeCloudFront:
    """Answers CreateInvalidation from `creates` and GetInvalidation from
    `statuses[(dist, id)]` (a status text or an exception), in order; the last
    answer repeats. Records every call with the clock's time."""

    def __init__(self, clock: Clock, creates: Sequence[Answer] = (),
                 statuses: Optional[Dict[tuple, Sequence[Answer]]] = None) -> None:
        self.clock = clock
        self.creates = list(creates)
        self.statuses = {k: list(v) for k, v in (statuses or {}).items()}
        self.calls: List[tuple] = []

    @staticmethod
    def _next(answers: List[Answer]) -> Answer:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def create_invalidation(self, **kwargs: Any) -> dict:
        self.calls.append(("create", self.clock.now, kwargs))
        answer = self._next(self.creates)
        return {"Invalidation": {"Id": answer, "Status": "InProgress"}}

    def get_invalidation(self, DistributionId: str, Id: str) -> dict:
        self.calls.append(("get", self.clock.now, (DistributionId, Id)))
        return {"Invalidation": {"Id": Id, "Status": self._next(self.statuses[(DistributionId, Id)])}}


def retrying(client: FakeCloudFront, clock: Clock, lines: List[str], jitter: float = 1.0, **kwargs: Any) -> str:
    return create_invalidation_retrying(client, "E1XYZ", ["/a", "/b/*"], caller_reference="ref-1",
                                        notify=lines.append, sleep=clock.sleep, clock=clock,
                                        jitter=lambda: jitter, **kwargs)


# --- TooManyInvalidationsInProgress ------------------------------------------------


def test_retried_with_the_same_caller_reference_until_accepted() -> None:
    clock, lines = Clock(), []
    client = FakeCloudFront(clock, creates=[TOO_MANY, TOO_MANY, "I2ABC"])
    assert retrying(client, clock, lines) == "I2ABC"
    assert clock.sleeps == [1.0, 2.0]
    batches = [call[2]["InvalidationBatch"] for call in client.calls]
    assert len(batches) == 3
    # One invalidation, sent three times: a retry after a lost answer is
    # recognised by CloudFront instead of starting a second invalidation.
    assert all(b == {"Paths": {"Quantity": 2, "Items": ["/a", "/b/*"]}, "CallerReference": "ref-1"} for b in batches)
    assert lines == [
        "CloudFront: E1XYZ has too many invalidations in progress (TooManyInvalidationsInProgress); retrying in 1 s",
        "CloudFront: E1XYZ has too many invalidations in progress (TooManyInvalidationsInProgress); retrying in 2 s",
    ]


def test_backoff_doubles_up_to_a_minute_and_gives_up_after_five_minutes() -> None:
    clock, lines = Clock(), []
    client = FakeCloudFront(clock, creates=[TOO_MANY])
    with pytest.raises(InvalidationError) as info:
        retrying(client, clock, lines)
    assert clock.sleeps == [1, 2, 4, 8, 16, 32, 60, 60, 60, 57]  # the last wait ends at the limit
    assert sum(clock.sleeps) == invalidate.RETRY_TIME == 300
    assert len(client.calls) == len(clock.sleeps) + 1  # one last attempt at the limit
    assert client.calls[-1][1] - client.calls[0][1] == 300
    assert {call[2]["InvalidationBatch"]["CallerReference"] for call in client.calls} == {"ref-1"}
    assert str(info.value).startswith("TooManyInvalidationsInProgress: still refused after retrying for 300 s")
    assert "the files are in S3" in str(info.value)
    assert len(lines) == len(clock.sleeps)


def test_jitter_waits_between_half_and_all_of_the_step() -> None:
    clock, lines = Clock(), []
    client = FakeCloudFront(clock, creates=[TOO_MANY] * 8 + ["I1"])
    retrying(client, clock, lines, jitter=0.0)
    assert clock.sleeps == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert lines[0].endswith("retrying in 0.5 s")


def test_the_schedule_is_read_from_the_module_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(invalidate, "RETRY_FIRST_DELAY", 0.25)
    monkeypatch.setattr(invalidate, "RETRY_MAX_DELAY", 1.0)
    monkeypatch.setattr(invalidate, "RETRY_TIME", 3.0)
    clock, lines = Clock(), []
    client = FakeCloudFront(clock, creates=[TOO_MANY])
    with pytest.raises(InvalidationError, match="after retrying for 3 s"):
        retrying(client, clock, lines)
    assert clock.sleeps == [0.25, 0.5, 1.0, 1.0, 0.25]


@pytest.mark.parametrize("code", ["AccessDenied", "NoSuchDistribution", "InvalidArgument", "BatchTooLarge"])
def test_other_errors_are_not_retried(code: str) -> None:
    clock, lines = Clock(), []
    client = FakeCloudFront(clock, creates=[client_error(code), "I1"])
    with pytest.raises(ClientError) as info:
        retrying(client, clock, lines)
    assert info.value.response["Error"]["Code"] == code
    assert len(client.calls) == 1 and clock.sleeps == [] and lines == []


def test_botocore_does_not_retry_too_many_invalidations_itself() -> None:
    # The reason for the loop: botocore's standard retry mode gives up at once.
    import botocore.session
    from botocore.awsrequest import AWSResponse
    from botocore.retries import standard

    operation = botocore.session.get_session().get_service_model("cloudfront").operation_model("CreateInvalidation")

    def retried(code: str) -> bool:
        context = standard.RetryContext(attempt_number=1, operation_model=operation,
                                        parsed_response={"Error": {"Code": code}},
                                        http_response=AWSResponse("https://cloudfront", 400, {}, None))
        return standard.StandardRetryConditions(max_attempts=8).is_retryable(context)

    assert retried("Throttling")  # the check works
    assert not retried("TooManyInvalidationsInProgress")


# --- cloudfront_wait ------------------------------------------------------------------


def waiting(client: FakeCloudFront, clock: Clock, lines: List[str], invalidations: Sequence[tuple],
            timeout: float = 900.0, **kwargs: Any) -> List[str]:
    return wait_for_invalidations(client, invalidations, timeout=timeout, notify=lines.append,
                                  sleep=clock.sleep, clock=clock, **kwargs)


def test_polls_at_once_then_every_fifteen_seconds_until_completed() -> None:
    clock, lines = Clock(), []
    client = FakeCloudFront(clock, statuses={("E1XYZ", "I2ABC"): ["InProgress", "InProgress", "Completed"]})
    assert waiting(client, clock, lines, [("E1XYZ", "I2ABC")]) == []
    assert [(c[0], c[1] - 1000) for c in client.calls] == [("get", 0), ("get", 15), ("get", 30)]
    assert clock.sleeps == [15, 15]
    assert lines == [
        "CloudFront: waiting for invalidation I2ABC of E1XYZ (InProgress, 0 s)",
        "CloudFront: waiting for invalidation I2ABC of E1XYZ (InProgress, 15 s)",
        "CloudFront: invalidation I2ABC of E1XYZ completed (30 s)",
    ]


def test_several_distributions_are_waited_for_together() -> None:
    clock, lines = Clock(), []
    client = FakeCloudFront(clock, statuses={("E1", "IA"): ["InProgress", "Completed"],
                                             ("E2", "IB"): ["InProgress", "InProgress", "Completed"]})
    assert waiting(client, clock, lines, [("E1", "IA"), ("E2", "IB")]) == []
    assert [(c[2], c[1] - 1000) for c in client.calls] == [
        (("E1", "IA"), 0), (("E2", "IB"), 0), (("E1", "IA"), 15), (("E2", "IB"), 15), (("E2", "IB"), 30)]
    assert lines[-1] == "CloudFront: invalidation IB of E2 completed (30 s)"
    assert "CloudFront: invalidation IA of E1 completed (15 s)" in lines


def test_gives_up_at_the_timeout() -> None:
    clock, lines = Clock(), []
    client = FakeCloudFront(clock, statuses={("E1XYZ", "I2ABC"): ["InProgress"]})
    problems = waiting(client, clock, lines, [("E1XYZ", "I2ABC")], timeout=40,
                       timeout_name="PLUGIN_CLOUDFRONT_WAIT_TIMEOUT")
    assert clock.sleeps == [15, 15, 10]  # the last poll is at the timeout
    assert len(client.calls) == 4
    assert problems == [
        "CloudFront invalidation I2ABC of E1XYZ did not complete within 40 s (still InProgress); the files are in "
        "S3 and CloudFront goes on with the invalidation; raise PLUGIN_CLOUDFRONT_WAIT_TIMEOUT to wait longer"]
    assert len(lines) == 3 and all(line.startswith("CloudFront: waiting for invalidation I2ABC") for line in lines)


def test_poll_interval_is_read_from_the_module_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(invalidate, "POLL_INTERVAL", 0.5)
    clock, lines = Clock(), []
    client = FakeCloudFront(clock, statuses={("E1", "I1"): ["InProgress", "InProgress", "Completed"]})
    assert waiting(client, clock, lines, [("E1", "I1")]) == []
    assert clock.sleeps == [0.5, 0.5]


def test_a_status_in_capitals_counts_as_completed() -> None:
    # moto answers "COMPLETED"; CloudFront "Completed".
    clock, lines = Clock(), []
    client = FakeCloudFront(clock, statuses={("E1", "I1"): ["COMPLETED"]})
    assert waiting(client, clock, lines, [("E1", "I1")]) == []
    assert clock.sleeps == [] and lines == ["CloudFront: invalidation I1 of E1 completed (0 s)"]


def test_an_unreadable_invalidation_is_a_problem_and_the_others_are_still_waited_for() -> None:
    clock, lines = Clock(), []
    client = FakeCloudFront(clock, statuses={("E1", "I1"): [client_error("AccessDenied", "GetInvalidation")],
                                             ("E2", "I2"): ["InProgress", "Completed"]})
    problems = waiting(client, clock, lines, [("E1", "I1"), ("E2", "I2")],
                       describe=lambda exc: exc.response["Error"]["Code"])
    assert problems == ["cannot check CloudFront invalidation I1 of E1: AccessDenied"]
    assert [c[2] for c in client.calls] == [("E1", "I1"), ("E2", "I2"), ("E2", "I2")]
    assert lines[-1] == "CloudFront: invalidation I2 of E2 completed (15 s)"
