"""Crash checks: daemons killed with SIGKILL under load lose nothing and fire nothing twice.

    python bench/crash.py sqlite -n 3000 --kills 20 [--aligned]
    python bench/crash.py fleet -n 500 --daemons 3 --minutes 2 [--lease 5s]
    ... [--seed S] [--interval 1-5] [--keep]

sqlite: N one-second HTTP jobs (phases spread over the second, or all on the same instant
with --aligned) fire into daemon_bench's sink; one `jobctl daemon` on a SQLite file is killed
with SIGKILL at a random moment 1-5 s after it is ready and restarted at once, --kills times;
then a last one is started, stopped cleanly with SIGTERM, and a reader (`jobctl runs`) runs.

fleet: --daemons daemons on one throwaway PostgreSQL database (`jobctl_bench_<random>`,
dropped after) fire N one-second HTTP jobs, every --q2-every'th of them on queue `q2`. The
first daemon serves `default` and `q2` and is the one killed (at a random moment 1-5 s after
it is ready; restarted after a random 0 s to lease + 1 s, so that both the survivors' lease
takeover and a restart's own recovery are exercised); the second serves `default` only, the
third `q2` only, any more both. Once the kills stop, the fleet runs one lease and 3 s more
before it is stopped cleanly.

Checked from the sink's requests (arrival, X-Jobctl-Job, -Run, -Scheduled-For) and the runs
table, each printed PASS/FAIL (exit 1 on any FAIL):
  * every request has a run row with that id, of that job and slot;
  * no (job, slot) fired twice: by the sink's requests, and by the rows (two rows other than
    `missed` for one slot, or a fired slot inside a `missed` row's range);
  * no run left `running` (sqlite: after each restart and after the reader; fleet: once the
    leases of the killed daemons expired, with the survivors still up);
  * every slot from each job's first `next_run_at` to its last is accounted for: a row for
    it (any status) or inside a `missed` row's range (`missed_count` slots up to
    `missed_until`, the catch-up run after it); the count of each status is printed;
  * fleet: every fire's row is owned (owner_pid on this host) by a daemon serving the job's
    queue; each kill's jobs (its runs of the last 2 s before the kill) fire again within the
    lease: kill to first fire after, per queue, under lease + 2 s (1 s heartbeat, 1 s slot).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import daemon_bench as bench

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
PERIOD_MS = 1000  # every job fires every second
FIRED = {"running", "succeeded", "failed", "timed_out", "interrupted", "cancelled"}
HEARTBEAT_S = 1.0  # jobctl.chores.HEARTBEAT_EVERY: how often a survivor looks at the leases


# ============================================================================== records


@dataclass
class RunRow:
    id: int
    job: str
    slot: int  # epoch ms
    status: str
    trigger: str
    owner_pid: int | None
    owner_host: str | None
    missed_until: int | None  # epoch ms, for `missed` rows
    finished: float | None  # epoch seconds
    error: str | None


@dataclass
class Incarnation:
    """One daemon process: what it serves, when it was ready, when it was killed."""

    proc: subprocess.Popen[bytes]
    queues: tuple[str, ...]  # empty: every queue
    spawned: float
    ready: float = 0.0
    killed: float | None = None
    exit_code: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def serves(self, queue: str) -> bool:
        return not self.queues or queue in self.queues


@dataclass
class Verdicts:
    items: list[tuple[str, bool, str]] = field(default_factory=list)

    def add(self, label: str, ok: bool, figure: object = "") -> None:
        self.items.append((label, ok, str(figure)))

    def print(self) -> bool:
        width = max(len(label) for label, _, _ in self.items)
        for label, ok, figure in self.items:
            print(f"  [{'PASS' if ok else 'FAIL'}] {label.ljust(width)}  {figure}")
        return all(ok for _, ok, _ in self.items)


def table(title: str, rows: Sequence[tuple[str, object]]) -> None:
    print(title)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        shown = bench.fmt(value) if isinstance(value, float | int) else str(value)
        print(f"  {label.ljust(width)}  {shown}")


def parse_range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def parse_seconds(text: str) -> float:
    from jobctl.timeutil import parse_duration

    return parse_duration(text).total_seconds()


def jobs_document(workload: bench.Workload, url: str, q2_every: int) -> dict[str, Any]:
    document = bench.jobctl_document(workload, url)
    if q2_every:
        for k, entry in enumerate(document["jobs"]):
            if k % q2_every == q2_every - 1:
                entry["queue"] = "q2"
    return document


def apply_jobs(db: str, document: dict[str, Any], workdir: Path) -> None:
    path = workdir / "jobs.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    subprocess.run(
        [bench.PYTHON, "-m", "jobctl", "--db", db, "apply", "-f", str(path), "--json"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def spawn_daemon(db: str, log: Path, queues: Sequence[str], extra: Sequence[str]) -> Incarnation:
    command = [bench.PYTHON, "-m", "jobctl", "daemon", "--db", db, "--log-level", "warning"]
    command += ["--grace", "5s", *extra]
    for queue in queues:
        command += ["--queue", queue]
    with open(log, "a") as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    return Incarnation(proc, tuple(queues), time.time())


def wait_ready(
    incarnation: Incarnation, is_up: Callable[[int], bool], log: Path, timeout: float = 120
) -> None:
    deadline = time.time() + timeout
    while not is_up(incarnation.pid):
        if incarnation.proc.poll() is not None:
            raise bench.stopped_early(incarnation.proc, log)
        if time.time() > deadline:
            raise RuntimeError(f"daemon {incarnation.pid} not ready within {timeout:g}s")
        time.sleep(0.01)
    incarnation.ready = time.time()


def kill(incarnation: Incarnation) -> None:
    incarnation.proc.send_signal(signal.SIGKILL)
    incarnation.killed = time.time()
    incarnation.exit_code = incarnation.proc.wait()


def stop(incarnation: Incarnation, timeout: float = 60) -> None:
    """SIGTERM and wait (exit_code None: it had to be killed after `timeout`)."""
    if incarnation.proc.poll() is None:
        incarnation.proc.send_signal(signal.SIGTERM)
    try:
        incarnation.exit_code = incarnation.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        incarnation.proc.kill()
        incarnation.proc.wait()
        incarnation.exit_code = None


def wait_for(condition: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until `condition` held, or None if it did not within `timeout`."""
    began = time.time()
    while time.time() - began < timeout:
        if condition():
            return time.time() - began
        time.sleep(0.05)
    return None


