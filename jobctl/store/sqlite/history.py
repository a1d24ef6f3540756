"""Run history as the CLI reads it: listings, stats, the status summary, retention, clear.

A history may hold millions of runs, so every read here is shaped for an index: the
(job_id, id) and (status, id) indexes, the key itself, or the finished_at index, never a
sort of the whole table (bench/history.py measures them on a big database).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobctl.models import FinishedCount, JobState, Run, RunSelection, RunStatus, RunTrigger
from jobctl.store.sqlite.base import Connected
from jobctl.store.statuses import (
    counted_statuses,
    created_since_counts,
    status_in,
    with_succeeded,
)
from jobctl.timeutil import from_db, to_db

if TYPE_CHECKING:
    from jobctl.models import Job

# Every column of a run, in the order of Run's fields: its job's name (None for an ad hoc
# run, hence the LEFT JOIN), and the ad hoc run's action.
LISTED = (
    "runs.id, runs.job_id, runs.trigger, runs.status, runs.attempt, runs.scheduled_for, "
    "runs.created_at, runs.started_at, runs.finished_at, runs.due_at, runs.duration_ms, "
    "runs.http_status, runs.exit_code, runs.error, runs.output, runs.snapshot, runs.details, "
    "runs.owner_pid, runs.owner_host, runs.caused_by, runs.pgid, runs.pgid_started, jobs.name, "
    "runs.adhoc"
)
FROM_RUNS = "FROM runs LEFT JOIN jobs ON jobs.id = runs.job_id"
IN_FLIGHT = (RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.WAITING)
# A `missed` row stands for `missed_count` slots; any other row for one.
SLOTS = "coalesce(json_extract(details, '$.missed_count'), 1)"
# Dictionaries: a listing may turn 100,000 rows into runs, and RunStatus(text) is slow.
_STATUS = {status.value: status for status in RunStatus}
_TRIGGER = {trigger.value: trigger for trigger in RunTrigger}


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


def _listed_run(row: tuple[Any, ...]) -> Run:
    """A Run from a tuple of the LISTED columns."""
    started, finished, due = row[7:10]
    return Run(
        row[0],
        row[1],
        _TRIGGER[row[2]],
        _STATUS[row[3]],
        row[4],
        from_db(row[5]),
        from_db(row[6]),
        from_db(started) if started else None,
        from_db(finished) if finished else None,
        from_db(due) if due else None,
        *row[10:],
    )


class HistoryOps(Connected):
    # ---------------------------------------------------------------------- listings

    def list_runs(self, where: RunSelection) -> list[Run]:
        """Runs newest first, with their job's name; uses (job_id, id), (status, id) or
        the key, never a sort.

        Several statuses with a limit are read one (status, id) range each and merged:
        SQLite would otherwise sort every run with any of those statuses.
        """
        if len(where.statuses) > 1 and where.limit and where.job_id is None:
            merged = [
                run
                for status in dict.fromkeys(where.statuses)
                for run in self.list_runs(replace(where, statuses=(status,)))
            ]
            merged.sort(key=lambda run: run.id, reverse=True)
            return merged[: where.limit]
        clauses: list[str] = []
        params: list[Any] = []
        if where.job_id is not None:
            clauses.append("runs.job_id = ?")
            params.append(where.job_id)
        elif where.adhoc:
            clauses.append("runs.job_id IS NULL")  # the (job_id, id) index serves it too
        if where.statuses:
            # With a job, `+` keeps SQLite on the job's (job_id, id, status) index: the
            # (status, id) index would walk every run of that status of every job to find a
            # quiet job's few (240 ms for a nightly job's failures among 5 million runs).
            if where.job_id is not None:
                clauses.append(f"+runs.status IN ({_marks(where.statuses)})")
                params.extend(where.statuses)
            else:
                clauses.append(status_in(where.statuses, "runs.status"))
        if where.triggers:
            clauses.append(f"runs.trigger IN ({_marks(where.triggers)})")
            params.extend(where.triggers)
        if where.since is not None:
            # The id bound lets SQLite start at the window instead of scanning all history.
            clauses.append("runs.id >= ? AND runs.created_at >= ?")
            params.extend((self.first_run_since(where.since), to_db(where.since)))
        if where.until is not None:
            clauses.append("runs.created_at <= ?")
            params.append(to_db(where.until))
        if where.after_id is not None:
            clauses.append("runs.id > ?")
            params.append(where.after_id)
        if where.before_id is not None:
            clauses.append("runs.id < ?")
            params.append(where.before_id)
        sql = f"SELECT {LISTED} {FROM_RUNS}"
        if where.job_id is None and set(where.statuses) == {RunStatus.RUNNING}:
            # The few running runs, sorted, rather than a walk back through the key.
            sql = sql.replace("FROM runs", "FROM runs INDEXED BY runs_running", 1)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY runs.id DESC"
        if where.limit:
            sql += " LIMIT ?"
            params.append(where.limit)
        return self._listed(sql, params)

    def runs_by_id(self, ids: Iterable[int]) -> list[Run]:
        """The runs with these ids (with their job's name), oldest first."""
        wanted = list(ids)
        if not wanted:
            return []
        return self._listed(
            f"SELECT {LISTED} {FROM_RUNS} WHERE runs.id IN ({_marks(wanted)}) ORDER BY runs.id",
            wanted,
        )

    def _listed(self, sql: str, params: Sequence[Any]) -> list[Run]:
        cursor = self.conn.cursor()
        cursor.row_factory = None  # plain tuples: the quickest rows to build runs from
        return [_listed_run(row) for row in cursor.execute(sql, params)]

    def newest_run_id(self) -> int:
        """The highest run id, 0 when there is no run."""
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0])

    def longest_job_name(self) -> int:
        """The length of the longest job name, 0 when there is no job."""
        row = self.conn.execute("SELECT coalesce(max(length(name)), 0) FROM jobs").fetchone()
        return int(row[0])

    def first_run_since(self, since: datetime) -> int:
        """The id of the first run created at or after `since`, by binary search on the key.

        Ids grow with creation time, so about 23 point lookups find it among millions of
        runs. Runs created before and finished after `since` (very long ones) fall outside.
        """
        moment = to_db(since)
        # Two statements: SQLite reads min() and max() from the key only one at a time.
        low = self.conn.execute("SELECT coalesce(min(id), 1) FROM runs").fetchone()[0]
        high = self.conn.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0]
        while low <= high:
            middle = (low + high) // 2
            row = self.conn.execute(
                "SELECT id, created_at FROM runs WHERE id >= ? ORDER BY id LIMIT 1", (middle,)
            ).fetchone()
            if row is None or row[1] >= moment:
                high = middle - 1
            else:
                low = row[0] + 1
        return int(low)

    # ------------------------------------------------------------------------- stats

    def recent_outcomes(self, job_id: int, limit: int) -> list[tuple[RunStatus, int | None]]:
        """Status and duration of the job's newest `limit` runs, newest first (one query on
        a covering index)."""
        rows = self.conn.execute(
            "SELECT status, duration_ms FROM runs WHERE job_id = ? ORDER BY id DESC LIMIT ?",
            (job_id, limit),
        )
        return [(_STATUS[status], duration) for status, duration in rows]

    def recent_outcomes_by_job(
        self, job_ids: Collection[int], limit: int
    ) -> dict[int, list[tuple[RunStatus, int | None]]]:
        """recent_outcomes of each of these jobs that has runs. A query per job: in-process,
        SQLite's cost is the index seeks (8 ms for 1,000 jobs on 5M runs), and one statement
        packing each job's runs into a text (group_concat) took 14-24 ms with the unpacking,
        a window to keep its order 12 ms before it."""
        outcomes = {job_id: self.recent_outcomes(job_id, limit) for job_id in job_ids}
        return {job_id: runs for job_id, runs in outcomes.items() if runs}

    # ------------------------------------------------------------------------ status

    def job_counts_by_state(self) -> dict[JobState, int]:
        """How many jobs are in each state (states without jobs are absent)."""
        rows = self.conn.execute("SELECT state, count(*) FROM jobs GROUP BY state")
        return {JobState(state): count for state, count in rows}

    def count_finished_since(
        self,
        since: datetime,
        statuses: Collection[RunStatus],
        *,
        by_job: Collection[RunStatus],
    ) -> list[FinishedCount]:
        """Runs of `statuses` whose finished_at is at or after `since`, without reading a
        day of rows; those of `by_job` counted per job (and with their slots).

        Runs created in the window are counted from the (status, id) index alone (they
        finished after they were created); the `by_job` rows, which should be few, are read
        for their job and slots. Runs created before the window and finished in it (long
        ones) come from the finished_at index, whose entries carry the id, per status and
        job, whatever their status. Succeeded runs are not in the (status, id) index (every
        fire writes one): those created in the window are every run finished in it, counted
        on the finished_at index alone, less all the others.
        """
        first = self.first_run_since(since)
        wanted, succeeded = counted_statuses(statuses, by_job)
        counted = [
            FinishedCount(status, job, runs, slots)
            for status, sql in created_since_counts(wanted, by_job, f"sum({SLOTS})", "?")
            for job, runs, slots in self.conn.execute(sql, (first,))
        ]
        # `+id`: the id bound must not pick the key over the finished_at index.
        before: list[FinishedCount] = []
        for status, job_id, runs, slots in self.conn.execute(
            f"SELECT status, job_id, count(*), sum({SLOTS}) FROM runs "
            "INDEXED BY runs_finished_at WHERE finished_at >= ? AND +id < ? "
            "GROUP BY status, job_id",
            (to_db(since), first),
        ):
            before.append(FinishedCount(_STATUS[status], job_id, runs, slots))
        finished = None
        if succeeded:
            finished = self.conn.execute(
                "SELECT count(*) FROM runs WHERE finished_at >= ?", (to_db(since),)
            ).fetchone()[0]
        return with_succeeded(statuses, counted, before, finished)

    def job_names_by_id(self, job_ids: Collection[int]) -> dict[int, str]:
        """The names of the jobs with these ids (ids of removed jobs are absent)."""
        ids = list(job_ids)
        rows = self.conn.execute(f"SELECT id, name FROM jobs WHERE id IN ({_marks(ids)})", ids)
        return dict(rows.fetchall())

    def auto_paused_jobs(self) -> list[tuple[str, str]]:
        """(name, reason) of the paused jobs that have a reason (jobctl paused them), by name."""
        rows = self.conn.execute(
            "SELECT name, paused_reason FROM jobs WHERE state = ? "
            "AND paused_reason IS NOT NULL ORDER BY name",
            (JobState.PAUSED,),
        )
        return [(name, reason) for name, reason in rows]

    def jobs_next_to_fire(self, limit: int) -> list[Job]:
        """Up to `limit` enabled jobs with a next fire time, soonest first."""
        from jobctl.models import Job

        rows = self.conn.execute(
            "SELECT * FROM jobs WHERE state = ? AND next_run_at IS NOT NULL "
            "ORDER BY next_run_at LIMIT ?",
            (JobState.ENABLED, limit),
        )
        return [Job.from_row(row) for row in rows]

    # --------------------------------------------------------------------- retention

    def jobs_with_runs_finished_since(self, since: datetime) -> list[int]:
        """Ids of the jobs with runs finished at or after `since`, and of every job with a
        `keep_for` (whose old runs age out without new ones)."""
        rows = self.conn.execute(
            "SELECT DISTINCT job_id FROM runs WHERE finished_at >= ? AND job_id IS NOT NULL "
            "UNION SELECT id FROM jobs WHERE json_extract(policies, '$.keep_for') IS NOT NULL",
            (to_db(since),),
        )
        return [row[0] for row in rows]

    def listing_versions(self, window: int) -> list[tuple[int, tuple[object, ...]]]:
        """Every job's id, by name, with what its `list` entry is made of: its row, its
        agent's settings, its newest run id, the oldest id and the count of its newest
        `window` runs (what its stats read: a prune inside them moves these), and whether a
        run of it is in flight. One statement: a few index seeks per job."""
        rows = self.conn.execute(
            "SELECT jobs.*, "
            "CASE WHEN jobs.action = 'agent' THEN (SELECT config FROM agents WHERE agents.name "
            "= json_extract(jobs.spec, '$.agent')) END, "
            "(SELECT max(id) FROM runs WHERE runs.job_id = jobs.id), "
            "(SELECT min(id) || ' ' || count(*) FROM (SELECT id FROM runs "
            "WHERE runs.job_id = jobs.id ORDER BY id DESC LIMIT ?)), "
            f"jobs.id IN (SELECT job_id FROM runs WHERE {status_in(['queued'])} "
            "UNION ALL SELECT job_id FROM runs INDEXED BY runs_running WHERE status = 'running') "
            "FROM jobs ORDER BY name",
            (window,),
        )
        return [(row["id"], tuple(row)) for row in rows]

    def jobs_by_id(self, job_ids: Iterable[int] | None = None) -> list[Job]:
        """The jobs with these ids (all jobs when None), in id order."""
        from jobctl.models import Job

        if job_ids is None:
            return [
                Job.from_row(row) for row in self.conn.execute("SELECT * FROM jobs ORDER BY id")
            ]
        ids = list(job_ids)
        return [
            Job.from_row(row)
            for start in range(0, len(ids), 500)
            for row in self.conn.execute(
                f"SELECT * FROM jobs WHERE id IN ({_marks(ids[start : start + 500])})",
                ids[start : start + 500],
            )
        ]

    def nth_newest_run_id(self, job_id: int, n: int) -> int | None:
        """The id of the job's `n`-th newest run (1 is the newest), None if it has fewer."""
        row = self.conn.execute(
            "SELECT id FROM runs WHERE job_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
            (job_id, n - 1),
        ).fetchone()
        return int(row[0]) if row is not None else None

    def nth_newest_adhoc_run_id(self, n: int) -> int | None:
        """The id of the `n`-th newest ad hoc run (1 is the newest), None if there are fewer."""
        row = self.conn.execute(
            "SELECT id FROM runs WHERE job_id IS NULL ORDER BY id DESC LIMIT 1 OFFSET ?",
            (n - 1,),
        ).fetchone()
        return int(row[0]) if row is not None else None

    def delete_finished_runs(
        self,
        job_id: int | None,
        limit: int,
        *,
        below_id: int | None = None,
        created_before: datetime | None = None,
    ) -> int:
        """In the caller's transaction: delete up to `limit` of the job's runs (the ad hoc
        runs', for None) that are not in flight (only those with a lower id / created
        earlier, when given); how many went."""
        where = "job_id = ?" if job_id is not None else "job_id IS NULL"
        params: list[Any] = [job_id] if job_id is not None else []
        if below_id is not None:
            where += " AND id < ?"
            params.append(below_id)
        if created_before is not None:
            where += " AND created_at < ?"
            params.append(to_db(created_before))
        cursor = self.conn.execute(
            f"DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE {where} "
            f"AND status NOT IN (?, ?, ?) LIMIT ?)",
            (*params, *IN_FLIGHT, limit),
        )
        return cursor.rowcount

    def clear_history(self, job_id: int) -> int:
        """In the caller's transaction: delete every run of the job not in flight and reset
        its counters and last-run fields; how many runs went."""
        removed = self.conn.execute(
            "DELETE FROM runs WHERE job_id = ? AND status NOT IN (?, ?, ?)", (job_id, *IN_FLIGHT)
        ).rowcount
        self.conn.execute(
            "UPDATE jobs SET runs_total = 0, runs_succeeded = 0, runs_failed = 0, "
            "runs_skipped = 0, runs_missed = 0, consecutive_failures = 0, last_run_at = NULL, "
            "last_status = NULL, last_success_at = NULL WHERE id = ?",
            (job_id,),
        )
        return int(removed)
