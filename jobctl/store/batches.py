"""The daemon's writes a batch at a time, in a constant number of statements, written once
for both stores.

A claim step moves every due job on in one UPDATE, inserts the runs of the jobs that moved
in one INSERT and their events in one more; recording finishes every run of a group commit
in one UPDATE, writes their `run.finished` events in one INSERT and moves the jobs' counters
in one UPDATE. The dialects differ only in how a list of rows reaches the server (a VALUES
list on SQLite, arrays unnested on PostgreSQL), the placeholder and two function names:
`Dialect` says those, `BatchOps` holds the SQL. It imports no driver (each store's mixin
runs the statements on its connection).
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from jobctl.models import (
    FAILURES,
    EventType,
    JobAdvance,
    NewRun,
    OpenMiss,
    RunExecuted,
    RunStatus,
)
from jobctl.timeutil import db_to_iso, from_db, to_db

if TYPE_CHECKING:
    from jobctl.actions import Outcome

# Rows per statement: SQLite allows 32,766 variables; a run row takes 10.
CHUNK = 500

# `iso_z` of a stored time (fixed-width UTC text): seconds, or milliseconds when not zero.
_ISO = (
    "CASE WHEN substr({0}, 21, 6) = '000000' THEN substr({0}, 1, 19) || 'Z' "
    "ELSE substr({0}, 1, 23) || 'Z' END"
)
# `short_error` of a stored error (ERROR_CHARS = 500 in the stores' events modules).
_SHORT = "CASE WHEN length({0}) <= 500 THEN {0} ELSE substr({0}, 1, 497) || '...' END"


@dataclass(frozen=True)
class Dialect:
    """What differs between the stores' SQL for batches."""

    mark: str  # the placeholder
    unnest: bool  # rows travel as one array per column (PostgreSQL) or as VALUES (SQLite)
    json_object: str  # "json_object" or "json_build_object"
    json_text: str  # what makes the JSON text ("" or "::text")
    greatest: str  # "max" or "greatest" (PostgreSQL's skips NULLs; SQLite's is coalesced)
    # The runs table read for running runs: SQLite is told to use runs_running (without
    # statistics it walks a job's whole history in runs_job_recent instead).
    running_runs: str

    def rows(self, name: str, columns: Sequence[tuple[str, str]], count: int) -> str:
        """A common table expression `name(columns)` of `count` rows; columns are
        (name, SQL type) pairs."""
        names = ", ".join(column for column, _ in columns)
        if self.unnest:
            arrays = ", ".join(f"{self.mark}::{kind}[]" for _, kind in columns)
            return f"{name}({names}) AS (SELECT * FROM unnest({arrays}))"
        row = "(" + ", ".join(self.mark for _ in columns) + ")"
        return f"{name}({names}) AS (VALUES {', '.join([row] * _size(count))})"

    def params(self, rows: Sequence[Sequence[object]]) -> list[object]:
        """The parameters of `rows()`: flat on SQLite (rows of NULLs make up its size: an
        id of NULL matches nothing), one list per column on PostgreSQL."""
        if self.unnest:
            return [list(column) for column in zip(*rows, strict=True)]
        padding = [None] * ((_size(len(rows)) - len(rows)) * len(rows[0]))
        return [value for row in rows for value in row] + padding

    def among(self, column: str, count: int) -> str:
        """`column` is one of a list of `count` ids (the parameters of `ids()`)."""
        if self.unnest:
            return f"{column} = ANY({self.mark}::bigint[])"
        return f"{column} IN ({', '.join([self.mark] * _size(count))})"

    def ids(self, ids: Sequence[int]) -> list[object]:
        if self.unnest:
            return [list(ids)]
        return [*ids, *[None] * (_size(len(ids)) - len(ids))]

    def later(self, column: str, value: str) -> str:
        """The later of a nullable stored time and a given one."""
        if self.unnest:
            return f"{self.greatest}({column}, {value})"
        return f"{self.greatest}(coalesce({column}, ''), {value})"

    def json(self, *pairs: tuple[str, str]) -> str:
        """A JSON object's text from (key, SQL expression) pairs."""
        inner = ", ".join(f"'{key}', {value}" for key, value in pairs)
        return f"{self.json_object}({inner}){self.json_text}"


SQLITE = Dialect("?", False, "json_object", "", "max", "runs INDEXED BY runs_running")
POSTGRES = Dialect("%s", True, "json_build_object", "::text", "greatest", "runs")

