"""Runs' output as it is produced: pieces gathered from every run in flight and written in
batches, so that watching a run (`runs show --follow`, `jobctl events`) costs the daemon one
short write transaction every FLUSH_EVERY seconds, not one per piece.

`OutputWriter.open` gives a run the callback its FireContext passes pieces to (already
redacted); `flush` writes what waits, with one `run.output` event per run, in one
transaction; the engine flushes before it records a run's outcome, so a follower sees every
piece before the run is finished. Each run keeps at most OUTPUT_CAP bytes of pieces.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jobctl.actions import OUTPUT_CAP
from jobctl.models import EventType, OutputPiece, OutputStream
from jobctl.timeutil import utcnow

if TYPE_CHECKING:
    from jobctl.store import Store

log = logging.getLogger("jobctl.daemon")

FLUSH_EVERY = 0.1  # seconds a piece may wait before it is written
TRUNCATED = f"\n[output truncated: more than {OUTPUT_CAP} bytes, {OUTPUT_CAP} kept]\n"

Tap = Callable[[int, OutputStream, str], None]  # (run id, stream, text): told of each piece


@dataclass
class _RunOutput:
    """One run's pieces so far: how many, how many bytes, and those not yet written."""

    job: str | None  # None: an ad hoc run
    seq: int = 0
    size: int = 0
    truncated: bool = False
    closed: bool = False  # its outcome is recorded: forget it once its pieces are written
    waiting: list[OutputPiece] = field(default_factory=list)


class OutputWriter:
    """Pieces of output of the runs this process fires, written in batches."""

    def __init__(self, store: Store, *, tap: Tap | None = None) -> None:
        """`tap` is told of each piece kept, as it comes (`jobctl run` prints them)."""
        self.store = store
        self.tap = tap
        self._runs: dict[int, _RunOutput] = {}
        self._waiting: set[int] = set()  # runs with pieces not yet written
        self._ready = asyncio.Event()

    def open(
        self, run_id: int, job: str | None, after_seq: int = 0
    ) -> Callable[[OutputStream, str], None]:
        """A run starts producing output: the callback for its FireContext.on_piece; its
        pieces are numbered after `after_seq` (a run taken up again has some already)."""
        self._runs.setdefault(run_id, _RunOutput(job, seq=after_seq))
        return lambda stream, text: self.add(run_id, stream, text)

    def add(self, run_id: int, stream: OutputStream, text: str) -> None:
        """Keep a piece (cut at the run's OUTPUT_CAP) to be written at the next flush."""
        run = self._runs.get(run_id)
        if run is None or run.truncated or not text:
            return
        data = text.encode()
        if run.size + len(data) > OUTPUT_CAP:
            # a character cut in half at the cap is dropped, as cap_output does
            text = data[: OUTPUT_CAP - run.size].decode("utf-8", errors="ignore") + TRUNCATED
            run.truncated = True
        run.size += len(data)
        run.seq += 1
        run.waiting.append(OutputPiece(run_id, run.seq, stream, utcnow(), text))
        self._waiting.add(run_id)
        self._ready.set()
        if self.tap is not None:
            try:
                self.tap(run_id, stream, text)
            except Exception:  # whoever watches went wrong: the run goes on unwatched
                log.exception("showing the output of run %d failed", run_id)
                self.tap = None

    def flush(self) -> None:
        """Write every piece waiting, and one run.output event per run, in one transaction
        (on failure they wait for the next flush)."""
        if not self._waiting:
            return
        runs = [(run_id, self._runs[run_id]) for run_id in sorted(self._waiting)]
        now = utcnow()
        with self.store.write():
            for run_id, run in runs:
                self.store.append_output(run.waiting)
                self.store.add_event(
                    EventType.RUN_OUTPUT, now, job=run.job, run=run_id, data=_event_data(run)
                )
        for run_id, run in runs:
            run.waiting = []
            if run.closed:
                del self._runs[run_id]
        self._waiting.clear()

    def close(self, run_id: int) -> None:
        """The run has ended: forget it (once its pieces are written)."""
        run = self._runs.get(run_id)
        if run is None:
            return
        run.closed = True
        if not run.waiting:
            del self._runs[run_id]

    async def flush_forever(self, cannot_write: Callable[[BaseException], bool]) -> None:
        """Write pieces FLUSH_EVERY seconds after they come; a failed write (`cannot_write`
        logs one it knows) is tried again at the next turn."""
        while True:
            await self._ready.wait()
            await asyncio.sleep(FLUSH_EVERY)
            self._ready.clear()
            try:
                self.flush()
            except Exception as exc:
                if not cannot_write(exc):
                    log.exception("writing runs' output failed; will retry")
                self._ready.set()


def _event_data(run: _RunOutput) -> dict[str, object]:
    """What a run.output event tells: the flush's text (its pieces joined, whatever their
    stream), its size in bytes and the streams it came on."""
    text = "".join(piece.text for piece in run.waiting)
    streams = sorted({piece.stream.value for piece in run.waiting})
    return {"bytes": len(text.encode()), "text": text, "streams": streams}


__all__ = ["FLUSH_EVERY", "OutputWriter", "Tap"]
