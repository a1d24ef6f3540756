"""The pure parts of bench/daemon_bench.py: parsing, analysis, medians, CPU accounting.

No benchmark runs here; the process-tree test starts three small real processes.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "daemon_bench.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("daemon_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["daemon_bench"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("all", ("jobctl", "apscheduler", "apscheduler-memory")),
        ("both", ("jobctl", "apscheduler")),
        ("apscheduler-memory", ("apscheduler-memory",)),
        ("jobctl, apscheduler-memory,jobctl", ("jobctl", "apscheduler-memory")),
        ("apscheduler-memory,both", ("apscheduler-memory", "jobctl", "apscheduler")),
    ],
)
def test_scheduler_lists(bench: ModuleType, text: str, names: tuple[str, ...]) -> None:
    assert bench.parse_schedulers(text) == names


def test_unknown_names_are_refused(bench: ModuleType) -> None:
    with pytest.raises(ValueError, match="unknown scheduler 'cron'"):
        bench.parse_schedulers("jobctl,cron")
    with pytest.raises(ValueError, match="unknown workload"):
        bench.parse_kinds("spread,diagonal")
    with pytest.raises(ValueError):
        bench.parse_counts("1000,-5")
    assert bench.parse_kinds("aligned,spread,burst") == ("burst", "sustained")
    assert bench.parse_counts("1000,2_000") == [1000, 2000]


def iso(ms: int) -> str:
    """Epoch milliseconds as X-Jobctl-Scheduled-For text."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond // 1000:03d}Z"


def make_run(bench: ModuleType, recorded: Any, dropped: Any = ()) -> Any:
    """Two spread jobs (phases 0 and 500 ms) over a 3 s window: six slots expected.

    j000000 fires at 1000.000 (10 ms late) twice, 1001.000 (20 ms) and never at 1002.000;
    j000001 fires at 1000.500, 1001.500 and 1002.500 (30 ms late each).
    """
    workload = bench.Workload("sustained", 2, 3.0)
    records = [
        (1000.010, "j000000", "1", iso(1_000_000)),
        (1000.050, "j000000", "9", iso(1_000_000)),  # a duplicate of slot 1000.000
        (1001.020, "j000000", "2", iso(1_001_000)),
        (1000.530, "j000001", "3", iso(1_000_500)),
        (1001.530, "j000001", "4", iso(1_001_500)),
        (1002.530, "j000001", "5", iso(1_002_500)),
        (999.600, "j000001", "0", iso(999_500)),  # before the window: left out
    ]
    return bench.Run(
        "jobctl" if recorded is not None else "apscheduler-memory",
        workload,
        0.1,
        0.4,
        (1000.0, 1003.0),
        0.6,
        0.1,
        50.0,
        records,
        recorded,
        0,
        [],
        list(dropped),
    )


def test_analysis_counts_missed_skipped_duplicates_and_rows(bench: ModuleType) -> None:
    rows = [
        (1, "j000000", 1_000_000, "succeeded", 1),
        (2, "j000000", 1_001_000, "succeeded", 1),
        (3, "j000001", 1_000_500, "succeeded", 1),
        (4, "j000001", 1_001_500, "succeeded", 1),
        (5, "j000001", 1_002_500, "running", 1),  # received, not recorded ok
        (6, "j000000", 1_002_000, "skipped", 1),
        (7, "j000000", 1_002_000, "missed", 3),  # a gap of three slots
        (8, "j000000", 1_003_000, "skipped", 1),  # after the window
    ]
    metrics = bench.analyse(make_run(bench, rows))
    assert (metrics.expected, metrics.received) == (6, 5)
    assert (metrics.missed, metrics.duplicates, metrics.skipped) == (1, 1, 4)
    assert metrics.not_recorded == 1
    assert metrics.recorded_not_received == 0
    assert metrics.other_status == Counter({"running": 1, "skipped": 1, "missed": 3})
    assert metrics.late_p99 == pytest.approx(30.0, abs=0.01)
    assert metrics.cpu_ms_per_fire == pytest.approx(120.0)  # 0.6 s over 5 fires
    verdicts = {verdict.label: verdict.ok for verdict in metrics.verdicts()}
    assert verdicts == {
        "p99 lateness < 100 ms (spread)": True,
        "0 missed, 0 skipped, 0 duplicates": False,
        "every fire recorded": False,
    }
    assert not metrics.passed


