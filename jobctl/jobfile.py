"""Jobs as a file: `export` writes TOML or JSON, `apply` reads it back in one transaction.

A document is `version = 1`, an `agents` array of tables (the agent profiles that agent
jobs prompt; API keys are only ever variable names) and an array of `[[jobs]]` tables. Each
entry is turned into the options mapping the command line uses, so `agents.build_agent` and
`jobs.build_job` do all the validation. `apply` writes agents before jobs, in the same
transaction; it is idempotent (an entry equal to the stored one is not written) and is the
bulk path: it loads the stored jobs once and writes with executemany.
"""

from __future__ import annotations

import difflib
import gc
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from jobctl import policies
from jobctl.agents import KINDS, Agent, build_agent, list_agents
from jobctl.errors import Failed, InvalidInput, JobctlError, NotFound
from jobctl.jobs import (
    _COLUMNS,
    ACTIONS,
    SPEC_KEYS,
    TRIGGERS,
    Job,
    _column_values,
    build_job,
    compute_next_run,
    list_jobs,
    ordered_spec,
)
from jobctl.secrets import literal_secrets, redact_url
from jobctl.store.sqlite import write_transaction
from jobctl.timeutil import to_db

VERSION = 1
FORMATS = ("toml", "json")
DOCUMENT_KEYS = ("version", "agents", "jobs")
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
)
_AGENT_TEXT_KEYS = ("url", "model", "api_key_env", "system", "command")
_AGENT_HTTP_KEYS = ("url", "model", "api_key_env", "system", "temperature", "max_tokens", "headers")
ENTRY_KEYS = (
    "name",
    "description",
    "state",
    "action",
    "trigger",
    "schedule",
    "timezone",
    "spec",
    "policies",
)
# Document keys holding text -> the CLI option each becomes (the first spec key per action
# above is the one it cannot do without).
_TEXT_ENTRY_OPTIONS = {
    "name": "name",
    "description": "description",
    "state": "state",
    "timezone": "tz",
}
_TEXT_SPEC_OPTIONS = {
    "url": "url",
    "method": "method",
    "body": "body",
    "expect": "expect",
    "agent": "agent",
    "prompt": "prompt",
    "deliver": "deliver",
    "command": "exec",
    "cwd": "cwd",
}
# Spec tables -> the repeated CLI option and its 'K: V' / 'K=V' separator.
_TABLE_SPEC_OPTIONS = {"headers": ("header", ": "), "env": ("env", "=")}

# Columns `apply` writes for a changed job. The daemon also writes state and timing (a fire,
# an auto-pause), so those are written only when the file changes the schedule or state:
# what the daemon did between planning and writing is otherwise kept.
_DEFINITION_COLUMNS = ("description", "action", "spec", "policies", "updated_at")
_SCHEDULE_COLUMNS = (
    "state",
    "paused_reason",
    "trigger",
    "schedule",
    "timezone",
    "next_run_at",
    "last_slot_at",
    "consecutive_failures",
)


@contextmanager
def _bulk_work() -> Iterator[None]:
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


def export_entry(job: Job) -> dict[str, Any]:
    """One `[[jobs]]` table: the job as stored (secrets unredacted), null values left out."""
    entry: dict[str, Any] = {"name": job.name}
    if job.description:
        entry["description"] = job.description
    entry["state"], entry["action"], entry["trigger"] = job.state, job.action, job.trigger
    if job.schedule is not None:
        entry["schedule"] = job.schedule
    entry["timezone"] = job.timezone
    # Unknown keys are written too, so that apply refuses them instead of losing them.
    spec = {
        key: value
        for key, value in ordered_spec(job.action, job.spec).items()
        if value is not None and value != {}
    }
    if spec:
        entry["spec"] = spec
    if job.policies:
        entry["policies"] = {
            name: _policy_text(name, job.policies[name])
            for name in policies.POLICY_NAMES
            if job.policies.get(name) is not None
        }
        if job.policies.get("notify"):
            entry["policies"]["notify"] = [dict(item) for item in job.policies["notify"]]
    return entry


