"""Reading the text files a command is given, never more than a limit: `--body @/dev/zero`
or `apply -f /dev/zero` would otherwise read until memory runs out."""

from __future__ import annotations

import sys

from jobctl.errors import InvalidInput

MiB = 1024 * 1024
# A request body or prompt: as much as the listener takes for a webhook's body (the
# payload a job may forward), well above what a run stores of an output (64 KiB).
TEXT_LIMIT = 1 * MiB
DOCUMENT_LIMIT = 64 * MiB  # a jobs file for apply, a crontab for import


def read_text(path: str, *, limit: int, what: str) -> str:
    """The UTF-8 text of `path` (standard input for `-`), at most `limit` bytes.

    Larger input is refused with InvalidInput naming `what` and the limit; OSError and
    UnicodeDecodeError are the caller's to word.
    """
    if path == "-":
        data = sys.stdin.buffer.read(limit + 1)
    else:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(f"{what} is larger than {limit // MiB} MiB: refused")
    return data.decode("utf-8")