def sleep_for(seconds: float, until: float | None = None) -> None:
    bench.sleep_until(min(time.time() + seconds, until) if until else time.time() + seconds)


# ============================================================================ analysis


def make_rows(raw: Iterable[Sequence[Any]]) -> list[RunRow]:
    """Rows read as (id, job, scheduled_for, status, trigger, owner_pid, owner_host, details,
    finished_at, error)."""
    cache: dict[str, int] = {}
    rows = []
    for run_id, job, scheduled, status, trigger, pid, host, details, finished, error in raw:
        until = None
        if status == "missed" and details:
            text = json.loads(details).get("missed_until")
            until = bench.slot_ms(text, cache) if text else None
        ended = bench.slot_ms(finished, cache) / 1000 if finished else None
        rows.append(
            RunRow(
                int(run_id),
                job,
                bench.slot_ms(scheduled, cache),
                status,
                trigger,
                pid,
                host,
                until,
                ended,
                error,
            )
        )
    return rows


ROW_QUERY = (
    "SELECT runs.id, jobs.name, runs.scheduled_for, runs.status, runs.trigger, runs.owner_pid, "
    "runs.owner_host, runs.details, runs.finished_at, runs.error FROM runs JOIN jobs ON jobs.id = runs.job_id"
)


@dataclass
class Findings:
    requests: int
    no_row: list[str]  # requests whose run id has no row / another job / another slot
    sink_twice: int  # (job, slot) pairs requested more than once
    run_ids_twice: int
    rows_twice: int  # (job, slot) pairs with two rows other than `missed`
    fired_in_missed: int  # requests for a slot a `missed` row says did not run
    succeeded_not_received: int
    expected_slots: int
    unaccounted: int
    unaccounted_examples: list[str]
    statuses: Counter[str]
    missed_slots: int
    interrupted_sent: int  # interrupted rows whose request the sink received
    lateness: list[float]  # ms, sorted