def _policy_text(name: str, value: Any) -> Any:
    """Durations as text (`30s`) when the text reads back exactly; others as stored."""
    if name not in policies.DURATION_POLICIES:
        return value
    text = policies.as_text(name, value)
    try:
        exact = policies.parse_policy(name, text) == value
    except InvalidInput:  # sub-second text where only whole seconds are accepted
        exact = False
    return text if exact else value


def export_agent_entry(agent: Agent) -> dict[str, Any]:
    """One `[[agents]]` table: the profile as stored (an API key only as a variable name)."""
    entry: dict[str, Any] = {"name": agent.name, "kind": agent.kind}
    # Unknown keys are written too, so that apply refuses them instead of losing them.
    unknown = sorted(key for key in agent.config if key not in AGENT_KEYS)
    for key in [*AGENT_KEYS[2:], *unknown]:
        value = agent.config.get(key)
        if value is not None and value != {}:
            entry[key] = _policy_text("timeout", value) if key == "timeout" else value
    return entry


def export_document(jobs: Iterable[Job], agents: Iterable[Agent] = ()) -> dict[str, Any]:
    return {
        "version": VERSION,
        "agents": [export_agent_entry(agent) for agent in agents],
        "jobs": [export_entry(job) for job in jobs],
    }


def export_jobs(
    conn: sqlite3.Connection, names: Iterable[str] = (), fmt: str = "toml"
) -> tuple[str, list[str]]:
    """The named jobs (all by default) and their agents (all agents when no names are
    given) as a document, and a warning per literal secret."""
    wanted = list(names)
    with _bulk_work():
        jobs = list_jobs(conn, wanted)
        agents = list_agents(conn)
        if wanted:
            used = {job.spec.get("agent") for job in jobs if job.action == "agent"}
            agents = [agent for agent in agents if agent.name in used]
        return dumps(export_document(jobs, agents), fmt), literal_secret_warnings(jobs, agents)


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
        for what in [*literal_secrets(job.spec), *_notify_secrets(job)]
    ]


def _notify_secrets(job: Job) -> list[str]:
    return [
        "--notify-on URL credentials"
        for item in job.policies.get("notify") or []
        if redact_url(item["url"]) != item["url"]
    ]


def dumps(doc: Mapping[str, Any], fmt: str = "toml") -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt != "toml":
        raise InvalidInput(f"unknown format {fmt!r}: choose toml or json")
    import tomli_w

    # TOML multi-line strings read a CR LF back as LF, so only use them when no text has CR.
    return tomli_w.dumps(doc, multiline_strings=not _has_carriage_return(doc))


def _has_carriage_return(value: Any) -> bool:
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


def loads(text: str, fmt: str | None = None) -> dict[str, Any]:
    text = text.removeprefix("\ufeff")
    fmt = fmt or sniff_format(text)
    doc: Any
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


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON keeps the last of two equal keys silently; a jobs file must not (TOML refuses)."""
    table: dict[str, Any] = {}
    for key, value in pairs:
        if key in table:
            raise ValueError(f"duplicate key {key!r}")
        table[key] = value
    return table


def read_document(path: str) -> dict[str, Any]:
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
        with _bulk_work():
            return loads(text, next((fmt for fmt in FORMATS if path.endswith(f".{fmt}")), None))
    except InvalidInput as exc:
        raise InvalidInput(f"{source}: {exc}") from None


def _entries(doc: Mapping[str, Any], key: str = "jobs") -> list[Any]:
    _refuse_unknown(doc, DOCUMENT_KEYS, "key")
    version = doc.get("version", VERSION)
    if version != VERSION or isinstance(version, bool):
        raise InvalidInput(f"unsupported version {version!r}: this jobctl reads version {VERSION}")
    entries = doc.get(key, [])
    if not isinstance(entries, list):
        raise InvalidInput(f"`{key}` must be an array of tables ([[{key}]] in TOML)")
    return entries


def _refuse_unknown(table: Mapping[str, Any], known: tuple[str, ...], what: str) -> None:
    if table.keys() <= set(known):
        return
    allowed = list(known)
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"
            raise InvalidInput(f"unknown {what} {key!r}{hint}")


def _require_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text, not {_type_name(value)}")
    return value


def _choice_message(key: str, value: Any, choices: Iterable[str]) -> str:
    problem = f"missing {key}" if value is None else f"invalid {key} {value!r}"
    return f"{problem}: choose one of {', '.join(choices)}"


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def entry_options(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A document entry as the options mapping `add` passes to `jobs.build_job`."""
    _refuse_unknown(entry, ENTRY_KEYS, "key")
    options: dict[str, Any] = {}
    for key, option in _TEXT_ENTRY_OPTIONS.items():
        value = entry.get(key)
        if value is not None:
            options[option] = _require_text(value, key)
    action = entry.get("action")
    if action not in ACTIONS:
        raise InvalidInput(_choice_message("action", action, ACTIONS))
    options.update(_spec_options(action, entry.get("spec")))
    options.update(_trigger_options(entry))
    raw_policies = entry.get("policies")
    if raw_policies is not None:
        if not isinstance(raw_policies, Mapping):
            raise InvalidInput(f"policies must be a table, not {_type_name(raw_policies)}")
        _refuse_unknown(raw_policies, (*policies.POLICY_NAMES, "notify"), "policy")
        for name, value in raw_policies.items():
            if name == "notify":
                options["notify_on"] = _notify_pairs(value)
                continue
            if not isinstance(value, str | int | float):
                raise InvalidInput(
                    f"policies.{name} must be text or a number, not {_type_name(value)}"
                )
            options[name] = value
    return options


