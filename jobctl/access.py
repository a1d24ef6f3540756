"""Who may use the API and the dashboard: the API token, one-time login codes and browser
sessions, over the store (no HTTP here: jobctl.web.auth serves them, the CLI prints them).

The token is kept as itself (`jobctl api token` shows it again); login codes and session ids
are kept only as their SHA-256, so a copy of the database opens no browser session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from jobctl import hooks
from jobctl.errors import DaemonUnavailable
from jobctl.models.access import Session

if TYPE_CHECKING:
    from jobctl.paths import DbLocation
    from jobctl.store import Store

TOKEN_SETTING = "api_token"
CODE_LIFETIME = timedelta(minutes=10)
SESSION_LIFETIME = timedelta(days=7)
LOGIN_PATH = "/login"


def _random() -> str:
    return secrets.token_urlsafe(32)


def hashed(text: str) -> str:
    """SHA-256 in hex of a code or session id (text that is not UTF-8 hashes all the same)."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def same(given: str, expected: str) -> bool:
    """Compare a secret in constant time."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


# ------------------------------------------------------------------------------ token


def ensure_token(store: Store) -> str:
    """The API token, created (32 random bytes, URL-safe) on first need."""
    token = store.get_setting(TOKEN_SETTING)
    if token:
        return token
    with store.write():
        token = store.get_setting(TOKEN_SETTING)  # another process may have made it
        if not token:
            token = _random()
            store.set_setting(TOKEN_SETTING, token)
    return token


def rotate_token(store: Store) -> tuple[str, int]:
    """Replace the token and end every session (a browser logged in with the old one is
    out too): the new token and how many sessions ended."""
    token = _random()
    with store.write():
        store.set_setting(TOKEN_SETTING, token)
        ended = store.delete_sessions()
    return token, ended


def token_matches(store: Store, given: str) -> bool:
    """Whether `given` is the API token (False while there is none)."""
    token = store.get_setting(TOKEN_SETTING)
    return same(given, token or _DUMMY) and bool(token)


_DUMMY = _random()  # compared against when no token exists, so both answers take as long


# ------------------------------------------------------------------------ login codes


def new_login_code(store: Store, now: datetime) -> tuple[str, datetime]:
    """A one-time login code (stored hashed) and when it expires."""
    code = _random()
    expires_at = now + CODE_LIFETIME
    store.add_login_code(hashed(code), expires_at)
    return code, expires_at


def login_url(base: str, code: str) -> str:
    return f"{base.rstrip('/')}{LOGIN_PATH}?code={code}"


def login_link(
    store: Store, db_path: DbLocation, base_url: str | None, now: datetime
) -> tuple[str, datetime]:
    """A one-time login URL on the daemon's listen address (or `base_url`, for a proxy in
    front) and when it expires; DaemonUnavailable when no daemon is listening."""
    from jobctl.liveness import daemon_running

    base = hooks.validate_base_url(base_url)
    listen = hooks.listen_address(store)
    if not listen or not daemon_running(store, db_path):
        raise DaemonUnavailable(
            "no daemon is listening on this database: the dashboard is served by "
            "`jobctl daemon --listen 127.0.0.1:8787` (start it, then run this again)"
        )
    code, expires_at = new_login_code(store, now)
    return login_url(base or reachable(listen), code), expires_at


def reachable(listen_url: str) -> str:
    """The listen URL a browser on this machine can open: a daemon bound to every address
    (0.0.0.0, ::) answers on loopback too."""
    for anywhere, loopback in (("//0.0.0.0:", "//127.0.0.1:"), ("//[::]:", "//[::1]:")):
        listen_url = listen_url.replace(anywhere, loopback, 1)
    return listen_url


# --------------------------------------------------------------------------- sessions


def open_session(store: Store, code: str, now: datetime) -> tuple[str, Session] | None:
    """Use up a login code for a new session: its id (for the cookie; stored hashed) and the
    session, or None when the code is unknown, used or expired."""
    if not code or not store.take_login_code(hashed(code), now):
        return None
    session_id = _random()
    session = Session(hashed(session_id), _random(), now, now + SESSION_LIFETIME)
    with store.write():
        store.delete_sessions(expired_before=now)
        store.add_session(session)
    return session_id, session


def find_session(store: Store, session_id: str, now: datetime) -> Session | None:
    """The live session a cookie names, or None."""
    if not session_id:
        return None
    return store.get_session(hashed(session_id), now)


def end_session(store: Store, session: Session) -> None:
    store.delete_session(session.id_hash)
