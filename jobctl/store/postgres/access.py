"""Settings (the API token), one-time login codes and dashboard sessions."""

from __future__ import annotations

from datetime import datetime

from jobctl.models.access import Session
from jobctl.store.postgres.base import Connected
from jobctl.timeutil import from_db, to_db


class AccessOps(Connected):
    def get_setting(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        with self.joined():
            self.conn.execute(
                "INSERT INTO settings (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def add_login_code(self, code_hash: str, expires_at: datetime) -> None:
        with self.joined():
            self.conn.execute(
                "INSERT INTO login_codes (code_hash, expires_at) VALUES (%s, %s)",
                (code_hash, to_db(expires_at)),
            )

    def take_login_code(self, code_hash: str, now: datetime) -> bool:
        """Use up a login code: True if it existed and had not expired (it is gone either
        way, as are all expired codes)."""
        with self.joined():
            cursor = self.conn.execute(
                "DELETE FROM login_codes WHERE code_hash = %s AND expires_at > %s",
                (code_hash, to_db(now)),
            )
            self.conn.execute("DELETE FROM login_codes WHERE expires_at <= %s", (to_db(now),))
        return cursor.rowcount == 1

    def add_session(self, session: Session) -> None:
        with self.joined():
            self.conn.execute(
                "INSERT INTO sessions (id_hash, csrf, created_at, expires_at) VALUES (%s, %s, %s, %s)",
                (
                    session.id_hash,
                    session.csrf,
                    to_db(session.created_at),
                    to_db(session.expires_at),
                ),
            )

    def get_session(self, id_hash: str, now: datetime) -> Session | None:
        """The session with that id hash, unless it expired."""
        row = self.conn.execute(
            "SELECT id_hash, csrf, created_at, expires_at FROM sessions "
            "WHERE id_hash = %s AND expires_at > %s",
            (id_hash, to_db(now)),
        ).fetchone()
        if row is None:
            return None
        return Session(row[0], row[1], from_db(row[2]), from_db(row[3]))

    def delete_session(self, id_hash: str) -> None:
        with self.joined():
            self.conn.execute("DELETE FROM sessions WHERE id_hash = %s", (id_hash,))

    def delete_sessions(self, *, expired_before: datetime | None = None) -> int:
        """Forget the sessions that expired before a moment, or every one (a new token
        logs every browser out)."""
        with self.joined():
            if expired_before is None:
                cursor = self.conn.execute("DELETE FROM sessions")
            else:
                cursor = self.conn.execute(
                    "DELETE FROM sessions WHERE expires_at <= %s", (to_db(expired_before),)
                )
        return cursor.rowcount
