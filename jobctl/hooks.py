"""Webhook triggers: per-job secrets, the URL to call, and checking a caller's credentials.

The secret is kept in the (0600) database because checking a GitHub-style HMAC needs the
secret itself; it is printed once, by `hook enable` and `hook rotate`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from jobctl.errors import Failed, InvalidInput, NotFound

if TYPE_CHECKING:
    from jobctl.models import Job
    from jobctl.store import Store

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


def set_secret(store: Store, job: Job, *, rotate: bool = False) -> str:
    """Enable (or, with rotate, replace) the job's webhook secret; returns the new secret.

    In the caller's write transaction, the one that read the job.
    """
    assert job.id is not None
    current = store.webhook_secret(job.id)
    if rotate and not current:
        raise NotFound(f"job {job.name!r} has no webhook: enable it with `jobctl hook enable`")
    if not rotate and current:
        raise Failed(
            f"job {job.name!r} already has a webhook: `jobctl hook rotate {job.name}` "
            "replaces its secret"
        )
    secret = new_secret()
    store.set_webhook_secret(job.id, secret)
    return secret


def disable(store: Store, job: Job) -> bool:
    """In the caller's write transaction: False when the job had no webhook."""
    assert job.id is not None
    return store.clear_webhook_secret(job.id)


def is_enabled(store: Store, job: Job) -> bool:
    assert job.id is not None
    return store.webhook_secret(job.id) is not None


def listen_address(store: Store) -> str | None:
    daemon = store.daemon_row()
    return daemon.listen if daemon is not None and daemon.listen else None


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


def hook_url(store: Store, name: str, base_url: str | None) -> str:
    base = (base_url or listen_address(store) or "http://127.0.0.1:PORT").rstrip("/")
    return f"{base}{PATH_PREFIX}{quote(name)}"


def secret_for(store: Store, name: str) -> str | None:
    return store.webhook_secret_by_name(name)


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


def seen_delivery(store: Store, job_id: int, keys: Sequence[str], now: datetime) -> int | None:
    """The run started by an earlier request with one of `keys`, forgetting expired ones.

    Runs inside the caller's write transaction, the one that then claims the run.
    """
    store.forget_deliveries(now - REPLAY_WINDOW)
    return store.delivery_run(job_id, keys)


def remember_delivery(
    store: Store, job_id: int, keys: Sequence[str], run_id: int, now: datetime
) -> None:
    store.remember_delivery(job_id, keys, run_id, now)