def test_a_scheduler_that_records_nothing_is_judged_by_the_sink(bench: ModuleType) -> None:
    dropped = [("j000000", 1_002_000), ("j000000", 999_000)]  # the second is before the window
    metrics = bench.analyse(make_run(bench, None, dropped))
    assert metrics.not_recorded is None and metrics.recorded_not_received is None
    assert (metrics.missed, metrics.skipped, metrics.duplicates) == (1, 1, 1)
    verdicts = {verdict.label: verdict.ok for verdict in metrics.verdicts()}
    assert verdicts["every fire recorded (records nothing)"] is None
    assert bench.recorded_text(metrics) == "n/a"
    assert bench.fmt(metrics.not_recorded) == "n/a"


def test_clean_unrecorded_run_passes(bench: ModuleType) -> None:
    run = make_run(bench, None)
    run.records = [record for record in run.records if record[2] != "9"]
    run.records.append((1002.020, "j000000", "6", iso(1_002_000)))
    metrics = bench.analyse(run)
    assert (metrics.missed, metrics.skipped, metrics.duplicates) == (0, 0, 0)
    assert metrics.passed  # n/a does not fail the target


def test_medians_over_rounds(bench: ModuleType) -> None:
    base = bench.analyse(make_run(bench, None))
    rounds = [
        replace(base, late_p99=40.0, cpu_ms_per_fire=0.30, missed=0, notes=["same", "a"]),
        replace(base, late_p99=math.nan, cpu_ms_per_fire=0.20, missed=5, notes=["same"]),
        replace(base, late_p99=20.0, cpu_ms_per_fire=0.25, missed=0, notes=["b", "same"]),
    ]
    median = bench.median_metrics(rounds)
    assert median.late_p99 == 40.0  # a round with no fires counts as the worst
    assert median.cpu_ms_per_fire == 0.25
    assert median.missed == 0
    assert median.notes == ["same", "round 1: a", "round 3: b"]
    assert median.not_recorded is None
    assert (median.rounds, median.rounds_passed) == (3, 0)  # each round has its duplicate
    assert median.duplicates == 1
    assert bench.median_of([1, 2, 3, 4]) == 3  # whole numbers stay whole
    assert bench.median_of([1.0, 2.0, 3.0, 4.0]) == 2.5


def test_highest_n_ratio_is_a_bound_at_the_top_step(bench: ModuleType) -> None:
    assert bench.held_ratio(2000, 4000, 10000) == "0.50x"
    assert bench.held_ratio(10000, 4000, 10000) == ">= 2.50x"
    assert bench.held_ratio(2000, 10000, 10000) == "<= 0.20x"
    assert bench.held_ratio(None, 3000, 10000) == "-"
    assert bench.held_cell(10000, True) == "10,000+"


BURNER = textwrap.dedent(
    """
    import sys, time
    while time.process_time() < 0.3:
        pass
    if sys.argv[1] == "stay":
        print("burnt", flush=True)
        sys.stdin.read()
    """
)

PARENT = textwrap.dedent(
    """
    import subprocess, sys
    print("started", flush=True)
    sys.stdin.readline()
    subprocess.run([sys.executable, "-c", BURNER, "exit"], check=True)
    stay = subprocess.Popen(
        [sys.executable, "-c", BURNER, "stay"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    stay.stdout.readline()
    print("done", flush=True)
    sys.stdin.readline()
    stay.stdin.close()
    stay.wait()
    """
)


def test_cpu_of_the_process_tree_counts_reaped_and_live_children(bench: ModuleType) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", f"BURNER = {BURNER!r}\n{PARENT}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdin is not None and parent.stdout is not None
    try:
        assert parent.stdout.readline() == "started\n"
        own_before = bench.cpu_seconds(parent.pid)
        tree_before, count_before = bench.tree_cpu_seconds(parent.pid)
        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert parent.stdout.readline() == "done\n"
        tree_after, count_after = bench.tree_cpu_seconds(parent.pid)
        own_after = bench.cpu_seconds(parent.pid)
        assert (count_before, count_after) == (1, 2)
        # Two children of 0.3 s each: one reaped (in the parent's cutime), one alive.
        assert tree_after - tree_before >= 0.55
        assert own_after - own_before < 0.3  # the parent alone burnt little
        assert bench.tree_peak_rss_mb(parent.pid) > bench.peak_rss_mb(parent.pid)
        # A pid whose start time does not match is another process: never killed.
        started = bench.start_time(parent.pid)
        assert isinstance(started, int)
        assert bench.kill_left([(parent.pid, started - 1)]) == 0
        assert parent.poll() is None
    finally:
        parent.stdin.close()
        parent.wait(timeout=30)
