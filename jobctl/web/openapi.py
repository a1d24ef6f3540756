"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

Schemas name the fields the CLI's --json documents carry (PRODUCT.md) and their types;
they allow more (a later version may add fields). A test validates real answers against
them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jobctl import __version__
from jobctl.models import ActionKind, JobState, RunStatus, RunTrigger, ScheduleKind

Schema = dict[str, Any]

STATUSES = [status.value for status in RunStatus]
TRIGGERS = [trigger.value for trigger in RunTrigger]
SCHEDULE_KINDS = [kind.value for kind in ScheduleKind]
ACTIONS = [action.value for action in ActionKind]
JOB_STATES = [state.value for state in JobState]


def _nullable(kind: str, **extra: Any) -> Schema:
    return {"type": [kind, "null"], **extra}


def _object(required: dict[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "required": list(required), "properties": required, **extra}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


TIME = _nullable("string", format="date-time")
TEXT = _nullable("string")
COUNT = {"type": "integer", "minimum": 0}

JOB = _object(
    {
        "name": {"type": "string"},
        "description": TEXT,
        "state": {"enum": JOB_STATES},
        "paused_reason": TEXT,
        "action": {"enum": ACTIONS},
        "trigger": {"enum": SCHEDULE_KINDS},
        "schedule": TEXT,
        "timezone": {"type": "string"},
        "next_run_at": TIME,
        "last_run_at": TIME,
        "last_status": _nullable("string"),
        "last_success_at": TIME,
        "runs_total": COUNT,
        "runs_succeeded": COUNT,
        "runs_failed": COUNT,
        "runs_skipped": COUNT,
        "runs_missed": COUNT,
        "consecutive_failures": COUNT,
        "spec": {"type": "object"},
        "policies": {"type": "object"},
        "created_at": TIME,
        "updated_at": TIME,
        "success_rate": _nullable("number", minimum=0, maximum=1),
        "avg_duration_ms": _nullable("integer"),
        "p95_duration_ms": _nullable("integer"),
        "recent": {"type": "array", "items": {"enum": STATUSES}},
        "current_run": _nullable("object"),
    }
)
JOB_DETAIL = {
    "allOf": [
        _ref("Job"),
        _object(
            {
                "after": {"type": "array", "items": {"type": "string"}},
                "webhook": {"type": "boolean"},
                "upcoming": {"type": "array", "items": {"type": "string", "format": "date-time"}},
            }
        ),
    ]
}
RUN = _object(
    {
        "id": {"type": "integer", "minimum": 1},
        "job": TEXT,
        "trigger": {"enum": TRIGGERS},
        "status": {"enum": STATUSES},
        "attempt": {"type": "integer", "minimum": 1},
        "scheduled_for": TIME,
        "started_at": TIME,
        "finished_at": TIME,
        "duration_ms": _nullable("integer"),
        "http_status": _nullable("integer"),
        "exit_code": _nullable("integer"),
        "error": TEXT,
        "output": TEXT,
        "rerun_of": _nullable("integer"),
        "adhoc": _nullable("object"),
    }
)
# A team's run only: each member's turn (n, agent, role, model, prompt, answer, ...).
RUN["properties"]["steps"] = {"type": "array", "items": {"type": "object"}}
RUN_DETAIL = {
    "allOf": [
        _ref("Run"),
        _object(
            {
                "snapshot": _nullable("object"),
                "details": {"type": "object"},
                "cancel_requested_at": TIME,
            }
        ),
    ]
}
PIECE = _object(
    {
        "run": {"type": "integer"},
        "seq": COUNT,
        "stream": {"type": "string"},
        "at": {"type": "string", "format": "date-time"},
        "text": {"type": "string"},
    }
)
AGENT = _object(
    {
        "name": {"type": "string"},
        "kind": {"type": "string"},
        "url": TEXT,
        "model": TEXT,
        "timeout": {},
        "jobs": {"type": "array", "items": {"type": "string"}},
        "created_at": TIME,
        "updated_at": TIME,
    }
)
STATUS = _object(
    {
        "daemon": _object({"running": {"type": "boolean"}, "pid": _nullable("integer")}),
        "jobs": _object({"enabled": COUNT, "paused": COUNT, "completed": COUNT}),
        "failed_24h": COUNT,
        "missed_24h": COUNT,
        "counts_24h": {"type": "object", "additionalProperties": COUNT},
        "failing_jobs": {"type": "array"},
        "auto_paused": {"type": "array"},
        "upcoming": {"type": "array"},
        "in_flight": {"type": "array"},
    }
)
EVENT = _object(
    {
        "id": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "type": {"type": "string"},
        "job": TEXT,
        "run": _nullable("integer"),
    }
)
SCHEMAS: dict[str, Schema] = {
    "Error": _object({"error": {"type": "string"}}, additionalProperties=False),
    "Job": JOB,
    "JobDetail": JOB_DETAIL,
    "JobEntry": {
        "type": "object",
        "description": "One [[jobs]] entry of an `apply` file, as JSON",
        "properties": {key: {} for key in ("name", "description", "state", "action")}
        | {key: {} for key in ("trigger", "schedule", "timezone", "spec", "policies")},
    },
    "Run": RUN,
    "RunDetail": RUN_DETAIL,
    "OutputPiece": PIECE,
    "Queued": _object({"job": {"type": "string"}, "run": {"type": "integer"}}),
    "Cancel": _object({"run": {"type": "integer"}, "status": {"enum": ["cancelled", "running"]}}),
    "Cleared": _object({"job": {"type": "string"}, "deleted": COUNT}),
    "Agent": AGENT,
    "Status": STATUS,
    "Event": EVENT,
}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _list(name: str) -> Schema:
    return {"type": "array", "items": _ref(name)}


ERRORS = {
    "400": "bad input (the CLI's exit 2)",
    "404": "no such job, run or agent (exit 3)",
    "409": "refused in the current state (exit 1)",
}
NEXT_LINK = {
    "Link": {
        "description": 'the next page: `<URL?before=ID>; rel="next"` (only when the page is full)',
        "schema": {"type": "string"},
    }
}


def _operation(
    summary: str,
    status: str,
    body: Schema | None,
    *,
    parameters: tuple[str, ...] = (),
    request: str | None = None,
    errors: tuple[str, ...] = ("404",),
    headers: Schema | None = None,
) -> Schema:
    answer: Schema = {"description": summary} if body is None else _json(body, summary)
    if headers:
        answer["headers"] = headers
    responses: Schema = {status: answer, "401": _json(_ref("Error"), "no or a wrong token")}
    for code in errors:
        responses[code] = _json(_ref("Error"), ERRORS[code])
    responses["503"] = _json(_ref("Error"), "the database cannot be written")
    operation: Schema = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = [_ref_parameter(name) for name in parameters]
    if request:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(request)}},
        }
    return operation


