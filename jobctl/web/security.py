"""The headers every answer of the listener carries: a strict Content-Security-Policy (scripts,
styles and fetches from the daemon itself only, no inline code, no framing) and the usual
companions. Set as the response is prepared, so error pages and streams get them too."""

from __future__ import annotations

from aiohttp import web

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)


def install(app: web.Application) -> None:
    """Have every response of `app` carry the security headers."""
    app.on_response_prepare.append(add_headers)
