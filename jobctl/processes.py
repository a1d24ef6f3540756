"""Processes of this host, read from /proc: start times, process groups, ending an orphan's group.

A run's command runs in its own process group (its leader's pid is the group id). When the
process that owned the run dies, the command's descendants may live on; whoever takes the
run over ends the group, but only after checking that the group is still the run's and not
a reused id: the recorded start time of the leader is the proof.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

POLL = 0.05  # seconds between checks that a terminated group is gone
ORPHAN_GRACE = 5.0  # seconds an orphaned group gets between SIGTERM and SIGKILL


def start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (None without /proc or the process).

    Ticks since boot do not move when the wall clock is set, unlike a Unix time built from
    /proc/stat's btime.
    """
    stat = _read_stat(pid)
    if stat is None or len(stat) < 20:
        return None
    try:
        return int(stat[19])
    except ValueError:
        return None


@dataclass(frozen=True)
class Member:
    pid: int
    started: int  # clock ticks since boot


def group_members(pgid: int) -> list[Member] | None:
    """Live (not zombie) processes of group `pgid`; None where there is no /proc to read."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    members = []
    for entry in entries:
        if not entry.isdigit():
            continue
        stat = _read_stat(int(entry))
        # fields after the command name: state, ppid, pgrp, ..., starttime is the 20th
        if stat is None or len(stat) < 20 or stat[2] != str(pgid) or stat[0] == "Z":
            continue
        members.append(Member(int(entry), int(stat[19])))
    return members


def _read_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    return raw.rpartition(b")")[2].decode("ascii", "replace").split()


def is_same_group(pgid: int, leader_started: int, members: Iterable[Member]) -> bool:
    """Do `members` (group `pgid`'s) belong to the group whose leader started then?

    The leader alive must have that start time; with the leader gone (killed with its owner,
    say), every member must have started after it, as its descendants did. A group id is not
    handed out again while any process is still in the group, so a reused id would need a
    new leader, started later.
    """
    members = list(members)
    leader = next((m for m in members if m.pid == pgid), None)
    if leader is not None:
        return leader.started == leader_started
    return all(m.started >= leader_started for m in members)


@dataclass(frozen=True)
class RunGroup:
    """The process group a run's command was started in."""

    run_id: int
    pgid: int
    leader_started: int


def end_groups(
    groups: Iterable[RunGroup],
    grace: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[int, str]:
    """SIGTERM each group still alive (and still the run's), SIGKILL what is left after
    `grace` seconds. Returns, per run id, a note for the run's error (none if nothing lived)."""
    notes: dict[int, str] = {}
    alive: list[RunGroup] = []
    for group in groups:
        state = _signal_if_ours(group, signal.SIGTERM)
        if state == "signalled":
            alive.append(group)
            notes[group.run_id] = f"its process group {group.pgid} was ended (SIGTERM)"
        elif state is not None:
            notes[group.run_id] = state
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        sleep(POLL)
        alive = [g for g in alive if _live_members(g)]
    for group in alive:
        if _signal_if_ours(group, signal.SIGKILL) == "signalled":
            notes[group.run_id] = (
                f"its process group {group.pgid} was killed (SIGKILL) after {grace:g}s"
            )
    return notes


def kill_group(group: RunGroup) -> str | None:
    """SIGKILL at once (no grace): for a takeover that cannot wait. A note, or None."""
    state = _signal_if_ours(group, signal.SIGKILL)
    if state == "signalled":
        return f"its process group {group.pgid} was killed (SIGKILL)"
    return state


def _live_members(group: RunGroup) -> list[Member]:
    members = group_members(group.pgid)
    if members is None:
        return []
    return members if is_same_group(group.pgid, group.leader_started, members) else []


def _signal_if_ours(group: RunGroup, sig: signal.Signals) -> str | None:
    """'signalled', None when nothing of the run's group lives, or a note saying why not."""
    members = group_members(group.pgid)
    if members is None:
        return f"its process group {group.pgid} could not be checked (no /proc), left alone"
    if not members or not is_same_group(group.pgid, group.leader_started, members):
        return None
    try:
        os.killpg(group.pgid, sig)
    except ProcessLookupError:
        return None
    except PermissionError:
        return f"its process group {group.pgid} could not be ended: permission denied"
    return "signalled"


__all__ = [
    "ORPHAN_GRACE",
    "Member",
    "RunGroup",
    "end_groups",
    "group_members",
    "is_same_group",
    "kill_group",
    "start_ticks",
]
