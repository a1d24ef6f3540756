"""Webhook triggers: per-job secrets, the URL to call, and checking a caller's credentials.

The secret is kept in the (0600) database because checking a GitHub-style HMAC needs the
secret itself; it is printed once, by `hook enable` and `hook rotate`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from urllib.parse import quote

from jobctl.errors import Failed, InvalidInput, NotFound
from jobctl.jobs import get_job
from jobctl.store.sqlite import write_transaction
from jobctl.timeutil import to_db

PATH_PREFIX = "/hooks/"
CREDENTIAL_HEADERS = ("Authorization", "X-Hub-Signature-256")
# A repeat of one of these (per job, within REPLAY_WINDOW) starts nothing; the prefix
# keeps a GitHub delivery id and a caller's key of the same text apart.
REPLAY_HEADERS = (("X-GitHub-Delivery", "delivery:"), ("Idempotency-Key", "idempotency:"))
REPLAY_WINDOW = timedelta(hours=24)
MAX_REPLAY_KEY = 255
# Compared against when the job is unknown, so both answers take the same time.
_DUMMY_SECRET = secrets.token_urlsafe(32)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def set_secret(conn: sqlite3.Connection, name: str, *, rotate: bool = False) -> str:
    """Enable (or, with rotate, replace) the job's webhook secret; returns the new secret."""
    secret = new_secret()
    with write_transaction(conn):
        job = get_job(conn, name)
        current = conn.execute("SELECT hook_secret FROM jobs WHERE id = ?", (job.id,)).fetchone()
        if rotate and not current[0]:
            raise NotFound(f"job {name!r} has no webhook: enable it with `jobctl hook enable`")
        if not rotate and current[0]:
            raise Failed(
                f"job {name!r} already has a webhook: `jobctl hook rotate {name}` "
                "replaces its secret"
            )
        conn.execute("UPDATE jobs SET hook_secret = ? WHERE id = ?", (secret, job.id))
    return secret


def disable(conn: sqlite3.Connection, name: str) -> bool:
    with write_transaction(conn):
        job = get_job(conn, name)
        cursor = conn.execute(
            "UPDATE jobs SET hook_secret = NULL WHERE id = ? AND hook_secret IS NOT NULL", (job.id,)
        )
    return cursor.rowcount > 0


def is_enabled(conn: sqlite3.Connection, name: str) -> bool:
    job = get_job(conn, name)
    row = conn.execute("SELECT hook_secret FROM jobs WHERE id = ?", (job.id,)).fetchone()
    return bool(row[0])


def listen_address(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT listen FROM daemon WHERE id = 1").fetchone()
    return row[0] if row and row[0] else None


def validate_base_url(text: str | None) -> str | None:
    """A `--base-url` as given, if it is an http(s) URL with a host (InvalidInput if not)."""
    if text is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        host = None
    if (
        parts.scheme.lower() not in ("http", "https")
        or not host
        or parts.query
        or parts.fragment
        or any(char.isspace() for char in text)
    ):
        raise InvalidInput(
            f"invalid --base-url {text!r}: give an http:// or https:// URL with a host "
            "(and a path if the proxy adds one), like https://jobs.example.com"
        )
    return text


def hook_url(conn: sqlite3.Connection, name: str, base_url: str | None) -> str:
    base = (base_url or listen_address(conn) or "http://127.0.0.1:PORT").rstrip("/")
    return f"{base}{PATH_PREFIX}{quote(name)}"


def secret_for(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT hook_secret FROM jobs WHERE name = ?", (name,)).fetchone()
    return row[0] if row and row[0] else None


def authenticate(secret: str | None, headers: Mapping[str, str], body: bytes) -> bool:
    """Bearer token or GitHub's X-Hub-Signature-256, compared in constant time."""
    key = secret or _DUMMY_SECRET
    authorization = headers.get("Authorization", "")
    signature = headers.get("X-Hub-Signature-256", "")
    # surrogateescape: bytes that were not UTF-8 compare as themselves (and never match).
    if authorization.startswith("Bearer "):
        given = authorization[7:].strip().encode("utf-8", "surrogateescape")
        ok = hmac.compare_digest(given, key.encode())
    elif signature.startswith("sha256="):
        expected = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        given = signature[7:].strip().lower().encode("utf-8", "surrogateescape")
        ok = hmac.compare_digest(given, expected.encode())
    else:
        ok = False
    return ok and secret is not None


def replay_keys(headers: Mapping[str, str]) -> list[str]:
    """The request's delivery id and idempotency key, as stored; InvalidInput if unusable."""
    keys = []
    for header, prefix in REPLAY_HEADERS:
        value = headers.get(header, "").strip()
        if not value:
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{header} is not UTF-8 text") from None
        if len(value) > MAX_REPLAY_KEY or not value.isprintable():
            raise InvalidInput(
                f"{header} must be printable text of at most {MAX_REPLAY_KEY} characters"
            )
        keys.append(prefix + value)
    return keys


def seen_delivery(
    conn: sqlite3.Connection, job_id: int, keys: Sequence[str], now: datetime
) -> int | None:
    """The run started by an earlier request with one of `keys`, forgetting expired ones.

    Runs inside the caller's write transaction, the one that then claims the run.
    """
    conn.execute("DELETE FROM hook_deliveries WHERE seen_at < ?", (to_db(now - REPLAY_WINDOW),))
    if not keys:
        return None
    marks = ", ".join("?" * len(keys))
    row = conn.execute(
        f"SELECT run_id FROM hook_deliveries WHERE job_id = ? AND key IN ({marks}) "
        "ORDER BY seen_at LIMIT 1",
        (job_id, *keys),
    ).fetchone()
    return int(row[0]) if row else None


def remember_delivery(
    conn: sqlite3.Connection, job_id: int, keys: Sequence[str], run_id: int, now: datetime
) -> None:
    conn.executemany(
        "INSERT INTO hook_deliveries (job_id, key, run_id, seen_at) VALUES (?, ?, ?, ?)",
        [(job_id, key, run_id, to_db(now)) for key in keys],
    )
