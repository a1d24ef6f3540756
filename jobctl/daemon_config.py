"""How a daemon was asked to run (`jobctl daemon`'s options), as one value."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from jobctl.fleet import DEFAULT_LEASE
from jobctl.paths import DbLocation
from jobctl.service import LogConfig


@dataclass
class DaemonConfig:
    db_path: DbLocation
    max_http: int = 256
    max_agent: int = 8
    max_exec: int = 8
    grace: float = 30.0
    env_file: Path | None = None
    log: LogConfig = field(default_factory=LogConfig)
    listen: str | None = None  # HOST:PORT for webhooks, /healthz and /metrics
    metrics_token_env: str | None = None  # the variable that holds /metrics' bearer token
    queues: tuple[str, ...] = ()  # the queues whose jobs it fires (empty: every queue)
    lease: float = DEFAULT_LEASE  # seconds without a heartbeat before others take over
    # Store runs' output while they are in flight; JOBCTL_STREAM_OUTPUT=0 turns it off
    # (bench/streaming.py measures what it costs).
    stream_output: bool = field(
        default_factory=lambda: os.environ.get("JOBCTL_STREAM_OUTPUT", "1") != "0"
    )
