"""Read commands against a big history: 1,000 jobs, 5,000,000 runs over ~60 days.

    python bench/history.py                    # build once (cached), time, diagnose, prune
    python bench/history.py --rebuild          # build the database again (~2.5 min)
    python bench/history.py --profile          # also cProfile every command that misses
    python bench/history.py --no-prune --write-cost \\
        --try-index 'DROP INDEX runs_finished_at' \\
        --try-index 'CREATE INDEX runs_finished_status ON runs (finished_at, status)'
    python bench/history.py --no-timings --try-prune-order 500   # prune only

Target: each command within 100 ms of the CLI's own start-up time (`jobctl --version`).

The database is built straight into the real schema: the jobs with `jobctl apply`, then the
runs with executemany through `jobctl.store.sqlite.connection.connect` (the big run indexes are dropped during
the load and re-created from their own stored SQL, which is faster than maintaining them
row by row, though it leaves them more compact than a daemon-grown file), and the jobs'
counters set from what was inserted. It is cached in /tmp/jobctl-bench-history.db with a
.json note of how it was built; jobctl migrates it when its schema moves on. Timings are
warm-cache, median of --reps runs taken round-robin.

For each command that misses, the SQL it runs is captured in a fresh process (sqlite3
trace callback), grouped by shape, re-timed statement by statement and shown with EXPLAIN
QUERY PLAN. `--try-index` repeats the timings and that breakdown on a copy of the database
with the given statements applied; `--write-cost` also measures the daemon's write path
(claim as `running`, then record_outcomes) on that copy and on an untouched copy,
alternately, since every index on runs is paid for there. `runs prune --keep N` is timed
once on a copy; `--try-prune-order` times the same retention deleting in id order.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import io
import itertools
import json
import math
import os
import pstats
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DEFAULT_DB = Path("/tmp/jobctl-bench-history.db")
TARGET_MS = 100.0
US = 1_000_000
HOUR = 3600 * US
DAY = 24 * HOUR
WINDOW = HOUR  # runs are generated one hour of schedule at a time, in id order

# Daemon downtimes, as (how long before the end it started, how long it lasted): each
# leaves one `missed` row per job and a catch-up run, as the engine records them.
GAPS = (
    (50 * DAY, 3 * HOUR),
    (31 * DAY, 45 * 60 * US),
    (12 * DAY, 8 * HOUR),
    (6 * HOUR, 20 * 60 * US),
)

INSERT_SQL = (
    "INSERT INTO runs (job_id, trigger, status, attempt, scheduled_for, started_at, "
    "finished_at, duration_ms, http_status, exit_code, error, output, snapshot, details, "
    "owner_pid, owner_host, created_at, due_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
OWNER_HOST = "bench-host"


@dataclass(frozen=True)
class JobClass:
    prefix: str
    per_thousand: int  # how many of every 1,000 jobs
    trigger: str
    schedule: str | None
    interval_us: int | None  # None: manual, run by hand about `manual_per_day` times a day
    offset_us: int = 0


CLASSES = (
    JobClass("minutely", 20, "every", "1m", 60 * US),
    JobClass("every5m", 110, "every", "5m", 300 * US),
    JobClass("quarter", 150, "every", "15m+5m", 900 * US, 300 * US),
    JobClass("halfhour", 100, "cron", "*/30 * * * *", 1800 * US),
    JobClass("hourly", 250, "cron", "@hourly", HOUR),
    JobClass("nightly", 210, "cron", "0 3 * * *", DAY, 3 * HOUR),
    JobClass("manual", 160, "manual", None, None),
)
MANUAL_PER_DAY = 1.0

HTTP_BODIES = [
    json.dumps(
        {
            "ok": True,
            "processed": n,
            "items": [{"id": i, "state": "done"} for i in range(n % 7 + 3)],
        }
    )
    for n in range(8)
]
EXEC_OUTPUTS = [
    "".join(f"step {i}: ok ({i * 13 % 97} rows)\n" for i in range(n + 2)) for n in range(8)
]
ERROR_BODY = json.dumps({"error": "upstream unavailable", "retry_after": 30, "trace": "x" * 120})


# ------------------------------------------------------------------------------- build


@dataclass
class JobPlan:
    """One job's generated behaviour and the counters of what was generated for it."""

    id: int
    name: str
    cls: JobClass
    action: str
    fail_p: float
    timeout_p: float
    skip_per_1024: int  # overlap skips, out of 1,024 scheduled slots
    retries: int
    durations: list[int]  # milliseconds, drawn from
    snapshot_head: str = ""
    snapshot_tail: str = ""
    details: str | None = None
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    missed: int = 0
    consecutive: int = 0
    last_run_at: str | None = None
    last_status: str | None = None
    last_success_at: str | None = None
    last_slot_at: str | None = None


