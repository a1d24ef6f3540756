"""The man page's prose: the sections written by hand, as plain text with `code` spans.

COMMANDS and OPTIONS are not here: manpage.py takes them from the commands' own help. Each
constant is one section; manpage.py turns it into roff (roff.py).
"""

from __future__ import annotations

NAME_LINE = "jobctl \\- schedule HTTP requests, AI\\-agent prompts and commands, and see every run"

DESCRIPTION = (
    "jobctl is a background-job scheduler for one machine, run from the terminal. Its jobs "
    "fire HTTP requests, AI-agent prompts and commands on a schedule, on demand, or when a "
    "webhook calls, and every run is recorded in a local SQLite database, so nobody has to "
    "ask why a job did not run.",
    "The commands edit jobs in the database; `jobctl daemon` runs the loop that fires what "
    "is due and records each run, which `jobctl runs` reads back. A job has one action "
    "(`--url`, `--agent` with `--prompt`, or `--exec`), one trigger (`--cron`, `--every`, "
    "`--at` or `--manual`) and policies (timeout, retries, overlap, catch-up, jitter, "
    "auto-pause, retention).",
    "Every command takes `--db PATH` (before or after the command name) and `-h`, `--help`; "
    "every command that reads takes `--json` for machine output. Errors are printed on "
    "standard error as one line, with the exit status below; bad input never leaves the "
    "database half changed.",
)

SCHEDULES = (
    "`--cron EXPR`: five fields (minute, hour, day of month, month, day of week), or six "
    "with a leading seconds field (`*/10 * * * * *` fires every 10 seconds), or a preset: "
    "`@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`. "
    "`@reboot` is refused. The expression is evaluated in the job's time zone (`--tz`, an "
    "IANA name; default the machine's). When both day fields are restricted a day matches "
    "either of them, as in Debian's cron; `7` is Sunday.",
    "`--every D [--offset O]`: every D, aligned to the clock: `--every 15m --offset 5m` "
    "fires at :05, :20, :35 and :50 all year, in every zone. Durations are written like "
    "`30s`, `15m`, `2h`, `1d` or `1h30m`.",
    "`--at TIME`: once, at `YYYY-MM-DD HH:MM` in the job's zone or at an ISO-8601 time with "
    "an offset; the job is then completed.",
    "`--manual`: only when run with `jobctl run` or by a webhook.",
    "A schedule that can never fire (`0 0 30 2 *`) is refused when it is added. Preview "
    "fire times with `jobctl next`.",
)

DAYLIGHT_SAVING = (
    "Daylight saving follows Debian's cron daemon. A job is fixed-time when neither its "
    "minute nor its hour field starts with `*`. A fixed-time job whose local time is "
    "skipped by a spring-forward change fires once, at the first instant after the change; "
    "on a fall-back night it fires once, in the first pass. Any other job follows the wall "
    "clock: skipped local times do not fire, and repeated local times fire in both passes.",
    "`--every` intervals keep exact spacing across changes; intervals that divide an hour "
    "land on the same minutes all year. For a fixed local time of day, use `--cron`.",
)

EXIT_STATUS = (
    ("0", "Success."),
    (
        "1",
        "The job or operation ran and failed, or was refused in the current state (for "
        "example `jobctl run` of a failing job, `agent rm` of an agent a job still uses, "
        "a file that is not a usable jobctl database, a database this process may not "
        "write given to a command that writes).",
    ),
    ("2", "Bad usage or bad input; nothing was changed."),
    (
        "3",
        "Not found: no such job, run or agent, also when it is named inside an option "
        "(`add --agent nope`). A command that names several jobs changes none of them if "
        "any is unknown. Also a command that only reads given a database (`--db`, "
        "`JOBCTL_DB`) that does not exist.",
    ),
    (
        "4",
        "The daemon is needed and not running (`status --check`, `run --queue`), or "
        "another daemon already holds the database.",
    ),
    (
        "130",
        "Interrupted (Ctrl-C). Commands that only follow (`runs --follow`, `events --follow`, "
        "`daemon logs -f`) exit 0 when interrupted; `runs show --follow`, whose code is the "
        "run's outcome, exits 130 (Ctrl-C), 143 (SIGTERM) or 141 (a closed pipe) when it "
        "stops following a run that goes on.",
    ),
)

