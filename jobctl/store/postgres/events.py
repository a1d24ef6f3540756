"""Writing the events that tell of a change, in the statement's own transaction, and the
event stream's filtered reads.

The operations that change runs, jobs and the heartbeat call these helpers right after
their UPDATE or INSERT, on the same connection and so in the same transaction: an event is
committed with its change, or not at all. The job's name is looked up in SQL from the run's
row (NULL for an ad hoc run), so the daemon's path pays one INSERT per event.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime

from jobctl.models import Event, EventType
from jobctl.store.postgres.base import Connected
from jobctl.store.postgres.connection import Connection
from jobctl.timeutil import from_db, iso_z, to_db

ERROR_CHARS = 500  # an event carries the start of a long error; `runs show` has all of it
_TYPE = {kind.value: kind for kind in EventType}


def _data(data: Mapping[str, object] | None) -> str | None:
    return json.dumps(dict(data), sort_keys=True) if data else None


# Event writers take this transaction lock before they insert: they then commit one at a
# time, in the order of their ids, so that a reader resuming after the highest id it saw
# never skips an event committed later with a lower id. Writers of other tables do not wait.
EVENT_ORDER_LOCK = 0x6A6F6265  # "jobe"


def lock_event_order(conn: Connection) -> None:
    """Wait for the other event writers' transactions (pg_advisory_xact_lock)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_ORDER_LOCK,))


def short_error(error: str | None) -> str | None:
    """The start of an error message, as an event carries it."""
    if error is None or len(error) <= ERROR_CHARS:
        return error
    return error[: ERROR_CHARS - 3] + "..."


def run_event(
    conn: Connection,
    kind: EventType,
    now: datetime,
    run_id: int,
    data: Mapping[str, object] | None = None,
) -> None:
    """An event about run `run_id`, named after its job (none for an ad hoc run)."""
    lock_event_order(conn)
    conn.execute(
        "INSERT INTO events (at, type, job, run, data) VALUES (%s, %s, "
        "(SELECT jobs.name FROM runs JOIN jobs ON jobs.id = runs.job_id WHERE runs.id = %s), %s, %s)",
        (to_db(now), kind.value, run_id, run_id, _data(data)),
    )


def job_run_event(
    conn: Connection,
    kind: EventType,
    now: datetime,
    job_id: int | None,
    run_id: int,
    data: Mapping[str, object] | None = None,
) -> None:
    """An event about run `run_id` of job `job_id` (the run's job is known: no lookup)."""
    lock_event_order(conn)
    conn.execute(
        "INSERT INTO events (at, type, job, run, data) VALUES "
        "(%s, %s, (SELECT name FROM jobs WHERE id = %s), %s, %s)",
        (to_db(now), kind.value, job_id, run_id, _data(data)),
    )


def run_finished_event(
    conn: Connection,
    now: datetime,
    run_id: int,
    *,
    status: str,
    duration_ms: int | None,
    exit_code: int | None = None,
    http_status: int | None = None,
    error: str | None = None,
) -> None:
    """`run.finished` with the run's outcome (also for a cancel: status `cancelled`).

    The data is built by PostgreSQL's json_build_object: on the daemon's path, once per fire, it
    costs a fraction of json.dumps."""
    lock_event_order(conn)
    conn.execute(
        "INSERT INTO events (at, type, job, run, data) VALUES (%s, 'run.finished', "
        "(SELECT jobs.name FROM runs JOIN jobs ON jobs.id = runs.job_id WHERE runs.id = %s), %s, "
        "json_build_object('duration_ms', %s::bigint, 'error', %s::text, "
        "'exit_code', %s::int, 'http_status', %s::int, 'status', %s::text)::text)",
        (
            to_db(now),
            run_id,
            run_id,
            duration_ms,
            short_error(error),
            exit_code,
            http_status,
            status,
        ),
    )


def run_started_event(
    conn: Connection,
    now: datetime,
    job_id: int | None,
    run_id: int,
    *,
    trigger: str,
    attempt: int,
    scheduled_for: datetime,
) -> None:
    """`run.started` (json_build_object, like run.finished: once per fire)."""
    lock_event_order(conn)
    conn.execute(
        "INSERT INTO events (at, type, job, run, data) VALUES (%s, 'run.started', "
        "(SELECT name FROM jobs WHERE id = %s), %s, "
        "json_build_object('attempt', %s::int, 'scheduled_for', %s::text, "
        "'trigger', %s::text)::text)",
        (to_db(now), job_id, run_id, attempt, iso_z(scheduled_for), trigger),
    )


def job_event(
    conn: Connection,
    kind: EventType,
    now: datetime,
    name: str,
    data: Mapping[str, object] | None = None,
) -> None:
    """An event about the job named `name`."""
    lock_event_order(conn)
    conn.execute(
        "INSERT INTO events (at, type, job, run, data) VALUES (%s, %s, %s, NULL, %s)",
        (to_db(now), kind.value, name, _data(data)),
    )


class EventOps(Connected):
    """The event stream read with filters: the newest events, or those after an id."""

    def select_events(
        self,
        *,
        after_id: int = 0,
        up_to_id: int | None = None,
        types: Collection[EventType] = (),
        job: str | None = None,
        limit: int = 1000,
        newest: bool = False,
    ) -> list[Event]:
        """Events with `after_id < id <= up_to_id` of the given types and job, oldest first:
        the first `limit` of them, or with `newest` the last `limit`."""
        where: list[str] = ["id > %s"]
        params: list[object] = [after_id]
        if up_to_id is not None:
            where.append("id <= %s")
            params.append(up_to_id)
        if types:
            where.append("type = ANY(%s)")
            params.append([kind.value for kind in types])
        if job is not None:
            where.append("job = %s")
            params.append(job)
        order = "DESC" if newest else "ASC"
        rows = self.conn.execute(
            f"SELECT id, at, type, job, run, data FROM events WHERE {' AND '.join(where)} "
            f"ORDER BY id {order} LIMIT %s",
            (*params, limit if limit >= 0 else None),  # a negative limit is none, as on SQLite
        ).fetchall()
        if newest:
            rows.reverse()
        return [
            Event(event_id, from_db(at), _TYPE[kind], name, run, json.loads(data) if data else {})
            for event_id, at, kind, name, run, data in rows
        ]
