"""Errors that reach the user, each with the exit code of the command-line contract."""

from __future__ import annotations


class JobctlError(Exception):
    """An expected failure: printed as one line on stderr, never as a traceback."""

    exit_code = 1


class Failed(JobctlError):
    """The job or operation ran and failed, or was refused in the current state."""

    exit_code = 1


class InvalidInput(JobctlError):
    """Bad usage or bad input; nothing was changed."""

    exit_code = 2


class NotFound(JobctlError):
    """No such job, run or agent."""

    exit_code = 3


class DaemonUnavailable(JobctlError):
    """The daemon is needed and not running, or another daemon holds the database."""

    exit_code = 4


class Interrupted(JobctlError):
    """Stopped by Ctrl-C (SIGINT): 128 + 2, as shells report it."""

    exit_code = 130