def analyse(
    records: Sequence[bench.SinkRecord],
    rows: Sequence[RunRow],
    first_slots: dict[str, int],
    next_slots: dict[str, int],
) -> Findings:
    cache: dict[str, int] = {}
    by_id = {row.id: row for row in rows}
    no_row: list[str] = []
    fired: Counter[tuple[str, int]] = Counter()
    run_ids: Counter[str] = Counter()
    lateness = []
    for arrival, job, run_id, scheduled in records:
        slot = bench.slot_ms(scheduled, cache)
        fired[(job, slot)] += 1
        run_ids[run_id] += 1
        lateness.append((arrival * 1000) - slot)
        row = by_id.get(int(run_id)) if run_id.isdigit() else None
        if row is None:
            no_row.append(f"run {run_id!r} ({job} {scheduled}): no row")
        elif row.job != job or row.slot != slot:
            no_row.append(f"run {run_id} ({job} {scheduled}): row is {row.job} at {row.slot}")
    received_ids = {int(run_id) for run_id in run_ids if run_id.isdigit()}
    missed_ranges: dict[str, list[tuple[int, int]]] = defaultdict(list)
    covered: dict[str, set[int]] = defaultdict(set)
    per_slot: Counter[tuple[str, int]] = Counter()
    missed_slots = 0
    for row in rows:
        if row.status == "missed":
            until = row.missed_until if row.missed_until is not None else row.slot
            missed_ranges[row.job].append((row.slot, until))
            missed_slots += (until - row.slot) // PERIOD_MS + 1
        else:
            covered[row.job].add(row.slot)
            per_slot[(row.job, row.slot)] += 1
    for ranges in missed_ranges.values():
        ranges.sort()

    def in_missed(job: str, slot: int) -> bool:
        ranges = missed_ranges.get(job, [])
        index = bisect_right(ranges, (slot, 2**62)) - 1
        return index >= 0 and ranges[index][0] <= slot <= ranges[index][1]

    expected = unaccounted = 0
    examples: list[str] = []
    for job, first in first_slots.items():
        last = next_slots.get(job, first)
        for slot in range(first, last, PERIOD_MS):
            expected += 1
            if slot not in covered[job] and not in_missed(job, slot):
                unaccounted += 1
                if len(examples) < 5:
                    examples.append(f"{job} {bench.iso_ms(_utc(slot))}")
    return Findings(
        requests=len(records),
        no_row=no_row,
        sink_twice=sum(1 for count in fired.values() if count > 1),
        run_ids_twice=sum(1 for count in run_ids.values() if count > 1),
        rows_twice=sum(1 for count in per_slot.values() if count > 1),
        fired_in_missed=sum(1 for job, slot in fired if in_missed(job, slot)),
        succeeded_not_received=sum(
            1 for row in rows if row.status == "succeeded" and row.id not in received_ids
        ),
        expected_slots=expected,
        unaccounted=unaccounted,
        unaccounted_examples=examples,
        statuses=Counter(row.status for row in rows),
        missed_slots=missed_slots,
        interrupted_sent=sum(
            1 for row in rows if row.status == "interrupted" and row.id in received_ids
        ),
        lateness=sorted(lateness),
    )


def _utc(ms: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC)


def common_verdicts(found: Findings, verdicts: Verdicts) -> None:
    verdicts.add(
        "every request has its run row (id, job, slot)",
        not found.no_row,
        f"{len(found.no_row):,} without" + (f", e.g. {found.no_row[0]}" if found.no_row else ""),
    )
    verdicts.add(
        "no slot fired twice (sink)",
        found.sink_twice == 0 and found.run_ids_twice == 0,
        f"{found.sink_twice} slots, {found.run_ids_twice} run ids requested twice",
    )
    verdicts.add(
        "no slot fired twice (rows)",
        found.rows_twice == 0 and found.fired_in_missed == 0,
        f"{found.rows_twice} slots with two rows, {found.fired_in_missed} fired slots "
        "recorded missed",
    )
    verdicts.add(
        "every succeeded row was received",
        found.succeeded_not_received == 0,
        f"{found.succeeded_not_received} not received",
    )
    verdicts.add(
        "every slot accounted for (a row or a missed range)",
        found.unaccounted == 0,
        f"{found.unaccounted:,} of {found.expected_slots:,} not"
        + (f", e.g. {', '.join(found.unaccounted_examples)}" if found.unaccounted else ""),
    )


