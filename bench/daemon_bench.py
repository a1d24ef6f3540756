"""Daemon benchmark: jobctl's daemon against APScheduler 3 on the same workloads.

    python bench/daemon_bench.py sustained -n 1000 --seconds 60
    python bench/daemon_bench.py burst -n 1000 --seconds 30
    python bench/daemon_bench.py idle -n 100000 --seconds 30
    python bench/daemon_bench.py ramp --scheduler jobctl
    ... [--scheduler jobctl|apscheduler|both] [--warmup 2] [--drain 2] [--profile OUT.prof]
    ... [--timings]  (jobctl's jobs with `--timings`: compare cpu ms per fire with and without)

Workloads (PRODUCT.md, "Benchmark workloads"):

* sustained: N jobs every second, job k at offset k*1000//N ms (phases spread over the second).
  Target: p99 lateness < 100 ms, no missed and no duplicate fire, every fire recorded.
* burst: N jobs every second, all on the same instant. Target: every second, all N fired
  within 1 s of the slot.
* idle: N daily jobs (cron `M H * * *`, spread over the day). Targets: ready within 5 s,
  below 1% of a core, RSS under 200 MB.
* ramp: sustained with growing N (shorter windows) until the target fails; prints the highest
  N that held.

Each scheduler runs in its own process, measured the same way: readiness (spawn to first
heartbeat / "ready"), CPU seconds over the window (utime+stime from /proc/PID/stat) and peak
RSS (VmHWM). A separate sink process (aiohttp low-level server on 127.0.0.1) records for each
request its arrival time and the X-Jobctl-Job/-Run/-Scheduled-For headers. Lateness is arrival
minus X-Jobctl-Scheduled-For. Slots of the first `--warmup` seconds after readiness are left
out (the daemon also catches up the slots that passed between creating the jobs and its
start); the window's fires get `--drain` more seconds to arrive before the scheduler is
stopped.

APScheduler side: AsyncIOScheduler, MemoryJobStore, the default AsyncIOExecutor with
coalesce=False, max_instances=1000, misfire_grace_time=None; IntervalTrigger(seconds=1)
with its start_date on the job's phase (CronTrigger for the daily jobs); one aiohttp
ClientSession (limit 256, as jobctl's --max-http). Each fire inserts a `running` row before the
request and updates it after, one BEGIN IMMEDIATE transaction each, in a SQLite file opened like
jobctl's (WAL, synchronous=NORMAL): how a user would record runs. The scheduled time sent in
X-Jobctl-Scheduled-For comes from APScheduler's EVENT_JOB_SUBMITTED (scheduled_run_times),
which is dispatched before the job's coroutine starts.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PYTHON = sys.executable
SCRIPT = str(Path(__file__).resolve())
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
SCHEDULERS = ("jobctl", "apscheduler")
RAMP_STEPS = (1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000, 10000)
MAX_HTTP = 256  # jobctl's --max-http default; APScheduler's connector gets the same limit

# Targets (PRODUCT.md and the daemon issue)
SUSTAINED_P99_MS = 100.0
BURST_WITHIN_S = 1.0
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


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, in seconds."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


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
    recorded: list[tuple[int, str, int, str]]  # run id, job, slot ms, status
    exit_code: int | None
    notes: list[str] = field(default_factory=list)


@dataclass
class Metrics:
    scheduler: str
    workload: Workload
    setup_s: float
    ready_s: float
    window_s: float
    expected: int
    received: int
    missed: int
    duplicates: int
    late_p50: float
    late_p99: float
    late_max: float
    not_recorded: int  # received in the window, but no succeeded row for that run id
    recorded_not_received: int  # succeeded rows for window slots the sink never saw
    other_status: Counter[str]
    cpu_s: float
    cpu_pct: float
    cpu_ms_per_fire: float
    rss_mb: float
    sink_cpu_pct: float
    exit_code: int | None
    burst_seconds: int = 0
    burst_ok_seconds: int = 0
    burst_p50: float = float("nan")
    burst_p99: float = float("nan")
    burst_max: float = float("nan")
    notes: list[str] = field(default_factory=list)

    def verdicts(self) -> list[tuple[str, bool]]:
        kind = self.workload.kind
        clean = self.missed == 0 and self.duplicates == 0
        recorded = self.not_recorded == 0 and self.recorded_not_received == 0
        if kind == "sustained":
            return [
                (f"p99 lateness < {SUSTAINED_P99_MS:.0f} ms", self.late_p99 < SUSTAINED_P99_MS),
                ("no missed, no duplicate fire", clean),
                ("every fire recorded", recorded),
            ]
        if kind == "burst":
            return [
                (
                    f"all {self.workload.n} fired within {BURST_WITHIN_S:.0f} s, every second",
                    self.burst_seconds > 0 and self.burst_ok_seconds == self.burst_seconds,
                ),
                ("no missed, no duplicate fire", clean),
                ("every fire recorded", recorded),
            ]
        return [
            (f"ready within {IDLE_READY_S:.0f} s", self.ready_s < IDLE_READY_S),
            (f"idle below {IDLE_CPU_PCT:.0f}% of a core", self.cpu_pct < IDLE_CPU_PCT),
            (f"RSS under {IDLE_RSS_MB:.0f} MB", self.rss_mb < IDLE_RSS_MB),
        ]

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.verdicts())


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
    succeeded = {str(run_id) for run_id, _, _, status in run.recorded if status == "succeeded"}
    window_rows = [row for row in run.recorded if start * 1000 <= row[2] < end * 1000]
    other = Counter(status for _, _, _, status in window_rows if status != "succeeded")
    recorded_not_received = sum(
        1
        for run_id, _, _, status in window_rows
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
        duplicates=duplicates,
        late_p50=percentile(lateness, 50),
        late_p99=percentile(lateness, 99),
        late_max=lateness[-1] if lateness else float("nan"),
        not_recorded=len(received_ids - succeeded),
        recorded_not_received=recorded_not_received,
        other_status=other,
        cpu_s=run.cpu_s,
        cpu_pct=run.cpu_s / wall * 100,
        cpu_ms_per_fire=run.cpu_s / fires * 1000 if fires else float("nan"),
        rss_mb=run.rss_mb,
        sink_cpu_pct=run.sink_cpu_s / wall * 100,
        exit_code=run.exit_code,
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


def measure(
    proc: subprocess.Popen[bytes],
    ready_at: float,
    sink: Sink,
    workload: Workload,
    options: Options,
) -> tuple[tuple[float, float], float, float, float, int | None]:
    """Window, CPU, sink CPU and peak RSS of a ready scheduler process; then stop it."""
    start = ready_at + options.warmup
    end = start + workload.seconds
    sleep_until(start)
    cpu0, sink0 = cpu_seconds(proc.pid), sink.cpu()
    spy = start_py_spy(proc.pid, workload.seconds, options.py_spy)
    sleep_until(end)
    cpu1, sink1 = cpu_seconds(proc.pid), sink.cpu()
    if spy is not None:
        spy.wait(timeout=30)
    sleep_until(end + options.drain)
    rss = peak_rss_mb(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = proc.wait(timeout=20)  # jobctl gets --grace 5s
    except subprocess.TimeoutExpired:
        proc.kill()
        code = None
    return (start, end), cpu1 - cpu0, sink1 - sink0, rss, code


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


def jobctl_rows(db: Path) -> list[tuple[int, str, int, str]]:
    conn = sqlite3.connect(db)
    try:
        cache: dict[str, int] = {}
        return [
            (run_id, name, slot_ms(scheduled, cache), status)
            for run_id, name, scheduled, status in conn.execute(
                "SELECT runs.id, jobs.name, runs.scheduled_for, runs.status "
                "FROM runs JOIN jobs ON jobs.id = runs.job_id"
            )
        ]
    finally:
        conn.close()


def run_jobctl(workload: Workload, options: Options, workdir: Path) -> Run:
    db = workdir / "jobctl.db"
    sink = Sink(workdir)
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
        ]
        if options.profile is not None:
            command[1:1] = ["-m", "cProfile", "-o", str(options.profile)]
        log = workdir / "jobctl-daemon.log"
        with open(log, "w") as stderr:
            spawned = time.time()
            proc = subprocess.Popen(command, stderr=stderr, stdout=subprocess.DEVNULL)
            try:
                ready_at = wait_heartbeat(db, proc, log)
                window, cpu, sink_cpu, rss, code = measure(proc, ready_at, sink, workload, options)
            finally:
                if proc.poll() is None:
                    proc.kill()
    finally:
        records = sink.stop()
    notes = []
    warnings = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    if warnings:
        notes.append(f"daemon log: {len(warnings)} lines, e.g. {warnings[-1][:160]!r}")
    return Run(
        "jobctl",
        workload,
        setup,
        ready_at - spawned,
        window,
        cpu,
        sink_cpu,
        rss,
        records,
        jobctl_rows(db),
        code,
        notes,
    )


# -------------------------------------------------------------------------- APScheduler


def apscheduler_main(kind: str, n: int, url: str, db: str) -> None:
    """The APScheduler process: N jobs, fires recorded to SQLite, stops on SIGTERM."""
    import aiohttp
    from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.base import BaseTrigger
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    workload = Workload(kind, n, 0)
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
    in_flight = 0

    def on_submitted(event: JobSubmissionEvent) -> None:
        pending[event.job_id].extend(event.scheduled_run_times)

    async def main() -> None:
        nonlocal in_flight
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_HTTP))

        async def fire(job: str) -> None:
            nonlocal in_flight
            slot = pending[job].popleft()
            scheduled = iso_ms(slot)
            in_flight += 1
            try:
                conn.execute("BEGIN IMMEDIATE")
                run_id = conn.execute(
                    "INSERT INTO runs (job, scheduled_for, status, started_at) "
                    "VALUES (?, ?, 'running', ?)",
                    (job, scheduled, time.time()),
                ).lastrowid
                conn.execute("COMMIT")
                headers = {
                    "User-Agent": "apscheduler-bench",
                    "X-Jobctl-Job": job,
                    "X-Jobctl-Run": str(run_id),
                    "X-Jobctl-Scheduled-For": scheduled,
                }
                status, code, error = "failed", None, None
                try:
                    async with session.get(url, headers=headers) as response:
                        await response.read()
                        code = response.status
                        status = "succeeded" if 200 <= code < 300 else "failed"
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    error = repr(exc)
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "UPDATE runs SET status = ?, finished_at = ?, http_status = ?, error = ? "
                    "WHERE id = ?",
                    (status, time.time(), code, error, run_id),
                )
                conn.execute("COMMIT")
            finally:
                in_flight -= 1

        scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": False, "max_instances": 1000, "misfire_grace_time": None},
        )
        scheduler.add_listener(on_submitted, EVENT_JOB_SUBMITTED)
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
    conn.close()


def iso_ms(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and Z, as jobctl sends X-Jobctl-Scheduled-For."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond // 1000:03d}Z"


def apscheduler_rows(db: Path) -> list[tuple[int, str, int, str]]:
    conn = sqlite3.connect(db)
    try:
        cache: dict[str, int] = {}
        return [
            (run_id, job, slot_ms(scheduled, cache), status)
            for run_id, job, scheduled, status in conn.execute(
                "SELECT id, job, scheduled_for, status FROM runs"
            )
        ]
    finally:
        conn.close()


def run_apscheduler(workload: Workload, options: Options, workdir: Path) -> Run:
    db = workdir / "apscheduler.db"
    sink = Sink(workdir)
    log = workdir / "apscheduler.log"
    try:
        with open(log, "w") as stderr:
            spawned = time.time()
            proc = subprocess.Popen(
                [PYTHON, SCRIPT, "_apscheduler", workload.kind, str(workload.n), sink.url, str(db)],
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
            try:
                try:
                    read_line(proc, 600.0)
                except RuntimeError:
                    raise stopped_early(proc, log) from None
                ready_at = time.time()
                window, cpu, sink_cpu, rss, code = measure(proc, ready_at, sink, workload, options)
            finally:
                if proc.poll() is None:
                    proc.kill()
    finally:
        records = sink.stop()
    notes = ["jobs added at start-up (MemoryJobStore), so readiness includes creating them"]
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    if lines:
        notes.append(f"log: {len(lines)} lines, e.g. {lines[-1][:160]!r}")
    return Run(
        "apscheduler",
        workload,
        0.0,
        ready_at - spawned,
        window,
        cpu,
        sink_cpu,
        rss,
        records,
        apscheduler_rows(db),
        code,
        notes,
    )


RUNNERS = {"jobctl": run_jobctl, "apscheduler": run_apscheduler}


def run_one(scheduler: str, workload: Workload, options: Options) -> Metrics:
    with tempfile.TemporaryDirectory(prefix=f"bench-{scheduler}-") as tmp:
        print(
            f"-- {scheduler}: {workload.kind}, N={workload.n:,}, {workload.seconds:g} s window ...",
            flush=True,
        )
        spy = options.py_spy
        if spy is not None:
            spy = spy.with_name(f"{spy.stem}-{scheduler}-{workload.kind}-{workload.n}{spy.suffix}")
        run_options = Options(
            options.warmup,
            options.drain,
            options.profile,
            spy,
            options.keep,
            options.wrapper,
            options.timings,
        )
        load_before = os.getloadavg()[0]
        metrics = analyse(RUNNERS[scheduler](workload, run_options, Path(tmp)))
        load_after = os.getloadavg()[0]
        if max(load_before, load_after) > 1.5:
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
        return metrics


# ============================================================================== printing


def fmt(value: float, digits: int = 1) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def ratio(a: float, b: float) -> str:
    if not b or math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return "-"
    return f"{a / b:.2f}x"


# (label, attribute, digits, lower is better -> ratio printed)
ROWS: dict[str, list[tuple[str, str, int, bool]]] = {
    "common": [
        ("jobs created (s)", "setup_s", 2, False),
        ("ready after spawn (s)", "ready_s", 2, True),
        ("window (s)", "window_s", 1, False),
        ("fires expected", "expected", 0, False),
        ("fires received", "received", 0, False),
        ("missed", "missed", 0, False),
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
    ],
    "burst": [
        ("seconds in window", "burst_seconds", 0, False),
        ("seconds all fired < 1 s", "burst_ok_seconds", 0, False),
        ("all-fired-within p50 (s)", "burst_p50", 3, True),
        ("all-fired-within p99 (s)", "burst_p99", 3, True),
        ("all-fired-within max (s)", "burst_max", 3, True),
    ],
}


def print_table(results: Sequence[Metrics]) -> None:
    workload = results[0].workload
    rows = list(ROWS["common"])
    if workload.kind == "burst":
        rows += ROWS["burst"]
    both = len(results) == 2
    header = ["metric", *(m.scheduler for m in results)] + (["jobctl/APScheduler"] if both else [])
    table = [header]
    for label, attr, digits, lower_better in rows:
        values = [getattr(m, attr) for m in results]
        line = [label, *(fmt(v, digits) for v in values)]
        if both:
            line.append(ratio(values[0], values[1]) if lower_better else "")
        table.append(line)
    statuses = [", ".join(f"{s} {c}" for s, c in m.other_status.items()) or "none" for m in results]
    table.append(["other run statuses in window", *statuses] + ([""] if both else []))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(f"\n{workload.kind}: N={workload.n:,}, window {workload.seconds:g} s")
    for index, row in enumerate(table):
        print(
            "  "
            + "  ".join(
                cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            )
        )
        if index == 0:
            print("  " + "  ".join("-" * width for width in widths))
    for metrics in results:
        print(f"  {metrics.scheduler}:")
        for label, ok in metrics.verdicts():
            print(f"    [{'PASS' if ok else 'FAIL'}] {label}")
        if metrics.exit_code is None:
            print("    note: ignored SIGTERM (killed 20 s later)")
        elif metrics.exit_code not in (0, -signal.SIGTERM):
            print(f"    note: exit code {metrics.exit_code}")
        for note in metrics.notes:
            print(f"    note: {note}")
    print(flush=True)


def run_workload(
    kind: str, n: int, seconds: float, schedulers: Iterable[str], options: Options
) -> list[Metrics]:
    workload = Workload(kind, n, seconds)
    results = [run_one(name, workload, options) for name in schedulers]
    print_table(results)
    return results


def ramp(steps: Sequence[int], seconds: float, schedulers: Iterable[str], options: Options) -> None:
    for scheduler in schedulers:
        held: int | None = None
        summary: list[str] = []
        for n in steps:
            (metrics,) = run_workload("sustained", n, seconds, [scheduler], options)
            summary.append(
                f"  N={n:>6,}  p99 {fmt(metrics.late_p99):>8} ms  missed {metrics.missed:>6,}  "
                f"dup {metrics.duplicates}  unrecorded {metrics.not_recorded}  "
                f"CPU {fmt(metrics.cpu_pct)}%  RSS {fmt(metrics.rss_mb)} MB  "
                f"{'PASS' if metrics.passed else 'FAIL'}"
            )
            if not metrics.passed:
                break
            held = n
        print(f"ramp ({scheduler}, {seconds:g} s windows):")
        print("\n".join(summary))
        print(
            f"  highest N that held the sustained target: {f'{held:,}' if held else 'none'}\n",
            flush=True,
        )


# =================================================================================== CLI


def main(argv: list[str]) -> None:
    if argv and argv[0] == "_sink":
        sink_main(argv[1])
        return
    if argv and argv[0] == "_apscheduler":
        apscheduler_main(argv[1], int(argv[2]), argv[3], argv[4])
        return
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("workload", choices=("sustained", "burst", "idle", "ramp"))
    parser.add_argument("-n", type=int, help="jobs (default: 1,000; idle 100,000)")
    parser.add_argument(
        "--seconds", type=float, help="measurement window (default: 60; burst and idle 30; ramp 20)"
    )
    parser.add_argument("--scheduler", choices=(*SCHEDULERS, "both"), default="both")
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
        "--profile",
        type=Path,
        metavar="OUT.prof",
        help="run jobctl's daemon under cProfile, writing OUT.prof",
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
        "--timings",
        action="store_true",
        help="jobctl's jobs record each phase's time (`--timings`), to measure its CPU cost",
    )
    args = parser.parse_args(argv)
    schedulers = SCHEDULERS if args.scheduler == "both" else (args.scheduler,)
    options = Options(
        warmup=args.warmup,
        drain=args.drain,
        profile=args.profile,
        py_spy=args.py_spy,
        keep=args.keep,
        wrapper=args.daemon_wrapper,
        timings=args.timings,
    )
    if args.workload == "ramp":
        steps = [int(step) for step in args.steps.split(",")]
        ramp(steps, args.seconds or 20.0, schedulers, options)
        return
    default_n = 100_000 if args.workload == "idle" else 1000
    default_seconds = 60.0 if args.workload == "sustained" else 30.0
    run_workload(
        args.workload, args.n or default_n, args.seconds or default_seconds, schedulers, options
    )


if __name__ == "__main__":
    main(sys.argv[1:])
