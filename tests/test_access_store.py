"""The store's access operations (settings, one-time login codes, sessions) and the rules of
jobctl.access over them, on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobctl import access
from jobctl.models.access import Session
from jobctl.store import SqliteStore, open_store
from tests.realparts import query

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "jobctl.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteStore]:
    opened = open_store(db)
    yield opened
    opened.close()


def session(name: str, expires_at: datetime) -> Session:
    return Session(access.hashed(name), f"csrf-{name}", NOW, expires_at)


def test_settings_are_kept_and_replaced(store: SqliteStore) -> None:
    assert store.get_setting("api_token") is None
    store.set_setting("api_token", "one")
    store.set_setting("other", "x")
    store.set_setting("api_token", "two")
    assert store.get_setting("api_token") == "two"
    assert store.get_setting("other") == "x"


def test_a_login_code_is_taken_once_and_never_after_it_expires(
    store: SqliteStore, db: Path
) -> None:
    store.add_login_code("live", NOW + timedelta(minutes=10))
    store.add_login_code("stale", NOW - timedelta(seconds=1))
    store.add_login_code("edge", NOW)
    assert store.take_login_code("stale", NOW) is False
    assert store.take_login_code("edge", NOW) is False  # valid until, not at, its expiry
    assert store.take_login_code("unknown", NOW) is False
    assert store.take_login_code("live", NOW) is True
    assert store.take_login_code("live", NOW) is False
    store.add_login_code("later", NOW + timedelta(minutes=10))
    store.take_login_code("nothing", NOW + timedelta(minutes=11))  # tidies expired codes
    assert query(db, "SELECT code_hash FROM login_codes") == []


def test_sessions_expire_and_end(store: SqliteStore) -> None:
    store.add_session(session("a", NOW + timedelta(days=7)))
    store.add_session(session("b", NOW + timedelta(hours=1)))
    store.add_session(session("old", NOW - timedelta(hours=1)))
    found = store.get_session(access.hashed("a"), NOW)
    assert found == session("a", NOW + timedelta(days=7))
    assert store.get_session(access.hashed("old"), NOW) is None
    assert store.get_session(access.hashed("b"), NOW + timedelta(hours=2)) is None
    assert store.delete_sessions(expired_before=NOW) == 1  # "old" only
    store.delete_session(access.hashed("b"))
    assert store.get_session(access.hashed("b"), NOW) is None
    assert store.get_session(access.hashed("a"), NOW) is not None
    assert store.delete_sessions() == 1
    assert store.get_session(access.hashed("a"), NOW) is None


def test_the_token_is_made_once_and_rotating_ends_every_session(store: SqliteStore) -> None:
    token = access.ensure_token(store)
    assert len(token) >= 43 and access.ensure_token(store) == token
    assert access.token_matches(store, token)
    assert not access.token_matches(store, token[:-1])
    assert not access.token_matches(store, "")
    store.add_session(session("a", NOW + timedelta(days=1)))
    store.add_session(session("b", NOW + timedelta(days=1)))
    new, ended = access.rotate_token(store)
    assert new != token and ended == 2
    assert access.token_matches(store, new) and not access.token_matches(store, token)
    assert store.get_session(access.hashed("a"), NOW) is None


def test_no_token_matches_before_one_exists(store: SqliteStore) -> None:
    assert not access.token_matches(store, "")
    assert not access.token_matches(store, "anything")


def test_codes_and_sessions_are_stored_only_hashed(store: SqliteStore, db: Path) -> None:
    code, expires_at = access.new_login_code(store, NOW)
    assert expires_at == NOW + access.CODE_LIFETIME
    rows = query(db, "SELECT code_hash FROM login_codes")
    assert [row[0] for row in rows] == [access.hashed(code)] and code not in str(rows[0][0])
    opened = access.open_session(store, code, NOW + timedelta(minutes=9))
    assert opened is not None
    session_id, made = opened
    assert made.expires_at == NOW + timedelta(minutes=9) + access.SESSION_LIFETIME
    ids = [row[0] for row in query(db, "SELECT id_hash FROM sessions")]
    assert ids == [access.hashed(session_id)]
    assert access.find_session(store, session_id, NOW + timedelta(minutes=10)) == made
    assert access.find_session(store, "", NOW) is None
    assert access.open_session(store, code, NOW + timedelta(minutes=9)) is None  # used
    late, _ = access.new_login_code(store, NOW)
    assert access.open_session(store, late, NOW + timedelta(minutes=10)) is None  # expired
    access.end_session(store, made)
    assert access.find_session(store, session_id, NOW + timedelta(minutes=10)) is None