def common_table(found: Findings, extra: Sequence[tuple[str, object]]) -> None:
    statuses = ", ".join(f"{status} {count:,}" for status, count in found.statuses.most_common())
    late = found.lateness
    table(
        "\nsummary",
        [
            *extra,
            ("slots due (first to last next_run_at)", found.expected_slots),
            ("requests received", found.requests),
            ("run rows by status", statuses),
            ("slots in missed rows", found.missed_slots),
            (
                "interrupted: request sent / never sent",
                f"{found.interrupted_sent:,} / "
                f"{found.statuses['interrupted'] - found.interrupted_sent:,}",
            ),
            ("lateness p50 / p99 / max (ms)", _late(late)),
        ],
    )


def _late(ordered: Sequence[float]) -> str:
    if not ordered:
        return "-"
    return " / ".join(
        bench.fmt(value)
        for value in (bench.percentile(ordered, 50), bench.percentile(ordered, 99), ordered[-1])
    )


def log_notes(log: Path) -> list[tuple[str, object]]:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    kinds = Counter(
        "traceback" if "Traceback" in line else "error" if " ERROR " in line else "warning"
        for line in lines
        if "Traceback" in line or " ERROR " in line or " WARNING " in line
    )
    notes: list[tuple[str, object]] = [
        (
            "daemon log lines",
            f"{len(lines):,} ({', '.join(f'{k} {v}' for k, v in kinds.items()) or '-'})",
        )
    ]
    errors = [line for line in lines if " ERROR " in line or "Traceback" in line]
    if errors:
        notes.append(("last error line", errors[-1][:160]))
    return notes


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} cores"


# ============================================================================== SQLite


def sqlite_query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


def sqlite_next_slots(db: Path) -> dict[str, int]:
    cache: dict[str, int] = {}
    return {
        name: bench.slot_ms(next_run_at, cache)
        for name, next_run_at in sqlite_query(db, "SELECT name, next_run_at FROM jobs")
        if next_run_at
    }


def sqlite_running(db: Path, pid: int | None = None) -> int:
    if pid is None:
        return int(sqlite_query(db, "SELECT count(*) FROM runs WHERE status = 'running'")[0][0])
    sql = "SELECT count(*) FROM runs WHERE status = 'running' AND owner_pid = ?"
    return int(sqlite_query(db, sql, pid)[0][0])