def _notify_pairs(value: Any) -> list[tuple[str, str]]:
    """policies.notify: a list of {on, url} tables, as `--notify-on WHEN URL` pairs."""
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise InvalidInput("policies.notify must be a list of {on, url} tables")
    pairs = []
    for item in value:
        _refuse_unknown(item, ("on", "url"), "policies.notify key")
        pairs.append(
            (
                _require_text(item.get("on"), "policies.notify.on"),
                _require_text(item.get("url"), "policies.notify.url"),
            )
        )
    return pairs


def _spec_options(action: str, spec: Any) -> dict[str, Any]:
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"spec must be a table, not {_type_name(spec)}")
    _refuse_unknown(spec, SPEC_KEYS[action], f"{action} spec key")
    options: dict[str, Any] = {}
    for key, value in spec.items():
        if value is None:
            continue
        if key in ("headers", "env"):
            options[_TABLE_SPEC_OPTIONS[key][0]] = _pairs(key, value, f"spec.{key}")
        elif key in ("shell", "forward_payload"):
            if not isinstance(value, bool):
                raise InvalidInput(f"spec.{key} must be true or false, not {_type_name(value)}")
            options[key] = value
        else:
            options[_TEXT_SPEC_OPTIONS[key]] = _require_text(value, f"spec.{key}")
    main_key = SPEC_KEYS[action][0]
    if _TEXT_SPEC_OPTIONS[main_key] not in options:
        raise InvalidInput(f"an {action} job needs spec.{main_key}")
    return options


def _pairs(key: str, table: Any, where: str) -> tuple[str, ...]:
    """spec.headers / spec.env as the CLI's repeated 'K: V' / 'K=V' options."""
    option, separator = _TABLE_SPEC_OPTIONS[key]
    if not isinstance(table, Mapping) or not all(isinstance(v, str) for v in table.values()):
        raise InvalidInput(f"{where} must be a table of text values")
    for name in table:
        # The CLI form splits at the first separator, so a name holding one would shift it.
        if separator.strip() in name:
            raise InvalidInput(f"invalid {option} name {name!r} in {where}")
    return tuple(f"{name}{separator}{value}" for name, value in table.items())


def _trigger_options(entry: Mapping[str, Any]) -> dict[str, Any]:
    trigger = entry.get("trigger")
    if trigger not in TRIGGERS:
        raise InvalidInput(_choice_message("trigger", trigger, TRIGGERS))
    schedule = entry.get("schedule")
    if trigger == "manual":
        if schedule is not None:
            raise InvalidInput("a manual trigger takes no schedule")
        return {"manual": True}
    if isinstance(schedule, datetime) and trigger == "once":
        schedule = schedule.isoformat()  # a TOML date-time; without an offset, in the job's zone
    if not isinstance(schedule, str) or not schedule.strip():
        raise InvalidInput(
            f"the {trigger} trigger needs a schedule"
            + (f" as text, not {_type_name(schedule)}" if schedule is not None else "")
        )
    return {"cron": {"cron": schedule}, "every": {"every": schedule}, "once": {"at": schedule}}[
        trigger
    ]