def job_document(count: int) -> tuple[dict[str, Any], list[tuple[str, JobClass]]]:
    """The `apply` document for `count` jobs in the CLASSES proportions."""
    sizes = [max(1, round(cls.per_thousand * count / 1000)) for cls in CLASSES]
    sizes[-1] += count - sum(sizes)
    jobs: list[dict[str, Any]] = []
    names: list[tuple[str, JobClass]] = []
    for cls, size in zip(CLASSES, sizes, strict=True):
        for k in range(size):
            name = f"{cls.prefix}-{k:03d}"
            entry: dict[str, Any] = {
                "name": name,
                "description": f"{cls.prefix} job {k}",
                "timezone": "UTC",
                "trigger": cls.trigger,
            }
            if cls.schedule:
                entry["schedule"] = cls.schedule
            if k % 4 == 3:
                entry["action"] = "exec"
                entry["spec"] = {"command": f"/usr/local/bin/report --part {k}"}
            else:
                entry["action"] = "http"
                entry["spec"] = {
                    "url": f"https://api.example.com/{cls.prefix}/{k}",
                    "method": "POST" if k % 2 else "GET",
                    "headers": {"Authorization": "Bearer ${TOKEN}"},
                }
            if k % 5 == 0:
                entry["policies"] = {"retries": 2}
            jobs.append(entry)
            names.append((name, cls))
    return {"version": 1, "jobs": jobs}, names


MINUTE_SECOND = [f"{second // 60:02d}:{second % 60:02d}." for second in range(3600)]


class Clock:
    """Microseconds since the epoch as the store's text, fast (one strftime per hour)."""

    def __init__(self) -> None:
        self._hours: dict[int, str] = {}

    def text(self, us: int) -> str:
        hour, rest = divmod(us, HOUR)
        prefix = self._hours.get(hour)
        if prefix is None:
            prefix = datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H:")
            self._hours[hour] = prefix
        second, micro = divmod(rest, US)
        return prefix + MINUTE_SECOND[second] + str(micro + US)[1:] + "Z"


