"""Jobs as a file: `export` writes TOML or JSON; reading one back (`apply` is jobctl.apply).

A document is `version = 1`, an `agents` array of tables (the agent profiles that agent
jobs prompt; API keys are only ever variable names) and an array of `[[jobs]]` tables.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Required, TypedDict

from jobctl import policies
from jobctl.agents import list_agents
from jobctl.catalog import list_jobs
from jobctl.errors import InvalidInput
from jobctl.models import DEFAULT_QUEUE, Agent, AgentSpec, Job, Team
from jobctl.secrets import literal_secrets, redact_url

if TYPE_CHECKING:
    from jobctl.store.protocol import Store

VERSION = 1
FORMATS = ("toml", "json")
DOCUMENT_KEYS = ("version", "agents", "teams", "jobs")
# An agent entry: its name and kind, then its settings in the order export writes them.
AGENT_KEYS = (
    "name",
    "kind",
    "url",
    "model",
    "api_key_env",
    "system",
    "temperature",
    "max_tokens",
    "headers",
    "command",
    "timeout",
    "budget_tokens",
    "budget_per",
    "price_in",
    "price_out",
)


# A document as read: parsed TOML or JSON, its values unchecked until validated.
Document = dict[str, object]


class JobEntry(TypedDict, total=False):
    """A `[[jobs]]` table as export writes it (a document read back is checked key by key)."""

    name: Required[str]
    description: str
    queue: str
    state: str
    action: str
    trigger: str
    schedule: str
    timezone: str
    spec: dict[str, object]
    policies: dict[str, object]


@contextmanager
def bulk_work() -> Iterator[None]:
    """Pause the cyclic garbage collector while a whole file is handled.

    100,000 jobs are millions of small objects, none of them in cycles; the collector's full
    passes over them found nothing to free and cost up to 40% of an apply or export.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ---------------------------------------------------------------------------- export


def export_entry(job: Job) -> JobEntry:
    """One `[[jobs]]` table: the job as stored (secrets unredacted), null values left out."""
    entry: JobEntry = {"name": job.name}
    if job.description:
        entry["description"] = job.description
    if job.queue != DEFAULT_QUEUE:
        entry["queue"] = job.queue
    entry["state"], entry["action"], entry["trigger"] = job.state, job.action, job.schedule_kind
    if job.schedule is not None:
        entry["schedule"] = job.schedule
    entry["timezone"] = job.timezone
    # Unknown keys are written too, so that apply refuses them instead of losing them.
    spec = {
        key: value for key, value in job.spec.to_dict().items() if value is not None and value != {}
    }
    if spec:
        entry["spec"] = spec
    stored = job.policies.to_dict()
    if stored:
        table: dict[str, object] = {
            name: _policy_text(name, stored[name])
            for name in policies.POLICY_NAMES
            if stored.get(name) is not None
        }
        if job.policies.notify:
            table["notify"] = [target.to_dict() for target in job.policies.notify]
        entry["policies"] = table
    return entry


def _policy_text(name: str, value: object) -> object:
    """Durations as text (`30s`) when the text reads back exactly; others as stored."""
    if name not in policies.DURATION_POLICIES:
        return value
    text = policies.as_text(name, value)
    try:
        exact = policies.parse_policy(name, text) == value
    except InvalidInput:  # sub-second text where only whole seconds are accepted
        exact = False
    return text if exact else value


def export_agent_entry(agent: Agent) -> dict[str, object]:
    """One `[[agents]]` table: the profile as stored (an API key only as a variable name)."""
    entry: dict[str, object] = {"name": agent.name, "kind": agent.kind}
    # Unknown keys are written too, so that apply refuses them instead of losing them.
    unknown = sorted(key for key in agent.config if key not in AGENT_KEYS)
    for key in [*AGENT_KEYS[2:], *unknown]:
        value = agent.config.get(key)
        if value is not None and value != {}:
            entry[key] = _policy_text("timeout", value) if key == "timeout" else value
    return entry


def export_document(
    jobs: Iterable[Job], agents: Iterable[Agent] = (), teams: Iterable[Team] = ()
) -> Document:
    """`teams` only when there are some (files from before teams stay as they were)."""
    from jobctl.team_file import export_team_entry

    doc: Document = {"version": VERSION, "agents": [export_agent_entry(a) for a in agents]}
    team_entries = [export_team_entry(team) for team in teams]
    if team_entries:
        doc["teams"] = team_entries
    doc["jobs"] = [export_entry(job) for job in jobs]
    return doc


