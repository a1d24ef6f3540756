"""Time `jobctl apply` of N generated jobs on a fresh database, then the idempotent re-apply.

python bench/apply_bulk.py            # 100,000 jobs, TOML
python bench/apply_bulk.py -n 20000 --format json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CRONS = ("*/5 * * * *", "0 3 * * *", "30 2 * * 1-5", "@hourly", "0 */6 * * *", "15 9 1 * *")
EVERIES = ("1m", "5m", "15m+5m", "1h+30m", "30s", "2h")
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo")


def make_entry(k: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f"job-{k:06d}",
        "state": "paused" if k % 50 == 0 else "enabled",
        "action": "http",
        "timezone": ZONES[k % len(ZONES)],
        "spec": {
            "url": f"https://example.com/hooks/{k}",
            "method": "POST" if k % 2 else "GET",
            "headers": {"Authorization": "Bearer ${TOKEN}", "X-Job": str(k)},
            "expect": "2xx",
        },
    }
    kind = k % 3
    if kind == 0:
        entry.update(trigger="cron", schedule=CRONS[k % len(CRONS)])
    elif kind == 1:
        entry.update(trigger="every", schedule=EVERIES[k % len(EVERIES)])
    else:
        entry["trigger"] = "manual"
    if k % 4 == 0:
        entry["policies"] = {"timeout": "10s", "retries": 2}
    return entry


def write_document(path: Path, count: int, fmt: str) -> None:
    doc = {"version": 1, "jobs": [make_entry(k) for k in range(count)]}
    if fmt == "json":
        path.write_text(json.dumps(doc), encoding="utf-8")
    else:
        import tomli_w

        path.write_text(tomli_w.dumps(doc), encoding="utf-8")


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed, done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--count", type=int, default=100_000)
    parser.add_argument("--format", choices=("toml", "json"), default="toml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"jobs.{args.format}"
        start = time.perf_counter()
        write_document(path, args.count, args.format)
        print(
            f"generated {args.count:,} jobs ({args.format}, {path.stat().st_size / 1e6:.1f} MB)"
            f" in {time.perf_counter() - start:.2f}s"
        )
        env = {**os.environ, "JOBCTL_DB": str(Path(tmp) / "jobs.db"), "TZ": "UTC"}
        command = [sys.executable, "-m", "jobctl", "apply", "-f", str(path)]
        for label in ("first apply (fresh db)", "second apply (idempotent)"):
            elapsed, summary = timed(command, env)
            print(f"{label:28} {elapsed:6.2f}s  {summary}")
        elapsed, _ = timed([sys.executable, "-m", "jobctl", "export", "--format", args.format], env)
        print(f"{'export':28} {elapsed:6.2f}s")


if __name__ == "__main__":
    main()
