"""An HTTP job's response body: read to the end and counted, only the start of it kept."""

from __future__ import annotations

import aiohttp

from jobctl.http_checks import Checks
from jobctl.models import HttpSpec

CHECK_CAP = 1024 * 1024  # bytes kept for --expect-body and --expect-json to look at


def spec_checks(spec: HttpSpec) -> Checks:
    return Checks(
        body=spec.expect_body,
        json=spec.expect_json,
        headers=spec.expect_headers,
        max_duration=spec.max_duration,
    )


async def read_counted(content: aiohttp.StreamReader, keep: int) -> tuple[bytes, int]:
    """The first `keep` + 1 bytes of the body (one more tells there was more) and its full
    size: the rest is read as it comes and counted, never held."""
    chunks: list[bytes] = []
    kept = 0
    size = 0
    while True:
        chunk = await content.readany()
        if not chunk:
            break
        size += len(chunk)
        if kept <= keep:
            piece = chunk[: keep + 1 - kept]
            chunks.append(piece)
            kept += len(piece)
        if content.at_eof():  # saves an await for the usual small body
            break
    return b"".join(chunks), size


def decode(data: bytes, charset: str | None) -> str:
    """The body as text, in the charset the response names (UTF-8 when none or unknown)."""
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


__all__ = ["CHECK_CAP", "decode", "read_counted", "spec_checks"]
