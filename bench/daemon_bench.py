"""Daemon benchmark: jobctl's daemon side by side with APScheduler 3 on the same workloads.

    python bench/daemon_bench.py compare -n 1000,2000,3000 --seconds 20 --repeat 3
    python bench/daemon_bench.py ramp --seconds 20 --repeat 3
    python bench/daemon_bench.py sustained -n 1000 --seconds 60
    python bench/daemon_bench.py burst -n 1000 --seconds 30
    python bench/daemon_bench.py idle -n 100000 --seconds 30 --repeat 1
    ... [--scheduler all|both|jobctl|apscheduler|apscheduler-memory|NAME,NAME]
    ... [--repeat 3] [--workloads spread,aligned] [--warmup 2] [--drain 2] [--json OUT.json]
    ... [--daemon-arg=--some-flag ...] [--profile OUT.prof] [--py-spy OUT.txt] [--keep]
    ... [--timings]  (jobctl's jobs with `--timings`: compare cpu ms per fire with and without)

Schedulers (`--scheduler`, a name, a comma list, `both` = jobctl,apscheduler, or `all`, the
default):

* jobctl: `jobctl apply` of the jobs, then `jobctl daemon --log-level warning` (plus any
  `--daemon-arg`), every run recorded in its SQLite database.
* apscheduler: APScheduler 3.11 recording every run in SQLite (below): how a user would keep a
  history with it.
* apscheduler-memory: the same APScheduler process recording nothing at all (issue 18's
  "scheduler that records nothing"): MemoryJobStore, one aiohttp session, the same headers.
  Its runs cannot be checked against rows, so "every fire recorded" is n/a for it; missed,
  duplicates and lateness come from the sink, against the slots the window should hold.

Workloads (PRODUCT.md, "Benchmark workloads"; issue 18 calls them spread and aligned):

* sustained (spread): N jobs every second, job k at offset k*1000//N ms. Targets (issue 18):
  p99 lateness < 100 ms; 0 missed, 0 skipped, 0 duplicates; every fire recorded.
* burst (aligned): N jobs every second, all on the same instant. Targets (issue 18): p99
  lateness < 1 s; 0 missed, 0 skipped, 0 duplicates; every fire recorded. The PRODUCT.md line
  "all N fired within 1 s, every second" is printed too, for information.
* idle: N daily jobs (cron `M H * * *`, spread over the day). Targets: ready within 5 s,
  below 1% of a core, RSS under 200 MB.

Modes:

* sustained, burst, idle: one workload (`-n` may be a comma list: each N in turn).
* compare: for each N of `-n` and each workload of `--workloads` (default both), every
  scheduler in interleaved rounds; then one summary table (N, workload, scheduler, CPU ms per
  fire, p99 lateness, missed/skipped/dup, RSS, the machine's load, verdict) with the ratios
  jobctl/peer of CPU per fire, p99 lateness and RSS, computed from the medians.
* ramp: compare at growing N (`--steps`, default 1,000, 2,000, 3,000, 4,000, 5,000 ...),
  aligned and spread; a scheduler leaves the ramp at its first N that misses the target;
  prints the highest N that held for each scheduler, side by side, and the ratio.

Rounds: with `--repeat K` (default 3) the schedulers run interleaved (A B C, A B C, ...) and
each metric is the median of its K rounds (missing fires count as the worst value); verdicts
and ratios come from the medians, and each scheduler's line says how many rounds passed alone.

Each scheduler runs in its own process, measured the same way: readiness (spawn to first
heartbeat / "ready"), CPU seconds over the window and peak RSS. CPU is utime+stime from
/proc/PID/stat (all threads) of the scheduler process and of every process below it
(worker processes, if jobctl starts any), plus what it reaped from children over the window
(cutime+cstime); RSS is the sum of VmHWM over those processes. The sink and this script are
not in it. A separate sink process (aiohttp low-level server on 127.0.0.1) records for each
request its arrival time and the X-Jobctl-Job/-Run/-Scheduled-For headers. Lateness is arrival
minus X-Jobctl-Scheduled-For. Slots of the first `--warmup` seconds after readiness are left
out (the daemon also catches up the slots that passed between creating the jobs and its
start); the window's fires get `--drain` more seconds to arrive before the scheduler is
stopped. "missed" counts the window's slots the sink never saw a request for (whatever the
reason); "skipped" the slots the scheduler itself dropped and said so: jobctl's `skipped` rows
and the slots of its `missed` rows, APScheduler's EVENT_JOB_MAX_INSTANCES.

APScheduler side: AsyncIOScheduler, MemoryJobStore, the default AsyncIOExecutor with
coalesce=False, max_instances=1000, misfire_grace_time=None; IntervalTrigger(seconds=1)
with its start_date on the job's phase (CronTrigger for the daily jobs); one aiohttp
ClientSession (limit 256, as jobctl's --max-http). `apscheduler`: each fire inserts a `running`
row before the request and updates it after, one BEGIN IMMEDIATE transaction each, in a SQLite
file opened like jobctl's (WAL, synchronous=NORMAL). `apscheduler-memory`: no database; the
X-Jobctl-Run header carries a counter. The scheduled time sent in X-Jobctl-Scheduled-For comes
from APScheduler's EVENT_JOB_SUBMITTED (scheduled_run_times), which is dispatched before the
job's coroutine starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import selectors
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PYTHON = sys.executable
SCRIPT = str(Path(__file__).resolve())
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
SCHEDULERS = ("jobctl", "apscheduler", "apscheduler-memory")
SCHEDULER_GROUPS = {"both": ("jobctl", "apscheduler"), "all": SCHEDULERS}
WORKLOAD_NAMES = {
    "spread": "sustained",
    "aligned": "burst",
    "sustained": "sustained",
    "burst": "burst",
}
RAMP_STEPS = (1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000)
MAX_HTTP = 256  # jobctl's --max-http default; APScheduler's connector gets the same limit

# Targets (PRODUCT.md, the daemon issue and issue 18)
SUSTAINED_P99_MS = 100.0  # issue 18: spread
BURST_P99_MS = 1000.0  # issue 18: aligned
BURST_WITHIN_S = 1.0  # PRODUCT.md: every second, all N within 1 s
IDLE_READY_S = 5.0
IDLE_CPU_PCT = 1.0
IDLE_RSS_MB = 200.0


# ================================================================================= workloads


@dataclass(frozen=True)
class Workload:
    kind: str  # sustained | burst | idle
    n: int
    seconds: float

    def name(self, k: int) -> str:
        return f"j{k:06d}"

    def offset_ms(self, k: int) -> int:
        """Phase of job k within the second (sustained), or 0 (burst)."""
        return k * 1000 // self.n if self.kind == "sustained" else 0

    def minute_of_day(self, k: int) -> int:
        """Fire time of daily job k, spread over the day (idle)."""
        return k * 1440 // self.n

    def slots(self, k: int, start: float, end: float) -> list[int]:
        """Job k's slots in [start, end), as epoch milliseconds."""
        if self.kind == "idle":
            day = 86_400_000
            first_day = int(start * 1000) // day * day
            slot = first_day + self.minute_of_day(k) * 60_000
            found = []
            while slot < end * 1000:
                if slot >= start * 1000:
                    found.append(slot)
                slot += day
            return found
        offset = self.offset_ms(k)
        first = math.ceil((start * 1000 - offset) / 1000)
        last = math.ceil((end * 1000 - offset) / 1000)  # exclusive
        return [n * 1000 + offset for n in range(first, last)]