_ADVANCE = (
    ("id", "bigint"),
    ("claimed", "text"),
    ("next_at", "text"),
    ("slot_at", "text"),
    ("new_state", "text"),
)
_NEW_RUN = (
    ("job_id", "bigint"),
    ("trigger", "text"),
    ("status", "text"),
    ("attempt", "int"),
    ("scheduled_for", "text"),
    ("started_at", "text"),
    ("finished_at", "text"),
    ("error", "text"),
    ("owner_pid", "int"),
    ("owner_host", "text"),
    ("due_at", "text"),
)
_FINISH = (
    ("id", "bigint"),
    ("new_status", "text"),
    ("started", "text"),
    ("finished", "text"),
    ("duration", "bigint"),
    ("http", "int"),
    ("exit", "int"),
    ("err", "text"),
    ("out", "text"),
    ("snap", "text"),
    ("more", "text"),
)
_EXECUTED = (
    ("id", "bigint"),
    ("ok", "int"),
    ("failed", "int"),
    ("cancelled", "int"),
    ("final", "int"),
    ("started", "text"),
    ("ended_as", "text"),
)
_COUNTED = (("id", "bigint"), ("n", "int"))


# The sizes of SQLite's batch statements: 2 ** (k / 4) rounded (1, 2, 3 ... 16, 19, 23, 27,
# 32 ... 128, 152, 181, 215, 256 ... 431), then a whole chunk.
_SIZES = (*sorted({round(2 ** (k / 4)) for k in range(36)}), CHUNK)


def _size(count: int) -> int:
    """The rows a SQLite statement of `count` rows is written for: the next of _SIZES, or
    a whole chunk. The daemon's batches come in every size, and a statement is compiled
    again for each text it has not kept (128 at most): ~3 µs a row, as much as running
    it. With sizes rounded up, each statement has at most 32 texts (a steady daemon's
    batches use a few). A padding row costs about a third of a row: with powers of two,
    up to half of a statement's rows were padding; here at most 16%, 7% on average."""
    return _SIZES[bisect_left(_SIZES, count)] if count < CHUNK else count


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


# json.dumps' text (the same defaults), without its per-call checks and with no guard
# against a structure that holds itself (an outcome's snapshot and details never do): 2.5
# instead of 3.3 µs for an HTTP run's snapshot, twice per fire.
_json = json.JSONEncoder(check_circular=False).encode


@lru_cache(maxsize=8192)  # one call, no frame, for the instants a burst shares
def _time(value: datetime | None) -> str | None:
    return to_db(value) if value is not None else None


# The conflict the claim lets pass: the one-run-per-slot index's (runs_one_per_slot, the
# same columns and predicate), named so that no other unique key's clash (the id's) passes
# for a slot fired before.
_SLOT_TAKEN = (
    "ON CONFLICT (job_id, trigger, scheduled_for, attempt) "
    "WHERE trigger IN ('schedule', 'catchup', 'retry') AND status != 'missed'"
)


def _written_ids(
    rows: Sequence[Sequence[object]], written: Sequence[Sequence[Any]]
) -> list[int | None]:
    """Each of `rows`' id (None: not written, its slot had a row): one statement's ids grow
    in the order of its rows, so the written rows, by id, match the rows in order."""
    ids: list[int | None] = []
    pending = iter(sorted(written, key=lambda row: int(row[0])))
    nxt = next(pending, None)
    for job_id, trigger, _status, attempt, slot, *_ in rows:
        if nxt is None or (int(nxt[1]), nxt[2], nxt[3], int(nxt[4])) != (
            job_id, trigger, slot, attempt
        ):  # fmt: skip
            ids.append(None)
            continue
        ids.append(int(nxt[0]))
        nxt = next(pending, None)
    return ids


