"""Rendering rows for people (tables, colour) and for programs (JSON, JSON lines, CSV).

Tables are laid out here by hand: tabulate took 100-170 ms for 1,000 rows, and fitting a
terminal (cut free text short, drop the least useful columns) is a few lines of our own.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring as _encode_text  # in C where it can be
from typing import TextIO

STATUS_COLOURS = {
    "succeeded": "32",
    "failed": "31",
    "timed_out": "31",
    "interrupted": "33",
    "missed": "33",
    "skipped": "90",
    "running": "36",
    "queued": "36",
    "enabled": "32",
    "paused": "33",
    "completed": "90",
}

GAP = "  "  # between table columns
SOFT_MIN = 20  # free text is cut to this before any column is dropped
HARD_MIN = 8  # and to this (or its header) once every optional column is gone
_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def use_colour(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def unicode_ok(stream: TextIO | None = None) -> bool:
    """Whether the output takes ✓ and ✗ (else plain ASCII)."""
    encoding = getattr(stream or sys.stdout, "encoding", None) or ""
    return encoding.lower().replace("-", "") in ("utf8", "utf16", "utf32")


# Control characters other than tab and newline (a carriage return only before a newline):
# C0, DEL and C1 (U+0080-U+009F, where U+009B is CSI for some terminals).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
_JSON_RAW_CONTROL = re.compile("[\x7f-\x9f]")  # json.dumps escapes only those below 0x20


def visible(text: str) -> str:
    """Text from outside (a job's output, an error, a log line) made safe for a terminal:
    each control character other than tab and newline shown in caret notation, as `cat -v`
    shows it (ESC as ^[, BEL as ^G, DEL as ^?, U+009B as M-^[), so that no escape sequence
    in it can write the clipboard, set the title or clear the screen. Every human output
    that shows stored or received text passes it through this; JSON output escapes instead.
    """
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_caret, text)


def _caret(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == 0x7F:
        return "^?"
    if code >= 0x80:
        return "M-^" + chr(code - 0x80 + 64)
    return "^" + chr(code + 64)


class Styled(str):
    """Text coloured by jobctl itself: its escape sequences are ours, shown as they are."""

    __slots__ = ()


def colour_status(text: str | None, enabled: bool, label: str | None = None) -> str:
    """`label` (else `text`) in the colour of the status or state `text`."""
    if not text:
        return "-"
    code = STATUS_COLOURS.get(text)
    shown = visible(label if label is not None else text)
    return Styled(f"\x1b[{code}m{shown}\x1b[0m") if enabled and code else shown


def to_json(data: object) -> str:
    """`json.dumps(data, indent=2, ensure_ascii=False)`, byte for byte, about twice as fast:
    with an indent, json encodes in pure Python, token by token through generators (30-60
    ms for `list --json` of 1,000 jobs, against 15-30). Data it does not take (a key that is not text, a
    NaN, an object of another type) goes to json.dumps itself, which says why."""
    try:
        text = _indented(data, "\n")
    except _Unusual:
        text = json.dumps(data, indent=2, ensure_ascii=False)
    return _escape_raw_controls(text)


class _Unusual(Exception):
    """A value _indented leaves to json.dumps."""


def _indented(value: object, indent: str) -> str:
    """`value` as json.dumps writes it with indent=2, at the depth `indent` (a newline and
    the spaces of the current level) stands for. Text, None and containers, the common
    cases, are told apart by their exact type first."""
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        parts = []
        for key, item in value.items():
            if type(key) is not str:
                raise _Unusual
            kind = type(item)
            if kind is str:
                text = _encode_text(item)
            elif item is None:
                text = "null"
            elif kind is int:
                text = int.__repr__(item)
            elif kind is bool:
                text = "true" if item else "false"
            elif kind is dict or kind is list or isinstance(item, (dict, list, tuple)):
                text = _indented(item, inner)
            else:
                text = _json_scalar(item)
            parts.append(_json_key(key) + text)
        return "{" + inner + ("," + inner).join(parts) + indent + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        items = [
            _encode_text(item) if type(item) is str else _indented(item, inner) for item in value
        ]
        return "[" + inner + ("," + inner).join(items) + indent + "]"
    return _json_scalar(value)


@functools.lru_cache(maxsize=1024)
def _json_key(key: str) -> str:
    """A key and its separator (listings repeat the same few keys on every row)."""
    return _encode_text(key) + ": "


def _json_scalar(value: object) -> str:
    """A value that is not a container, checked in the order json.dumps checks it (a
    StrEnum is text, an IntEnum and a bool are ints: so True before int)."""
    if isinstance(value, str):
        return _encode_text(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float) and math.isfinite(value):
        return float.__repr__(value)
    raise _Unusual


def to_json_line(data: object) -> str:
    """One JSON document on one line (for --jsonl)."""
    return _escape_raw_controls(json.dumps(data, ensure_ascii=False))


def _escape_raw_controls(text: str) -> str:
    """DEL and C1 characters, which json.dumps leaves raw, as \\u escapes: the same data."""
    if _JSON_RAW_CONTROL.search(text) is None:
        return text
    return _JSON_RAW_CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def output_width(*, wide: bool = False, stream: TextIO | None = None) -> int | None:
    """How many columns human output must fit, or None to show everything.

    A terminal is fitted (`COLUMNS` wins over the terminal's own size); output to a pipe or a
    file is shown whole, unless `COLUMNS` is set in the environment, which asks for that width
    anywhere. `--wide` always shows everything.
    """
    if wide:
        return None
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    stream = stream or sys.stdout
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    import shutil  # only for a terminal (with lzma and bz2, ~2 ms of start-up otherwise)

    return shutil.get_terminal_size().columns


# ------------------------------------------------------------------------------ tables


@dataclass(frozen=True)
class Column:
    """A table column. `shrink`: free text, may be cut short with an ellipsis to fit.
    `drop`: the column goes when cutting is not enough, the lowest number first; 0 goes
    only as a last resort, when the rest cannot fit otherwise. `whole`: a name or an id,
    never cut nor dropped."""

    header: str
    shrink: bool = False
    drop: int = 0
    whole: bool = False


def display_width(text: str) -> int:
    """Terminal cells `text` takes: colour codes take none, wide (CJK) characters two."""
    if text.isascii() and "\x1b" not in text:  # most cells: no colour, no wide characters
        return len(text)
    return _styled_width(text)


@functools.lru_cache(maxsize=4096)
def _styled_width(text: str) -> int:
    """display_width of text with colour codes or non-ASCII characters (a table repeats
    them: states, statuses, RECENT strips), remembered."""
    plain = _ESCAPE.sub("", text)
    if plain.isascii():
        return len(plain)
    return sum(_char_width(char) for char in plain)


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def truncate(text: str, width: int, ellipsis: str = "…") -> str:
    """`text` cut to `width` cells, ending in `ellipsis` when cut; colour codes are kept."""
    if display_width(text) <= width:
        return text
    room = max(0, width - display_width(ellipsis))
    out: list[str] = []
    used = 0
    coloured = False
    position = 0
    while position < len(text):
        match = _ESCAPE.match(text, position)
        if match:
            out.append(match.group())
            coloured = True
            position = match.end()
            continue
        size = _char_width(text[position])
        if used + size > room:
            break
        out.append(text[position])
        used += size
        position += 1
    return "".join(out) + ellipsis + ("\x1b[0m" if coloured else "")


def fit_widths(natural: Sequence[int], columns: Sequence[Column], width: int) -> list[int | None]:
    """Each column's width within `width` (None: dropped), or the natural widths if they fit.

    Free-text columns are cut first, widest first, down to SOFT_MIN; then optional columns
    go one by one; then free text is cut down to HARD_MIN; then, as a last resort, the
    other columns go, free text first, from the right. Names and ids (`whole`) are never
    cut nor dropped, so only a name wider than the terminal itself can overflow it.
    """
    optional = [i for _, i in sorted((c.drop, i) for i, c in enumerate(columns) if c.drop)]
    rest = [i for i in reversed(range(len(columns))) if i not in optional and not columns[i].whole]
    last_resort = [i for i in rest if columns[i].shrink] + [
        i for i in rest if not columns[i].shrink
    ]
    dropped: set[int] = set()
    for going in [*optional, *last_resort, None]:
        shown = [i for i in range(len(columns)) if i not in dropped]
        floors = (SOFT_MIN, HARD_MIN) if len(dropped) >= len(optional) else (SOFT_MIN,)
        for floor in floors:
            widths = _shrink(natural, columns, shown, width, floor)
            if widths is not None:
                return [widths[i] if i in shown else None for i in range(len(columns))]
        if going is not None:
            dropped.add(going)
    return [None if i in dropped else natural[i] for i in range(len(columns))]


def _floor(column: Column, floor: int) -> int:
    return max(floor, len(column.header))


def _shrink(
    natural: Sequence[int], columns: Sequence[Column], shown: list[int], width: int, floor: int
) -> dict[int, int] | None:
    """Widths of the shown columns with free text cut (widest first) to fit, or None."""
    widths = {i: natural[i] for i in shown}
    excess = sum(widths.values()) + len(GAP) * (len(shown) - 1) - width
    if excess <= 0:
        return widths
    free = [i for i in shown if columns[i].shrink]
    room = sum(max(0, widths[i] - _floor(columns[i], floor)) for i in free)
    if room < excess:
        return None
    while excess > 0:
        # Lower the widest cuttable column to the next width down (or by what is left).
        cuttable = [i for i in free if widths[i] > _floor(columns[i], floor)]
        top = max(widths[i] for i in cuttable)
        widest = [i for i in cuttable if widths[i] == top]
        below = max(
            [widths[i] for i in free if widths[i] < top]
            + [_floor(columns[i], floor) for i in widest]
        )
        step = min(top - below, -(-excess // len(widest)))
        for i in widest:
            if excess <= 0:
                break
            cut = min(step, excess)
            widths[i] -= cut
            excess -= cut
    return widths


def table(
    rows: Sequence[Sequence[object]],
    headers: Sequence[str | Column],
    *,
    width: int | None = None,
    header: bool = True,
) -> str:
    """Rows as left-aligned columns; within `width` cells when given (see fit_widths)."""
    columns = [c if isinstance(c, Column) else Column(c) for c in headers]
    cells = [[_one_line(value) for value in row] for row in rows]
    sizes = [[display_width(text) for text in row] for row in cells]  # measured once
    layout = table_layout(cells, columns, width, sizes)
    lines = [layout.render_header()] if header else []
    lines += [
        layout.render_cells(row, row_sizes) for row, row_sizes in zip(cells, sizes, strict=True)
    ]
    return "\n".join(lines)


@dataclass
class TableLayout:
    """Column widths decided once, so that `runs --follow` can print rows as they come."""

    columns: list[Column]
    widths: list[int | None]
    fitted: bool  # free text is cut only when fitting a width
    ellipsis: str = "…"

    def render_header(self) -> str:
        return self.render([column.header for column in self.columns])

    def render(self, row: Sequence[object]) -> str:
        return self.render_cells([_one_line(value) for value in row])

    def render_cells(self, cells: Sequence[str], sizes: Sequence[int] | None = None) -> str:
        """A row whose values are already one safe line each (as `table` makes them), and
        their display widths when known."""
        if sizes is None:
            sizes = [display_width(text) for text in cells]
        parts = []
        for text, used, column, size in zip(cells, sizes, self.columns, self.widths, strict=True):
            if size is None:
                continue
            if column.shrink and self.fitted and used > size:
                text = truncate(text, size, self.ellipsis)
                used = display_width(text)
            parts.append(text + " " * (size - used) if used < size else text)
        return GAP.join(parts).rstrip()


def table_layout(
    rows: Sequence[Sequence[str]],
    columns: Sequence[Column],
    width: int | None,
    sizes: Sequence[Sequence[int]] | None = None,
) -> TableLayout:
    """The widths of `columns` for these rows (`sizes`: their cells' display widths, when
    the caller has them)."""
    if sizes is None:
        sizes = [[display_width(value) for value in row] for row in rows]
    natural = [len(column.header) for column in columns]
    for index, used in enumerate(zip(*sizes, strict=True)):  # column by column
        natural[index] = max(natural[index], *used)
    widths: list[int | None] = list(natural)
    if width is not None:
        widths = fit_widths(natural, columns, width)
    return TableLayout(list(columns), widths, width is not None, "…" if unicode_ok() else "...")


_ANY_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # line breaks and tabs too


def _one_line(value: object) -> str:
    if type(value) is str and _ANY_CONTROL.search(value) is None:
        return value  # most cells: already one safe line
    if isinstance(value, Styled):
        return value
    text = "-" if value is None else str(value)
    if "\n" in text or "\t" in text or "\r" in text:
        text = text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")
    return visible(text)


# ------------------------------------------------------------------------ key: value


def key_values(pairs: Iterable[tuple[str, object]], *, width: int | None = None) -> str:
    """`label: value` lines with the labels aligned, for `show` commands.

    With `width`, a long value wraps onto continuation lines indented under the values; a
    value given as a list is shown comma-separated and wraps between its items.
    """
    items = [(label, _value_lines(value)) for label, value in pairs]
    label_width = max((len(label) for label, _ in items), default=0)
    indent = " " * (label_width + 2)
    lines = []
    for label, value in items:
        head = f"{label + ':':<{label_width + 1}} "
        body = _wrap(value, width - len(indent)) if width is not None else [" ".join(value)]
        body = "\n".join(body).split("\n")
        lines.append(head + body[0])
        lines.extend(indent + line for line in body[1:])
    return "\n".join(line.rstrip() for line in lines)


def _value_lines(value: object) -> list[str]:
    """The pieces of a value: a list's items (each with its comma), else the whole text."""
    if isinstance(value, (list, tuple)):
        texts = [visible(str(item)) for item in value if item is not None and item != ""]
        if texts:
            return [text + "," for text in texts[:-1]] + [texts[-1]]
        return ["-"]
    return ["-" if value is None or value == "" else visible(str(value))]


def _wrap(pieces: list[str], width: int) -> list[str]:
    """Pieces packed into lines of `width`; a piece too long for a line wraps at spaces."""
    import textwrap

    if width < 20:  # a terminal this narrow is better served by long lines
        return [" ".join(pieces)]
    lines: list[str] = []
    for piece in pieces:
        for paragraph in piece.split("\n"):
            if lines and len(pieces) > 1 and len(lines[-1]) + 1 + len(paragraph) <= width:
                lines[-1] += " " + paragraph
                continue
            lines += textwrap.wrap(paragraph, width, break_on_hyphens=False) or [""]
    return lines