ENVIRONMENT = (
    ("JOBCTL_DB", "The database file, when `--db` is not given."),
    (
        "JOBCTL_ENV_FILE",
        "A file of `NAME=value` lines that `${NAME}` references are "
        "expanded from, when the daemon or `jobctl run` is not given "
        "`--env-file`.",
    ),
    ("NO_COLOR", "When set to a non-empty value, tables are printed without colour."),
    (
        "NOTIFY_SOCKET",
        "Set by systemd for a `Type=notify` service: the daemon reports "
        "readiness, status and stopping over it.",
    ),
    (
        "JOURNAL_STREAM",
        "Set by systemd when standard error goes to the journal: the daemon "
        "then logs without timestamps, with syslog priorities.",
    ),
)

FILES = (
    (
        "~/.local/share/jobctl/jobctl.db",
        "The default database on Linux (`jobctl.db` in the user data directory of "
        "platformdirs, which honours `$XDG_DATA_HOME`); on macOS "
        "`~/Library/Application Support/jobctl/jobctl.db`. Created with mode 0600.",
    ),
    ("<database>.lock", "The daemon's single-instance lock, beside the database."),
    (
        "<database>.pid",
        "The pidfile written by `jobctl daemon --detach`, unless `--pidfile` is given.",
    ),
    (
        "<database>.log",
        "The log file of a detached daemon, beside its database (one per database), "
        "unless `--log-file` is given; rotated as `<database>.log.1` and so on.",
    ),
    (
        "env file",
        "`NAME=value` lines for `${NAME}` references, given with `--env-file` or "
        "`JOBCTL_ENV_FILE`; keep it private (mode 0600).",
    ),
)

EXAMPLES = (
    (
        "An HTTP health check every 15 minutes, at :05, :20, :35 and :50:",
        "jobctl add ping --url https://example.com/health --every 15m --offset 5m",
    ),
    (
        "A command every weekday at 09:00 Berlin time, retried twice:",
        "jobctl add report --exec 'make report' --cwd ~/src/site --cron '0 9 * * 1-5' \\\n"
        "    --tz Europe/Berlin --retries 2",
    ),
    (
        "A POST with a secret taken from the daemon's environment when it fires:",
        "jobctl add deploy-hook --url https://ci.example.com/hooks/deploy --method POST \\\n"
        "    --header 'Authorization: Bearer ${CI_TOKEN}' --manual",
    ),
    (
        "Preview a schedule across a daylight saving change:",
        "jobctl next --cron '30 2 * * *' --tz America/New_York --after '2026-03-07 12:00'",
    ),
    (
        "Run the scheduler, then look at the failures of the last day:",
        "jobctl daemon &\njobctl runs --status failed --since 24h",
    ),
    (
        "Move a crontab into jobctl:",
        "crontab -l | jobctl import crontab - --dry-run\ncrontab -l | jobctl import crontab -",
    ),
)

BUGS = (
    (
        "An exec command runs in a process group of its own, and that group is what a timeout kills "
        "and what orphan cleanup ends after a crash. A descendant that leaves the group (`setsid`, "
        "a program that daemonizes itself) is not tracked: it outlives the run, and jobctl never "
        "ends it. Only a cgroup holds every descendant: under the unit `jobctl daemon "
        "--systemd-unit` writes, stopping the service ends them all (KillMode=mixed), and "
        "`systemd-cgls` shows them. Such a process keeps `JOBCTL_JOB` and `JOBCTL_RUN_ID` in its "
        "environment, so `grep -l JOBCTL_RUN_ID=42 /proc/*/environ` finds it."
    ),
)

SEE_ALSO = ("cron(8)", "crontab(5)", "systemd.timer(5)", "sqlite3(1)")