# ====================================================================== /proc measurements


def proc_stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state is [0], ppid [1])."""
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (all its threads), in seconds."""
    stat = proc_stat(pid)
    return (int(stat[11]) + int(stat[12])) / CLK_TCK


def process_tree(root: int) -> list[int]:
    """`root` and every live process below it (children, grandchildren ...), root first."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                children[int(proc_stat(int(entry.name))[1])].append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(root: int) -> tuple[float, int]:
    """CPU seconds of `root` and its descendants, and how many processes that was.

    Each live process counts utime+stime+cutime+cstime: its own CPU and that of the children
    it reaped, so a worker that ran and was reaped between two readings is still counted
    (its parent's cutime grows), and the difference of two readings is the tree's CPU between
    them.
    """
    total, count = 0, 0
    for pid in process_tree(root):
        try:
            stat = proc_stat(pid)
        except OSError:
            continue
        total += int(stat[11]) + int(stat[12]) + int(stat[13]) + int(stat[14])
        count += 1
    return total / CLK_TCK, count


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def tree_peak_rss_mb(root: int) -> float:
    """The sum of the peak RSS of `root` and its live descendants (an upper bound of the
    tree's peak: the peaks need not have been at the same time)."""
    total = 0.0
    for pid in process_tree(root):
        try:
            peak = peak_rss_mb(pid)
        except OSError:
            continue
        if not math.isnan(peak):  # a zombie has no memory left to count
            total += peak
    return total


def sleep_until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)


# ========================================================================= the HTTP sink

SinkRecord = tuple[float, str, str, str]  # arrival, job, run id, scheduled-for text


def sink_main(out_path: str) -> None:
    """The sink process: prints its port, records every request, dumps them on SIGTERM."""
    from aiohttp import web

    records: list[SinkRecord] = []
    now = time.time
    append = records.append

    async def handle(request: web.BaseRequest) -> web.Response:
        headers = request.headers
        append(
            (
                now(),
                headers.get("X-Jobctl-Job", ""),
                headers.get("X-Jobctl-Run", ""),
                headers.get("X-Jobctl-Scheduled-For", ""),
            )
        )
        return web.Response(text="ok")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        runner = web.ServerRunner(web.Server(handle, access_log=None))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())
    Path(out_path).write_text(json.dumps(records), encoding="utf-8")


class Sink:
    """The sink as a child process of this script."""

    def __init__(self, workdir: Path) -> None:
        self.out = workdir / "sink.json"
        with open(workdir / "sink.log", "w") as log:
            self.proc = subprocess.Popen(
                [PYTHON, SCRIPT, "_sink", str(self.out)], stdout=subprocess.PIPE, stderr=log
            )
        assert self.proc.stdout is not None
        line = read_line(self.proc, 20.0)
        self.url = f"http://127.0.0.1:{int(line)}/hook"

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> list[SinkRecord]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        return [tuple(item) for item in json.loads(self.out.read_text())]  # type: ignore[misc]


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """One line from a child's stdout, or fail after `timeout` seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise RuntimeError(f"no output from {proc.args} within {timeout}s")
    line = proc.stdout.readline().decode().strip()
    if not line:
        raise RuntimeError(f"{proc.args} exited ({proc.poll()}) before it was ready")
    return line


# =============================================================================== results


RecordedRow = tuple[int, str, int, str, int]  # run id, job, slot ms, status, slots it stands for


@dataclass
class Run:
    """What one scheduler run measured, before analysis."""

    scheduler: str
    workload: Workload
    setup_s: float  # creating the jobs (jobctl: `jobctl apply`; APScheduler: inside ready)
    ready_s: float
    window: tuple[float, float]
    cpu_s: float
    sink_cpu_s: float
    rss_mb: float
    records: list[SinkRecord]
    recorded: list[RecordedRow] | None  # None: the scheduler records no runs
    exit_code: int | None
    notes: list[str] = field(default_factory=list)
    dropped: list[tuple[str, int]] = field(
        default_factory=list
    )  # (job, slot ms) it said it skipped
    load: float = float("nan")  # the machine's 1-minute load average (the higher of before/after)


@dataclass(frozen=True)
class Verdict:
    label: str
    ok: bool | None  # None: does not apply to this scheduler
    target: bool = True  # part of the target (False: printed for information)


@dataclass
class Metrics:
    scheduler: str
    workload: Workload
    setup_s: float
    ready_s: float
    window_s: float
    expected: int
    received: int
    missed: int  # window slots the sink never saw a request for
    skipped: int  # window slots the scheduler dropped and said so (skipped/missed rows, events)
    duplicates: int
    late_p50: float
    late_p99: float
    late_max: float
    not_recorded: int | None  # received in the window, but no succeeded row for that run id
    recorded_not_received: int | None  # succeeded rows for window slots the sink never saw
    other_status: Counter[str]
    cpu_s: float
    cpu_pct: float
    cpu_ms_per_fire: float
    rss_mb: float
    sink_cpu_pct: float
    exit_code: int | None
    load: float = float("nan")
    burst_seconds: int = 0
    burst_ok_seconds: int = 0
    burst_p50: float = float("nan")
    burst_p99: float = float("nan")
    burst_max: float = float("nan")
    rounds: int = 1
    rounds_passed: int = 0  # set by median_metrics: rounds that passed on their own
    notes: list[str] = field(default_factory=list)

    @property
    def records_runs(self) -> bool:
        return self.not_recorded is not None

    def verdicts(self) -> list[Verdict]:
        kind = self.workload.kind
        clean = self.missed == 0 and self.skipped == 0 and self.duplicates == 0
        recorded = (
            self.not_recorded == 0 and self.recorded_not_received == 0
            if self.records_runs
            else None
        )
        if kind in ("sustained", "burst"):
            limit, name = (
                (SUSTAINED_P99_MS, "spread") if kind == "sustained" else (BURST_P99_MS, "aligned")
            )
            found = [
                Verdict(f"p99 lateness < {limit:,.0f} ms ({name})", self.late_p99 < limit),
                Verdict("0 missed, 0 skipped, 0 duplicates", clean),
                Verdict(
                    "every fire recorded" + ("" if self.records_runs else " (records nothing)"),
                    recorded,
                ),
            ]
            if kind == "burst":
                found.append(
                    Verdict(
                        f"all {self.workload.n:,} fired within {BURST_WITHIN_S:.0f} s, every "
                        "second (PRODUCT.md; not part of issue 18's target)",
                        self.burst_seconds > 0 and self.burst_ok_seconds == self.burst_seconds,
                        target=False,
                    )
                )
            return found
        return [
            Verdict(f"ready within {IDLE_READY_S:.0f} s", self.ready_s < IDLE_READY_S),
            Verdict(f"idle below {IDLE_CPU_PCT:.0f}% of a core", self.cpu_pct < IDLE_CPU_PCT),
            Verdict(f"RSS under {IDLE_RSS_MB:.0f} MB", self.rss_mb < IDLE_RSS_MB),
        ]

    @property
    def passed(self) -> bool:
        return all(v.ok is not False for v in self.verdicts() if v.target)


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of sorted values (nan when empty)."""
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def slot_ms(text: str, cache: dict[str, int]) -> int:
    value = cache.get(text)
    if value is None:
        value = round(datetime.fromisoformat(text).timestamp() * 1000)
        cache[text] = value
    return value