def agent_entry_options(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An `[[agents]]` entry as the options mapping `agent add` passes to `build_agent`."""
    _refuse_unknown(entry, AGENT_KEYS, "agent key")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise InvalidInput(_choice_message("kind", kind, KINDS))
    refused = _AGENT_HTTP_KEYS if kind == "command" else ("command",)
    for key in refused:
        if key in entry:
            raise InvalidInput(f"{key} does not apply to a {kind} agent")
    if kind == "command" and entry.get("command") is None:
        raise InvalidInput("a command agent needs command, the program to run")
    options: dict[str, Any] = {"name": _require_text(entry.get("name"), "name")}
    if kind != "command":
        options["kind"] = kind  # `--command` alone makes a command agent
    for key in _AGENT_TEXT_KEYS:
        if entry.get(key) is not None:
            options[key] = _require_text(entry[key], key)
    for key in ("temperature", "max_tokens", "timeout"):
        value = entry.get(key)
        if value is not None:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise InvalidInput(f"{key} must be text or a number, not {_type_name(value)}")
            options[key] = value
    if entry.get("headers") is not None:
        options["header"] = _pairs("headers", entry["headers"], "headers")
    return options


# ---------------------------------------------------------------------------- applying


@dataclass
class Plan:
    """What `apply` does: the jobs it adds, changes (new versions), removes and leaves."""

    added: list[Job] = field(default_factory=list)
    changed: list[Job] = field(default_factory=list)
    removed: list[Job] = field(default_factory=list)
    unchanged: list[Job] = field(default_factory=list)
    # Stored jobs the file does not list, kept because --prune was not given.
    not_in_file: list[str] = field(default_factory=list)
    # Changed jobs whose schedule or state changed: their schedule columns are rewritten.
    retimed: set[str] = field(default_factory=set)
    agents: AgentPlan = field(default_factory=lambda: AgentPlan())

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.agents.has_changes)

    def names(self) -> dict[str, Any]:
        return {
            "added": [job.name for job in self.added],
            "changed": [job.name for job in self.changed],
            "removed": [job.name for job in self.removed],
            "unchanged": [job.name for job in self.unchanged],
            "agents": self.agents.names(),
        }


@dataclass
class AgentPlan:
    """What `apply` does to agent profiles; written before the jobs that may use them."""

    added: list[Agent] = field(default_factory=list)
    changed: list[Agent] = field(default_factory=list)
    removed: list[Agent] = field(default_factory=list)
    unchanged: list[Agent] = field(default_factory=list)
    # Stored agents the file does not list, kept (no --prune, or a job still uses them).
    not_in_file: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def names(self) -> dict[str, list[str]]:
        return {
            "added": [agent.name for agent in self.added],
            "changed": [agent.name for agent in self.changed],
            "removed": [agent.name for agent in self.removed],
            "unchanged": [agent.name for agent in self.unchanged],
        }


def plan_apply(
    conn: sqlite3.Connection, doc: Mapping[str, Any], now: datetime, *, prune: bool = False
) -> Plan:
    """Validate every entry and compare it with the stored jobs; nothing is written.

    Errors name the entry (`jobs[3] ('nightly'): ...`) and keep the exit code of their kind.
    """
    entries = _entries(doc)
    stored = {job.name: job for job in _stored_jobs(conn)}
    plan = Plan()
    stored_agents = {agent.name: agent for agent in list_agents(conn)}
    listed_agents = _plan_agents(plan.agents, _entries(doc, "agents"), stored_agents)
    agents = set(stored_agents) | listed_agents
    builder = _JobBuilder(now)
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        where = f"jobs[{index}]" + (f" ({name!r})" if isinstance(name, str) else "")
        try:
            if not isinstance(entry, Mapping):
                raise InvalidInput(f"an entry must be a table, not {_type_name(entry)}")
            if isinstance(name, str) and name in seen:
                raise InvalidInput(f"duplicate name: jobs[{seen[name]}] has it too")
            _plan_entry(
                plan, entry, stored.get(name) if isinstance(name, str) else None, agents, builder
            )
        except JobctlError as exc:
            raise type(exc)(f"{where}: {exc}") from None
        seen[str(name)] = index
    missing = sorted(name for name in stored if name not in seen)
    if prune:
        plan.removed = [stored[name] for name in missing]
        _refuse_busy(conn, plan.removed)
    else:
        plan.not_in_file = missing
    if "agents" in doc:  # a file from before agents were exported says nothing about them
        # with --prune, the file's jobs are all the jobs there will be
        remaining = [*plan.added, *plan.changed, *plan.unchanged]
        used = {job.spec.get("agent") for job in remaining if job.action == "agent"}
        for name in sorted(set(stored_agents) - listed_agents):
            if prune and name not in used:
                plan.agents.removed.append(stored_agents[name])
            else:
                plan.agents.not_in_file.append(name)
    return plan


def _plan_agents(plan: AgentPlan, entries: list[Any], stored: Mapping[str, Agent]) -> set[str]:
    """Validate the `[[agents]]` entries into the plan; returns the names the file lists."""
    listed: dict[str, int] = {}
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        where = f"agents[{index}]" + (f" ({name!r})" if isinstance(name, str) else "")
        try:
            if not isinstance(entry, Mapping):
                raise InvalidInput(f"an entry must be a table, not {_type_name(entry)}")
            if isinstance(name, str) and name in listed:
                raise InvalidInput(f"duplicate name: agents[{listed[name]}] has it too")
            new = build_agent(agent_entry_options(entry))
        except JobctlError as exc:
            raise type(exc)(f"{where}: {exc}") from None
        listed[new.name] = index
        old = stored.get(new.name)
        if old is None:
            plan.added.append(new)
        elif (old.kind, old.config) == (new.kind, new.config):
            plan.unchanged.append(old)
        else:
            new.id, new.created_at = old.id, old.created_at
            plan.changed.append(new)
    return set(listed)


def _stored_jobs(conn: sqlite3.Connection) -> list[Job]:
    return [Job.from_row(row) for row in conn.execute("SELECT * FROM jobs")]


def _plan_entry(
    plan: Plan,
    entry: Mapping[str, Any],
    old: Job | None,
    agents: set[str],
    builder: _JobBuilder,
) -> None:
    if old is not None and entry == export_entry(old) and _agent_known(old, agents):
        # Exactly what export writes for the stored job: unchanged, without rebuilding it.
        plan.unchanged.append(old)
        return
    now = builder.now
    new = builder.build(entry_options(entry))
    _check_once_time(new, old, now)
    if not _agent_known(new, agents):
        name = new.spec.get("agent")
        raise NotFound(f"no agent named {name!r}: add it with `jobctl agent add {name} ...`")
    if old is None:
        plan.added.append(new)
        return
    _keep_fired_one_shot(new, old, now)
    if _definition(new) == _definition(old):
        plan.unchanged.append(old)
        return
    job, retimed = _merge(old, new, now)
    plan.changed.append(job)
    if retimed:
        plan.retimed.add(job.name)


def _agent_known(job: Job, agents: set[str]) -> bool:
    return job.action != "agent" or job.spec.get("agent") in agents


class _JobBuilder:
    """`jobs.build_job` for many entries, building each distinct schedule in full only once.

    build_job derives a new job's trigger, schedule and next run from the trigger option,
    zone and state alone, and that part (parsing a cron expression, computing fires to prove
    it fires) is most of its cost: here a cron job took about 140 us to build, a manual one
    20 us. A bulk file has few distinct schedules, so the first entry with each is built in
    full, and the others are built as manual jobs (validating everything else) and given
    that entry's schedule.
    """

    _TRIGGER_OPTIONS = ("cron", "every", "at")

    def __init__(self, now: datetime) -> None:
        self.now = now
        # (trigger option, its value, tz, state) -> (trigger, schedule, next_run_at)
        self._schedules: dict[tuple[Any, ...], tuple[str, str | None, datetime | None]] = {}

    def build(self, options: dict[str, Any]) -> Job:
        # Past one-shot times are refused by the caller, which knows the stored job.
        trigger = next((key for key in self._TRIGGER_OPTIONS if key in options), None)
        if trigger is None:  # manual: nothing to share
            return build_job(options, existing=None, now=self.now, allow_past=True)
        key = (trigger, options[trigger], options.get("tz"), options.get("state"))
        known = self._schedules.get(key)
        if known is None:
            job = build_job(options, existing=None, now=self.now, allow_past=True)
            self._schedules[key] = (job.trigger, job.schedule, job.next_run_at)
            return job
        manual = {name: value for name, value in options.items() if name != trigger}
        manual["manual"] = True
        job = build_job(manual, existing=None, now=self.now, allow_past=True)
        job.trigger, job.schedule, job.next_run_at = known
        return job


def _once_at(job: Job) -> datetime | None:
    return datetime.fromisoformat(job.schedule) if job.trigger == "once" and job.schedule else None


def _check_once_time(new: Job, old: Job | None, now: datetime) -> None:
    """A past one-shot time is kept only when it did not change or the job is completed."""
    at = _once_at(new)
    if at is None or at > now or new.state == "completed":
        return
    if old is not None and _once_at(old) == at:
        return
    raise InvalidInput(
        f"invalid schedule {new.schedule!r}: that time has passed (a past time is accepted "
        "only for a job whose time did not change or that is marked completed)"
    )


def _keep_fired_one_shot(new: Job, old: Job, now: datetime) -> None:
    """A one-shot the daemon fired stays completed while the file still names its time."""
    at = _once_at(new)
    if (
        old.state == "completed"
        and new.state == "enabled"
        and at is not None
        and at <= now
        and _timing_key(old) == _timing_key(new)
    ):
        new.state, new.next_run_at = "completed", None


def _timing_key(job: Job) -> tuple[str, str | None, str]:
    return job.trigger, job.schedule, job.timezone


def _definition(job: Job) -> tuple[Any, ...]:
    """What a file says about a job: equal definitions mean the entry is unchanged."""
    return (
        job.name,
        job.description,
        job.state,
        job.action,
        job.spec,
        job.trigger,
        job.schedule,
        job.timezone,
        job.policies,
    )


def _merge(old: Job, new: Job, now: datetime) -> tuple[Job, bool]:
    """The stored job with the file's definition: same id, counters and history.

    Returns the job and whether its timing (next run, last slot) was recomputed, which
    happens only when its schedule or state changed.
    """
    job = replace(
        old,
        description=new.description,
        state=new.state,
        action=new.action,
        spec=new.spec,
        trigger=new.trigger,
        schedule=new.schedule,
        timezone=new.timezone,
        policies=new.policies,
    )
    if job.state != "paused":
        job.paused_reason = None
    schedule_changed = _timing_key(old) != _timing_key(new)
    if not schedule_changed and job.state == old.state:
        return job, False
    if schedule_changed or old.state == "paused":
        job.last_slot_at = None
    if old.state == "paused":
        job.consecutive_failures = 0  # as `jobctl resume` does
    job.next_run_at = compute_next_run(job, now)
    return job, True


def _refuse_busy(conn: sqlite3.Connection, removed: list[Job]) -> None:
    if not removed:
        return
    busy = {
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT job_id FROM runs WHERE status IN ('running', 'queued')"
        )
    }
    for job in removed:
        if job.id in busy:
            raise Failed(
                f"job {job.name!r} is not in the file but has a run in flight: wait for it, "
                f"or remove it with `jobctl rm --force {job.name}`"
            )


def apply_plan(conn: sqlite3.Connection, plan: Plan, now: datetime) -> None:
    """Write the plan in one transaction; a plan with no changes writes nothing.

    The plan was made from a snapshot: if another process added, renamed or removed one of
    its jobs meanwhile, nothing is written and the caller is asked to apply again.
    """
    if not plan.has_changes:
        return
    with write_transaction(conn):
        _write_agents(conn, plan.agents, now)  # first: the jobs may prompt them
        _delete_jobs(conn, plan.removed)
        _update_jobs(conn, plan.changed, plan.retimed, now)
        _insert_jobs(conn, plan.added, now)
        _delete_agents(conn, plan.agents.removed)


def _changed_meanwhile() -> Failed:
    return Failed(
        "the jobs changed while the file was checked (another jobctl wrote to the "
        "database): nothing was applied; run apply again"
    )


def _write_agents(conn: sqlite3.Connection, plan: AgentPlan, now: datetime) -> None:
    for agent in plan.changed:
        agent.updated_at = now
        cursor = conn.execute(
            "UPDATE agents SET kind = ?, config = ?, updated_at = ? WHERE id = ? AND name = ?",
            (
                agent.kind,
                json.dumps(agent.config, sort_keys=True),
                to_db(now),
                agent.id,
                agent.name,
            ),
        )
        if cursor.rowcount != 1:
            raise _changed_meanwhile()
    for agent in plan.added:
        agent.created_at = agent.updated_at = now
        try:
            cursor = conn.execute(
                "INSERT INTO agents (name, kind, config, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    agent.name,
                    agent.kind,
                    json.dumps(agent.config, sort_keys=True),
                    to_db(now),
                    to_db(now),
                ),
            )
        except sqlite3.IntegrityError:
            raise _changed_meanwhile() from None
        agent.id = cursor.lastrowid


def _delete_agents(conn: sqlite3.Connection, agents: list[Agent]) -> None:
    """After the jobs are written: an agent is removed only while no job prompts it."""
    for agent in agents:
        cursor = conn.execute(
            "DELETE FROM agents WHERE id = ? AND NOT EXISTS (SELECT 1 FROM jobs "
            "WHERE action = 'agent' AND json_extract(spec, '$.agent') = agents.name)",
            (agent.id,),
        )
        if cursor.rowcount != 1:
            raise _changed_meanwhile()


def _delete_jobs(conn: sqlite3.Connection, jobs: list[Job]) -> None:
    if not jobs:
        return
    # Again inside the write transaction: the daemon may have claimed a run since the plan.
    _refuse_busy(conn, jobs)
    cursor = conn.executemany(
        "DELETE FROM jobs WHERE id = ? AND name = ?", [(job.id, job.name) for job in jobs]
    )
    if cursor.rowcount != len(jobs):
        raise _changed_meanwhile()


def _update_jobs(
    conn: sqlite3.Connection, jobs: list[Job], retimed: set[str], now: datetime
) -> None:
    for columns, batch in (
        (_DEFINITION_COLUMNS, [job for job in jobs if job.name not in retimed]),
        ((*_DEFINITION_COLUMNS, *_SCHEDULE_COLUMNS), [job for job in jobs if job.name in retimed]),
    ):
        if not batch:
            continue
        assignments = ", ".join(f"{column} = ?" for column in columns)
        rows = []
        for job in batch:
            job.updated_at = now
            values = dict(zip(_COLUMNS, _column_values(job), strict=True))
            rows.append([*(values[column] for column in columns), job.id, job.name])
        cursor = conn.executemany(f"UPDATE jobs SET {assignments} WHERE id = ? AND name = ?", rows)
        if cursor.rowcount != len(batch):
            raise _changed_meanwhile()


def _insert_jobs(conn: sqlite3.Connection, jobs: list[Job], now: datetime) -> None:
    if not jobs:
        return
    created = to_db(now)
    rows = []
    for job in jobs:
        job.created_at = job.updated_at = now
        rows.append([*_column_values(job), created])
    (last_id,) = conn.execute("SELECT coalesce(max(id), 0) FROM jobs").fetchone()
    try:
        conn.executemany(
            f"INSERT INTO jobs ({', '.join(_COLUMNS)}, created_at) "
            f"VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})",
            rows,
        )
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" not in str(exc):
            raise
        raise _changed_meanwhile() from None
    ids = {
        row[0]: row[1] for row in conn.execute("SELECT name, id FROM jobs WHERE id > ?", (last_id,))
    }
    for job in jobs:
        job.id = ids.get(job.name)


def apply_document(
    conn: sqlite3.Connection,
    doc: Mapping[str, Any],
    now: datetime,
    *,
    prune: bool = False,
    dry_run: bool = False,
) -> Plan:
    """Plan, then (unless dry_run) write the plan in one transaction."""
    with _bulk_work():
        plan = plan_apply(conn, doc, now, prune=prune)
        if not dry_run:
            apply_plan(conn, plan, now)
    return plan
