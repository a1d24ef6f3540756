"""Progress of a long operation on stderr: click's bar with counts and an estimate, only
when stderr is a terminal and `--quiet` was not given (nothing when piped)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    """Moves a bar (or nothing) to a position, with a count shown beside it."""

    def __init__(self, bar: ProgressBar[int] | None) -> None:
        self.bar = bar
        self.note = ""

    def to(self, position: int, note: str) -> None:
        if self.bar is None:
            return
        self.note = note
        self.bar.update(max(0, position - self.bar.pos))


@contextmanager
def progress(length: int, label: str, *, quiet: bool) -> Iterator[Progress]:
    """A bar of `length` steps on stderr when it is a terminal and not `quiet`."""
    if quiet or length <= 0 or not sys.stderr.isatty():
        yield Progress(None)
        return
    shown = Progress(None)
    bar: ProgressBar[int] = click.progressbar(
        length=length,
        label=label,
        file=sys.stderr,
        show_eta=True,
        show_percent=True,
        item_show_func=lambda _: shown.note,
    )
    with bar:
        shown.bar = bar
        yield shown