def _ref_parameter(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": description}


PARAMETERS: dict[str, Schema] = {
    "name": {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
    "id": {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
    "job": _query("job", {"type": "string"}, "only this job's runs"),
    "status": _query("status", {"type": "string"}, "statuses, comma-separated or repeated"),
    "trigger": _query("trigger", {"type": "string"}, "triggers, comma-separated or repeated"),
    "since": _query("since", {"type": "string"}, "a duration ago (24h) or a time"),
    "until": _query("until", {"type": "string"}, "a duration ago (1h) or a time"),
    "adhoc": _query("adhoc", {"type": "boolean"}, "only ad hoc runs"),
    "limit": _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "default 50"),
    "before": _query("before", {"type": "integer"}, "the cursor: runs older than this id"),
    "state": _query("state", {"enum": JOB_STATES}, "only this state"),
    "q": _query("q", {"type": "string"}, "a part of the name"),
    "force": _query("force", {"type": "boolean"}, "even with a run in flight"),
    "n": _query("n", {"type": "integer", "minimum": 1, "maximum": 1000}, "how many (5)"),
    "after": _query("after", {"type": "integer", "minimum": 0}, "pieces after this seq"),
    "since_id": _query("since_id", {"type": "integer"}, "events after this id"),
    "type": _query("type", {"type": "string"}, "event types, comma-separated or repeated"),
}
RUN_FILTERS = ("status", "trigger", "since", "until", "limit", "before")
JOB_ONLY = ("name",)
RUN_ONLY = ("id",)

PATHS: dict[str, Schema] = {
    "/jobs": {
        "get": _operation(
            "jobs, as `list --json`", "200", _list("Job"), parameters=("state", "q"),
            errors=("400",),
        ),
        "post": _operation(
            "add a job (201 + `show --json`)", "201", _ref("JobDetail"), request="JobEntry",
            errors=("400", "409"),
        ),
    },
    "/jobs/{name}": {
        "get": _operation("a job, as `show NAME --json`", "200", _ref("JobDetail"),
                          parameters=JOB_ONLY),
        "patch": _operation("change the keys given, as `edit`", "200", _ref("JobDetail"),
                            parameters=JOB_ONLY, request="JobEntry",
                            errors=("400", "404", "409")),
        "delete": _operation("remove a job, as `rm`", "204", None,
                             parameters=("name", "force"), errors=("400", "404", "409")),
    },
    "/jobs/{name}/pause": {"post": _operation("pause", "200", _ref("JobDetail"),
                                              parameters=JOB_ONLY, errors=("404", "409"))},
    "/jobs/{name}/resume": {"post": _operation("resume", "200", _ref("JobDetail"),
                                               parameters=JOB_ONLY, errors=("404", "409"))},
    "/jobs/{name}/run": {"post": _operation("queue a manual run (`run --queue`)", "202",
                                            _ref("Queued"), parameters=JOB_ONLY,
                                            errors=("404", "409"))},
    "/jobs/{name}/next": {"get": _operation("next fire times (`next --json`)", "200",
                                            {"type": "array", "items": {"type": "string"}},
                                            parameters=("name", "n"), errors=("400", "404"))},
    "/jobs/{name}/runs": {
        "get": _operation("a job's runs (`runs NAME --json`)", "200", _list("Run"),
                          parameters=JOB_ONLY + RUN_FILTERS, errors=("400", "404"),
                          headers=NEXT_LINK),
        "delete": _operation("clear a job's history (`runs clear NAME`)", "200",
                             _ref("Cleared"), parameters=JOB_ONLY),
    },
    "/runs": {"get": _operation("runs, newest first (`runs --json`)", "200", _list("Run"),
                                parameters=("job", "adhoc", *RUN_FILTERS),
                                errors=("400", "404"), headers=NEXT_LINK)},
    "/runs/{id}": {"get": _operation("a run (`runs show ID --json`)", "200",
                                     _ref("RunDetail"), parameters=RUN_ONLY,
                                     errors=("400", "404"))},
    "/runs/{id}/output": {"get": _operation("a run's output pieces after a seq", "200",
                                            _list("OutputPiece"), parameters=("id", "after"),
                                            errors=("400", "404"))},
    "/runs/{id}/cancel": {"post": _operation("cancel a run (`runs cancel --no-wait`)", "202",
                                             _ref("Cancel"), parameters=RUN_ONLY,
                                             errors=("400", "404", "409"))},
    "/runs/{id}/rerun": {"post": _operation("queue a rerun (`runs rerun`)", "202",
                                            _ref("Queued"), parameters=RUN_ONLY,
                                            errors=("400", "404", "409"))},
    "/agents": {"get": _operation("agents (`agent list --json`)", "200", _list("Agent"),
                                  errors=())},
    "/agents/{name}": {"get": _operation("an agent (`agent show NAME --json`)", "200",
                                         _ref("Agent"), parameters=JOB_ONLY)},
    "/status": {"get": _operation("`status --json`", "200", _ref("Status"), errors=())},
    "/openapi.json": {"get": _operation("this document", "200", {"type": "object"},
                                        errors=())},
    "/events": {
        "get": {
            "summary": "the event stream as server-sent events (resume with Last-Event-ID)",
            "parameters": [_ref_parameter(name) for name in ("since_id", "type", "job")]
            + [{"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}],
            "responses": {
                "200": {
                    "description": "`id: N`, `event: TYPE`, `data: Event` per event",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "400": _json(_ref("Error"), ERRORS["400"]),
                "401": _json(_ref("Error"), "no or a wrong token"),
            },
        }
    },
}  # fmt: skip


def document(server: str = "/api/v1") -> Schema:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobctl API",
            "version": __version__,
            "description": "The daemon's REST API: the same JSON as the CLI's --json.",
        },
        "servers": [{"url": server}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "jobctl_session"},
            },
        },
    }


async def serve(request: web.Request) -> web.Response:
    """GET /api/v1/openapi.json."""
    from jobctl.web.api_common import answer

    return answer(document())