def analyse(run: Run) -> Metrics:
    workload = run.workload
    start, end = run.window
    expected = {
        (workload.name(k), slot)
        for k in range(workload.n)
        for slot in workload.slots(k, start, end)
    }
    parsed: dict[str, int] = {}
    arrivals: dict[tuple[str, int], list[tuple[float, str]]] = defaultdict(list)
    for arrival, job, run_id, scheduled in run.records:
        if scheduled:
            arrivals[(job, slot_ms(scheduled, parsed))].append((arrival, run_id))
    duplicates = sum(len(hits) - 1 for hits in arrivals.values())
    in_window = {
        key: hits[0] for key, hits in arrivals.items() if start * 1000 <= key[1] < end * 1000
    }
    lateness = sorted((arrival - key[1] / 1000) * 1000 for key, (arrival, _) in in_window.items())
    received_ids = {run_id for _, run_id in in_window.values()}
    in_range = range(math.ceil(start * 1000), math.ceil(end * 1000))
    skipped = sum(1 for _, slot in run.dropped if slot in in_range)
    not_recorded: int | None = None
    recorded_not_received: int | None = None
    other: Counter[str] = Counter()
    if run.recorded is not None:
        succeeded = {str(row[0]) for row in run.recorded if row[3] == "succeeded"}
        window_rows = [row for row in run.recorded if row[2] in in_range]
        for _, _, _, status, slots in window_rows:
            if status != "succeeded":
                other[status] += slots
        skipped += other["skipped"] + other["missed"]
        not_recorded = len(received_ids - succeeded)
        recorded_not_received = sum(
            1
            for run_id, _, _, status, _ in window_rows
            if status == "succeeded" and str(run_id) not in received_ids
        )
    wall = end - start
    fires = len(in_window)
    metrics = Metrics(
        scheduler=run.scheduler,
        workload=workload,
        setup_s=run.setup_s,
        ready_s=run.ready_s,
        window_s=wall,
        expected=len(expected),
        received=fires,
        missed=len(expected - in_window.keys()),
        skipped=skipped,
        duplicates=duplicates,
        late_p50=percentile(lateness, 50),
        late_p99=percentile(lateness, 99),
        late_max=lateness[-1] if lateness else float("nan"),
        not_recorded=not_recorded,
        recorded_not_received=recorded_not_received,
        other_status=other,
        cpu_s=run.cpu_s,
        cpu_pct=run.cpu_s / wall * 100,
        cpu_ms_per_fire=run.cpu_s / fires * 1000 if fires else float("nan"),
        rss_mb=run.rss_mb,
        sink_cpu_pct=run.sink_cpu_s / wall * 100,
        exit_code=run.exit_code,
        load=run.load,
        notes=list(run.notes),
    )
    if workload.kind == "burst":
        by_second: dict[int, list[float]] = defaultdict(list)
        for (_, slot), (arrival, _) in in_window.items():
            by_second[slot].append(arrival - slot / 1000)
        seconds = sorted({slot for _, slot in expected})
        spreads = sorted(
            max(by_second[slot]) if len(by_second[slot]) == workload.n else math.inf
            for slot in seconds
        )
        metrics.burst_seconds = len(seconds)
        metrics.burst_ok_seconds = sum(1 for spread in spreads if spread < BURST_WITHIN_S)
        metrics.burst_p50 = percentile(spreads, 50)
        metrics.burst_p99 = percentile(spreads, 99)
        metrics.burst_max = spreads[-1] if spreads else float("nan")
    return metrics


# ============================================================================ measuring


@dataclass
class Options:
    warmup: float
    drain: float
    profile: Path | None = None
    py_spy: Path | None = None
    keep: bool = False
    wrapper: Path | None = None  # a script run instead of `-m jobctl` (to try a patch)
    timings: bool = False  # jobctl's jobs record each phase's time (`--timings`)
    daemon_args: tuple[str, ...] = ()  # more arguments for `jobctl daemon`
    history: int = 0  # finished runs (and their events) per job recorded before the daemon


@dataclass
class Measured:
    window: tuple[float, float]
    cpu_s: float  # the scheduler's process tree
    sink_cpu_s: float
    rss_mb: float  # summed over the tree
    exit_code: int | None
    processes: int  # the most processes the tree had at a reading
    extra_notes: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        if self.processes <= 1:
            return list(self.extra_notes)
        return [
            f"CPU and RSS summed over {self.processes} processes (the scheduler and the "
            "processes it started)",
            *self.extra_notes,
        ]


def measure(
    proc: subprocess.Popen[bytes],
    ready_at: float,
    sink: Sink,
    workload: Workload,
    options: Options,
) -> Measured:
    """Window, CPU, sink CPU and peak RSS of a ready scheduler process tree; then stop it."""
    start = ready_at + options.warmup
    end = start + workload.seconds
    sleep_until(start)
    (cpu0, count0), sink0 = tree_cpu_seconds(proc.pid), sink.cpu()
    spy = start_py_spy(proc.pid, workload.seconds, options.py_spy)
    sleep_until(end)
    (cpu1, count1), sink1 = tree_cpu_seconds(proc.pid), sink.cpu()
    if spy is not None:
        spy.wait(timeout=30)
    sleep_until(end + options.drain)
    rss = tree_peak_rss_mb(proc.pid)
    below = started_below(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = proc.wait(timeout=20)  # jobctl gets --grace 5s
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        code = None
    measured = Measured((start, end), cpu1 - cpu0, sink1 - sink0, rss, code, max(count0, count1))
    left = kill_left(below)
    if left:
        measured.extra_notes.append(
            f"{left} of its processes were still running after it stopped (killed)"
        )
    return measured


def start_time(pid: int) -> int | None:
    """A process's start time (clock ticks since boot): with the pid, names it for sure."""
    try:
        return int(proc_stat(pid)[19])
    except (OSError, IndexError, ValueError):
        return None


def started_below(root: int) -> list[tuple[int, int | None]]:
    """The processes below `root` now, with their start times."""
    return [(pid, start_time(pid)) for pid in process_tree(root)[1:]]


def kill_left(processes: Sequence[tuple[int, int | None]]) -> int:
    """SIGKILL those of `processes` still running (same pid and start time); how many."""
    killed = 0
    for pid, started in processes:
        if started is not None and start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a scheduler this script started and whatever processes it left below it."""
    if proc.poll() is not None:
        return
    kill_left(started_below(proc.pid))
    proc.kill()
    proc.wait()


def start_py_spy(pid: int, seconds: float, out: Path | None) -> subprocess.Popen[bytes] | None:
    """Sample `pid` with py-spy (raw collapsed stacks) for the window, if asked."""
    if out is None:
        return None
    spy = Path(PYTHON).with_name("py-spy")
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(math.ceil(seconds)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def print_py_spy(path: Path, top: int = 25) -> None:
    """The hottest functions of a py-spy raw profile, per function (line numbers dropped).

    Own time for every function; inclusive time for jobctl's own functions (the frames of
    click, runpy and asyncio's runner are in every sample and say nothing).
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"py-spy {path}: {total:,} samples (idle time is in select/epoll)")
    for title, counter in (
        ("own time", own),
        (
            "inclusive, jobctl functions",
            Counter({frame: count for frame, count in inclusive.items() if "jobctl/" in frame}),
        ),
    ):
        print(f"  top by {title}:")
        for frame, count in counter.most_common(top):
            print(f"    {count / total * 100:5.1f}%  {frame}")
    print(flush=True)