def slots_between(job: JobPlan, start: int, end: int) -> range:
    """The job's periodic slots in [start, end), microseconds."""
    interval = job.cls.interval_us
    assert interval is not None
    offset = job.cls.offset_us
    first = -((offset - start) // interval) * interval + offset  # ceil to the grid
    return range(first, end, interval)


def pick_start(jobs: list[JobPlan], end: int, days: int, target: int) -> int:
    """The latest start (at most `days` back) whose periodic slots reach `target` rows."""
    periodic = [job for job in jobs if job.cls.interval_us]

    def count(start: int) -> int:
        return sum(len(slots_between(job, start, end)) for job in periodic)

    low, high = end - days * DAY, end
    if count(low) <= target:
        return low
    while high - low > US:
        middle = (low + high) // 2
        if count(middle) >= target:
            low = middle
        else:
            high = middle
    return low


# An event is a run row to write: (created, seq, job, trigger, slot, attempt, missed_count,
# missed_until); `seq` is unique, so tuples never compare past it.
Event = tuple[int, int, JobPlan, str, int, int, int, int]


class Generator:
    """Yields run rows in id order (created time), keeping each job's counters."""

    def __init__(self, jobs: list[JobPlan], start: int, end: int, seed: int) -> None:
        self.jobs = jobs
        self.start = start
        self.end = end
        self.rng = random.Random(seed)
        self.clock = Clock()
        self.next_id = 1
        self.seq = 0
        self.pending: list[Event] = []
        self.gaps = [
            (end - before, end - before + length)
            for before, length in GAPS
            if end - before >= start
        ]
        self._memo: dict[int, str] = {}  # slot and tick times shared by many rows
        for gap in self.gaps:
            self._plan_gap(*gap)
        self._plan_manual()

    def _push(
        self,
        created: int,
        job: JobPlan,
        trigger: str,
        slot: int,
        attempt: int = 1,
        missed_count: int = 0,
        missed_until: int = 0,
    ) -> None:
        self.seq += 1
        heapq.heappush(
            self.pending,
            (created, self.seq, job, trigger, slot, attempt, missed_count, missed_until),
        )

    def _plan_gap(self, gap_start: int, gap_end: int) -> None:
        """Per job: one missed row for the slots in the gap but the last, which catches up."""
        awake = gap_end + 400_000
        for job in self.jobs:
            if not job.cls.interval_us:
                continue
            slots = slots_between(job, gap_start, gap_end)
            if not slots:
                continue
            if len(slots) > 1:
                self._push(
                    awake,
                    job,
                    "missed",
                    slots[0],
                    missed_count=len(slots) - 1,
                    missed_until=slots[-2],
                )
            self._push(awake, job, "catchup", slots[-1])

    def _plan_manual(self) -> None:
        rate = MANUAL_PER_DAY / DAY
        for job in self.jobs:
            if job.cls.interval_us:
                continue
            moment = self.start
            while True:
                moment += int(self.rng.expovariate(rate))
                if moment >= self.end:
                    break
                self._push(moment, job, "manual", moment)

    def _in_gap(self, moment: int) -> bool:
        return any(low <= moment < high for low, high in self.gaps)

    def _shared_text(self, us: int) -> str:
        text = self._memo.get(us)
        if text is None:
            if len(self._memo) > 10_000:
                self._memo.clear()
            text = self._memo[us] = self.clock.text(us)
        return text

    def rows(self) -> Iterator[tuple[Any, ...]]:
        periodic = [job for job in self.jobs if job.cls.interval_us]
        rng = self.rng
        row = self._row
        for window in range(self.start, self.end, WINDOW):
            window_end = min(window + WINDOW, self.end)
            check_gaps = any(low < window_end and window < high for low, high in self.gaps)
            slots: list[tuple[int, int, JobPlan]] = []
            for job in periodic:
                for slot in slots_between(job, window, window_end):
                    if check_gaps and self._in_gap(slot):
                        continue
                    slots.append((slot, job.id, job))
            slots.sort(key=lambda item: (item[0], item[1]))
            batch: list[Event] = []
            tick = -1
            created = 0
            seq = self.seq
            for slot, _, job in slots:
                if slot != tick:  # one claim transaction per tick: one created_at for all
                    tick = slot
                    created = slot + rng.randint(2_000, 60_000)
                seq += 1
                batch.append((created, seq, job, "schedule", slot, 1, 0, 0))
            self.seq = seq
            if self.pending and self.pending[0][0] < window_end:
                while self.pending and self.pending[0][0] < window_end:
                    batch.append(heapq.heappop(self.pending))
                batch.sort()
            for event in batch:
                yield row(*event)
        while self.pending and self.pending[0][0] < self.end:
            yield row(*heapq.heappop(self.pending))

    def _row(
        self,
        created: int,
        _seq: int,
        job: JobPlan,
        trigger: str,
        slot: int,
        attempt: int,
        missed_count: int,
        missed_until: int,
    ) -> tuple[Any, ...]:
        """One run row; finished as the engine would have left it, counters updated."""
        run_id = self.next_id
        self.next_id += 1
        scheduled = self._shared_text(slot)
        created_text = self._shared_text(created)
        if trigger == "missed":
            job.missed += missed_count
            until = self.clock.text(missed_until)
            details = json.dumps(
                {"missed_count": missed_count, "missed_until": until[:19] + "Z", "estimated": False}
            )
            error = (
                f"missed {missed_count} slots from {scheduled[:19]}Z to "
                f"{until[:19]}Z: no daemon was running"
            )
            return (
                job.id,
                "schedule",
                "missed",
                1,
                scheduled,
                None,
                created_text,
                None,
                None,
                None,
                error,
                None,
                None,
                details,
                None,
                None,
                created_text,
                None,
            )
        bits = self.rng.getrandbits(32)
        if trigger == "schedule" and (bits >> 22) < job.skip_per_1024:
            job.skipped += 1
            return (
                job.id,
                trigger,
                "skipped",
                1,
                scheduled,
                None,
                created_text,
                None,
                None,
                None,
                "skipped: the previous run was still running (overlap skip)",
                None,
                None,
                None,
                None,
                None,
                created_text,
                None,
            )
        if trigger != "manual":
            job.last_slot_at = scheduled
        roll = self.rng.random()
        started = created + 200 + (bits & 4095)
        if roll < job.timeout_p:
            status = "timed_out"
            duration_ms = 30_000
        else:
            status = "failed" if roll < job.timeout_p + job.fail_p else "succeeded"
            duration_ms = job.durations[(bits >> 12) & 63]
        finished = started + duration_ms * 1000
        text = self.clock.text
        started_text = text(started)
        http_status = exit_code = output = error = details = None
        if job.action == "http":
            snapshot = f'{job.snapshot_head}{run_id}{job.snapshot_tail}{scheduled[:19]}Z"}}}}'
            if status == "succeeded":
                http_status = 200
                details = job.details
                if (bits >> 18) & 15 < 5:  # about 30% of answers carry a body
                    output = HTTP_BODIES[run_id % len(HTTP_BODIES)]
            elif status == "failed":
                http_status = 503 if run_id % 3 else 500
                error = f"HTTP {http_status} (expected 2xx)"
                output = ERROR_BODY
                details = job.details
            else:
                error = "timed out after 30s"
        else:
            snapshot = job.snapshot_head
            if status == "succeeded":
                exit_code = 0
                output = EXEC_OUTPUTS[run_id % len(EXEC_OUTPUTS)]
            elif status == "failed":
                exit_code = 1
                error = "exit code 1"
                output = "error: could not reach the database\n"
            else:
                error = "timed out after 1h"
        job.total += 1
        job.last_run_at = started_text
        job.last_status = status
        if status == "succeeded":
            job.succeeded += 1
            job.consecutive = 0
            job.last_success_at = started_text
        else:
            job.failed += 1
            job.consecutive += 1
            if attempt <= job.retries:
                self._push(
                    finished + 10 * US * 2 ** (attempt - 1), job, "retry", slot, attempt=attempt + 1
                )
        return (
            job.id,
            trigger,
            status,
            attempt,
            scheduled,
            started_text,
            text(finished),
            duration_ms,
            http_status,
            exit_code,
            error,
            output,
            snapshot,
            details,
            4242,
            OWNER_HOST,
            created_text,
            created_text if trigger == "retry" else None,
        )


def lognormal_durations(rng: random.Random, median_ms: int) -> list[int]:
    return [
        min(29_000, max(1, int(rng.lognormvariate(math.log(median_ms), 0.6)))) for _ in range(64)
    ]


def plan_jobs(
    conn: sqlite3.Connection, names: list[tuple[str, JobClass]], rng: random.Random
) -> list[JobPlan]:
    ids = {row[0]: row[1] for row in conn.execute("SELECT name, id FROM jobs")}
    plans = []
    for index, (name, cls) in enumerate(names):
        health = rng.random()
        fail_p = 0.9 if health < 0.01 else 0.15 if health < 0.08 else rng.uniform(0.002, 0.02)
        plan = JobPlan(
            id=ids[name],
            name=name,
            cls=cls,
            action="exec" if index % 4 == 3 else "http",
            fail_p=fail_p,
            timeout_p=0.002,
            skip_per_1024=10 if index % 9 == 0 else 0,
            retries=2 if int(name.rsplit("-", 1)[1]) % 5 == 0 else 0,
            durations=lognormal_durations(rng, rng.choice((40, 120, 400, 1500, 6000))),
        )
        if plan.action == "http":
            url = f"https://api.example.com/{cls.prefix}/{name.rsplit('-', 1)[1]}"
            plan.snapshot_head = (
                '{"method": "GET", "url": "' + url + '", "body": null, "headers": '
                '{"Authorization": "***", "User-Agent": "jobctl/0.1.0", "X-Jobctl-Job": "'
                + name
                + '", "X-Jobctl-Run": "'
            )
            plan.snapshot_tail = '", "X-Jobctl-Scheduled-For": "'
            plan.details = json.dumps(
                {
                    "response_headers": {
                        "Content-Type": "application/json",
                        "Content-Length": "212",
                        "Server": "nginx",
                        "Cache-Control": "no-store",
                    },
                    "final_url": url,
                }
            )
        else:
            plan.snapshot_head = json.dumps(
                {
                    "command": ["/usr/local/bin/report", "--part", name],
                    "cwd": None,
                    "env": {},
                    "shell": False,
                }
            )
        plans.append(plan)
    return plans


def drop_run_indexes(conn: sqlite3.Connection) -> list[str]:
    """Drop the big indexes on runs and return their SQL, to re-create after the load.

    The partial ones stay: no finished row enters them, so they cost nothing to keep.
    """
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs' "
        "AND sql IS NOT NULL AND sql NOT LIKE '%status IN (''queued'', ''running'')%' "
        "AND sql NOT LIKE '%WHERE status = ''queued''%'"
    ).fetchall()
    for name, _ in rows:
        conn.execute(f"DROP INDEX {name}")
    return [sql for _, sql in rows]


