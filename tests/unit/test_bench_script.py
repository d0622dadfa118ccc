"""scripts/bench.py: the server choice, CPU accounting and the tables (no tool is run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import bench  # noqa: E402


def test_fast_server_command_carries_the_latency(tmp_path: Path) -> None:
    fast = bench.Server(tmp_path / "log", "fast", 30)
    argv = fast.argv(tmp_path / "port")
    assert argv[1] == str(bench.FAST_S3)
    assert argv[argv.index("--latency-ms") + 1] == "30"
    assert "30 ms latency" in fast.describe()
    assert bench.Server(tmp_path / "log").argv(tmp_path / "port")[2] == "--serve"  # moto stays the default


def test_latency_needs_the_fast_server() -> None:
    with pytest.raises(SystemExit) as err:
        bench.main(["--server", "moto", "--latency-ms", "5"])
    assert err.value.code == 2


def test_cpu_per_request_is_shown_only_with_enough_requests() -> None:
    assert bench.cpu_text(2.5, 5000) == "2.5 s (0.50 ms/req)"
    assert bench.cpu_text(0.25, 2) == "0.25 s"
    assert bench.cpu_text(None, 10) == "-"


def test_server_cost_sums_measured_runs_only() -> None:
    ok = bench.Result(ops={"PutObject": 100}, server_cpu_s=0.02)
    failed = bench.Result(ops={"PutObject": 50}, server_cpu_s=1.0, error="exit 1")
    unmeasured = bench.Result(ops={"PutObject": 10})
    cpu, count = bench.server_cost({("site", "first", "a"): [ok, failed], ("site", "first", "b"): [unmeasured]})
    assert (round(cpu, 3), count) == (0.02, 100)


def test_children_cpu_counts_the_tool_process_tree() -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # A child that burns CPU in a grandchild it waits for.
    subprocess.run([sys.executable, "-c", "import subprocess, sys; subprocess.run([sys.executable, '-c', "
                    "'x = 0\\nfor i in range(3_000_000): x += i'])"], check=True)
    assert bench.children_cpu_since(before) > 0


def test_scale_trees_run_first_upload_and_no_change() -> None:
    assert bench.scenarios_of("tiny-10000") == ("first", "nochange")
    assert bench.scenarios_of("site") == bench.SCENARIOS
    assert sorted(["tiny-50000", "artifacts", "tiny-10000", "site"], key=bench.dataset_order) == [
        "site", "artifacts", "tiny-10000", "tiny-50000"]
