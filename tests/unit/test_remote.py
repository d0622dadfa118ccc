"""The S3 and CloudFront clients' retry and timeout configuration (no requests)."""

from __future__ import annotations

import pytest

from drone_s3_sync.config import Settings
from drone_s3_sync.remote import CONNECT_TIMEOUT, Store


@pytest.mark.parametrize("values, attempts, timeout", [({}, 8, 60.0),
                                                        ({"max_attempts": "3", "read_timeout": "1.5"}, 3, 1.5),
                                                        ({"max_attempts": "1"}, 1, 60.0)])
def test_clients_retry_in_standard_mode_with_total_attempts(values, attempts, timeout):
    store = Store(Settings.create(bucket="my-bucket", endpoint="http://127.0.0.1:9", **values))
    for client in (store.client, store.cloudfront()):
        config = client.meta.config
        # total_max_attempts counts the first attempt; botocore's own `max_attempts` would not.
        assert config.retries == {"mode": "standard", "total_max_attempts": attempts}
        assert (config.read_timeout, config.connect_timeout) == (timeout, CONNECT_TIMEOUT)
