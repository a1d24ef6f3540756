"""A run's output in pieces while it is in flight, and the event stream."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from jobctl.models import Event, EventType, OutputPiece, OutputStream
from jobctl.store.sqlite.base import Connected
from jobctl.timeutil import from_db, to_db

_STREAM = {stream.value: stream for stream in OutputStream}
_TYPE = {kind.value: kind for kind in EventType}


class LiveOps(Connected):
    # ---------------------------------------------------------------------- output pieces

    def append_output(self, pieces: Sequence[OutputPiece]) -> None:
        """Store pieces of runs' output (in the caller's transaction, or one of their own);
        those of a run removed meanwhile (`rm --force` of its job) are dropped."""
        with self.joined():
            self.conn.executemany(
                "INSERT OR IGNORE INTO run_output (run_id, seq, stream, at, text) "
                "SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?)",
                [(p.run_id, p.seq, p.stream.value, to_db(p.at), p.text, p.run_id) for p in pieces],
            )

    def output_after(self, run_id: int, after_seq: int = 0, limit: int = 1000) -> list[OutputPiece]:
        """The run's pieces after `after_seq`, in order (at most `limit`)."""
        return [
            OutputPiece(run_id, seq, _STREAM[stream], from_db(at), text)
            for seq, stream, at, text in self.conn.execute(
                "SELECT seq, stream, at, text FROM run_output WHERE run_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (run_id, after_seq, limit),
            )
        ]

    def last_output_lines(self, run_ids: Sequence[int]) -> dict[int, str]:
        """Each run's newest piece of output (its text as stored), for a run in flight."""
        if not run_ids:
            return {}
        marks = ", ".join("?" * len(run_ids))
        return {
            run_id: text
            for run_id, text in self.conn.execute(
                f"SELECT run_id, text FROM run_output AS piece WHERE run_id IN ({marks}) "
                "AND seq = (SELECT max(seq) FROM run_output WHERE run_id = piece.run_id)",
                list(run_ids),
            )
        }

    # ---------------------------------------------------------------------- events

    def add_event(
        self,
        kind: EventType,
        now: datetime,
        *,
        job: str | None = None,
        run: int | None = None,
        data: Mapping[str, object] | None = None,
    ) -> int:
        """Append an event (in the caller's transaction, so that it is committed with the
        change it tells of, or in one of its own); returns its id."""
        with self.joined():
            cursor = self.conn.execute(
                "INSERT INTO events (at, type, job, run, data) VALUES (?, ?, ?, ?, ?)",
                (
                    to_db(now),
                    kind.value,
                    job,
                    run,
                    json.dumps(dict(data), sort_keys=True) if data else None,
                ),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def events_after(self, after_id: int = 0, limit: int = 1000) -> list[Event]:
        """Events with an id above `after_id`, oldest first (at most `limit`)."""
        return [
            Event(event_id, from_db(at), _TYPE[kind], job, run, json.loads(data) if data else {})
            for event_id, at, kind, job, run, data in self.conn.execute(
                "SELECT id, at, type, job, run, data FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
        ]

    def last_event_id(self) -> int:
        """The newest event's id (0 when there is none)."""
        row = self.conn.execute("SELECT max(id) FROM events").fetchone()
        return int(row[0] or 0)

    def delete_events_before(self, before: datetime) -> int:
        """Forget events older than `before` (the newest is always kept, so ids go on
        increasing); returns how many."""
        with self.joined():
            cursor = self.conn.execute(
                "DELETE FROM events WHERE at < ? AND id < (SELECT max(id) FROM events)",
                (to_db(before),),
            )
        return cursor.rowcount