def load_runs(
    conn: sqlite3.Connection,
    rows: Iterator[tuple[Any, ...]],
    started: float,
    chunk_size: int = 100_000,
) -> Counter[str]:
    """executemany in one transaction, chunk by chunk; returns the rows by status.

    (A producer thread does not help: sqlite3 lets go of the GIL at every row, and taking
    it back from a busy producer waits a switch interval each time.)
    """
    statuses: Counter[str] = Counter()
    conn.execute("BEGIN")
    while chunk := list(itertools.islice(rows, chunk_size)):
        conn.executemany(INSERT_SQL, chunk)
        statuses.update(row[2] for row in chunk)
        inserted = sum(statuses.values())
        if inserted % 500_000 < chunk_size:
            print(
                f"\r  {inserted:,} runs inserted ({time.perf_counter() - started:.0f}s)",
                end="",
                flush=True,
            )
    conn.execute("COMMIT")
    print(
        f"\r  {sum(statuses.values()):,} runs inserted ({time.perf_counter() - started:.0f}s)",
        flush=True,
    )
    return statuses


def build(
    db: Path, jobs: int, runs: int, days: int, seed: int, *, keep_indexes: bool = False
) -> dict[str, Any]:
    from jobctl.store.sqlite import connect, write_transaction

    started = time.perf_counter()
    remove_db(db)
    document, names = job_document(jobs)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(document, handle)
    jobctl = str(Path(sys.executable).with_name("jobctl"))
    subprocess.run(
        [jobctl, "--db", str(db), "apply", "-f", handle.name], check=True, stdout=subprocess.DEVNULL
    )
    os.unlink(handle.name)
    print(f"  {jobs} jobs applied in {time.perf_counter() - started:.1f}s", flush=True)

    conn = connect(db)
    rng = random.Random(seed)
    plans = plan_jobs(conn, names, rng)
    end = (int(time.time()) // 60) * 60 * US
    manual_jobs = sum(1 for plan in plans if not plan.cls.interval_us)
    start = pick_start(plans, end, days, runs - int(MANUAL_PER_DAY * days * manual_jobs))
    # Bulk-load settings for this connection only; the file is WAL again afterwards.
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA threads = 2")
    indexes = [] if keep_indexes else drop_run_indexes(conn)
    generator = Generator(plans, start, end, seed)
    statuses = load_runs(conn, generator.rows(), started)
    inserted = sum(statuses.values())
    loaded = time.perf_counter()
    for sql in indexes:
        conn.execute(sql)
    if indexes:
        print(
            f"  {len(indexes)} run indexes re-created in {time.perf_counter() - loaded:.1f}s",
            flush=True,
        )
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    end_text = Clock().text(end)
    with write_transaction(conn):
        conn.executemany(
            "UPDATE jobs SET runs_total = ?, runs_succeeded = ?, runs_failed = ?, "
            "runs_skipped = ?, runs_missed = ?, consecutive_failures = ?, last_run_at = ?, "
            "last_status = ?, last_success_at = ?, last_slot_at = ? WHERE id = ?",
            [
                (
                    p.total,
                    p.succeeded,
                    p.failed,
                    p.skipped,
                    p.missed,
                    p.consecutive,
                    p.last_run_at,
                    p.last_status,
                    p.last_success_at,
                    p.last_slot_at,
                    p.id,
                )
                for p in plans
            ],
        )
        conn.execute(
            "INSERT OR REPLACE INTO daemon (id, pid, host, started_at, last_tick_at, "
            "stopped_at) VALUES (1, 4242, ?, ?, ?, ?)",
            (OWNER_HOST, Clock().text(end - 6 * HOUR), end_text, end_text),
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    meta = {
        "jobs": jobs,
        "runs": runs,
        "days": days,
        "seed": seed,
        "rows": inserted,
        "by_status": dict(sorted(statuses.items())),
        "built_at": end_text,
        "span_days": round((end - start) / DAY, 1),
        "build_seconds": round(time.perf_counter() - started, 1),
        "size_mb": round(db.stat().st_size / 2**20),
    }
    meta_path(db).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta


def meta_path(db: Path) -> Path:
    return db.with_suffix(".json")


def ensure_db(args: argparse.Namespace) -> dict[str, Any]:
    wanted = {"jobs": args.jobs, "runs": args.runs, "days": args.days, "seed": args.seed}
    meta_file = meta_path(args.db)
    if not args.rebuild and args.db.exists() and meta_file.exists():
        meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
        if all(meta.get(key) == value for key, value in wanted.items()):
            age = datetime.now(UTC) - datetime.fromisoformat(meta["built_at"])
            print(
                f"using the cached {args.db} (built {age.total_seconds() / 3600:.1f}h ago "
                f"in {meta['build_seconds']}s; --rebuild to build it again)"
            )
            if age > timedelta(hours=3):
                print(
                    "  note: its newest runs are that old, so the 24h windows of "
                    "`--since 24h` and `status` hold fewer rows than right after a build"
                )
            return meta
    print(f"building {args.db}: {args.jobs} jobs, {args.runs:,} runs over <= {args.days} days")
    return build(args.db, args.jobs, args.runs, args.days, args.seed)


# ------------------------------------------------------------------------------ timing


@dataclass
class Command:
    label: str
    args: list[str]
    extra: bool = False  # not in the brief's list: shown, but kept apart
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def jobctl_path() -> str:
    return str(Path(sys.executable).with_name("jobctl"))


def child_env(db: Path) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "JOBCTL_"))
    }
    return env | {"JOBCTL_DB": str(db), "NO_COLOR": "1"}


