"""Rendering rows for people (tables, colour) and for programs (JSON, JSON lines, CSV).

The only module that imports tabulate, and only when a table is printed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

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


def use_colour(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def unicode_ok(stream: TextIO | None = None) -> bool:
    """Whether the output takes ✓ and ✗ (else plain ASCII)."""
    encoding = getattr(stream or sys.stdout, "encoding", None) or ""
    return encoding.lower().replace("-", "") in ("utf8", "utf16", "utf32")


def colour_status(text: str | None, enabled: bool) -> str:
    if not text:
        return "-"
    code = STATUS_COLOURS.get(text)
    return f"\x1b[{code}m{text}\x1b[0m" if enabled and code else text


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    from tabulate import tabulate

    return str(tabulate(rows, headers=list(headers), tablefmt="plain", disable_numparse=True))


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    """`label: value` lines with the labels aligned, for `show` commands."""
    items = [(label, "-" if value is None or value == "" else str(value)) for label, value in pairs]
    width = max((len(label) for label, _ in items), default=0)
    return "\n".join(f"{label + ':':<{width + 1}} {value}" for label, value in items)