def export_jobs(
    store: Store, names: Iterable[str] = (), fmt: str = "toml"
) -> tuple[str, list[str]]:
    """The named jobs (all by default) and their agents (all agents when no names are
    given) as a document, and a warning per literal secret."""
    wanted = list(names)
    with bulk_work():
        jobs = list_jobs(store, wanted)
        agents = list_agents(store)
        teams = store.all_teams()
        if wanted:
            specs = [job.spec for job in jobs if isinstance(job.spec, AgentSpec)]
            teams = [team for team in teams if team.name in {spec.team for spec in specs}]
            used = {spec.agent for spec in specs} | {m.agent for t in teams for m in t.members}
            agents = [agent for agent in agents if agent.name in used]
        document = export_document(jobs, agents, teams)
        return dumps(document, fmt), literal_secret_warnings(jobs, agents)


def literal_secret_warnings(jobs: Iterable[Job], agents: Iterable[Agent] = ()) -> list[str]:
    """One line per literal secret an export writes, suggesting a `${NAME}` reference."""
    advice = "use a ${NAME} reference, expanded by the daemon at fire time"
    return [
        f"agent {agent.name!r}: {what} written as a literal secret; {advice}"
        for agent in agents
        for what in literal_secrets(agent.config)
    ] + [
        f"job {job.name!r}: {what} written as a literal secret; {advice}"
        for job in jobs
        for what in [*literal_secrets(job.spec.to_dict()), *_notify_secrets(job)]
    ]


def _notify_secrets(job: Job) -> list[str]:
    return [
        "--notify-on URL credentials"
        for target in job.policies.notify
        if redact_url(target.url) != target.url
    ]


def dumps(doc: Mapping[str, object], fmt: str = "toml") -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt != "toml":
        raise InvalidInput(f"unknown format {fmt!r}: choose toml or json")
    import tomli_w

    # TOML multi-line strings read a CR LF back as LF, so only use them when no text has CR.
    return tomli_w.dumps(doc, multiline_strings=not _has_carriage_return(doc))


def _has_carriage_return(value: object) -> bool:
    if isinstance(value, str):
        return "\r" in value
    if isinstance(value, Mapping):
        return any(_has_carriage_return(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_carriage_return(item) for item in value)
    return False


# ----------------------------------------------------------------------------- reading


def sniff_format(text: str) -> str:
    """JSON documents start with `{`, which TOML cannot."""
    return "json" if text.lstrip(" \t\r\n").startswith("{") else "toml"


def loads(text: str, fmt: str | None = None) -> Document:
    text = text.removeprefix("\ufeff")
    fmt = fmt or sniff_format(text)
    doc: object
    if fmt == "json":
        try:
            doc = json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
        except ValueError as exc:
            raise InvalidInput(f"invalid JSON: {exc}") from None
    elif fmt == "toml":
        import tomllib

        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"invalid TOML: {exc}") from None
    else:
        raise InvalidInput(f"unknown format {fmt!r}: choose toml or json")
    if not isinstance(doc, dict):
        raise InvalidInput("a jobs file holds a table with `version = 1` and `[[jobs]]` entries")
    return doc


def _refuse_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """JSON keeps the last of two equal keys silently; a jobs file must not (TOML refuses)."""
    table: dict[str, object] = {}
    for key, value in pairs:
        if key in table:
            raise ValueError(f"duplicate key {key!r}")
        table[key] = value
    return table


def read_document(path: str) -> Document:
    """Read and parse a jobs file, or standard input for `-`; errors name the file."""
    source = "standard input" if path == "-" else path
    from jobctl.textfiles import DOCUMENT_LIMIT, read_text

    try:
        text = read_text(path, limit=DOCUMENT_LIMIT, what=source)
    except OSError as exc:
        raise InvalidInput(f"cannot read {source}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"cannot read {source}: not UTF-8 text") from None
    try:
        with bulk_work():
            return loads(text, next((fmt for fmt in FORMATS if path.endswith(f".{fmt}")), None))
    except InvalidInput as exc:
        raise InvalidInput(f"{source}: {exc}") from None
