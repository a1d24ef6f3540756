"""Start-up cost of the CLI: wall time of short commands against `python -c pass`.

    python bench/startup.py               # 30 runs of each command, interleaved
    python bench/startup.py --runs 50 --jobs 100 --history 100

Targets (PRODUCT.md, "Start-up cost matters"), over `python -c pass` on the same machine:
`jobctl --version` and a TAB completion within 80 ms; `jobctl list` of 100 jobs as a table
within 150 ms. Also prints `python -X importtime -c 'import jobctl.cli'` (top 10 by
cumulative time) and every top-level import `jobctl list` makes.

Timings are taken round-robin (one run of each command per round) so that a slow spell of
the machine hits every command alike; a few warm-up rounds are discarded.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FORBIDDEN_AT_IMPORT = ("aiohttp", "asyncio", "tabulate", "sqlite_utils", "cronsim")
CRONS = ("*/5 * * * *", "0 3 * * *", "30 2 * * 1-5", "@hourly", "0 */6 * * *", "15 9 1 * *")
EVERIES = ("1m", "5m", "15m+5m", "1h+30m", "30s", "2h")
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo")


@dataclass
class Command:
    name: str
    argv: list[str]
    target_ms: float | None = None  # allowed median over the baseline
    env: dict[str, str] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)  # seconds


# ----------------------------------------------------------------------------- fixtures


def make_job(k: int) -> dict[str, Any]:
    """One job of the `apply` document: a mix of actions, triggers, zones and states."""
    entry: dict[str, Any] = {
        "name": f"job-{k:03d}",
        "description": f"benchmark job {k}",
        "state": "paused" if k % 17 == 0 else "enabled",
        "timezone": ZONES[k % len(ZONES)],
    }
    if k % 4 == 3:
        entry["action"] = "exec"
        entry["spec"] = {"command": f"/usr/local/bin/report --part {k}"}
    else:
        entry["action"] = "http"
        entry["spec"] = {
            "url": f"https://example.com/hooks/{k}",
            "method": "POST" if k % 2 else "GET",
            "headers": {"Authorization": "Bearer ${TOKEN}", "X-Job": str(k)},
        }
    kind = k % 3
    if kind == 0:
        entry.update(trigger="cron", schedule=CRONS[k % len(CRONS)])
    elif kind == 1:
        entry.update(trigger="every", schedule=EVERIES[k % len(EVERIES)])
    else:
        entry["trigger"] = "manual"
    if k % 5 == 0:
        entry["policies"] = {"timeout": "10s", "retries": 2}
    return entry


def to_db(moment: datetime) -> str:
    """The store's timestamp text (jobctl.timeutil.to_db), without importing jobctl here."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def add_history(db: Path, per_job: int, seed: int) -> None:
    """Give every job `per_job` finished runs so `list` shows rates and recent strips."""
    from jobctl.store.sqlite import connect, write_transaction

    rng = random.Random(seed)
    now = datetime.now(UTC)
    conn = connect(db)
    jobs = conn.execute("SELECT id FROM jobs").fetchall()
    rows: list[tuple[Any, ...]] = []
    counters: list[tuple[Any, ...]] = []
    for (job_id,) in jobs:
        succeeded = failed = 0
        last: tuple[str, str] | None = None
        for i in range(per_job):
            slot = now - timedelta(minutes=5 * (per_job - i))
            status = "succeeded" if rng.random() < 0.9 else "failed"
            duration = rng.randint(20, 900)
            started = to_db(slot + timedelta(milliseconds=rng.randint(1, 30)))
            finished = to_db(slot + timedelta(milliseconds=duration))
            succeeded += status == "succeeded"
            failed += status == "failed"
            last = (started, status)
            rows.append(
                (
                    job_id,
                    "schedule",
                    status,
                    to_db(slot),
                    started,
                    finished,
                    duration,
                    200 if status == "succeeded" else 500,
                    None if status == "succeeded" else "HTTP 500 (expected 2xx)",
                    to_db(slot),
                )
            )
        if last:
            counters.append((per_job, succeeded, failed, last[0], last[1], job_id))
    with write_transaction(conn):
        conn.executemany(
            "INSERT INTO runs (job_id, trigger, status, scheduled_for, started_at, finished_at, "
            "duration_ms, http_status, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "UPDATE jobs SET runs_total = ?, runs_succeeded = ?, runs_failed = ?, "
            "last_run_at = ?, last_status = ? WHERE id = ?",
            counters,
        )
    conn.close()