def check_sqlite(args: argparse.Namespace, workdir: Path) -> bool:
    rng = random.Random(args.seed)
    workload = bench.Workload("burst" if args.aligned else "sustained", args.n, 0)
    db = workdir / "jobctl.db"
    log = workdir / "daemon.log"
    low, high = parse_range(args.interval)
    print(
        f"sqlite: {args.n:,} one-second jobs ({'aligned' if args.aligned else 'spread'}), "
        f"{args.kills} kills every {low:g}-{high:g} s, seed {args.seed}; load {load_text()}",
        flush=True,
    )
    sink = bench.Sink(workdir)
    incarnations: list[Incarnation] = []
    left_by_killed: list[int] = []  # the killed daemon's `running` rows once the next was up
    recovery_s: list[float] = []

    def is_up(pid: int) -> bool:
        try:
            row = sqlite_query(db, "SELECT pid FROM daemon WHERE id = 1")
        except sqlite3.OperationalError:
            return False
        return bool(row) and row[0][0] == pid

    try:
        apply_jobs(str(db), jobs_document(workload, sink.url, 0), workdir)
        first_slots = sqlite_next_slots(db)
        for index in range(args.kills + 1):
            daemon = spawn_daemon(str(db), log, (), ())
            incarnations.append(daemon)
            wait_ready(daemon, is_up, log)
            if index:
                previous = incarnations[-2].pid
                took = wait_for(lambda pid=previous: sqlite_running(db, pid) == 0, 10.0)  # type: ignore[misc]
                left_by_killed.append(sqlite_running(db, previous))
                if took is not None:
                    recovery_s.append(daemon.ready - daemon.spawned + took)
            if index == args.kills:
                break
            sleep_for(rng.uniform(low, high))
            kill(daemon)
            print(
                f"  kill {index + 1:>2}: pid {daemon.pid}, ready after "
                f"{daemon.ready - daemon.spawned:.1f} s, killed {daemon.killed - daemon.ready:.1f} s "  # type: ignore[operator]
                f"later, {sqlite_running(db, daemon.pid)} left running",
                flush=True,
            )
        final = incarnations[-1]
        sleep_for(args.settle)
        stopped_at = time.time()
        stop(final)
        stop_took = time.time() - stopped_at
    finally:
        for incarnation in incarnations:
            if incarnation.proc.poll() is None:
                incarnation.proc.kill()
        records = sink.stop()
    running_after_stop = sqlite_running(db)
    reader = subprocess.run(
        [bench.PYTHON, "-m", "jobctl", "--db", str(db), "runs", "--json", "--limit", "1"],
        capture_output=True,
        text=True,
    )
    running_after_reader = sqlite_running(db)
    rows = make_rows(sqlite_query(db, ROW_QUERY))
    found = analyse(records, rows, first_slots, sqlite_next_slots(db))

    common_table(
        found,
        [
            ("jobs", f"{args.n:,} ({'aligned' if args.aligned else 'spread'})"),
            ("kills (SIGKILL)", args.kills),
            (
                "first daemon ready after (s)",
                round(incarnations[0].ready - incarnations[0].spawned, 2),
            ),
            (
                "restart ready after, median / max (s)",
                _median_max([d.ready - d.spawned for d in incarnations[1:]]),
            ),
            ("killed daemon's runs interrupted after, median / max (s)", _median_max(recovery_s)),
            ("clean stop took (s)", round(stop_took, 2)),
            *log_notes(log),
            ("load average at the end", load_text()),
        ],
    )
    verdicts = Verdicts()
    common_verdicts(found, verdicts)
    verdicts.add(
        "no run left running by a killed daemon once the next was up",
        not any(left_by_killed),
        f"{sum(left_by_killed)} over {len(left_by_killed)} restarts",
    )
    verdicts.add(
        "no run left running after the clean stop and a reader",
        running_after_reader == 0 and reader.returncode == 0,
        f"{running_after_stop} after the stop, {running_after_reader} after `jobctl runs`"
        + (
            f" (exit {reader.returncode}: {reader.stderr.strip()[:120]})"
            if reader.returncode
            else ""
        ),
    )
    verdicts.add("the last daemon stopped cleanly (exit 0)", final.exit_code == 0, final.exit_code)
    print("\nchecks")
    return verdicts.print()


