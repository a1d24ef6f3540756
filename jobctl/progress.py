"""How a long core operation tells its caller how far it is, without knowing about bars:
a callback of (phase, done, total), e.g. ("checking", 3000, 100000) for `apply`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

OnProgress = Callable[[str, int, int], None]
STEP = 1000  # items between two calls: a bar redrawn 100 times for 100,000 jobs

T = TypeVar("T")


def no_progress(phase: str, done: int, total: int) -> None:
    """The default: nobody is shown anything."""


def in_steps(items: Sequence[T]) -> list[Sequence[T]]:
    """`items` in slices of STEP, to handle one after the other and report between."""
    return [items[start : start + STEP] for start in range(0, len(items), STEP)]


@dataclass
class Tally:
    """Items of one phase done so far, told to `on_progress` at each `add`."""

    phase: str
    total: int
    on_progress: OnProgress
    done: int = 0

    def add(self, count: int) -> None:
        self.done += count
        self.on_progress(self.phase, self.done, self.total)

    def every_step(self, index: int) -> None:
        """After item `index` (from 0) of a loop: told every STEP items and at the last."""
        if (index + 1) % STEP == 0 or index + 1 == self.total:
            self.on_progress(self.phase, index + 1, self.total)
