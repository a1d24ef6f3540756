"""Progress of a long operation on stderr: click's bar with counts and an estimate, only
when stderr is a terminal and `--quiet` was not given (nothing when piped)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, TypeVar

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

F = TypeVar("F", bound=Callable[..., object])


def quiet_option(func: F) -> F:
    return click.option(
        "--quiet", "-q", is_flag=True, help="No progress bar (there is none when piped)."
    )(func)


class Progress:
    """A bar (or nothing) moved to a position, with a note (a count) beside it. The bar
    appears at the first move, so a length learnt only then (pages to copy) is enough."""

    def __init__(self, label: str, shown: bool, length: int | None = None) -> None:
        self.label, self.shown, self.length = label, shown, length
        self.bar: ProgressBar[int] | None = None
        self.note = ""

    def to(self, position: int, note: str = "", *, length: int | None = None) -> None:
        if not self.shown:
            return
        if self.bar is None:
            total = length if length is not None else self.length
            if not total:
                return
            self.bar = click.progressbar(
                length=total,
                label=self.label,
                file=sys.stderr,
                show_eta=True,
                show_percent=True,
                item_show_func=lambda _: self.note,
            )
            self.bar.__enter__()
        self.note = note
        self.bar.update(max(0, position - self.bar.pos))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@contextmanager
def progress(label: str, *, quiet: bool, length: int | None = None) -> Iterator[Progress]:
    """A bar on stderr when it is a terminal and not `quiet`; else moves do nothing."""
    shown = not quiet and sys.stderr.isatty()
    bar = Progress(label, shown, length)
    try:
        yield bar
    finally:
        bar.close()


@contextmanager
def phased_progress(
    labels: Mapping[str, str], noun: str, *, quiet: bool
) -> Iterator[Callable[[str, int, int], None]]:
    """One bar per phase, in the order of `labels` (phase: label): the callback yielded,
    (phase, done, total), moves that phase's bar with "done of total NOUN" beside it and
    closes the bars of the phases before it."""
    with ExitStack() as stack:
        bars = {
            phase: stack.enter_context(progress(label, quiet=quiet))
            for phase, label in labels.items()
        }
        order = list(labels)

        def moved(phase: str, done: int, total: int) -> None:
            for earlier in order[: order.index(phase)]:
                bars[earlier].close()
            bars[phase].to(done, f"{done:,} of {total:,} {noun}", length=total)

        yield moved