def _median_max(values: Sequence[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{bench.percentile(ordered, 50):.2f} / {ordered[-1]:.2f}"


# ========================================================================== PostgreSQL


def pg_rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(sql, params).fetchall())


def pg_next_slots(url: str) -> dict[str, int]:
    cache: dict[str, int] = {}
    return {
        name: bench.slot_ms(next_run_at, cache)
        for name, next_run_at in pg_rows(url, "SELECT name, next_run_at FROM jobs")
        if next_run_at
    }


def fleet_layout(daemons: int) -> list[tuple[str, ...]]:
    """The queues of each daemon: the first (the victim) serves both, the second `default`
    only, the third `q2` only, any further ones both."""
    both = ("default", "q2")
    return [both, ("default",), ("q2",), *([both] * max(0, daemons - 3))][:daemons]


@dataclass
class KillGap:
    kill: int
    queue: str
    jobs: int  # the victim's runs left running at the kill (its jobs, blocked until taken over)
    restart_after: float
    taken_over: float  # seconds from the kill until the last of them was interrupted
    slot_again: float  # the slowest of those jobs: kill to its next fired slot
    sent_again: tuple[float, float]  # kill to the next request's arrival, median and max
    taken_by: str  # what interrupted them: a survivor (lease), or a process of this host


def taker(error: str | None) -> str:
    """Who interrupted a killed daemon's run, from its error text: a survivor whose lease
    check found the daemon dead, or a process of this host that found its pid gone (the
    restarted daemon as it starts, or any daemon's minutely orphan check)."""
    return "lease" if error and "renewing" in error else "pid gone"


def kill_gaps(
    kills: Sequence[tuple[Incarnation, float]],
    rows: Sequence[RunRow],
    records: Sequence[bench.SinkRecord],
    queue_of: dict[str, str],
) -> list[KillGap]:
    """Per kill and queue: the runs the victim left running (interrupted after the kill),
    how long until they were taken over, and until each of their jobs fired again: for a
    slot (when a daemon claimed it) and at the sink (when the request arrived)."""
    arrivals: dict[str, list[float]] = defaultdict(list)
    for arrival, job, _, _ in records:
        arrivals[job].append(arrival)
    for times in arrivals.values():
        times.sort()
    fired_slots: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        if row.status in FIRED:
            fired_slots[row.job].append(row.slot)
    for slots in fired_slots.values():
        slots.sort()
    gaps = []
    for number, (victim, restart_after) in enumerate(kills, 1):
        killed = victim.killed
        assert killed is not None
        left: dict[str, list[RunRow]] = defaultdict(list)
        for row in rows:
            if (
                row.owner_pid == victim.pid
                and row.status == "interrupted"
                and (row.finished or 0) >= killed
            ):
                left[queue_of[row.job]].append(row)
        for queue, stranded in sorted(left.items()):
            slot_again, sent = 0.0, []
            for row in stranded:
                slots = fired_slots[row.job]
                index = bisect_right(slots, row.slot)
                after = slots[index] / 1000 - killed if index < len(slots) else math.inf
                slot_again = max(slot_again, after)
                times = arrivals[row.job]
                index = bisect_right(times, killed)
                sent.append(times[index] - killed if index < len(times) else math.inf)
            sent.sort()
            gaps.append(
                KillGap(
                    number,
                    queue,
                    len(stranded),
                    restart_after,
                    max(row.finished or 0 for row in stranded) - killed,
                    slot_again,
                    (bench.percentile(sent, 50), sent[-1]),
                    ", ".join(sorted({taker(row.error) for row in stranded})),
                )
            )
    return gaps


def check_fleet(args: argparse.Namespace, workdir: Path) -> bool:
    import psycopg

    rng = random.Random(args.seed)
    lease = parse_seconds(args.lease)
    workload = bench.Workload("burst" if args.aligned else "sustained", args.n, 0)
    low, high = parse_range(args.interval)
    restart_low, restart_high = (
        parse_range(args.restart_delay) if args.restart_delay else (0.0, lease + 1)
    )
    name = f"jobctl_bench_{secrets.token_hex(4)}"
    print(
        f"fleet: {args.daemons} daemons on PostgreSQL ({name}), {args.n:,} one-second jobs "
        f"({'aligned' if args.aligned else 'spread'}), 1 in {args.q2_every} on q2, "
        f"{args.minutes:g} min, kills every {low:g}-{high:g} s, restarts after "
        f"{restart_low:g}-{restart_high:g} s, lease {lease:g} s, seed {args.seed}; "
        f"load {load_text()}",
        flush=True,
    )
    with psycopg.connect(args.server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = bench_url(args.server, name)
    log = workdir / "daemons.log"
    extra = ("--lease", args.lease)
    layout = fleet_layout(args.daemons)
    incarnations: list[Incarnation] = []
    kills: list[tuple[Incarnation, float]] = []
    sink = bench.Sink(workdir)

    def is_up(pid: int) -> bool:
        try:
            return bool(
                pg_rows(url, "SELECT 1 FROM daemons WHERE pid = %s AND stopped_at IS NULL", pid)
            )
        except psycopg.errors.UndefinedTable:
            return False

    try:
        document = jobs_document(workload, sink.url, args.q2_every)
        queue_of = {entry["name"]: entry.get("queue", "default") for entry in document["jobs"]}
        apply_jobs(url, document, workdir)
        first_slots = pg_next_slots(url)
        live = [spawn_daemon(url, log, queues, extra) for queues in layout]
        incarnations += live
        for daemon in live:
            wait_ready(daemon, is_up, log)
        began = time.time()
        ends = began + args.minutes * 60
        while time.time() < ends:
            sleep_for(rng.uniform(low, high), ends)
            if time.time() >= ends:
                break
            victim = live[0]
            kill(victim)
            delay = rng.uniform(restart_low, restart_high)
            kills.append((victim, delay))
            sleep_for(delay)
            live[0] = spawn_daemon(url, log, victim.queues, extra)
            incarnations.append(live[0])
            wait_ready(live[0], is_up, log)
            print(
                f"  kill {len(kills):>2} at {victim.killed - began:5.1f} s: pid {victim.pid}, "  # type: ignore[operator]
                f"restarted after {delay:.1f} s, ready {live[0].ready - live[0].spawned:.1f} s later",
                flush=True,
            )
        # The kills are over: one lease (and the heartbeat that notices it) for the survivors.
        killed_pids = [victim.pid for victim, _ in kills]
        settle = lease + HEARTBEAT_S + 2
        sleep_for(settle)
        left_running = pg_rows(
            url,
            "SELECT count(*) FROM runs WHERE status = 'running' AND owner_pid = ANY(%s)",
            killed_pids,
        )[0][0]
        fleet_pids = {
            row[0]: json.loads(row[1]) for row in pg_rows(url, "SELECT pid, queues FROM daemons")
        }
        for daemon in live:
            stop(daemon)
        records = sink.stop()
        running_after_stop = pg_rows(url, "SELECT count(*) FROM runs WHERE status = 'running'")[0][
            0
        ]
        rows = make_rows(pg_rows(url, ROW_QUERY))
        next_slots = pg_next_slots(url)
    finally:
        for incarnation in incarnations:
            if incarnation.proc.poll() is None:
                incarnation.proc.kill()
        if sink.proc.poll() is None:
            sink.proc.kill()
        if args.keep:
            print(f"database kept: {url}")
        else:
            with psycopg.connect(args.server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    found = analyse(records, rows, first_slots, next_slots)
    # Queue placement: each fire's row names its owner; the owner must serve the job's queue.
    host = socket.gethostname()
    by_pid = {daemon.pid: daemon for daemon in incarnations}
    if len(by_pid) < len(incarnations):  # a pid reused: the owner of a row is ambiguous
        print("note: two daemon starts had the same pid; placement judged by the last of them")
    by_id = {row.id: row for row in rows}
    misplaced: list[str] = []
    unknown_owner = 0
    fires_by_queue: Counter[str] = Counter()
    for _, job, run_id, _ in records:
        row = by_id.get(int(run_id)) if run_id.isdigit() else None
        if row is None:
            continue  # counted as a fire without a row
        queue = queue_of[job]
        fires_by_queue[queue] += 1
        owner = by_pid.get(row.owner_pid or 0)
        if owner is None or row.owner_host != host:
            unknown_owner += 1
        elif not owner.serves(queue):
            misplaced.append(
                f"run {row.id} of {job} ({queue}) fired by pid {owner.pid} {owner.queues}"
            )
    recorded_queues_agree = all(
        sorted(fleet_pids.get(daemon.pid, [])) == sorted(daemon.queues) for daemon in incarnations
    )
    gaps = kill_gaps(kills, rows, records, queue_of)
    allowed = lease + HEARTBEAT_S + PERIOD_MS / 1000

    common_table(
        found,
        [
            ("jobs", f"{args.n:,}, {sum(1 for q in queue_of.values() if q == 'q2'):,} on q2"),
            ("daemons (queues)", ", ".join("+".join(q) for q in layout)),
            ("kills (SIGKILL)", len(kills)),
            ("fires by queue", ", ".join(f"{q} {c:,}" for q, c in sorted(fires_by_queue.items()))),
            *log_notes(log),
            ("load average at the end", load_text()),
        ],
    )
    if gaps:
        print(
            "\nper kill and queue: the runs the killed daemon left running, how long until they"
            "\nwere interrupted, and until their jobs fired again (seconds after the kill)"
        )
        print(
            "  kill  queue     runs  restart after  taken over  next slot fired, max"
            "  next request, median / max  taken over by"
        )
        for gap in gaps:
            print(
                f"  {gap.kill:>4}  {gap.queue:<8} {gap.jobs:>5}  {gap.restart_after:>13.1f}  "
                f"{gap.taken_over:>10.2f}  {gap.slot_again:>20.2f}  "
                f"{gap.sent_again[0]:>13.2f} / {gap.sent_again[1]:<11.2f}  {gap.taken_by}"
            )
    if kills and not gaps:
        print("\nnote: no kill found runs in flight, so no takeover was measured (run longer)")
    verdicts = Verdicts()
    common_verdicts(found, verdicts)
    verdicts.add(
        "no run left running once the leases expired",
        left_running == 0 and running_after_stop == 0,
        f"{left_running} of killed daemons {settle:g} s after the last kill, "
        f"{running_after_stop} after the clean stop",
    )
    for queue in sorted({gap.queue for gap in gaps}):
        taken = max(gap.taken_over for gap in gaps if gap.queue == queue)
        again = max(gap.slot_again for gap in gaps if gap.queue == queue)
        sent = max(gap.sent_again[1] for gap in gaps if gap.queue == queue)
        verdicts.add(
            f"killed daemon's {queue} runs taken over, jobs fire again, within lease + "
            f"{allowed - lease:g} s",
            taken <= allowed and again <= allowed,
            f"worst: taken over {taken:.2f} s, next slot fired {again:.2f} s after the kill "
            f"(limit {allowed:g} s); its request arrived {sent:.2f} s after",
        )
    verdicts.add(
        "queue placement obeyed on every fire",
        not misplaced and unknown_owner == 0 and recorded_queues_agree,
        f"{len(misplaced)} misplaced, {unknown_owner} owners not among the daemons started"
        + ("" if recorded_queues_agree else ", daemons table disagrees with the queues started")
        + (f"; e.g. {misplaced[0]}" if misplaced else ""),
    )
    verdicts.add(
        "the daemons stopped cleanly (exit 0)",
        all(daemon.exit_code == 0 for daemon in live),
        [daemon.exit_code for daemon in live],
    )
    print("\nchecks")
    return verdicts.print()


def bench_url(server: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(server)._replace(path="/" + name))


# =================================================================================== CLI


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    sqlite_parser = sub.add_parser("sqlite", help="one daemon on SQLite, killed and restarted")
    sqlite_parser.add_argument("-n", type=int, default=3000, help="jobs (default: 3,000)")
    sqlite_parser.add_argument("--kills", type=int, default=20, help="kills (default: 20)")
    sqlite_parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds the last daemon runs (default: 5)"
    )
    fleet_parser = sub.add_parser("fleet", help="daemons on PostgreSQL, one killed and restarted")
    fleet_parser.add_argument("-n", type=int, default=500, help="jobs (default: 500)")
    fleet_parser.add_argument("--daemons", type=int, default=3, help="daemons (default: 3)")
    fleet_parser.add_argument(
        "--minutes", type=float, default=2.0, help="how long the kills go on (default: 2)"
    )
    fleet_parser.add_argument(
        "--lease", default="5s", help="the daemons' --lease (default: 5s; jobctl's own: 30s)"
    )
    fleet_parser.add_argument(
        "--restart-delay",
        metavar="A-B",
        help="seconds between a kill and the restart, drawn at random (default: 0-lease+1)",
    )
    fleet_parser.add_argument(
        "--q2-every", type=int, default=5, help="every K-th job is on queue q2 (default: 5)"
    )
    fleet_parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    for each in (sqlite_parser, fleet_parser):
        each.add_argument("--aligned", action="store_true", help="all jobs on the same instant")
        each.add_argument(
            "--interval", default="1-5", metavar="A-B", help="seconds from ready to kill (1-5)"
        )
        each.add_argument("--seed", type=int, help="random seed (default: random, printed)")
        each.add_argument(
            "--keep", action="store_true", help="keep the work directory (and the database)"
        )
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1_000_000)
    if args.mode == "fleet" and args.daemons < 3:
        parser.error("--daemons must be at least 3 (the victim, a default-only, a q2-only)")
    workdir = Path(tempfile.mkdtemp(prefix=f"jobctl-crash-{args.mode}-"))
    try:
        passed = (
            check_sqlite(args, workdir) if args.mode == "sqlite" else check_fleet(args, workdir)
        )
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            for item in sorted(workdir.rglob("*"), reverse=True):
                item.rmdir() if item.is_dir() else item.unlink()
            workdir.rmdir()
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
