"""Who may use the API and the dashboard (see jobctl.access for the token, codes and sessions).

Every request but /healthz, /hooks/..., /metrics (its own token rule), /login and /static/...
needs `Authorization: Bearer TOKEN` or the `jobctl_session` cookie that a login link sets.
A cookie-authenticated POST, PUT, PATCH or DELETE must also carry the session's CSRF value
(header `X-CSRF-Token`, or form field `csrf`); a Bearer request needs none, since a browser
never adds that header by itself. Handlers find `request[SESSION_KEY]`: the Session,
or None for a Bearer request. `csrf_token(request)` is the value pages put in their
`<meta name="csrf-token">`.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable

from aiohttp import web

from jobctl import access
from jobctl.models.access import Session
from jobctl.store import StoreError
from jobctl.timeutil import utcnow
from jobctl.web import security
from jobctl.web.context import CONTEXT, WebContext

COOKIE = "jobctl_session"
SESSION_KEY: web.RequestKey[Session | None] = web.RequestKey("jobctl_session")  # None: Bearer
TOKEN_KEY = web.RequestKey("jobctl_token", str)  # the Bearer token (for still_allowed)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
OPEN_PATHS = frozenset({"/healthz", "/metrics", access.LOGIN_PATH})
OPEN_PREFIXES = ("/hooks/", "/static/")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

NO_CREDENTIALS = (
    "unauthorized: send Authorization: Bearer TOKEN (`jobctl api token` shows it) "
    "or log in with the link `jobctl dashboard` prints"
)
WRONG_TOKEN = "unauthorized: wrong API token (`jobctl api token` shows the current one)"
NO_SESSION = "unauthorized: the session ended or expired: `jobctl dashboard` prints a new link"
BAD_CSRF = f"forbidden: missing or wrong {CSRF_HEADER} header for this session"
BAD_CODE = (
    "This login link was already used or has expired (a link works once, for 10 minutes). "
    "Run `jobctl dashboard` again for a new one."
)

DATABASE_TROUBLE = "the database cannot be used right now"
TITLES = {401: "Not logged in", 403: "Refused", 503: "Unavailable"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def install(app: web.Application, context: WebContext) -> None:
    """Create the API token if there is none, and guard every route of `app`."""
    access.ensure_token(context.store)
    security.install(app)
    app.middlewares.append(require_access)
    app.router.add_get(access.LOGIN_PATH, login)
    app.router.add_post("/logout", logout)


def csrf_token(request: web.Request) -> str:
    """The value a page's state-changing requests must send (empty for a Bearer request)."""
    session: Session | None = request.get(SESSION_KEY)
    return session.csrf if session is not None else ""


def still_allowed(request: web.Request) -> bool:
    """Whether the credentials a request came in with still hold: for a long answer (the
    event stream) to end once the token is rotated or the session logged out."""
    store = request.app[CONTEXT].store
    session: Session | None = request.get(SESSION_KEY)
    if session is not None:
        return store.get_session(session.id_hash, utcnow()) is not None
    token = request.get(TOKEN_KEY)
    return token is None or access.token_matches(store, token)


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


@web.middleware
async def require_access(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_open(request.path):
        return await handler(request)
    try:
        refused = await _check(request)
    except StoreError as exc:
        return refusal(request, 503, f"{DATABASE_TROUBLE}: {exc}")
    return refused if refused is not None else await handler(request)


async def _check(request: web.Request) -> web.Response | None:
    """A refusal, or None with request[SESSION_KEY] set."""
    store = request.app[CONTEXT].store
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not access.token_matches(store, given.strip()):
            return refusal(request, 401, WRONG_TOKEN)
        request[SESSION_KEY] = None
        request[TOKEN_KEY] = given.strip()
        return None
    cookie = request.cookies.get(COOKIE)
    if cookie is None:
        return refusal(request, 401, NO_CREDENTIALS)
    session = access.find_session(store, cookie, utcnow())
    if session is None:
        return refusal(request, 401, NO_SESSION)
    if request.method in UNSAFE_METHODS and not await _carries_csrf(request, session):
        return refusal(request, 403, BAD_CSRF)
    request[SESSION_KEY] = session
    return None


async def _carries_csrf(request: web.Request, session: Session) -> bool:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in FORM_TYPES:
        field = (await request.post()).get(CSRF_FIELD)
        given = field if isinstance(field, str) else None
    return given is not None and access.same(given, session.csrf)


def refusal(request: web.Request, status: int, message: str) -> web.Response:
    """JSON for the API, a small page for a browser."""
    if request.path.startswith("/api/"):
        response: web.Response = web.json_response({"error": message}, status=status)
    else:
        response = page(status, TITLES.get(status, "Refused"), message)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="jobctl"'
    return response


def page(status: int, title: str, text: str) -> web.Response:
    """A plain page of text (escaped; nothing from the request is put in it)."""
    title, text = html.escape(title), html.escape(text)
    body = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>jobctl: {title}</title></head>\n<body><h1>{title}</h1>\n<p>{text}</p>"
        "</body></html>\n"
    )
    response = web.Response(status=status, text=body, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


# ----------------------------------------------------------------------------- routes


async def login(request: web.Request) -> web.StreamResponse:
    """GET /login?code=: use up a one-time code, set the session cookie, go to the dashboard."""
    store = request.app[CONTEXT].store
    try:
        opened = access.open_session(store, request.query.get("code", ""), utcnow())
        logged_in = opened is None and await _check(request) is None
    except StoreError as exc:
        return page(503, TITLES[503], f"{DATABASE_TROUBLE}: {exc}")
    if logged_in:  # a used link opened again in a browser that it logged in: no harm
        return _to_dashboard()
    if opened is None:
        return page(401, "Login link used or expired", BAD_CODE)
    session_id, _session = opened
    response = _to_dashboard()
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(access.SESSION_LIFETIME.total_seconds()),
        path="/",
        secure=came_over_https(request),
        httponly=True,
        samesite="Strict",
    )
    return response


def _to_dashboard() -> web.Response:
    return web.Response(status=303, headers={"Location": "/", "Cache-Control": "no-store"})


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /logout: end this browser's session (the middleware checked its CSRF value)."""
    session: Session | None = request.get(SESSION_KEY)
    if session is not None:
        try:
            access.end_session(request.app[CONTEXT].store, session)
        except StoreError as exc:
            return page(503, TITLES[503], f"{DATABASE_TROUBLE}: {exc}")
    response = page(200, "Logged out", "Run `jobctl dashboard` for a new login link.")
    response.del_cookie(COOKIE, path="/")
    return response


def came_over_https(request: web.Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"
