"""Take the README's screenshot of the dashboard from the real thing: a daemon on a scratch
database with a few jobs and a day of history, a login through `jobctl dashboard`'s link,
and Debian's chromium driven by Playwright (nothing is downloaded).

    python docs/dashboard_screenshot.py            # writes docs/dashboard.png
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def jobctl(db: Path, *args: str) -> str:
    env = {"JOBCTL_DB": str(db), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "jobctl", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def history(db: Path, job: str, every: timedelta, now: datetime) -> None:
    """A day of runs: mostly successes, some failures and a gap of missed slots."""
    rng = random.Random(15)
    conn = sqlite3.connect(db, isolation_level=None)
    (job_id,) = conn.execute("SELECT id FROM jobs WHERE name = ?", (job,)).fetchone()
    moment = now - timedelta(hours=24)
    rows = []
    while moment < now - every:
        if now - timedelta(hours=9) <= moment < now - timedelta(hours=7):
            gap_end = now - timedelta(hours=7)
            details = {
                "missed_count": int((gap_end - moment) / every),
                "missed_until": stamp(gap_end),
            }
            rows.append((job_id, "missed", moment, None, json.dumps(details)))
            moment = gap_end
            continue
        status = "failed" if rng.random() < 0.08 else "succeeded"
        rows.append((job_id, status, moment, rng.randint(800, 4000), None))
        moment += every
    conn.executemany(
        "INSERT INTO runs (job_id, trigger, status, scheduled_for, started_at, finished_at,"
        " duration_ms, exit_code, details, created_at) VALUES (?,'schedule',?,?,?,?,?,?,?,?)",
        [
            (
                job_id,
                status,
                stamp(at),
                stamp(at),
                stamp(at),
                ms,
                0 if status == "succeeded" else 1,
                details,
                stamp(at),
            )
            for job_id, status, at, ms, details in rows
        ],
    )
    conn.execute(
        "UPDATE jobs SET runs_total = ?, runs_succeeded = ?, runs_failed = ?, runs_missed = ?,"
        " last_status = ?, last_run_at = ?, last_success_at = ? WHERE id = ?",
        (
            sum(1 for row in rows if row[1] != "missed"),
            sum(1 for row in rows if row[1] == "succeeded"),
            sum(1 for row in rows if row[1] == "failed"),
            sum(json.loads(row[4])["missed_count"] for row in rows if row[1] == "missed"),
            rows[-1][1],
            stamp(rows[-1][2]),
            stamp(max(row[2] for row in rows if row[1] == "succeeded")),
            job_id,
        ),
    )
    conn.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "jobctl.db"
        jobctl(
            db,
            "add",
            "backup",
            "--exec",
            "sleep 2",
            "--every",
            "30m",
            "--description",
            "Nightly-ish backup of the site",
        )
        jobctl(db, "add", "heartbeat", "--exec", "echo ok", "--every", "10s")
        jobctl(db, "add", "report", "--exec", "echo report", "--cron", "0 9 * * 1-5")
        history(db, "backup", timedelta(minutes=30), datetime.now(UTC))
        daemon = subprocess.Popen(
            [sys.executable, "-m", "jobctl", "daemon", "--listen", "127.0.0.1:0"],
            env={"JOBCTL_DB": str(db), "PATH": "/usr/bin:/bin"},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            link = ""
            for _ in range(100):
                try:
                    link = jobctl(db, "dashboard").strip().splitlines()[-1]
                    break
                except subprocess.CalledProcessError:
                    time.sleep(0.1)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1024, "height": 860})
                page.goto(link)
                page.goto(link.split("/login")[0] + "/jobs/backup")
                page.locator("#connection", has_text="live").wait_for()
                page.screenshot(path=str(HERE / "dashboard.png"), full_page=False)
                browser.close()
        finally:
            daemon.terminate()
            daemon.wait()


if __name__ == "__main__":
    main()