def stopped_early(proc: subprocess.Popen[bytes], log: Path) -> RuntimeError:
    tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
    return RuntimeError(f"{proc.args[:4]} exited with {proc.poll()}:\n" + "\n".join(tail))


# ------------------------------------------------------------------------------- jobctl


def jobctl_document(workload: Workload, url: str, *, timings: bool = False) -> dict[str, Any]:
    """The jobs as a `jobctl apply` document (what `jobctl export` writes)."""
    from jobctl.schedule import format_every

    jobs = []
    for k in range(workload.n):
        entry: dict[str, Any] = {
            "name": workload.name(k),
            "state": "enabled",
            "action": "http",
            "timezone": "UTC",
            "spec": {"url": url, "method": "GET", "expect": "2xx"},
        }
        if timings:
            entry["spec"]["timings"] = True
        if workload.kind == "idle":
            minute = workload.minute_of_day(k)
            entry.update(trigger="cron", schedule=f"{minute % 60} {minute // 60} * * *")
        else:
            every = format_every(
                timedelta(seconds=1), timedelta(milliseconds=workload.offset_ms(k))
            )
            entry.update(trigger="every", schedule=every)
        jobs.append(entry)
    return {"version": 1, "jobs": jobs}


def wait_heartbeat(
    db: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0
) -> float:
    """The time the daemon's first heartbeat row (with its pid) appeared."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                raise stopped_early(proc, log)
            row = conn.execute("SELECT pid FROM daemon WHERE id = 1").fetchone()
            if row is not None and row[0] == proc.pid:
                return time.time()
            time.sleep(0.005)
    finally:
        conn.close()
    raise RuntimeError(f"no heartbeat within {timeout}s")


RUN_ROWS = (
    "SELECT runs.id, jobs.name, runs.scheduled_for, runs.status, runs.details "
    "FROM runs JOIN jobs ON jobs.id = runs.job_id"
)


def recorded_rows(found: Iterable[tuple[Any, ...]]) -> list[RecordedRow]:
    """RUN_ROWS' rows: a `missed` row stands for the `missed_count` slots of its gap."""
    cache: dict[str, int] = {}
    return [
        (
            run_id,
            name,
            slot_ms(scheduled, cache),
            status,
            int(json.loads(details).get("missed_count") or 1)
            if status == "missed" and details
            else 1,
        )
        for run_id, name, scheduled, status, details in found
    ]


def jobctl_rows(db: Path) -> list[RecordedRow]:
    """Every run row of the SQLite database `db`."""
    conn = sqlite3.connect(db)
    try:
        return recorded_rows(conn.execute(RUN_ROWS))
    finally:
        conn.close()


def watch(
    command: list[str],
    log: Path,
    wait_ready: Any,
    sink: Sink,
    workload: Workload,
    options: Options,
    *,
    pipe: bool = False,
) -> tuple[float, Measured]:
    """Start a scheduler, wait until `wait_ready(proc)` returns its ready time, measure it.

    `pipe`: the scheduler's stdout is a pipe (it says "ready" there), else it is discarded.
    Returns the seconds from spawn to ready and the measurements; the scheduler (and any
    process it left) is killed if it is still there afterwards.
    """
    with open(log, "w") as stderr:
        spawned = time.time()
        stdout = subprocess.PIPE if pipe else subprocess.DEVNULL
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr)
        try:
            ready_at: float = wait_ready(proc)
            measured = measure(proc, ready_at, sink, workload, options)
        finally:
            kill_tree(proc)
            if proc.stdout is not None:
                proc.stdout.close()
    return ready_at - spawned, measured


def log_note(log: Path, what: str) -> list[str]:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return [f"{what}: {len(lines)} lines, e.g. {lines[-1][:160]!r}"] if lines else []


def add_history(db: Path, per_job: int) -> None:
    """`per_job` succeeded runs of every job, one a second up to a minute ago, each with its
    run.started and run.finished events, as a daemon that has run a while leaves them."""
    conn = sqlite3.connect(db)
    end = datetime.now(UTC) - timedelta(minutes=1)

    def at(seconds_before: int) -> str:
        moment = end - timedelta(seconds=seconds_before)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    with conn:
        jobs = conn.execute("SELECT id, name FROM jobs ORDER BY id").fetchall()
        for k in range(per_job, 0, -1):  # oldest first: ids grow with time, as in the daemon
            slot, done = at(k), at(k)[:-4] + "900Z"
            conn.executemany(
                "INSERT INTO runs (job_id, trigger, status, attempt, scheduled_for, "
                "started_at, finished_at, duration_ms, http_status, output, snapshot, "
                "details, created_at) VALUES (?, 'schedule', 'succeeded', 1, ?, ?, ?, 3, "
                "200, 'ok', '{\"method\": \"GET\"}', '{\"body_size\": 2}', ?)",
                [(job_id, slot, slot, done, slot) for job_id, _ in jobs],
            )
            conn.executemany(
                "INSERT INTO events (at, type, job, data) VALUES (?, ?, ?, '{}')",
                [
                    (slot, kind, name)
                    for _, name in jobs
                    for kind in ("run.started", "run.finished")
                ],
            )
    conn.close()