def run_once(
    args: list[str], env: dict[str, str], timeout: float | None = None
) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(
        [jobctl_path(), *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(
            f"jobctl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return elapsed, result.stdout


def measure(commands: list[Command], db: Path, reps: int, warmup: int) -> None:
    """Round-robin, shuffled each round; the warm-up rounds also warm the page cache."""
    env = child_env(db)
    for round_index in range(warmup + reps):
        order = commands[:]
        random.shuffle(order)
        for command in order:
            elapsed, _ = run_once(command.args, env)
            if round_index >= warmup:
                command.samples.append(elapsed)


def print_timings(
    commands: list[Command], baseline: Command, before: dict[str, float] | None = None
) -> list[Command]:
    """The table; returns the commands that miss the target."""
    base = baseline.median
    misses = []
    extra_header = f" {'before':>8}" if before else ""
    print(
        f"{'command':<44} {'median':>8} {'min':>8} {'-start-up':>9}{extra_header}  "
        f"target {TARGET_MS:.0f} ms"
    )
    for command in commands:
        over = (command.median - base) * 1000
        if command is baseline:
            verdict = "(start-up baseline)"
        else:
            good = over <= TARGET_MS
            verdict = ("ok" if good else "MISS") + (" (extra)" if command.extra else "")
            if not good:
                misses.append(command)
        previous = (
            f" {before[command.label] * 1000:8.1f}"
            if before and command.label in before
            else (f" {'':>8}" if before else "")
        )
        print(
            f"{command.label:<44} {command.median * 1000:8.1f} "
            f"{min(command.samples) * 1000:8.1f} {over:9.1f}{previous}  {verdict}"
        )
    print(
        "(milliseconds, wall time of the whole process; -start-up = median minus the "
        "median of `jobctl --version`)"
    )
    return misses


# ------------------------------------------------------------------------- diagnosing


@dataclass
class QueryGroup:
    shape: str
    example: str
    count: int = 0
    seconds: float = 0.0
    rows: int = 0


LITERAL = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


def in_child(task: str, **payload: Any) -> Any:
    """Run `task` in a fresh interpreter: the jobctl code may change while this one runs
    (others edit it), and a process that imported an older jobctl.db refuses a database
    that a newer one migrated."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", task, json.dumps(payload)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"child {task} failed: {result.stderr.strip()}")
    if result.stderr.strip():
        print(result.stderr.strip(), file=sys.stderr)
    return json.loads(result.stdout)


def child_main(task: str, payload: dict[str, Any]) -> Any:
    if task == "capture":
        return capture_sql(Path(payload["db"]), payload["args"])
    if task == "write-cost":
        return write_cost(Path(payload["db"]))
    raise ValueError(task)


def capture_sql(db: Path, args: list[str]) -> list[str]:
    """Run the command in this process and return every statement it sent to SQLite."""
    import jobctl.store.sqlite.connection
    from jobctl.cli import cli

    statements: list[str] = []
    real_connect = jobctl.store.sqlite.connection.connect

    def traced(path: Path, *, create: bool = True) -> sqlite3.Connection:
        conn = real_connect(path, create=create)
        conn.set_trace_callback(statements.append)
        return conn

    jobctl.store.sqlite.connection.connect = traced  # type: ignore[assignment]
    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            contextlib.suppress(SystemExit),
        ):
            cli.main(["--db", str(db), *args], prog_name="jobctl")
    finally:
        jobctl.store.sqlite.connection.connect = real_connect
    return statements


def query_breakdown(db: Path, statements: list[str]) -> list[QueryGroup]:
    """Re-run each SELECT alone on a fresh connection, grouped by shape, slowest first."""
    groups: dict[str, QueryGroup] = {}
    conn = sqlite3.connect(db)
    for sql in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            continue
        shape = " ".join(LITERAL.sub("?", sql).split())
        group = groups.setdefault(shape, QueryGroup(shape, sql))
        start = time.perf_counter()
        rows = conn.execute(sql).fetchall()
        group.seconds += time.perf_counter() - start
        group.count += 1
        group.rows += len(rows)
    conn.close()
    return sorted(groups.values(), key=lambda group: group.seconds, reverse=True)


def explain(db: Path, sql: str) -> list[str]:
    """EXPLAIN QUERY PLAN as indented lines (rows are id, parent, -, detail)."""
    conn = sqlite3.connect(db)
    try:
        depth: dict[int, int] = {0: -1}
        lines = []
        for node, parent, _, detail in conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall():
            depth[node] = depth.get(parent, -1) + 1
            lines.append(f"{'  ' * depth[node]}{detail}")
        return lines
    finally:
        conn.close()


def print_breakdown(db: Path, command: Command) -> None:
    statements: list[str] = in_child("capture", db=str(db), args=command.args)
    groups = query_breakdown(db, statements)
    total = sum(group.seconds for group in groups)
    print(
        f"\n--- jobctl {' '.join(command.args)}: {len(statements)} statements, "
        f"SELECTs re-run alone: {total * 1000:.1f} ms"
    )
    for group in groups[:6]:
        print(
            f"  {group.seconds * 1000:8.1f} ms  x{group.count:<5} {group.rows:>7} rows  "
            f"{group.shape[:150]}"
        )
        for line in explain(db, group.example):
            print(f"                 plan: {line}")


def profile_command(db: Path, command: Command, lines: int) -> None:
    """`python -m cProfile -m jobctl ...`, stats sorted by cumulative time."""
    with tempfile.NamedTemporaryFile(suffix=".prof", delete=False) as handle:
        out = handle.name
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", out, "-m", "jobctl", *command.args],
        env=child_env(db),
        check=True,
        capture_output=True,
    )
    text = io.StringIO()
    pstats.Stats(out, stream=text).sort_stats("cumulative").print_stats(lines)
    os.unlink(out)
    body = text.getvalue()
    print(f"\n--- cProfile jobctl {' '.join(command.args)} (cumulative)")
    print("\n".join(line for line in body[body.find("   ncalls") :].splitlines() if line))


# -------------------------------------------------------------------------- mutations


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def copy_db(source: Path, target: Path) -> None:
    """A copy of a quiet database: checkpoint the WAL into the file, then copy the file."""
    remove_db(target)
    conn = sqlite3.connect(source)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    shutil.copyfile(source, target)


def time_prune(db: Path, keep: int, timeout: float) -> None:
    copy = db.with_name(db.stem + "-prune.db")
    print(f"\ncopying the database for `runs prune --keep {keep}` ...", flush=True)
    copy_db(db, copy)
    conn = sqlite3.connect(copy)
    before = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    conn.close()
    try:
        elapsed, out = run_once(
            ["--db", str(copy), "runs", "prune", "--keep", str(keep)],
            child_env(copy),
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        print(f"jobctl runs prune --keep {keep}: still running after {timeout:.0f}s, stopped")
    else:
        conn = sqlite3.connect(copy)
        after = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        conn.close()
        removed = before - after
        print(
            f"jobctl runs prune --keep {keep}: {elapsed:.1f}s, {out.strip()} "
            f"({before:,} -> {after:,} rows, {removed / elapsed:,.0f} rows/s)"
        )
    finally:
        remove_db(copy)


def prune_in_id_order(db: Path, keep: int, batch: int) -> tuple[int, float]:
    """The same retention as `runs prune --keep N`, deleting in id order across all jobs.

    jobctl deletes job by job; a job's rows are spread over the whole table (jobs take
    turns), so each batch dirties a page per row and every page is rewritten once per job
    that has a row in it. Walking ids in order rewrites each page about once. Plain
    sqlite3 with jobctl's connection settings; returns (rows removed, seconds).
    """
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    start = time.perf_counter()
    conn.execute("CREATE TEMP TABLE keep_from (job_id INTEGER PRIMARY KEY, id INTEGER NOT NULL)")
    conn.execute(
        "INSERT INTO keep_from SELECT job_id, id FROM (SELECT jobs.id AS job_id, (SELECT id "
        "FROM runs WHERE job_id = jobs.id ORDER BY id DESC LIMIT 1 OFFSET ?) AS id FROM jobs) "
        "WHERE id IS NOT NULL",
        (keep - 1,),
    )
    removed = 0
    last = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT runs.id FROM runs JOIN keep_from ON keep_from.job_id = runs.job_id "
                "WHERE runs.id > ? AND runs.id < keep_from.id "
                "AND runs.status NOT IN ('running', 'queued') ORDER BY runs.id LIMIT ?",
                (last, batch),
            )
        ]
        if ids:
            conn.execute(f"DELETE FROM runs WHERE id IN ({', '.join('?' * len(ids))})", ids)
            last = ids[-1]
            removed += len(ids)
        conn.execute("COMMIT")
        if len(ids) < batch:
            break
    elapsed = time.perf_counter() - start
    conn.close()
    return removed, elapsed


def time_prune_alternative(db: Path, keep: int, batches: list[int]) -> None:
    copy = db.with_name(db.stem + "-prune.db")
    for batch in batches:
        copy_db(db, copy)
        try:
            removed, elapsed = prune_in_id_order(copy, keep, batch)
            print(
                f"same retention, deleting in id order, batches of {batch}: {elapsed:.1f}s, "
                f"removed {removed:,} runs ({removed / elapsed:,.0f} rows/s)"
            )
        finally:
            remove_db(copy)


def write_cost(db: Path, rounds: int = 5, runs: int = 2_000, batch: int = 100) -> dict[str, float]:
    """Microseconds per run of the daemon's write path, as the engine does it: a claim
    transaction writes `batch` rows `running` (one per job, jobs taken in turn), then
    record_outcomes finishes them in one transaction. A warm-up round, then the median of
    `rounds`. Adds rows to `db`: use a copy."""
    from jobctl import runs as run_rows
    from jobctl.actions import Outcome
    from jobctl.engine import Claim, record_outcomes
    from jobctl.models import Job, RunStatus, RunTrigger
    from jobctl.store import open_store

    store = open_store(db)
    conn = store.conn
    jobs = [
        Job.from_row(row)
        for row in conn.execute("SELECT * FROM jobs WHERE trigger != 'manual' ORDER BY id")
    ]
    owner = run_rows.Owner.this_process()
    base = datetime(2100, 1, 1, tzinfo=UTC) + timedelta(days=random.randint(0, 10_000))
    counter = itertools.count()

    def one_round(count: int) -> float:
        start = time.perf_counter()
        for _ in range(0, count, batch):
            now = datetime.now(UTC)
            claims = []
            with store.write():
                for _ in range(batch):
                    k = next(counter)
                    job = jobs[k % len(jobs)]
                    assert job.id is not None
                    slot = base + timedelta(seconds=k)
                    run_id = store.insert_run(
                        job_id=job.id,
                        trigger=RunTrigger.SCHEDULE,
                        status=RunStatus.RUNNING,
                        scheduled_for=slot,
                        now=now,
                        owner=owner,
                    )
                    claims.append(Claim(run_id, job, RunTrigger.SCHEDULE, 1, slot, now))
            done = datetime.now(UTC)
            record_outcomes(
                store,
                [
                    (
                        claim,
                        Outcome(
                            "succeeded",
                            now,
                            done,
                            http_status=200,
                            output="{}",
                            snapshot={"url": "x"},
                        ),
                    )
                    for claim in claims
                ],
                done,
            )
        return (time.perf_counter() - start) / count * US

    one_round(runs // 2)
    samples = [one_round(runs) for _ in range(rounds)]
    conn.close()
    return {"median": statistics.median(samples), "min": min(samples)}


def compare_write_cost(base: Path, changed: Path, pairs: int = 3) -> None:
    """The daemon's write path on two copies, alternately (this machine is shared: a
    before-then-after pair on one copy mostly measures the neighbours)."""
    samples: dict[Path, list[float]] = {base: [], changed: []}
    for _ in range(pairs):
        for path in (base, changed):
            samples[path].append(in_child("write-cost", db=str(path))["median"])
    before, after = (statistics.median(samples[path]) for path in (base, changed))
    print(
        f"  daemon write path (claim + record_outcomes, batches of 100), us per run, "
        f"median of {pairs} alternating children: {before:.1f} without, {after:.1f} with "
        f"({(after / before - 1) * 100:+.0f}%); samples "
        f"{', '.join(f'{x:.0f}' for x in samples[base])} / "
        f"{', '.join(f'{x:.0f}' for x in samples[changed])}"
    )


def try_indexes(
    db: Path,
    statements: list[str],
    commands: list[Command],
    baseline: Command,
    misses: list[Command],
    args: argparse.Namespace,
) -> None:
    copy = db.with_name(db.stem + "-try.db")
    control = db.with_name(db.stem + "-control.db")
    print(f"\n=== on a copy with: {'; '.join(statements)}")
    copy_db(db, copy)
    try:
        conn = sqlite3.connect(copy)
        for sql in statements:
            start = time.perf_counter()
            conn.execute(sql)
            print(f"  {sql}: {time.perf_counter() - start:.1f}s")
        conn.close()
        if args.write_cost:
            copy_db(db, control)
            try:
                compare_write_cost(control, copy)
            finally:
                remove_db(control)
        before = {command.label: command.median for command in commands}
        fresh = [Command(command.label, command.args, command.extra) for command in commands]
        measure(fresh, copy, args.reps, warmup=1)
        fresh_baseline = fresh[commands.index(baseline)]
        print()
        new_misses = print_timings(fresh, fresh_baseline, before)
        missed_labels = {command.label for command in misses + new_misses}
        for command in fresh:  # the old misses, and any command the change made miss
            if command.label in missed_labels:
                print_breakdown(copy, command)
    finally:
        remove_db(copy)


def code_state() -> str:
    """The checkout being measured: HEAD and how many files under jobctl/ differ from it."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "jobctl"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"git {head}, {len(dirty)} changed or new files under jobctl/"


# ------------------------------------------------------------------------------- main


def pick_targets(db: Path) -> tuple[str, str, int]:
    """The busiest job, a quiet one, and a recent run of the busy one with output."""
    conn = sqlite3.connect(db)
    busy_id, busy = conn.execute(
        "SELECT id, name FROM jobs ORDER BY runs_total DESC, name LIMIT 1"
    ).fetchone()
    quiet = conn.execute(
        "SELECT name FROM jobs WHERE trigger = 'cron' ORDER BY runs_total, name LIMIT 1"
    ).fetchone()[0]
    run_id = conn.execute(
        "SELECT id FROM runs WHERE job_id = ? AND output IS NOT NULL ORDER BY id DESC LIMIT 1",
        (busy_id,),
    ).fetchone()[0]
    conn.close()
    return busy, quiet, run_id


def make_commands(busy: str, quiet: str, run_id: int) -> list[Command]:
    return [
        Command("jobctl --version", ["--version"]),
        Command(f"runs {busy} --limit 20", ["runs", busy, "--limit", "20"]),
        Command("runs --limit 20", ["runs", "--limit", "20"]),
        Command("runs --status failed --limit 20", ["runs", "--status", "failed", "--limit", "20"]),
        Command(f"runs {busy} --since 24h", ["runs", busy, "--since", "24h"]),
        Command("list (table, with stats)", ["list"]),
        Command("list --json", ["list", "--json"]),
        Command("status", ["status"]),
        Command("status --json", ["status", "--json"]),
        Command(f"show {busy}", ["show", busy]),
        Command(f"runs show {run_id}", ["runs", "show", str(run_id)]),
        Command(f"runs {quiet} --since 24h", ["runs", quiet, "--since", "24h"], extra=True),
        Command(
            "runs --status interrupted --limit 20",
            ["runs", "--status", "interrupted", "--limit", "20"],
            extra=True,
        ),
        Command(
            "runs --trigger manual --limit 20",
            ["runs", "--trigger", "manual", "--limit", "20"],
            extra=True,
        ),
        Command(
            "runs --since 24h --limit 0 --format csv",
            ["runs", "--since", "24h", "--limit", "0", "--format", "csv"],
            extra=True,
        ),
    ]


def time_commands(commands: list[Command], args: argparse.Namespace) -> None:
    """The table, then the diagnosis of what misses, then any --try-index."""
    baseline = commands[0]
    measure(commands, args.db, args.reps, warmup=1)
    misses = print_timings(commands, baseline)
    print(
        "\nbrief's targets: "
        + (
            ", ".join(f"MISS {command.label}" for command in misses if not command.extra)
            or "all hold"
        )
    )
    for command in commands[1:] if args.explain_all else misses:
        print_breakdown(args.db, command)
    if args.profile:
        for command in misses:
            profile_command(args.db, command, args.profile_lines)
    if args.try_index:
        try_indexes(args.db, args.try_index, commands, baseline, misses, args)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help="the cached database")
    parser.add_argument("--rebuild", action="store_true", help="build the database again")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the database")
    parser.add_argument("--runs", type=int, default=5_000_000, help="about this many runs")
    parser.add_argument("--days", type=int, default=60, help="at most this many days back")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the build")
    parser.add_argument("--reps", type=int, default=10, help="timed runs per command")
    parser.add_argument("--no-extra", action="store_true", help="only the brief's commands")
    parser.add_argument(
        "--explain-all",
        action="store_true",
        help="query breakdown and plans for every command, not just misses",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile each miss")
    parser.add_argument("--profile-lines", type=int, default=25, help="cProfile lines shown")
    parser.add_argument(
        "--no-timings", action="store_true", help="skip the command timings (build, prune only)"
    )
    parser.add_argument("--no-prune", action="store_true", help="skip timing runs prune")
    parser.add_argument("--prune-keep", type=int, default=1000, help="the N of --keep N")
    parser.add_argument(
        "--prune-timeout", type=float, default=1200, help="seconds before the prune is stopped"
    )
    parser.add_argument(
        "--try-prune-order",
        type=int,
        action="append",
        metavar="BATCH",
        help="also time the same prune deleting in id order, in batches of BATCH (repeatable)",
    )
    parser.add_argument(
        "--try-index",
        action="append",
        default=[],
        metavar="SQL",
        help="statement to apply to a copy before timing again (repeatable)",
    )
    parser.add_argument(
        "--write-cost",
        action="store_true",
        help="with --try-index: the daemon's write cost without and with it (on a second copy)",
    )
    parser.add_argument("--child", nargs=2, metavar=("TASK", "JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_main(args.child[0], json.loads(args.child[1]))))
        return

    print(f"jobctl at {code_state()}")
    meta = ensure_db(args)
    print(
        f"  {meta['rows']:,} runs over {meta['span_days']} days, "
        f"{meta['size_mb']:,} MB: {meta['by_status']}\n"
    )
    busy, quiet, run_id = pick_targets(args.db)
    commands = make_commands(busy, quiet, run_id)
    if args.no_extra:
        commands = [command for command in commands if not command.extra]
    if not args.no_timings:
        time_commands(commands, args)
    if not args.no_prune:
        time_prune(args.db, args.prune_keep, args.prune_timeout)
    if args.try_prune_order:
        time_prune_alternative(args.db, args.prune_keep, args.try_prune_order)


if __name__ == "__main__":
    main()