class BatchOps:
    """Batched writes on the daemon's path, inside the caller's write transaction."""

    dialect: Dialect

    def _fetch(self, sql: str, params: Sequence[object]) -> list[Sequence[Any]]:
        """Run one statement; the rows it returns."""
        raise NotImplementedError

    def _execute(self, sql: str, params: Sequence[object]) -> None:
        """Run one statement that returns no rows."""
        raise NotImplementedError

    def _lock_events(self) -> None:
        """Before inserting events (PostgreSQL orders their commits)."""

    def lock_jobs(self, job_ids: Collection[int]) -> None:
        """Lock the jobs' rows, in the order of their ids, before the runs and events a
        write goes on to touch (PostgreSQL; SQLite has one writer): see LOCK ORDER in the
        PostgreSQL store's transaction module."""

    def jobs_completed(self, job_ids: Collection[int]) -> None:
        """`job.changed` for one-shot jobs that fired their last slot (moved on to
        `completed`)."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------- fleet

    def soonest_lease_end(self, daemon_id: str) -> datetime | None:
        """When the first lease of another daemon runs out, renewed no further: the moment
        to look for a takeover (a read of the few live daemons' rows)."""
        mark = self.dialect.mark
        rows = self._fetch(
            f"SELECT min(lease_until) FROM daemons WHERE stopped_at IS NULL AND id <> {mark}",
            [daemon_id],
        )
        return from_db(rows[0][0]) if rows and rows[0][0] is not None else None

    # ------------------------------------------------------------------------- claiming

    def running_counts(self, job_ids: Collection[int] | None = None) -> dict[int, int]:
        """Job id -> how many of its runs are `running`, of the jobs `job_ids` (None: of
        every job; the daemon asks only of those it claims for)."""
        d = self.dialect
        sql = (
            f"SELECT job_id, count(*) FROM {d.running_runs} "
            "WHERE status = 'running' AND job_id IS NOT NULL"
        )
        if job_ids is None:
            rows = self._fetch(f"{sql} GROUP BY job_id", [])
        elif not job_ids:
            return {}
        else:
            wanted = list(job_ids)
            rows = self._fetch(f"{sql} AND {d.among('job_id', len(wanted))} GROUP BY job_id",
                               d.ids(wanted))  # fmt: skip
        return {int(row[0]): int(row[1]) for row in rows}

    def advance_jobs(self, advances: Sequence[JobAdvance]) -> set[int]:
        """Move each job on to its next slot (and state) if nobody moved it from the slot it
        was claimed at meanwhile; the ids of the jobs that moved (a one-shot that moved to
        `completed` is told by `jobs_completed`, after its run's event)."""
        d = self.dialect
        moved: set[int] = set()
        for chunk in _chunks(advances):
            rows = [
                (
                    a.job_id,
                    to_db(a.claimed_next_run_at),
                    _time(a.next_run_at),
                    _time(a.last_slot_at),
                    a.state,
                )
                for a in chunk
            ]
            found = self._fetch(
                f"WITH {d.rows('v', _ADVANCE, len(rows))} UPDATE jobs SET "
                "next_run_at = v.next_at, last_slot_at = v.slot_at, state = v.new_state "
                "FROM v WHERE jobs.id = v.id AND jobs.next_run_at = v.claimed RETURNING jobs.id",
                d.params(rows),
            )
            moved.update(int(row[0]) for row in found)
        return moved

    def insert_runs(self, runs: Sequence[NewRun], now: datetime) -> list[int | None]:
        """New `running`, `skipped` or `queued` rows (in this order: their ids, in it), with
        their `run.started` and `run.skipped` events. A running row starts at `now`, or at
        its slot if that is later (claimed ahead, it fires then); a skipped one ends at
        `now`.

        A row whose slot has one already (the unique index `runs_one_per_slot`) is not
        written and its id is None: that slot was fired; the other rows are written all the
        same (one clash failing the statement would stop every job of the batch)."""
        d = self.dialect
        at = to_db(now)
        ids: list[int | None] = []
        for chunk in _chunks(runs):
            rows = [
                (
                    run.job_id,
                    run.trigger.value,
                    run.status.value,
                    run.attempt,
                    slot := to_db(run.scheduled_for),
                    max(at, slot) if run.status == RunStatus.RUNNING else None,
                    at if run.status == RunStatus.SKIPPED else None,
                    run.error,
                    run.owner.pid if run.owner else None,
                    run.owner.host if run.owner else None,
                    _time(run.due_at),
                )
                for run in chunk
            ]
            names = ", ".join(column for column, _ in _NEW_RUN)
            # (The WHERE leaves out the padding rows; SQLite would also read ON CONFLICT
            # after a bare FROM as a join's ON.)
            found = self._fetch(
                f"WITH {d.rows('v', _NEW_RUN, len(rows))} INSERT INTO runs ({names}, "
                f"created_at) SELECT {names}, {d.mark} FROM v WHERE v.trigger IS NOT NULL "
                f"{_SLOT_TAKEN} DO NOTHING RETURNING id, job_id, trigger, scheduled_for, attempt",
                [*d.params(rows), at],
            )
            ids.extend(_written_ids(rows, found))
        told = [
            run_id
            for run_id, run in zip(ids, runs, strict=True)
            if run_id is not None and run.status != RunStatus.QUEUED
        ]
        for chunk in _chunks(told):
            self._run_events(chunk)
        return ids

    def _run_events(self, run_ids: Sequence[int]) -> None:
        d = self.dialect
        slot = _ISO.format("runs.scheduled_for")
        started = d.json(
            ("attempt", "runs.attempt"), ("scheduled_for", slot), ("trigger", "runs.trigger")
        )
        skipped = d.json(
            ("error", _SHORT.format("runs.error")),
            ("scheduled_for", slot),
            ("trigger", "runs.trigger"),
        )
        self._lock_events()
        self._execute(
            "INSERT INTO events (at, type, job, run, data) SELECT "
            "coalesce(runs.started_at, runs.created_at), "
            "CASE runs.status WHEN 'running' THEN 'run.started' ELSE 'run.skipped' END, "
            f"jobs.name, runs.id, CASE runs.status WHEN 'running' THEN {started} "
            f"ELSE {skipped} END FROM runs LEFT JOIN jobs ON jobs.id = runs.job_id "
            f"WHERE {d.among('runs.id', len(run_ids))} ORDER BY runs.id",
            d.ids(run_ids),
        )

    def count_skipped_jobs(self, counts: Mapping[int, int]) -> None:
        """Add to each job's skipped runs (job id -> how many)."""
        d = self.dialect
        for chunk in _chunks(list(counts.items())):
            self._execute(
                f"WITH {d.rows('v', _COUNTED, len(chunk))} UPDATE jobs SET "
                "runs_skipped = runs_skipped + v.n FROM v WHERE jobs.id = v.id",
                d.params(chunk),
            )

    # ------------------------------------------------------------------------ recording

    def finish_runs(self, finished: Sequence[tuple[int, Outcome]]) -> set[int]:
        """`running` rows take their outcomes, with their `run.finished` events; the ids of
        those that were still running (not marked interrupted meanwhile, nor removed)."""
        d = self.dialect
        done: set[int] = set()
        for chunk in _chunks(finished):
            rows = [
                (
                    run_id,
                    str(outcome.status),
                    to_db(outcome.started_at),
                    to_db(outcome.finished_at),
                    outcome.duration_ms,
                    outcome.http_status,
                    outcome.exit_code,
                    outcome.error,
                    outcome.output,
                    _json(outcome.snapshot) if outcome.snapshot is not None else None,
                    _json(outcome.details) if outcome.details else None,
                )
                for run_id, outcome in chunk
            ]
            found = self._fetch(
                f"WITH {d.rows('v', _FINISH, len(rows))} UPDATE runs SET "
                "status = v.new_status, started_at = v.started, finished_at = v.finished, "
                "duration_ms = v.duration, http_status = v.http, exit_code = v.exit, "
                "error = v.err, output = v.out, snapshot = v.snap, details = v.more "
                "FROM v WHERE runs.id = v.id AND runs.status = 'running' RETURNING runs.id",
                d.params(rows),
            )
            ended = sorted(int(row[0]) for row in found)
            done.update(ended)
            if ended:
                self._finished_events(ended)
        return done

    def _finished_events(self, run_ids: Sequence[int]) -> None:
        d = self.dialect
        data = d.json(
            ("duration_ms", "runs.duration_ms"),
            ("error", _SHORT.format("runs.error")),
            ("exit_code", "runs.exit_code"),
            ("http_status", "runs.http_status"),
            ("status", "runs.status"),
        )
        self._lock_events()
        self._execute(
            "INSERT INTO events (at, type, job, run, data) SELECT runs.finished_at, "
            f"'run.finished', jobs.name, runs.id, {data} FROM runs "
            "LEFT JOIN jobs ON jobs.id = runs.job_id "
            f"WHERE {d.among('runs.id', len(run_ids))} ORDER BY runs.id",
            d.ids(run_ids),
        )

    def count_executed_runs(self, executed: Sequence[RunExecuted]) -> None:
        """Lifetime counters and last-run fields of each run's job, as `count_executed`
        would move them one by one; a job appears at most once per call."""
        d = self.dialect
        for chunk in _chunks(executed):
            rows = [
                (
                    run.job_id,
                    int(run.status == RunStatus.SUCCEEDED),
                    int(run.status in FAILURES),
                    int(run.status == RunStatus.CANCELLED),
                    int(run.final),
                    to_db(run.started_at),
                    str(run.status),
                )
                for run in chunk
            ]
            self._execute(
                f"WITH {d.rows('v', _EXECUTED, len(rows))} UPDATE jobs SET "
                "runs_total = runs_total + 1, runs_succeeded = runs_succeeded + v.ok, "
                "runs_failed = runs_failed + v.failed, "
                "last_status = CASE WHEN last_run_at IS NULL OR last_run_at <= v.started "
                "THEN v.ended_as ELSE last_status END, "
                f"last_run_at = {d.later('last_run_at', 'v.started')}, "
                "last_success_at = CASE WHEN v.ok = 1 "
                f"THEN {d.later('last_success_at', 'v.started')} ELSE last_success_at END, "
                "consecutive_failures = CASE WHEN v.ok = 1 THEN 0 "
                "WHEN v.cancelled = 1 THEN consecutive_failures "
                "WHEN v.final = 1 THEN consecutive_failures + 1 "
                "ELSE consecutive_failures END, "
                "alerted_at = CASE WHEN v.ok = 1 THEN NULL ELSE alerted_at END "
                "FROM v WHERE jobs.id = v.id",
                d.params(rows),
            )

    # ------------------------------------------- the open missed row of an unserved queue

    def open_miss(self, job_id: int, last_slot: datetime | None) -> OpenMiss | None:
        """In the caller's transaction: the job's newest run row if it is an unserved
        queue's `missed` row ending at `last_slot` (the job's last slot): nothing ran
        since. Only the newest row is read (an index step, however long the history)."""
        if last_slot is None:
            return None
        m = self.dialect.mark
        found = self._fetch(
            "SELECT id, status, scheduled_for, details FROM runs "
            f"WHERE job_id = {m} ORDER BY id DESC LIMIT 1",
            [job_id],
        )
        if not found or found[0][1] != RunStatus.MISSED:
            return None
        run_id, _, slot, details = found[0]
        row = {"id": run_id, "scheduled_for": slot, "details": details}
        return OpenMiss.of_row(row, last_slot)

    def extend_miss(
        self, run_id: int, details: Mapping[str, object], error: str, now: datetime
    ) -> None:
        """In the caller's transaction: the open missed row `run_id` stands for more slots
        (`details` merged into its own, `error` its new text, ended at `now`); a `run.missed`
        event tells of it again, with its new count."""
        m = self.dialect.mark
        found = self._fetch(
            f"SELECT job_id, trigger, scheduled_for, details FROM runs WHERE id = {m}", [run_id]
        )
        if not found:
            return
        job_id, trigger, slot, stored = found[0]
        merged = {**json.loads(stored or "{}"), **details}
        self._execute(
            f"UPDATE runs SET details = {m}, error = {m}, finished_at = {m} WHERE id = {m}",
            [json.dumps(merged), error, to_db(now), run_id],
        )
        told = {
            "trigger": trigger,
            "scheduled_for": db_to_iso(slot),
            "missed_count": merged.get("missed_count"),
            "missed_until": merged.get("missed_until"),
        }
        self._lock_events()
        self._execute(
            "INSERT INTO events (at, type, job, run, data) VALUES "
            f"({m}, {m}, (SELECT name FROM jobs WHERE id = {m}), {m}, {m})",
            [to_db(now), EventType.RUN_MISSED.value, job_id, run_id,
             json.dumps(told, sort_keys=True)],
        )  # fmt: skip

    # ------------------------------------------------------------ one at a time, the same

    def finish_run(self, run_id: int, outcome: Outcome) -> bool:
        """`finish_runs` of one run: False if it was no longer running."""
        return run_id in self.finish_runs([(run_id, outcome)])

    def count_executed(
        self, job_id: int, status: str, started_at: datetime, *, final: bool
    ) -> None:
        """`count_executed_runs` of one run (`status` a RunStatus value; `final`: no retry
        follows). A cancelled run leaves the failures in a row as they are."""
        self.count_executed_runs([RunExecuted(job_id, status, started_at, final)])

    def count_skipped(self, job_id: int, count: int = 1) -> None:
        self.count_skipped_jobs({job_id: count})
