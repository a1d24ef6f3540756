"""Following a run as it happens: its output in pieces, in order, until it ends.

The reader's side of the pieces a run's owner stores while the run is in flight
(`run_output`). A follower reads only when the database changed (SQLite's data_version), so
polling every 100 ms costs one pragma while nothing happens. `StopSignals` makes Ctrl-C and
SIGTERM the normal end of a command that follows, whatever the parent process left them at.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import TYPE_CHECKING

from jobctl.errors import NotFound
from jobctl.models import OutputPiece, OutputStream, Run, RunSelection, RunStatus

if TYPE_CHECKING:
    from jobctl.store import Store

POLL = 0.1  # seconds between looks at the database: a piece shows within about this
OWNER_CHECK = 2.0  # seconds between checks that the run's owner still lives
PIECES_PER_READ = 1000


class StopSignals:
    """While entered, SIGINT and SIGTERM set `received` instead of raising anywhere.

    The handlers are installed even where the parent left SIGINT ignored (a shell's
    background job, some test runners): a follower that cannot be stopped would hang.
    The loop checks `received` between its steps; `wait` sleeps until then or a signal.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._before: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._before[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for signum, handler in self._before.items():
            if handler is not None:  # None: set outside Python, nothing to put back
                signal.signal(signum, handler)  # type: ignore[arg-type]

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if a stop signal came (before or during)."""
        deadline = time.monotonic() + seconds
        while self.received is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.05))  # a handler's return resumes sleep (PEP 475)
        return self.received is not None


@dataclass
class Followed:
    """How following a run ended: the run as last read (None if stopped by a signal)."""

    run: Run | None
    stopped_by: int | None = None


def follow_run(
    store: Store,
    run_id: int,
    show: Callable[[OutputPiece], None],
    stop: StopSignals,
    *,
    poll: float = POLL,
    owner_gone: Callable[[Store, Run], bool] | None = None,
) -> Followed:
    """Hand each piece of the run's output to `show`, in order, until the run has ended.

    The status is read before the pieces: an owner stores every piece before it records
    the outcome, so once a read sees the run ended, the pieces read after it are all there
    are. A run that ended with no piece stored (an HTTP body, output from before pieces
    were kept) shows its whole `output` as one piece. Every few seconds `owner_gone(store, run)`
    (default: `tidy_dead_owner`) may mark a run whose owner died interrupted, so that
    following it ends instead of waiting for ever.
    """
    owner_gone = owner_gone or tidy_dead_owner
    seq = 0
    shown_any = False
    seen_version: int | None = None
    next_owner_check = time.monotonic() + OWNER_CHECK
    while True:
        version = store.data_version()
        if version != seen_version:
            seen_version = version
            run = _read_run(store, run_id)
            for piece in _pieces_after(store, run_id, seq):
                show(piece)
                seq, shown_any = piece.seq, True
            if not run.status.in_flight:
                if not shown_any and run.output:
                    show(whole_output(run, run.output))
                return Followed(run)
        if time.monotonic() >= next_owner_check:
            next_owner_check = time.monotonic() + OWNER_CHECK
            if owner_gone(store, _read_run(store, run_id)):
                seen_version = None  # our own write does not move data_version: read again
        if stop.received is not None or stop.wait(poll):
            return Followed(None, stop.received)


def _read_run(store: Store, run_id: int) -> Run:
    run = store.get_run(run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id} (see `jobctl runs`)")
    return run


def _pieces_after(store: Store, run_id: int, seq: int) -> list[OutputPiece]:
    pieces: list[OutputPiece] = []
    while True:
        batch = store.output_after(run_id, seq, PIECES_PER_READ)
        pieces += batch
        if len(batch) < PIECES_PER_READ:
            return pieces
        seq = batch[-1].seq


def whole_output(run: Run, text: str) -> OutputPiece:
    """A finished run's whole output as one piece (seq 0: it was never stored in pieces)."""
    stream = OutputStream.BODY if run.http_status is not None else OutputStream.STDOUT
    return OutputPiece(run.id, 0, stream, run.finished_at or run.created_at, text)


def tidy_dead_owner(store: Store, run: Run) -> bool:
    """A running run whose owner on this host is gone (killed daemon): mark it and any
    other dead owner's runs interrupted, as every jobctl command does on its way; True if
    it did."""
    from jobctl.runs import has_orphans, tidy_orphans
    from jobctl.timeutil import utcnow

    if run.status != RunStatus.RUNNING or not has_orphans(store):
        return False
    tidy_orphans(store, utcnow())
    return True


def run_to_follow(store: Store, job_id: int) -> Run | None:
    """The job's run to follow now: the newest running one, else the oldest queued one."""
    in_flight = store.list_runs(
        RunSelection(job_id=job_id, statuses=(RunStatus.RUNNING, RunStatus.QUEUED), limit=0)
    )
    running = [run for run in in_flight if run.status == RunStatus.RUNNING]
    if running:
        return max(running, key=lambda run: run.id)
    return min(in_flight, key=lambda run: run.id, default=None)


def wait_for_next_run(
    store: Store, job_id: int, after_id: int, stop: StopSignals, *, poll: float = POLL
) -> Run | None:
    """The job's first run created after run `after_id` that is not a skipped or missed
    slot (those never run); None if a stop signal came first."""
    seen_version: int | None = None
    while True:
        version = store.data_version()
        if version != seen_version:
            seen_version = version
            new = store.list_runs(RunSelection(job_id=job_id, after_id=after_id, limit=0))
            for run in sorted(new, key=lambda run: run.id):
                if run.status not in (RunStatus.SKIPPED, RunStatus.MISSED):
                    return run
                after_id = run.id
        if stop.wait(poll):
            return None