def run_jobctl(workload: Workload, options: Options, workdir: Path) -> Run:
    db = workdir / "jobctl.db"
    sink = Sink(workdir)
    log = workdir / "jobctl-daemon.log"
    try:
        doc_path = workdir / "jobs.json"
        doc_path.write_text(
            json.dumps(jobctl_document(workload, sink.url, timings=options.timings)),
            encoding="utf-8",
        )
        began = time.time()
        subprocess.run(
            [PYTHON, "-m", "jobctl", "--db", str(db), "apply", "-f", str(doc_path), "--json"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if options.history:
            add_history(db, options.history)
        setup = time.time() - began
        entry = [str(options.wrapper)] if options.wrapper else ["-m", "jobctl"]
        command = [
            PYTHON,
            *entry,
            "daemon",
            "--db",
            str(db),
            "--log-level",
            "warning",
            "--grace",
            "5s",
            *options.daemon_args,
        ]
        if options.profile is not None:
            command[1:1] = ["-m", "cProfile", "-o", str(options.profile)]
        ready_s, measured = watch(
            command,
            log,
            lambda proc: wait_heartbeat(db, proc, log),
            sink,
            workload,
            options,
        )
    finally:
        records = sink.stop()
    return Run(
        "jobctl",
        workload,
        setup,
        ready_s,
        measured.window,
        measured.cpu_s,
        measured.sink_cpu_s,
        measured.rss_mb,
        records,
        jobctl_rows(db),
        measured.exit_code,
        measured.notes() + log_note(log, "daemon log"),
    )


# -------------------------------------------------------------------------- APScheduler


def apscheduler_main(kind: str, n: int, url: str, db: str, dropped_out: str) -> None:
    """The APScheduler process: N jobs, stops on SIGTERM.

    Each fire is recorded to the SQLite file `db`, or nowhere when `db` is "-". The slots
    APScheduler drops (EVENT_JOB_MAX_INSTANCES) are written to `dropped_out` at exit.
    """
    import aiohttp
    from apscheduler.events import (
        EVENT_JOB_MAX_INSTANCES,
        EVENT_JOB_SUBMITTED,
        JobSubmissionEvent,
    )
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.base import BaseTrigger
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    workload = Workload(kind, n, 0)
    conn: sqlite3.Connection | None = None
    if db != "-":
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, job TEXT NOT NULL, "
            "scheduled_for TEXT NOT NULL, status TEXT NOT NULL, started_at REAL, "
            "finished_at REAL, http_status INTEGER, error TEXT)"
        )
    pending: dict[str, deque[datetime]] = defaultdict(deque)
    dropped: list[tuple[str, int]] = []
    in_flight = 0
    fired = 0

    def on_submitted(event: JobSubmissionEvent) -> None:
        if event.code == EVENT_JOB_SUBMITTED:
            pending[event.job_id].extend(event.scheduled_run_times)
        else:
            dropped.extend(
                (event.job_id, round(moment.timestamp() * 1000))
                for moment in event.scheduled_run_times
            )

    async def main() -> None:
        nonlocal in_flight
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_HTTP))

        async def send(job: str, run_id: str, scheduled: str) -> tuple[str, int | None, str | None]:
            headers = {
                "User-Agent": "apscheduler-bench",
                "X-Jobctl-Job": job,
                "X-Jobctl-Run": run_id,
                "X-Jobctl-Scheduled-For": scheduled,
            }
            try:
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    code = response.status
                    return ("succeeded" if 200 <= code < 300 else "failed"), code, None
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                return "failed", None, repr(exc)

        async def fire_recorded(job: str) -> None:
            nonlocal in_flight
            assert conn is not None
            scheduled = iso_ms(pending[job].popleft())
            in_flight += 1
            try:
                conn.execute("BEGIN IMMEDIATE")
                run_id = conn.execute(
                    "INSERT INTO runs (job, scheduled_for, status, started_at) "
                    "VALUES (?, ?, 'running', ?)",
                    (job, scheduled, time.time()),
                ).lastrowid
                conn.execute("COMMIT")
                status, code, error = await send(job, str(run_id), scheduled)
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "UPDATE runs SET status = ?, finished_at = ?, http_status = ?, error = ? "
                    "WHERE id = ?",
                    (status, time.time(), code, error, run_id),
                )
                conn.execute("COMMIT")
            finally:
                in_flight -= 1

        async def fire_unrecorded(job: str) -> None:
            nonlocal in_flight, fired
            scheduled = iso_ms(pending[job].popleft())
            in_flight += 1
            fired += 1
            try:
                await send(job, str(fired), scheduled)
            finally:
                in_flight -= 1

        fire = fire_recorded if conn is not None else fire_unrecorded
        scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": False, "max_instances": 1000, "misfire_grace_time": None},
        )
        scheduler.add_listener(on_submitted, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES)
        epoch = datetime(2020, 1, 1, tzinfo=UTC)
        for k in range(n):
            trigger: BaseTrigger
            if kind == "idle":
                minute = workload.minute_of_day(k)
                trigger = CronTrigger(hour=minute // 60, minute=minute % 60, second=0, timezone=UTC)
            else:
                trigger = IntervalTrigger(
                    seconds=1,
                    start_date=epoch + timedelta(milliseconds=workload.offset_ms(k)),
                    timezone=UTC,
                )
            scheduler.add_job(fire, trigger, args=[workload.name(k)], id=workload.name(k))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        scheduler.start()
        print("ready", flush=True)
        await stop.wait()
        # Stop submitting, let the fires already submitted finish (shutdown would cancel
        # them), then shut down.
        scheduler.pause()
        deadline = time.monotonic() + 30
        await asyncio.sleep(0.2)
        while in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0.1)  # shutdown runs via call_soon_threadsafe
        await session.close()

    asyncio.run(main())
    if conn is not None:
        conn.close()
    Path(dropped_out).write_text(json.dumps(dropped), encoding="utf-8")


