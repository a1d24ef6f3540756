"""/api/v1/events (the event stream as server-sent events), /api/v1/status and
/api/v1/agents: the answers of `events --json`, `status --json` and `agent ... --json`.

The stream sends each event as `id: N`, `event: TYPE` and `data: {the events --json
object}`, from the one after the `Last-Event-ID` header (a reconnecting EventSource sends
it) or ?since_id=, else from now on; a `: keepalive` comment every 15 s keeps proxies from
closing it. Streams end when the daemon stops, and within seconds of the token being
rotated or the session ending."""

from __future__ import annotations

import asyncio

from aiohttp import web

from jobctl.errors import InvalidInput
from jobctl.web.api_common import PREFIX, answer, context_of, now, query_list, store_of
from jobctl.web.auth import still_allowed

routes = web.RouteTableDef()
POLL = 0.2  # seconds between looks for new events
RECHECK = 2.0  # seconds between checks that the request's token or session still holds
KEEPALIVE = 15.0  # seconds of silence before a keepalive comment
PAGE = 1000


class OpenStreams:
    """The stop signals of the streams open now (set at shutdown)."""

    def __init__(self) -> None:
        self.stops: set[asyncio.Event] = set()


STREAMS = web.AppKey("jobctl_event_streams", OpenStreams)


def _start_id(request: web.Request) -> int | None:
    """Where a stream resumes: Last-Event-ID, else ?since_id=, else None (from now)."""
    for text, what in (
        (request.headers.get("Last-Event-ID"), "Last-Event-ID"),
        (request.query.get("since_id"), "since_id"),
    ):
        if text is None or text == "":
            continue
        if not (text.isascii() and text.isdigit()):
            raise InvalidInput(f"invalid {what} {text!r}: give an event id (a whole number)")
        return int(text)
    return None


@routes.get(PREFIX + "/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ?type= (repeatable) and ?job= narrow them as `events` does."""
    from jobctl.events import event_to_dict, parse_types
    from jobctl.output import to_json_line

    types = parse_types(query_list(request, "type"))
    job = request.query.get("job") or None
    store = store_of(request)
    start, newest = _start_id(request), store.last_event_id()
    # an id past the newest (made up, or from before a restore) resumes from now, not never
    after = newest if start is None else min(start, newest)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    stop = asyncio.Event()
    streams = request.app[STREAMS].stops
    streams.add(stop)
    quiet_since = checked = asyncio.get_running_loop().time()
    try:
        await response.write(b"retry: 2000\n\n")
        while not stop.is_set():
            newest = store.last_event_id()
            chunks = []
            while after < newest:
                page = store.select_events(
                    after_id=after, up_to_id=newest, types=types, job=job, limit=PAGE
                )
                for event in page:
                    data = to_json_line(event_to_dict(event))
                    chunks.append(f"id: {event.id}\nevent: {event.type.value}\ndata: {data}\n\n")
                after = page[-1].id if len(page) == PAGE else newest
            clock = asyncio.get_running_loop().time()
            if clock - checked >= RECHECK:
                if not still_allowed(request):
                    break  # the token was rotated, or the session ended
                checked = clock
            if chunks:
                await response.write("".join(chunks).encode())
                quiet_since = clock
            elif clock - quiet_since >= KEEPALIVE:
                await response.write(b": keepalive\n\n")
                quiet_since = clock
            try:
                await asyncio.wait_for(stop.wait(), POLL)
            except TimeoutError:
                pass
    except ConnectionResetError:  # the client went away
        pass
    finally:
        streams.discard(stop)
    return response


@routes.get(PREFIX + "/status")
async def status(request: web.Request) -> web.Response:
    """`jobctl status --json`."""
    from jobctl.reports import status_report

    return answer(status_report(store_of(request), context_of(request).db_path, now()))


@routes.get(PREFIX + "/agents")
async def list_agents(request: web.Request) -> web.Response:
    """`jobctl agent list --json`."""
    from jobctl.agents import agent_to_dict, jobs_using, list_agents

    store = store_of(request)
    return answer(
        [agent_to_dict(item, jobs_using(store, item.name)) for item in list_agents(store)]
    )


@routes.get(PREFIX + "/agents/{name}")
async def show_agent(request: web.Request) -> web.Response:
    """`jobctl agent show NAME --json`."""
    from jobctl.agents import agent_to_dict, get_agent, jobs_using

    store = store_of(request)
    found = get_agent(store, request.match_info["name"])
    return answer(agent_to_dict(found, jobs_using(store, found.name)))


def install_streams(app: web.Application) -> None:
    """Keep the open streams so that they end at shutdown instead of holding it up."""
    app[STREAMS] = OpenStreams()

    async def end_streams(app: web.Application) -> None:
        for stop in list(app[STREAMS].stops):
            stop.set()

    app.on_shutdown.append(end_streams)
