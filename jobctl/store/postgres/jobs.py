"""Job rows and the chains between jobs: reading and writing them.

Which jobs may be written (names, agents, cycles, runs in flight) is decided by
`jobctl.catalog` and `jobctl.apply`; these operations only read and write rows. Those that
write join the caller's transaction unless they say "own transaction".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from jobctl.models import EventType, Job, JobState, RunStatus
from jobctl.store.postgres.base import Connected
from jobctl.store.postgres.events import job_event
from jobctl.store.postgres.migrations import ALERT_WATCH_KEY
from jobctl.store.statuses import status_in
from jobctl.timeutil import to_db, utcnow

# The columns a job's definition and timing are written to (counters and last-run fields
# are the engine's: recording a run writes them).
JOB_COLUMNS = (
    "name",
    "description",
    "queue",
    "state",
    "paused_reason",
    "action",
    "spec",
    "trigger",
    "schedule",
    "timezone",
    "policies",
    "next_run_at",
    "last_slot_at",
    "consecutive_failures",
    "updated_at",
)
# What `apply` rewrites for a changed job. The daemon also writes state and timing (a fire,
# an auto-pause), so those are written only when the file changes the schedule or state.
DEFINITION_COLUMNS = ("description", "queue", "action", "spec", "policies", "updated_at")
TIMING_COLUMNS = (
    "state",
    "paused_reason",
    "trigger",
    "schedule",
    "timezone",
    "next_run_at",
    "last_slot_at",
    "consecutive_failures",
)
_IN_FLIGHT = (RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.WAITING)


def _time(value: datetime | None) -> str | None:
    return to_db(value) if value else None


def _column_values(job: Job) -> dict[str, Any]:
    return {
        "name": job.name,
        "description": job.description,
        "queue": job.queue,
        "state": job.state,
        "paused_reason": job.paused_reason,
        "action": job.action,
        "spec": json.dumps(job.spec.to_dict(), sort_keys=True),
        "trigger": job.schedule_kind,
        "schedule": job.schedule,
        "timezone": job.timezone,
        "policies": json.dumps(job.policies.to_dict(), sort_keys=True),
        "next_run_at": _time(job.next_run_at),
        "last_slot_at": _time(job.last_slot_at),
        "consecutive_failures": job.consecutive_failures,
        "updated_at": _time(job.updated_at),
    }


_INSERT_JOB = (
    f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}, created_at) "
    f"VALUES ({', '.join(['%s'] * (len(JOB_COLUMNS) + 1))})"
)


def _insert_values(job: Job) -> list[Any]:
    return [*_column_values(job).values(), _time(job.created_at)]


def _added(job: Job) -> dict[str, Any]:
    """What `job.added` says of a new job."""
    return {
        "state": str(job.state),
        "action": str(job.action),
        "trigger": str(job.schedule_kind),
        "schedule": job.schedule,
    }


def _changed_at(job: Job) -> datetime:
    return job.updated_at or utcnow()


class JobOps(Connected):
    # ------------------------------------------------------------------- reading

    def job_named(self, name: str) -> Job | None:
        row = self.conn.execute("SELECT * FROM jobs WHERE name = %s", (name,)).fetchone()
        return Job.from_row(row) if row is not None else None

    def all_jobs(self) -> list[Job]:
        """Every job, by name."""
        return [Job.from_row(row) for row in self.conn.execute("SELECT * FROM jobs ORDER BY name")]

    def job_names(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT name FROM jobs")]

    def job_name_taken(self, name: str, *, other_than: int | None = None) -> bool:
        """Whether a job (other than the one with id `other_than`) has this name."""
        row = self.conn.execute(
            "SELECT 1 FROM jobs WHERE name = %s AND id IS DISTINCT FROM %s", (name, other_than)
        ).fetchone()
        return row is not None

    def count_enabled_jobs(self) -> int:
        return int(self.value("SELECT count(*) FROM jobs WHERE state = %s", (JobState.ENABLED,)))

    def jobs_due_for_alert(self) -> list[Job]:
        """Enabled jobs with an `alert_if_no_success` window not alerted since their last
        success (whether the window has passed is the caller's rule)."""
        rows = self.conn.execute(  # the key's text first: jobs_alert_watch's condition
            f"SELECT * FROM jobs WHERE state = %s AND alerted_at IS NULL AND {ALERT_WATCH_KEY} "
            "AND policies::jsonb ->> 'alert_if_no_success' IS NOT NULL",
            (JobState.ENABLED,),
        ).fetchall()
        return [Job.from_row(row) for row in rows]

    def mark_alerted(self, job_id: int, now: datetime) -> bool:
        """Own transaction: the job's dead-man alert goes out at `now`; False when another
        daemon marked it first (then that one sends it: an alert goes out once)."""
        with self.write():
            cursor = self.conn.execute(
                "UPDATE jobs SET alerted_at = %s WHERE id = %s AND alerted_at IS NULL",
                (to_db(now), job_id),
            )
            return cursor.rowcount == 1

    def count_in_flight(self, job_id: int) -> int:
        """The job's runs queued or running."""
        return int(
            self.value(
                "SELECT count(*) FROM runs WHERE job_id = %s AND status IN (%s, %s, %s)",
                (job_id, *_IN_FLIGHT),
            )
        )

    def job_ids_in_flight(self) -> set[int]:
        """The jobs with a run queued or running."""
        return {
            row[0]
            for row in self.conn.execute(
                # Running runs are in runs_running, not the (status, id) index.
                "SELECT job_id FROM runs WHERE status = 'running' "
                f"UNION SELECT job_id FROM runs WHERE {status_in(('queued', 'waiting'))}"
            )
        }

    # ------------------------------------------------------------------- writing

    def insert_job(self, job: Job) -> int:
        """Insert the job (its name must be free); returns its id."""
        row = self.conn.execute(_INSERT_JOB + " RETURNING id", _insert_values(job)).fetchone()
        assert row is not None
        job_event(self.conn, EventType.JOB_ADDED, _changed_at(job), job.name, _added(job))
        return int(row[0])

    def update_job(self, job: Job) -> None:
        """Write the job's definition and timing over the row with its id."""
        before = self.conn.execute(
            "SELECT name, state FROM jobs WHERE id = %s", (job.id,)
        ).fetchone()
        values = _column_values(job)
        assignments = ", ".join(f"{column} = %s" for column in values)
        self.conn.execute(
            f"UPDATE jobs SET {assignments} WHERE id = %s", [*values.values(), job.id]
        )
        if before is None:
            return
        data: dict[str, object] = {"state": str(job.state)}
        if job.paused_reason:
            data["reason"] = job.paused_reason
        if before[0] != job.name:
            data["renamed_from"] = before[0]
        job_event(self.conn, EventType.JOB_CHANGED, _changed_at(job), job.name, data)

    def delete_jobs(self, job_ids: Iterable[int]) -> None:
        now = utcnow()
        for job_id in job_ids:
            row = self.conn.execute(
                "DELETE FROM jobs WHERE id = %s RETURNING name", (job_id,)
            ).fetchone()
            if row is not None:
                job_event(self.conn, EventType.JOB_REMOVED, now, row[0])

    def insert_jobs(self, jobs: Sequence[Job]) -> bool:
        """Insert many jobs and give each its id; False (nothing written) when one's name
        is taken meanwhile."""
        with self.joined():
            self.conn.execute("SAVEPOINT insert_jobs")
            ids = []
            for job in jobs:
                row = self.conn.execute(
                    _INSERT_JOB + " ON CONFLICT (name) DO NOTHING RETURNING id",
                    _insert_values(job),
                ).fetchone()
                if row is None:  # the name was taken meanwhile: none of them is written
                    self.conn.execute("ROLLBACK TO SAVEPOINT insert_jobs")
                    self.conn.execute("RELEASE SAVEPOINT insert_jobs")
                    return False
                ids.append(int(row[0]))
            self.conn.execute("RELEASE SAVEPOINT insert_jobs")
        for job, job_id in zip(jobs, ids, strict=True):
            job.id = job_id
            job_event(self.conn, EventType.JOB_ADDED, _changed_at(job), job.name, _added(job))
        return True

    def update_jobs_matching(self, jobs: Sequence[Job], *, timing: bool) -> int:
        """Rewrite each job's definition (and with `timing` its state and schedule too) where
        its row still has its id and name; returns how many rows matched."""
        columns = (*DEFINITION_COLUMNS, *TIMING_COLUMNS) if timing else DEFINITION_COLUMNS
        assignments = ", ".join(f"{column} = %s" for column in columns)
        rows = []
        for job in jobs:
            values = _column_values(job)
            rows.append([*(values[column] for column in columns), job.id, job.name])
        cursor = self.conn.cursor()
        cursor.executemany(f"UPDATE jobs SET {assignments} WHERE id = %s AND name = %s", rows)
        # The caller rolls back unless every job matched, so each one changed.
        for job in jobs:
            data = {"state": str(job.state)} if timing else {}
            job_event(self.conn, EventType.JOB_CHANGED, _changed_at(job), job.name, data)
        return cursor.rowcount

    def delete_jobs_matching(self, jobs: Sequence[Job]) -> int:
        """Delete each job whose row still has its id and name; returns how many matched."""
        cursor = self.conn.cursor()
        cursor.executemany(
            "DELETE FROM jobs WHERE id = %s AND name = %s", [(job.id, job.name) for job in jobs]
        )
        now = utcnow()
        for job in jobs:  # the caller rolls back unless every job matched
            job_event(self.conn, EventType.JOB_REMOVED, now, job.name)
        return cursor.rowcount

    def pause_jobs_named(self, names: Iterable[str], reason: str, now: datetime) -> list[str]:
        """Pause the named jobs that are not completed (a fired one-shot stays completed);
        returns the names paused."""
        paused = []
        for name in names:
            cursor = self.conn.execute(
                "UPDATE jobs SET state = %s, paused_reason = %s, next_run_at = NULL, "
                "updated_at = %s WHERE name = %s AND state != %s",
                (JobState.PAUSED, reason, to_db(now), name, JobState.COMPLETED),
            )
            if cursor.rowcount:
                paused.append(name)
                data = {"state": JobState.PAUSED.value, "reason": reason}
                job_event(self.conn, EventType.JOB_CHANGED, now, name, data)
        return paused

    # -------------------------------------------------------------------- chains

    def replace_chains(self, job_id: int, upstreams: Iterable[tuple[int, str]]) -> None:
        """The job runs after each (upstream job id, on status) given, and no others."""
        self.conn.execute("DELETE FROM chains WHERE job_id = %s", (job_id,))
        self.conn.cursor().executemany(
            "INSERT INTO chains (job_id, upstream_id, on_status) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            [(job_id, upstream_id, when) for upstream_id, when in upstreams],
        )

    def downstream_job_ids(self, job_id: int) -> list[int]:
        """The jobs that run directly after this one."""
        return [
            row[0]
            for row in self.conn.execute(
                "SELECT job_id FROM chains WHERE upstream_id = %s", (job_id,)
            )
        ]

    def upstreams_of(self, job_id: int) -> list[tuple[str, str]]:
        """(upstream job name, on status) for each job this one runs after, by name."""
        return [
            (row[0], row[1])
            for row in self.conn.execute(
                "SELECT jobs.name, chains.on_status FROM chains "
                "JOIN jobs ON jobs.id = chains.upstream_id "
                "WHERE chains.job_id = %s ORDER BY jobs.name",
                (job_id,),
            )
        ]
