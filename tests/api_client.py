"""A client for the daemon's REST API in tests: real HTTP (urllib) with the API token, and
every JSON answer checked against the OpenAPI document the daemon serves (the operation's
documented status and schema), so that each API test also tests the document."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from click.testing import CliRunner

from jobctl.cli import cli
from tests.realparts import DaemonProcess

PREFIX = "/api/v1"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any  # the JSON, or None for an empty body

    @property
    def error(self) -> str:
        assert isinstance(self.body, dict) and set(self.body) == {"error"}, self.body
        return str(self.body["error"])


@dataclass
class Api:
    """`api.get("/jobs")` sends GET {base}/api/v1/jobs with the token."""

    base: str
    token: str
    document: dict[str, Any] | None = None
    seen: set[tuple[str, str, int]] = field(default_factory=set)  # (method, path, status)

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = "",
    ) -> Answer:
        sent = {"Content-Type": "application/json", **(headers or {})}
        token = self.token if token == "" else token
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(
            self.base + PREFIX + path, data=data, headers=sent, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                status, text, got = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, text, got = error.code, error.read(), dict(error.headers)
        answer = Answer(status, got, json.loads(text) if text else None)
        if text:
            assert got["Content-Type"].startswith("application/json"), got
        self.check(method, path, answer)
        return answer

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: object = None, **kwargs: Any) -> Answer:
        return self.request("POST", path, body, **kwargs)

    def patch(self, path: str, body: object = None, **kwargs: Any) -> Answer:
        return self.request("PATCH", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Answer:
        return self.request("DELETE", path, **kwargs)

    def check(self, method: str, path: str, answer: Answer) -> None:
        """The answer is one the document promises for this operation, in its schema."""
        if self.document is None or answer.status in (405,):
            return
        template = operation_path(self.document, path.split("?", 1)[0])
        if template is None:
            assert answer.status == 404, f"{method} {path} is not in the document"
            return
        operation = self.document["paths"][template].get(method.lower())
        assert operation is not None, f"{method} {template} is not in the document"
        responses = operation["responses"]
        assert str(answer.status) in responses, (method, path, answer.status, answer.body)
        self.seen.add((method, template, answer.status))
        content = responses[str(answer.status)].get("content")
        if content is None:
            assert answer.body is None, (method, path, answer.body)
            return
        pointer = "/".join(
            part.replace("~", "~0").replace("/", "~1")
            for part in ("paths", template, method.lower(), "responses", str(answer.status))
        )
        validate(self.document, f"{pointer}/content/application~1json/schema", answer.body)


def operation_path(document: dict[str, Any], path: str) -> str | None:
    """The document's path template matching a request path (`/jobs/x` -> `/jobs/{name}`)."""
    for template in document["paths"]:
        pattern = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return str(template)
    return None


def validate(document: dict[str, Any], pointer: str, instance: object) -> None:
    """Validate `instance` against the schema at `pointer` in the OpenAPI document."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    root = {**document, "$id": "urn:jobctl-api"}
    registry = Registry().with_resource(
        "urn:jobctl-api", Resource.from_contents(root, default_specification=DRAFT202012)
    )
    schema = {"$ref": "urn:jobctl-api#/" + quote(pointer, safe="/~")}
    Draft202012Validator(schema, registry=registry).validate(instance)


def set_token(db: Path, token: str) -> None:
    """Store the API token the daemon checks (the daemon keeps one that exists)."""
    from jobctl.store import open_store

    store = open_store(db)
    try:
        store.set_setting("api_token", token)
    finally:
        store.close()


def cli_json(db: Path, *args: str) -> Any:
    """The CLI's --json answer for the same database, in this process."""
    result = CliRunner().invoke(cli, [*args, "--json"], env={"JOBCTL_DB": str(db)})
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def cli_error(db: Path, *args: str) -> tuple[int, str]:
    """The exit code and the one-line message of a CLI command that fails."""
    result = CliRunner().invoke(cli, list(args), env={"JOBCTL_DB": str(db)})
    assert result.exit_code != 0, result.stdout
    return result.exit_code, result.stderr.strip().removeprefix("jobctl: ")


def start_api(db: Path, token: str = "test-token-0123456789") -> tuple[DaemonProcess, Api]:
    """A real `jobctl daemon --listen 127.0.0.1:0` on `db`, and a client with its token and
    the OpenAPI document it serves."""
    from tests.realparts import query, wait_until

    set_token(db, token)
    daemon = DaemonProcess(db, "--listen", "127.0.0.1:0").wait_ready()
    row = wait_until(
        lambda: query(db, "SELECT listen FROM daemon WHERE listen IS NOT NULL"),
        what="the listener",
    )
    api = Api(str(row[0][0]), token)
    document = api.get("/openapi.json")
    assert document.status == 200
    api.document = document.body
    return daemon, api
