"""The transfer stage in process against the recording server: what the
command line cannot show (the progress bar is drawn only on a terminal)."""

from __future__ import annotations

import io
import os

from drone_s3_sync import pipeline
from drone_s3_sync.config import Settings
from drone_s3_sync.report import Reporter

MiB = 1024 * 1024


class CountingReporter(Reporter):
    def __init__(self):
        super().__init__(out=io.StringIO(), err=io.StringIO(), progress=True)
        self.advanced = 0

    def advance(self, byte_count: int) -> None:
        self.advanced += byte_count
        super().advance(byte_count)


def test_progress_bar_counts_every_byte_uploaded(s3_server, bucket, make_tree):
    files = {f"page-{i:02d}.html": os.urandom(1000 + i) for i in range(40)}
    files["big.bin"] = os.urandom(9 * MiB)  # multipart: progress comes part by part
    src = make_tree(files)
    reporter = CountingReporter()
    settings = Settings(bucket=bucket, source=str(src), endpoint=s3_server.endpoint, path_style=True,
                        max_concurrency=4)

    summary = pipeline.sync(settings, reporter=reporter)

    assert summary.exit_code == 0 and len(summary.outcomes) == len(files)
    assert reporter.advanced == sum(len(b) for b in files.values())
    bar = reporter.err.getvalue()
    assert "transfer:" in bar and "/9.04M" in bar  # drawn on err, total = every byte to upload
