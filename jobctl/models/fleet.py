"""The fleet: the daemons that share a database, each with its id, queues and lease."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from jobctl.models.jobs import Row
from jobctl.timeutil import from_db, iso_z


@dataclass(frozen=True)
class DaemonEntry:
    """One daemon start: who it is, which queues it fires (empty: every queue) and until
    when its lease holds. A daemon whose lease ran out without a clean stop is dead."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    started_at: datetime
    last_beat_at: datetime
    lease_until: datetime
    stopped_at: datetime | None = None
    listen: str | None = None
    log_file: str | None = None
    in_flight: int = 0  # runs in flight at its last heartbeat
    fired_last_minute: int = 0  # runs it started in the minute before its last heartbeat

    @classmethod
    def from_row(cls, row: Row) -> DaemonEntry:
        """The entry from its stored row (the store calls this)."""
        return cls(
            id=row["id"],
            host=row["host"],
            pid=row["pid"],
            queues=tuple(json.loads(row["queues"])),
            started_at=from_db(row["started_at"]),
            last_beat_at=from_db(row["last_beat_at"]),
            lease_until=from_db(row["lease_until"]),
            stopped_at=from_db(row["stopped_at"]) if row["stopped_at"] else None,
            listen=row["listen"],
            log_file=row["log_file"],
            in_flight=row["in_flight"],
            fired_last_minute=row["fired_last_minute"],
        )

    def serves(self, queue: str) -> bool:
        """This daemon fires jobs on `queue`."""
        return not self.queues or queue in self.queues


@dataclass(frozen=True)
class OpenMiss:
    """A job's `missed` row that is still open: the slots of a queue that no live daemon
    fires, from `first` to `until` (`count` of them); later slots of the same spell extend
    it, so that one row stands for the whole gap."""

    run_id: int
    first: datetime
    until: datetime
    count: int
    queue: str

    @classmethod
    def of_row(cls, row: Row, last_slot: datetime) -> OpenMiss | None:
        """The run row (id, scheduled_for, details) as an OpenMiss, when it is an unserved
        queue's and ends at `last_slot`; None when it is another kind of missed row or a
        slot fired since (the store calls this)."""
        data = json.loads(row["details"] or "{}")
        queue, until = data.get("unserved_queue"), data.get("missed_until")
        if not queue or until != iso_z(last_slot):
            return None
        return cls(
            row["id"], from_db(row["scheduled_for"]), last_slot, int(data["missed_count"]), queue
        )