def iso_ms(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and Z, as jobctl sends X-Jobctl-Scheduled-For."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond // 1000:03d}Z"


def apscheduler_rows(db: Path) -> list[RecordedRow]:
    conn = sqlite3.connect(db)
    try:
        cache: dict[str, int] = {}
        return [
            (run_id, job, slot_ms(scheduled, cache), status, 1)
            for run_id, job, scheduled, status in conn.execute(
                "SELECT id, job, scheduled_for, status FROM runs"
            )
        ]
    finally:
        conn.close()


def apscheduler_ready(proc: subprocess.Popen[bytes], log: Path) -> float:
    try:
        read_line(proc, 600.0)
    except RuntimeError:
        raise stopped_early(proc, log) from None
    return time.time()


def run_apscheduler(
    workload: Workload, options: Options, workdir: Path, *, recording: bool = True
) -> Run:
    name = "apscheduler" if recording else "apscheduler-memory"
    db = workdir / "apscheduler.db"
    dropped_path = workdir / "apscheduler-dropped.json"
    log = workdir / f"{name}.log"
    sink = Sink(workdir)
    command = [
        PYTHON,
        SCRIPT,
        "_apscheduler",
        workload.kind,
        str(workload.n),
        sink.url,
        str(db) if recording else "-",
        str(dropped_path),
    ]
    try:
        ready_s, measured = watch(
            command,
            log,
            lambda proc: apscheduler_ready(proc, log),
            sink,
            workload,
            options,
            pipe=True,
        )
    finally:
        records = sink.stop()
    notes = ["jobs added at start-up (MemoryJobStore), so readiness includes creating them"]
    dropped: list[tuple[str, int]] = []
    if dropped_path.exists():
        dropped = [(job, slot) for job, slot in json.loads(dropped_path.read_text())]
    else:
        notes.append("no list of dropped slots (the process did not exit cleanly)")
    return Run(
        name,
        workload,
        0.0,
        ready_s,
        measured.window,
        measured.cpu_s,
        measured.sink_cpu_s,
        measured.rss_mb,
        records,
        apscheduler_rows(db) if recording else None,
        measured.exit_code,
        notes + measured.notes() + log_note(log, "log"),
        dropped,
    )


def run_apscheduler_memory(workload: Workload, options: Options, workdir: Path) -> Run:
    return run_apscheduler(workload, options, workdir, recording=False)


RUNNERS = {
    "jobctl": run_jobctl,
    "apscheduler": run_apscheduler,
    "apscheduler-memory": run_apscheduler_memory,
}


def run_one(scheduler: str, workload: Workload, options: Options, label: str = "") -> Metrics:
    with tempfile.TemporaryDirectory(prefix=f"bench-{scheduler}-") as tmp:
        print(
            f"-- {label}{scheduler}: {workload.kind}, N={workload.n:,}, "
            f"{workload.seconds:g} s window ...",
            flush=True,
        )
        spy = options.py_spy
        if spy is not None:
            spy = spy.with_name(f"{spy.stem}-{scheduler}-{workload.kind}-{workload.n}{spy.suffix}")
        run_options = replace(options, py_spy=spy)
        load_before = os.getloadavg()[0]
        metrics = analyse(RUNNERS[scheduler](workload, run_options, Path(tmp)))
        load_after = os.getloadavg()[0]
        metrics.load = max(load_before, load_after)
        if metrics.load > 1.5:
            metrics.notes.append(
                f"machine busy: 1-min load average {load_before:.1f} before, {load_after:.1f} "
                f"after (this benchmark alone adds about 1-1.5 on 2 cores)"
            )
        if spy is not None and spy.exists():
            print_py_spy(spy)
        if options.keep:
            kept = Path(tempfile.mkdtemp(prefix=f"bench-{scheduler}-kept-"))
            for item in Path(tmp).iterdir():
                item.rename(kept / item.name)
            metrics.notes.append(f"files kept in {kept}")
        print(f"   {one_line(metrics)}", flush=True)
        return metrics


# ================================================================================ rounds


def median_of(values: Sequence[Any]) -> Any:
    """The median of one metric over rounds: None if any round has none, nan sorts as worst,
    whole numbers stay whole (the higher middle value of an even count)."""
    if any(value is None for value in values):
        return None
    ordered = sorted(values, key=lambda value: (math.isnan(value), value))
    middle = len(ordered) // 2
    if len(ordered) % 2 or all(isinstance(value, int) for value in ordered):
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def median_metrics(rounds: Sequence[Metrics]) -> Metrics:
    """One Metrics holding each metric's median over the rounds of one scheduler."""
    first = rounds[0]
    if len(rounds) == 1:
        return replace(first, rounds=1, rounds_passed=int(first.passed))
    values: dict[str, Any] = {}
    for item in fields(Metrics):
        if item.name in ("scheduler", "workload", "rounds", "rounds_passed"):
            continue
        column = [getattr(metrics, item.name) for metrics in rounds]
        if item.name == "other_status":
            keys = sorted({key for counter in column for key in counter})
            values[item.name] = Counter({key: median_of([c[key] for c in column]) for key in keys})
        elif item.name == "notes":  # a note every round has once, the others by round
            everywhere = [note for note in first.notes if all(note in m.notes for m in rounds)]
            values[item.name] = everywhere + [
                f"round {index}: {note}"
                for index, metrics in enumerate(rounds, 1)
                for note in metrics.notes
                if note not in everywhere
            ]
        elif item.name == "exit_code":
            odd = [code for code in column if code not in (0, -signal.SIGTERM)]
            values[item.name] = odd[0] if odd else column[0]
        else:
            values[item.name] = median_of(column)
    return replace(
        first,
        **values,
        rounds=len(rounds),
        rounds_passed=sum(1 for metrics in rounds if metrics.passed),
    )


@dataclass
class Bench:
    """Runs workloads with the schedulers in interleaved rounds and keeps every result."""

    schedulers: tuple[str, ...]
    options: Options
    repeat: int
    results: list[dict[str, Any]] = field(default_factory=list)

    def run(self, workload: Workload, schedulers: Sequence[str] | None = None) -> list[Metrics]:
        """Medians of `repeat` rounds (A B C, A B C, ...) per scheduler, in scheduler order."""
        names = tuple(schedulers or self.schedulers)
        rounds: dict[str, list[Metrics]] = {name: [] for name in names}
        for index in range(1, self.repeat + 1):
            for name in names:
                label = f"round {index}/{self.repeat}, " if self.repeat > 1 else ""
                rounds[name].append(run_one(name, workload, self.options, label))
        medians = [median_metrics(rounds[name]) for name in names]
        for name, median in zip(names, medians, strict=True):
            self.results.append(
                {
                    "scheduler": name,
                    "workload": asdict(workload),
                    "median": metrics_json(median),
                    "rounds": [metrics_json(metrics) for metrics in rounds[name]],
                }
            )
        print_table(medians)
        return medians


def metrics_json(metrics: Metrics) -> dict[str, Any]:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None if math.isnan(value) else "inf"
        return value

    data = {item.name: clean(getattr(metrics, item.name)) for item in fields(Metrics)}
    data["workload"] = asdict(metrics.workload)
    data["other_status"] = dict(metrics.other_status)
    data["passed"] = metrics.passed
    data["verdicts"] = [
        {"label": verdict.label, "ok": verdict.ok, "target": verdict.target}
        for verdict in metrics.verdicts()
    ]
    return data


# ============================================================================== printing


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b:
        return "-"
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return "-"
    return f"{a / b:.2f}x"


SHORT_KIND = {"sustained": "spread", "burst": "aligned"}


def workload_title(kind: str) -> str:
    return f"{kind} ({SHORT_KIND[kind]})" if kind in SHORT_KIND else kind


def recorded_text(metrics: Metrics) -> str:
    """Every fire recorded: yes, NO, or n/a for a scheduler that records nothing."""
    if not metrics.records_runs:
        return "n/a"
    return "yes" if metrics.not_recorded == 0 and metrics.recorded_not_received == 0 else "NO"


def one_line(metrics: Metrics) -> str:
    return (
        f"{metrics.scheduler}: CPU {fmt(metrics.cpu_ms_per_fire, 3)} ms/fire, "
        f"p99 {fmt(metrics.late_p99)} ms, missed {fmt(metrics.missed)}, "
        f"skipped {fmt(metrics.skipped)}, dup {fmt(metrics.duplicates)}, "
        f"recorded {recorded_text(metrics)}, RSS {fmt(metrics.rss_mb)} MB, load {fmt(metrics.load)}: "
        f"{'PASS' if metrics.passed else 'FAIL'}"
    )


# (label, attribute, digits, lower is better -> ratio printed)
ROWS: dict[str, list[tuple[str, str, int, bool]]] = {
    "common": [
        ("jobs created (s)", "setup_s", 2, False),
        ("ready after spawn (s)", "ready_s", 2, True),
        ("window (s)", "window_s", 1, False),
        ("fires expected", "expected", 0, False),
        ("fires received", "received", 0, False),
        ("missed (no request)", "missed", 0, False),
        ("skipped (said so)", "skipped", 0, False),
        ("duplicates", "duplicates", 0, False),
        ("lateness p50 (ms)", "late_p50", 1, True),
        ("lateness p99 (ms)", "late_p99", 1, True),
        ("lateness max (ms)", "late_max", 1, True),
        ("received, not recorded ok", "not_recorded", 0, False),
        ("recorded ok, not received", "recorded_not_received", 0, False),
        ("CPU (s)", "cpu_s", 2, True),
        ("CPU (% of a core)", "cpu_pct", 2, True),
        ("CPU per fire (ms)", "cpu_ms_per_fire", 3, True),
        ("peak RSS (MB)", "rss_mb", 1, True),
        ("sink CPU (% of a core)", "sink_cpu_pct", 1, False),
        ("machine load (1-min avg)", "load", 1, False),
    ],
    "burst": [
        ("seconds in window", "burst_seconds", 0, False),
        ("seconds all fired < 1 s", "burst_ok_seconds", 0, False),
        ("all-fired-within p50 (s)", "burst_p50", 3, True),
        ("all-fired-within p99 (s)", "burst_p99", 3, True),
        ("all-fired-within max (s)", "burst_max", 3, True),
    ],
}


def peers_of(results: Sequence[Metrics]) -> list[Metrics]:
    """The schedulers jobctl is compared with (none when jobctl is not among the results)."""
    if not any(metrics.scheduler == "jobctl" for metrics in results):
        return []
    return [metrics for metrics in results if metrics.scheduler != "jobctl"]


def print_rows(table: list[list[str]], left: int = 1) -> None:
    """An aligned text table: the first `left` columns left-aligned, a rule under the header."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for index, row in enumerate(table):
        print(
            "  "
            + "  ".join(
                cell.ljust(widths[i]) if i < left else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            ).rstrip()
        )
        if index == 0:
            print("  " + "  ".join("-" * width for width in widths))


def print_table(results: Sequence[Metrics]) -> None:
    workload = results[0].workload
    rows = list(ROWS["common"])
    if workload.kind == "burst":
        rows += ROWS["burst"]
    jobctl = next((m for m in results if m.scheduler == "jobctl"), None)
    peers = peers_of(results)
    header = ["metric", *(m.scheduler for m in results), *(f"jobctl/{p.scheduler}" for p in peers)]
    table = [header]
    for label, attr, digits, lower_better in rows:
        values = [getattr(m, attr) for m in results]
        line = [label, *(fmt(v, digits) for v in values)]
        for peer in peers:
            line.append(ratio(getattr(jobctl, attr), getattr(peer, attr)) if lower_better else "")
        table.append(line)
    statuses = [", ".join(f"{s} {c}" for s, c in m.other_status.items()) or "none" for m in results]
    table.append(["other run statuses in window", *statuses, *("" for _ in peers)])
    rounds = results[0].rounds
    print(
        f"\n{workload_title(workload.kind)}: N={workload.n:,}, window {workload.seconds:g} s"
        + (f", medians of {rounds} interleaved rounds" if rounds > 1 else "")
    )
    print_rows(table)
    for metrics in results:
        passed = (
            f" ({metrics.rounds_passed} of {metrics.rounds} rounds passed on their own)"
            if metrics.rounds > 1
            else ""
        )
        print(f"  {metrics.scheduler}:{passed}")
        for verdict in metrics.verdicts():
            mark = "n/a " if verdict.ok is None else "PASS" if verdict.ok else "FAIL"
            print(f"    [{mark}] {verdict.label}")
        if metrics.exit_code is None:
            print("    note: ignored SIGTERM (killed 20 s later)")
        elif metrics.exit_code not in (0, -signal.SIGTERM):
            print(f"    note: exit code {metrics.exit_code}")
        for note in metrics.notes:
            print(f"    note: {note}")
    print(flush=True)


def print_summary(groups: Sequence[Sequence[Metrics]], title: str) -> None:
    """One table over several (N, workload) groups of medians, with the ratios jobctl/peer."""
    header = [
        "N",
        "workload",
        "scheduler",
        "CPU ms/fire",
        "p99 ms",
        "missed/skipped/dup",
        "recorded",
        "RSS MB",
        "load",
        "target",
        "rounds ok",
        "jobctl/this: CPU",
        "p99",
        "RSS",
    ]
    table = [header]
    for group in groups:
        jobctl = next((m for m in group if m.scheduler == "jobctl"), None)
        for metrics in group:
            ratios = ["", "", ""]
            if jobctl is not None and metrics is not jobctl:
                ratios = [
                    ratio(jobctl.cpu_ms_per_fire, metrics.cpu_ms_per_fire),
                    ratio(jobctl.late_p99, metrics.late_p99),
                    ratio(jobctl.rss_mb, metrics.rss_mb),
                ]
            table.append(
                [
                    f"{metrics.workload.n:,}",
                    SHORT_KIND.get(metrics.workload.kind, metrics.workload.kind),
                    metrics.scheduler,
                    fmt(metrics.cpu_ms_per_fire, 3),
                    fmt(metrics.late_p99),
                    f"{fmt(metrics.missed)}/{fmt(metrics.skipped)}/{fmt(metrics.duplicates)}",
                    recorded_text(metrics),
                    fmt(metrics.rss_mb),
                    fmt(metrics.load),
                    "PASS" if metrics.passed else "FAIL",
                    f"{metrics.rounds_passed}/{metrics.rounds}",
                    *ratios,
                ]
            )
    print(f"\n{title}")
    print_rows(table, left=3)
    print(
        f"  target (issue 18): spread p99 < {SUSTAINED_P99_MS:,.0f} ms, aligned p99 < "
        f"{BURST_P99_MS:,.0f} ms, 0 missed, 0 skipped, 0 duplicates, every fire recorded "
        "(n/a for a scheduler that records nothing); ratios from the medians; 'rounds ok': "
        "rounds that passed on their own; load: the machine's 1-minute load average",
        flush=True,
    )


def rounds_text(count: int) -> str:
    return f"{count} round" + ("s" if count != 1 else "")


def held_cell(held: int | None, top: bool) -> str:
    if held is None:
        return "none"
    return f"{held:,}" + ("+" if top else "")


def held_ratio(jobctl: int | None, peer: int | None, top: int) -> str:
    """jobctl's highest N over the peer's; a side that held the top step is only a bound."""
    if jobctl is None or peer is None or (jobctl == top and peer == top):
        return "-"
    text = f"{jobctl / peer:.2f}x"
    if jobctl == top:
        return f">= {text}"
    if peer == top:
        return f"<= {text}"
    return text


def ramp(bench: Bench, kinds: Sequence[str], steps: Sequence[int], seconds: float) -> None:
    """Each workload at growing N; a scheduler leaves at its first N that fails the target."""
    held: dict[tuple[str, str], int | None] = {}
    groups: list[list[Metrics]] = []
    for kind in kinds:
        active = list(bench.schedulers)
        for scheduler in active:
            held[(kind, scheduler)] = None
        for n in steps:
            if not active:
                break
            medians = bench.run(Workload(kind, n, seconds), active)
            groups.append(medians)
            for metrics in medians:
                if metrics.passed:
                    held[(kind, metrics.scheduler)] = n
                else:
                    active.remove(metrics.scheduler)
    print_summary(groups, f"ramp, {seconds:g} s windows, medians of {rounds_text(bench.repeat)}:")
    top = steps[-1]
    peers = [name for name in bench.schedulers if name != "jobctl"]
    compare = "jobctl" in bench.schedulers
    header = [
        "workload",
        *bench.schedulers,
        *(f"jobctl/{peer}" for peer in peers if compare),
    ]
    table = [header]
    for kind in kinds:
        table.append(
            [
                workload_title(kind),
                *(
                    held_cell(held[(kind, name)], held[(kind, name)] == top)
                    for name in bench.schedulers
                ),
                *(
                    held_ratio(held[(kind, "jobctl")], held[(kind, peer)], top)
                    for peer in peers
                    if compare
                ),
            ]
        )
    print(
        f"\nhighest N that held issue 18's target (steps {', '.join(f'{s:,}' for s in steps)}; "
        "+: held the highest step tried):"
    )
    print_rows(table)
    print(flush=True)


# =================================================================================== CLI


def parse_schedulers(text: str) -> tuple[str, ...]:
    """`all`, `both`, a name or a comma list of names, in the order given, each once."""
    names: list[str] = []
    for part in text.split(","):
        part = part.strip()
        for name in SCHEDULER_GROUPS.get(part, (part,)):
            if name not in SCHEDULERS:
                raise ValueError(
                    f"unknown scheduler {name!r} (choose from {', '.join(SCHEDULERS)}, "
                    "a comma list, both or all)"
                )
            if name not in names:
                names.append(name)
    return tuple(names)


def parse_kinds(text: str) -> tuple[str, ...]:
    """spread/sustained and aligned/burst, comma-separated, as workload kinds."""
    kinds: list[str] = []
    for part in text.split(","):
        kind = WORKLOAD_NAMES.get(part.strip())
        if kind is None:
            raise ValueError(f"unknown workload {part!r} (choose from spread, aligned)")
        if kind not in kinds:
            kinds.append(kind)
    return tuple(kinds)


def parse_counts(text: str) -> list[int]:
    counts = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise ValueError(f"expected positive whole numbers, comma-separated: {text!r}")
    return counts


def main(argv: list[str]) -> None:
    if argv and argv[0] == "_sink":
        sink_main(argv[1])
        return
    if argv and argv[0] == "_apscheduler":
        apscheduler_main(argv[1], int(argv[2]), argv[3], argv[4], argv[5])
        return
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("workload", choices=("sustained", "burst", "idle", "ramp", "compare"))
    parser.add_argument(
        "-n",
        help="jobs, or a comma list of counts run in turn (default: 1,000; idle 100,000; "
        "compare 1000,2000,3000)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        help="measurement window (default: 60; burst and idle 30; ramp and compare 20)",
    )
    parser.add_argument(
        "--scheduler",
        default="all",
        help=f"{', '.join(SCHEDULERS)}, a comma list, both (jobctl,apscheduler) or all "
        "(default: all)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="interleaved rounds per workload; each metric is the median (default: 3)",
    )
    parser.add_argument(
        "--workloads",
        default="spread,aligned",
        help="ramp and compare: spread (sustained) and/or aligned (burst) (default: both)",
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds after readiness left out (default: 2)"
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=2.0,
        help="seconds the window's late fires get to arrive (default: 2)",
    )
    parser.add_argument(
        "--steps",
        default=",".join(map(str, RAMP_STEPS)),
        help="ramp: the values of N to try, in order",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="OUT.json",
        help="also write every round and every median to OUT.json",
    )
    parser.add_argument(
        "--daemon-arg",
        action="append",
        default=[],
        metavar="ARG",
        dest="daemon_args",
        help="one more argument for `jobctl daemon` (repeat for more; write --daemon-arg=--flag)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="OUT.prof",
        help="run jobctl's daemon under cProfile, writing OUT.prof (the last round's)",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="OUT.txt",
        dest="py_spy",
        help="sample each scheduler with py-spy over the window (raw stacks to "
        "OUT.txt, suffixed per scheduler) and print the hotspots",
    )
    parser.add_argument(
        "--daemon-wrapper",
        type=Path,
        metavar="SCRIPT",
        help="run `python SCRIPT daemon ...` instead of `python -m jobctl daemon "
        "...` (a script that patches jobctl, then calls jobctl.cli.main)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases and logs")
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        metavar="K",
        help="jobctl: K finished runs per job (and their events) recorded before the daemon "
        "starts, as a daemon that has run a while leaves them (the default keep is 1,000)",
    )
    parser.add_argument(
        "--timings",
        action="store_true",
        help="jobctl's jobs record each phase's time (`--timings`), to measure its CPU cost",
    )
    args = parser.parse_args(argv)
    try:
        schedulers = parse_schedulers(args.scheduler)
        kinds = parse_kinds(args.workloads)
        steps = parse_counts(args.steps)
        default_n = {"idle": "100000", "compare": "1000,2000,3000"}.get(args.workload, "1000")
        counts = parse_counts(args.n or default_n)
    except ValueError as exc:
        parser.error(str(exc))
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    options = Options(
        warmup=args.warmup,
        drain=args.drain,
        profile=args.profile,
        py_spy=args.py_spy,
        keep=args.keep,
        wrapper=args.daemon_wrapper,
        timings=args.timings,
        daemon_args=tuple(args.daemon_args),
        history=args.history,
    )
    bench = Bench(schedulers, options, args.repeat)
    print(
        f"schedulers {', '.join(schedulers)}; {args.repeat} interleaved round(s); "
        f"{os.cpu_count()} CPUs; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    try:
        if args.workload == "ramp":
            ramp(bench, kinds, steps, args.seconds or 20.0)
        elif args.workload == "compare":
            seconds = args.seconds or 20.0
            groups = [bench.run(Workload(kind, n, seconds)) for n in counts for kind in kinds]
            print_summary(
                groups, f"compare, {seconds:g} s windows, medians of {rounds_text(args.repeat)}:"
            )
        else:
            seconds = args.seconds or (60.0 if args.workload == "sustained" else 30.0)
            for n in counts:
                bench.run(Workload(args.workload, n, seconds))
    finally:
        if args.json is not None:
            args.json.write_text(json.dumps(bench.results, indent=1), encoding="utf-8")
            print(f"results written to {args.json}")


if __name__ == "__main__":
    main(sys.argv[1:])
