"""botocore's standard retry rules for the attempts crtupload.py sends on the
CRT: which failures are retried, the wait before each retry, and the run's
retry budget. The CRT client makes one attempt a request; every retry is
decided here, so max_attempts counts every attempt as on the botocore path.

The CRT passes on the status and body of an error answer, except a 5xx one:
then it tells only "internal error" (500, 502, 504) or "slow down" (503).
Such a failure, a dropped connection or an attempt without an answer within
the read timeout is retried as botocore retries a 5xx, a connection error or
a read timeout; its last attempt goes through botocore (`Decision.last`), so
that the error reported is the server's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from botocore.awsrequest import AWSResponse, HeadersDict
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from botocore.retries import quota, standard

from .errors import StoreError, error_code, error_text


@dataclass
class Decision:
    """What to do after a failed attempt: `error` ends the upload; else it is
    sent again after `delay` seconds, through botocore when `last`."""

    error: Optional[StoreError] = None
    delay: float = 0.0
    last: bool = False
    budget: int = 0  # retry budget taken, given back by `succeeded`


class _Timeout(ReadTimeoutError):
    """An attempt cancelled for want of an answer, as botocore sees a read timeout."""

    def __init__(self):
        super().__init__(endpoint_url="")


class _Dropped(ConnectionClosedError):
    """A network failure of the CRT's, as botocore sees a connection lost."""

    def __init__(self, name: str):
        super().__init__(endpoint_url=name)


class _Status:
    """A 5xx answer the CRT told only by name: 503 for throttling, else 500."""

    def __init__(self, name: str):
        self.status_code = 503 if name == "AWS_ERROR_S3_SLOW_DOWN" else 500
        self.headers: Dict[str, str] = {}


class _Throttling(standard.ThrottlingErrorDetector):
    """botocore's throttling detection, and the CRT's 503 (S3's 503 is SlowDown)."""

    def __init__(self):
        super().__init__(standard.RetryEventAdapter())

    def is_throttling_error_from_context(self, context):
        if isinstance(context.http_response, _Status):
            return context.http_response.status_code == 503
        return super().is_throttling_error_from_context(context)


class Retries:
    """The retry decisions of one run's CRT uploads (thread-safe)."""

    def __init__(self, client, operation, max_attempts: int):
        self._parser, self._operation, self.max_attempts = client._response_parser, operation, max_attempts
        self._retryable = standard.StandardRetryConditions(max_attempts=max_attempts)
        throttling = _Throttling()
        self._backoff = standard.ExponentialBackoff(throttling_detector=throttling)
        self._quota = quota.RetryQuota()
        self._budget = standard.RetryQuotaChecker(self._quota, throttling_detector=throttling)

    def answered(self, attempts: int, status_code: int, headers, body: Optional[bytes]) -> Decision:
        """An error answer with its body (a 4xx): retried when botocore would
        (throttling codes, 429, RequestTimeout, ...), else the server's reason."""
        response = AWSResponse(None, status_code, HeadersDict(dict(headers)), None)
        parsed = self._parser.parse({"headers": response.headers, "status_code": status_code, "body": body or b""},
                                    self._operation.output_shape)
        context = standard.RetryContext(attempts, self._operation, parsed, response)
        if self._retryable.is_retryable(context) and self._budget.acquire_retry_quota(context):
            return Decision(delay=self._backoff.delay_amount(context),
                            budget=context.request_context.get("retry_quota_capacity", 0))
        failure = ClientError(parsed, "PutObject")
        return Decision(error=StoreError(error_text(failure), error_code(failure)))

    def failed(self, attempts: int, name: str, message: str, timed_out: bool) -> Decision:
        """A failure without an answer to show: no answer in time, a dropped
        connection, or a 5xx known only by the CRT's error `name`."""
        caught = _Timeout() if timed_out else _Dropped(name) if "S3_" not in name else None
        context = standard.RetryContext(attempts, self._operation, caught_exception=caught,
                                        http_response=None if caught else _Status(name))
        if attempts >= self.max_attempts - 1:
            return Decision(delay=self._backoff.delay_amount(context), last=True)
        if not self._budget.acquire_retry_quota(context):
            return Decision(error=StoreError(f"{name}: {message} (the run's retry budget is spent)", ""))
        return Decision(delay=self._backoff.delay_amount(context),
                        budget=context.request_context.get("retry_quota_capacity", 0))

    def succeeded(self, budget: int) -> None:
        """An attempt succeeded: the budget its retry took comes back, or, as
        botocore does after a success at the first attempt, one unit."""
        self._quota.release(budget or 1)
