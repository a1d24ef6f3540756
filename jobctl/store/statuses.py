"""The partial (status, id) index of runs, as both stores' queries use it.

Every fire inserts a `running` row and, most often, turns it `succeeded`: the (status, id)
index leaves those two statuses out, so it is not written for them. SQLite uses a partial
index only for a query that states the index's condition, so a query for the other
statuses says it too (`status_in`); running runs have the partial index runs_running, and
succeeded ones are listed from the key and counted as the finished runs less the others
(`with_succeeded`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from jobctl.models import FinishedCount, RunStatus

COMMON = ("succeeded", "running")  # not in the (status, id) index
_STATUS = {status.value: status for status in RunStatus}
FINISHED = tuple(status for status in RunStatus if not status.in_flight)


def status_in(values: Iterable[str], column: str = "status") -> str:
    """`column IN (values)`, the known statuses written out, with the index's condition
    when all of them are in the (status, id) index; "FALSE" when none is known (an unknown
    status matches nothing)."""
    known = list(dict.fromkeys(_STATUS[value].value for value in values if value in _STATUS))
    if not known:
        return "1 = 0"
    # One status as `=`: SQLite proves a partial index's `status = 'running'` only from
    # an equality, not from `IN ('running')` (forced, that index has "no query solution").
    if len(known) == 1:
        listed = f"{column} = {known[0]!r}"
    else:
        listed = f"{column} IN ({', '.join(repr(value) for value in known)})"
    if any(value in COMMON for value in known):
        return listed
    return f"{listed} AND {column} NOT IN {COMMON!r}"


def counted_statuses(
    statuses: Collection[RunStatus], by_job: Collection[RunStatus]
) -> tuple[list[RunStatus], bool]:
    """The statuses whose runs created in a window are counted one by one, and whether
    succeeded runs are counted by difference (then every other finished status is)."""
    succeeded = RunStatus.SUCCEEDED in statuses and RunStatus.SUCCEEDED not in by_job
    if not succeeded:
        return list(statuses), False
    return [status for status in FINISHED if status != RunStatus.SUCCEEDED], True


def created_since_counts(
    wanted: Sequence[RunStatus], by_job: Collection[RunStatus], slots: str, mark: str
) -> list[tuple[RunStatus, str]]:
    """For each status, the SQL that counts its runs from run id `mark` on, as rows of
    (job id, runs, slots): per job for `by_job` (their rows are read), else one row from
    the (status, id) index alone (no job, no slots)."""
    return [
        (
            status,
            f"SELECT job_id, count(*), {slots} FROM runs "
            f"WHERE {status_in([status])} AND id >= {mark} GROUP BY job_id"
            if status in by_job
            else f"SELECT NULL, count(*), 0 FROM runs WHERE {status_in([status])} AND id >= {mark}",
        )
        for status in wanted
    ]


def with_succeeded(
    statuses: Collection[RunStatus],
    counted: Sequence[FinishedCount],
    before: Sequence[FinishedCount],
    finished: int | None,
) -> list[FinishedCount]:
    """What count_finished_since returns: the asked-for counts of runs created in the
    window (`counted`), the succeeded ones as the `finished` runs of the window less every
    other count (None: not counted so), and the runs created `before` it."""
    counts = [item for item in counted if item.status in statuses]
    if finished is not None:
        others = sum(item.runs for item in counted) + sum(item.runs for item in before)
        counts.append(FinishedCount(RunStatus.SUCCEEDED, None, finished - others, 0))
    return counts + list(before)
