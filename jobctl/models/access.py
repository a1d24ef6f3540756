"""Who may use the API and the dashboard: a browser session opened by a login link."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Session:
    """A dashboard session (its id is only ever stored hashed); `csrf` is the value its
    state-changing requests must carry."""

    id_hash: str
    csrf: str
    created_at: datetime
    expires_at: datetime
