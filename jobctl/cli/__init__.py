"""The command line: parse, call one core function, render. The only package importing click.

`shared` holds the root group and what every command uses; each *_commands module adds its
commands to the group, and importing this package imports them all.
"""

from __future__ import annotations

import os
import sys

# Registering the commands: each module adds its own to `cli`.
from jobctl.cli import (
    access_commands,  # noqa: F401
    agent_commands,  # noqa: F401
    cancel_commands,  # noqa: F401
    daemon_commands,  # noqa: F401
    daemon_info_commands,  # noqa: F401
    db_commands,  # noqa: F401
    event_commands,  # noqa: F401
    file_commands,  # noqa: F401
    hook_commands,  # noqa: F401
    import_commands,  # noqa: F401
    job_commands,  # noqa: F401
    job_views,  # noqa: F401
    ops_commands,  # noqa: F401
    run_commands,  # noqa: F401
    runs_commands,  # noqa: F401
    status_command,  # noqa: F401
    team_commands,  # noqa: F401
)
from jobctl.cli.shared import cli


def main() -> None:
    """Entry point for the console script and `python -m jobctl`."""
    try:
        cli.main(prog_name="jobctl")
    except BrokenPipeError:
        # The reader went away (`jobctl runs | head -1`): stop quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)


__all__ = ["cli", "main"]