def build_db(directory: Path, jobctl: str, jobs: int, history: int, env: dict[str, str]) -> Path:
    db = directory / "startup.db"
    document = directory / "jobs.json"
    document.write_text(
        json.dumps({"version": 1, "jobs": [make_job(k) for k in range(jobs)]}), encoding="utf-8"
    )
    subprocess.run(
        [jobctl, "--db", str(db), "apply", "-f", str(document)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if history:
        add_history(db, history, seed=1)
    return db


# ------------------------------------------------------------------------------ timing


def run_once(command: Command, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        command.argv, env=env | command.env, capture_output=True, stdin=subprocess.DEVNULL
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(
            f"{command.name} failed ({result.returncode}): "
            f"{result.stderr.decode(errors='replace').strip()}"
        )
    return elapsed


def measure(commands: list[Command], env: dict[str, str], runs: int, warmup: int) -> None:
    for round_index in range(warmup + runs):
        order = commands[:]
        random.shuffle(order)  # no command always follows the same neighbour
        for command in order:
            elapsed = run_once(command, env)
            if round_index >= warmup:
                command.samples.append(elapsed)


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10, method="inclusive")[8]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def print_table(commands: list[Command], baseline: Command, bare: Command | None) -> bool:
    """The targets are judged against `baseline`; `bare` (no site) is shown for reference."""
    base = statistics.median(baseline.samples)
    bare_median = statistics.median(bare.samples) if bare else None
    print(
        f"{'command':<34} {'median':>7} {'p90':>7} {'min':>7} {'-base':>7} {'-bare':>7}  "
        f"target      ok"
    )
    all_ok = True
    for command in commands:
        median = statistics.median(command.samples)
        over = median - base
        if command is baseline:
            target, verdict = "(baseline)", ""
        elif command.target_ms is None:
            target, verdict = "-", ""
        else:
            good = over * 1000 <= command.target_ms
            all_ok &= good
            target, verdict = f"<= {command.target_ms:.0f} ms", "yes" if good else "NO"
        versus_bare = ms(median - bare_median) if bare_median is not None else f"{'-':>7}"
        print(
            f"{command.name:<34} {ms(median)} {ms(p90(command.samples))} "
            f"{ms(min(command.samples))} {ms(over)} {versus_bare}  {target:<11} {verdict}"
        )
    print(
        "(milliseconds; -base = median minus the baseline's median, which the targets use; "
        "-bare = minus the median of the interpreter without site)"
    )
    return all_ok


# ------------------------------------------------------------------------- import time


@dataclass
class Import:
    name: str
    depth: int
    self_us: int
    cumulative_us: int


def parse_importtime(stderr: str) -> list[Import]:
    """`import time: self | cumulative | name` lines; nesting is two spaces per level."""
    imports = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        # the three fields: "  self ", " cumulative ", " <indent>name"
        fields = line[len("import time:") :].split("|")
        self_us, cumulative_us, raw = fields[0], fields[1], fields[2]
        name = raw.strip()
        depth = (len(raw) - len(raw.lstrip(" ")) - 1) // 2
        imports.append(Import(name, depth, int(self_us), int(cumulative_us)))
    return imports


def importtime_runs(argv: list[str], env: dict[str, str], repeat: int) -> list[Import]:
    """Per-module medians over `repeat` runs (one importtime run is noisy)."""
    runs: list[list[Import]] = []
    for _ in range(repeat):
        result = subprocess.run(
            argv,
            env=env | {"PYTHONPROFILEIMPORTTIME": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=True,
        )
        runs.append(parse_importtime(result.stderr))
    merged: list[Import] = []
    for item in runs[0]:
        same = [imp for run in runs for imp in run if imp.name == item.name]
        merged.append(
            Import(
                item.name,
                item.depth,
                int(statistics.median(imp.self_us for imp in same)),
                int(statistics.median(imp.cumulative_us for imp in same)),
            )
        )
    return merged


def print_imports(
    title: str, imports: list[Import], *, top: int | None, top_level_only: bool
) -> None:
    shown = [imp for imp in imports if imp.depth == 0] if top_level_only else imports
    shown = sorted(shown, key=lambda imp: imp.cumulative_us, reverse=True)
    total = sum(imp.cumulative_us for imp in imports if imp.depth == 0)
    print(
        f"\n{title}: {len(imports)} modules, {total / 1000:.1f} ms in top-level imports (medians)"
    )
    print(f"  {'cumulative':>10} {'self':>8}  module")
    for imp in shown[:top] if top else shown:
        print(
            f"  {imp.cumulative_us / 1000:8.1f}ms {imp.self_us / 1000:6.1f}ms  "
            f"{'  ' * imp.depth}{imp.name}"
        )


def code_state() -> str:
    """The checkout being measured: HEAD and how many files under jobctl/ differ from it."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "jobctl"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"git {head}, {len(dirty)} changed or new files under jobctl/"


# ------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per command")
    parser.add_argument("--warmup", type=int, default=3, help="discarded rounds first")
    parser.add_argument("--jobs", type=int, default=100, help="jobs in the list database")
    parser.add_argument(
        "--history",
        type=int,
        default=100,
        help="finished runs per job (0: none), so list shows its stats",
    )
    parser.add_argument(
        "--importtime-repeat",
        type=int,
        default=5,
        help="importtime runs to take module medians over",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter jobctl runs on")
    parser.add_argument(
        "--jobctl",
        default=str(Path(sys.executable).with_name("jobctl")),
        help="the jobctl console script",
    )
    args = parser.parse_args()

    python, jobctl = args.python, args.jobctl
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "JOBCTL_", "_JOBCTL_", "COMP_"))
    }
    env["NO_COLOR"] = "1"
    with tempfile.TemporaryDirectory(prefix="jobctl-startup-") as tmp:
        db = build_db(Path(tmp), jobctl, args.jobs, args.history, env)
        env["JOBCTL_DB"] = str(db)
        baseline = Command("python -c pass (baseline)", [python, "-c", "pass"])
        commands = [baseline]
        # For reference: the interpreter without `site` (the venv's .pth files, among them
        # an editable install's finder, are part of the baseline and of every jobctl call).
        bare = Command("python -I -S -c pass (no site)", [python, "-I", "-S", "-c", "pass"])
        commands.append(bare)
        commands += [
            Command("jobctl --version", [jobctl, "--version"], 80),
            Command(
                "TAB: jobctl li<TAB>",
                [jobctl],
                80,
                env={
                    "_JOBCTL_COMPLETE": "bash_complete",
                    "COMP_WORDS": "jobctl li",
                    "COMP_CWORD": "1",
                },
            ),
            Command("jobctl --help", [jobctl, "--help"]),
            Command(f"jobctl list ({args.jobs} jobs, table)", [jobctl, "list"], 150),
            Command(f"jobctl list --json ({args.jobs} jobs)", [jobctl, "list", "--json"], 150),
        ]
        print(f"jobctl at {code_state()}")
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; {args.runs} runs "
            f"each after {args.warmup} warm-up rounds; {args.jobs} jobs with "
            f"{args.history} runs each in {db}\n"
        )
        measure(commands, env, args.runs, args.warmup)
        all_ok = print_table(commands, baseline, bare)

        cli_imports = importtime_runs(
            [python, "-c", "import jobctl.cli"], env, args.importtime_repeat
        )
        print_imports(
            "python -X importtime -c 'import jobctl.cli', top 10 by cumulative",
            cli_imports,
            top=10,
            top_level_only=False,
        )
        loaded = {imp.name for imp in cli_imports}
        bad = [name for name in FORBIDDEN_AT_IMPORT if name in loaded]
        print(
            f"  forbidden at import ({', '.join(FORBIDDEN_AT_IMPORT)}): "
            f"{', '.join(bad) if bad else 'none loaded'}"
        )

        list_imports = importtime_runs([jobctl, "list"], env, args.importtime_repeat)
        print_imports(
            "jobctl list -X importtime, every top-level import",
            list_imports,
            top=None,
            top_level_only=True,
        )
        extra = [imp for imp in list_imports if imp.name not in loaded]
        print(
            f"  beyond `import jobctl.cli`: {len(extra)} modules, "
            f"{sum(imp.cumulative_us for imp in extra if imp.depth == 0) / 1000:.1f} ms "
            f"at top level: " + ", ".join(imp.name for imp in extra if imp.depth == 0)
        )
    print(f"\nall targets hold: {'yes' if all_ok else 'NO'}")


if __name__ == "__main__":
    main()
