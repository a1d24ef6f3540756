"""A jobs file's entries as the inputs `add` and `agent add` build.

Each `[[jobs]]` entry becomes the JobChange `jobctl add` builds and each `[[agents]]` entry
the AgentChange `jobctl agent add` builds (their typed values as they are), so
`job_changes.build_job` and `agent_changes.build_agent` do all the validation. Errors say which
key is wrong and suggest the closest known one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from jobctl import policies
from jobctl.agent_changes import KINDS
from jobctl.errors import InvalidInput
from jobctl.jobfile import AGENT_KEYS, DOCUMENT_KEYS, VERSION
from jobctl.jobs import ACTIONS, SPEC_KEYS, TRIGGERS
from jobctl.models import AgentChange, JobChange, NotifyTarget, PolicyInput

_AGENT_TEXT_KEYS = ("url", "model", "api_key_env", "system", "command", "budget_per")
_AGENT_HTTP_KEYS = ("url", "model", "api_key_env", "system", "temperature", "max_tokens", "headers")
ENTRY_KEYS = (
    "name",
    "description",
    "queue",
    "state",
    "action",
    "trigger",
    "schedule",
    "timezone",
    "spec",
    "policies",
)
# Entry keys holding text (each is the JobChange field of that name).
_TEXT_ENTRY_KEYS = ("name", "description", "queue", "state", "timezone")
# Spec tables -> the repeated CLI option and its 'K: V' / 'K=V' separator (whose names
# cannot hold the separator: the option could not say them).
_TABLE_SPEC_OPTIONS = {"headers": ("header", ": "), "env": ("env", "=")}


def document_entries(doc: Mapping[str, object], key: str = "jobs") -> list[object]:
    _refuse_unknown(doc, DOCUMENT_KEYS, "key")
    version = doc.get("version", VERSION)
    if version != VERSION or isinstance(version, bool):
        raise InvalidInput(f"unsupported version {version!r}: this jobctl reads version {VERSION}")
    entries = doc.get(key, [])
    if not isinstance(entries, list):
        raise InvalidInput(f"`{key}` must be an array of tables ([[{key}]] in TOML)")
    return entries


def _refuse_unknown(table: Mapping[str, object], known: tuple[str, ...], what: str) -> None:
    if table.keys() <= set(known):
        return
    allowed = list(known)
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"
            raise InvalidInput(f"unknown {what} {key!r}{hint}")


def _require_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text, not {type_name(value)}")
    return value


def _choice_message(key: str, value: object, choices: Iterable[str]) -> str:
    problem = f"missing {key}" if value is None else f"invalid {key} {value!r}"
    return f"{problem}: choose one of {', '.join(choices)}"


def type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def entry_change(entry: Mapping[str, object]) -> JobChange:
    """A document entry as the JobChange `add` builds (validated by `build_job`)."""
    _refuse_unknown(entry, ENTRY_KEYS, "key")
    texts = {
        key: _require_text(entry[key], key)
        for key in _TEXT_ENTRY_KEYS
        if entry.get(key) is not None
    }
    action = entry.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise InvalidInput(_choice_message("action", action, ACTIONS))
    change = _spec_change(action, entry.get("spec"))
    kind, schedule = _schedule(entry)
    values, notify = _entry_policies(entry.get("policies"))
    return replace(
        change,
        name=texts.get("name"),
        description=texts.get("description"),
        queue=texts.get("queue"),
        state=texts.get("state"),
        timezone=texts.get("timezone"),
        cron=schedule if kind == "cron" else None,
        every=schedule if kind == "every" else None,
        at=schedule if kind == "once" else None,
        manual=True if kind == "manual" else None,
        policies=values,
        notify=notify,
    )


def _entry_policies(
    raw: object,
) -> tuple[dict[str, PolicyInput], tuple[NotifyTarget, ...] | None]:
    """The policies table: each policy's value as given, and the notify targets if listed."""
    if raw is None:
        return {}, None
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"policies must be a table, not {type_name(raw)}")
    _refuse_unknown(raw, (*policies.POLICY_NAMES, "notify"), "policy")
    values: dict[str, PolicyInput] = {}
    notify = None
    for name, value in raw.items():
        if name == "notify":
            notify = _notify_targets(value)
            continue
        if not isinstance(value, str | int | float):
            raise InvalidInput(f"policies.{name} must be text or a number, not {type_name(value)}")
        values[name] = value
    return values, notify


def _notify_targets(value: object) -> tuple[NotifyTarget, ...]:
    """policies.notify: a list of {on, url} tables (checked by `build_job`)."""
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise InvalidInput("policies.notify must be a list of {on, url} tables")
    targets = []
    for item in value:
        _refuse_unknown(item, ("on", "url"), "policies.notify key")
        targets.append(
            NotifyTarget(
                on=_require_text(item.get("on"), "policies.notify.on"),
                url=_require_text(item.get("url"), "policies.notify.url"),
            )
        )
    return tuple(targets)


def _spec_change(action: str, spec: object) -> JobChange:
    """The spec table as the action fields of a JobChange (each key is the field of that name)."""
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"spec must be a table, not {type_name(spec)}")
    _refuse_unknown(spec, SPEC_KEYS[action], f"{action} spec key")
    texts: dict[str, str] = {}
    tables: dict[str, dict[str, str]] = {}
    flags: dict[str, bool] = {}
    lists: dict[str, tuple[str, ...]] = {}
    for key, value in spec.items():
        if value is None:
            continue
        if key in ("expect_json", "expect_headers"):
            lists[key] = _text_list(value, f"spec.{key}")
        elif key == "max_redirects" and value != "":  # '' clears, as for `edit`
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"spec.max_redirects must be a number, not {type_name(value)}")
            texts[key] = str(value)
        elif key in ("headers", "env"):
            tables[key] = _text_table(key, value, f"spec.{key}")
        elif key in ("max_tokens", "budget_tokens") and isinstance(value, int):
            texts[key] = str(value)
        elif key in ("shell", "forward_payload", "timings"):
            if not isinstance(value, bool):
                raise InvalidInput(f"spec.{key} must be true or false, not {type_name(value)}")
            flags[key] = value
        else:
            texts[key] = _require_text(value, f"spec.{key}")
    if texts.get("team"):  # a team's job: its `agent` is '' (or left out)
        texts.pop("agent", None)
    main_key = SPEC_KEYS[action][0]
    if main_key not in texts and not texts.get("team"):
        raise InvalidInput(f"an {action} job needs spec.{main_key}")
    return JobChange(
        url=texts.get("url"),
        method=texts.get("method"),
        headers=tables.get("headers"),
        body=texts.get("body"),
        expect=texts.get("expect"),
        forward_payload=flags.get("forward_payload"),
        expect_body=texts.get("expect_body"),
        expect_json=lists.get("expect_json"),
        expect_headers=lists.get("expect_headers"),
        max_duration=texts.get("max_duration"),
        max_redirects=texts.get("max_redirects"),
        timings=flags.get("timings"),
        agent=texts.get("agent"),
        team=texts.get("team"),
        prompt=texts.get("prompt"),
        deliver=texts.get("deliver"),
        model=texts.get("model"),
        max_tokens=texts.get("max_tokens"),
        budget_tokens=texts.get("budget_tokens"),
        budget_per=texts.get("budget_per"),
        command=texts.get("command"),
        cwd=texts.get("cwd"),
        env=tables.get("env"),
        shell=flags.get("shell"),
    )


def _text_list(value: object, where: str) -> tuple[str, ...]:
    """spec.expect_json / spec.expect_headers: a list of text items."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidInput(f"{where} must be a list of text items")
    return tuple(value)


def _text_table(key: str, table: object, where: str) -> dict[str, str]:
    """spec.headers / spec.env (or an agent's headers): a table of text values."""
    option, separator = _TABLE_SPEC_OPTIONS[key]
    if not isinstance(table, Mapping) or not all(isinstance(v, str) for v in table.values()):
        raise InvalidInput(f"{where} must be a table of text values")
    for name in table:
        # The CLI form splits at the first separator, so a name holding one would shift it.
        if separator.strip() in name:
            raise InvalidInput(f"invalid {option} name {name!r} in {where}")
    return {str(name): value for name, value in table.items()}


def _schedule(entry: Mapping[str, object]) -> tuple[str, str | None]:
    """The entry's `trigger` (its schedule kind) and schedule text (None for manual)."""
    kind = entry.get("trigger")
    if not isinstance(kind, str) or kind not in TRIGGERS:
        raise InvalidInput(_choice_message("trigger", kind, TRIGGERS))
    schedule = entry.get("schedule")
    if kind == "manual":
        if schedule is not None:
            raise InvalidInput("a manual trigger takes no schedule")
        return kind, None
    if isinstance(schedule, datetime) and kind == "once":
        schedule = schedule.isoformat()  # a TOML date-time; without an offset, in the job's zone
    if not isinstance(schedule, str) or not schedule.strip():
        raise InvalidInput(
            f"the {kind} trigger needs a schedule"
            + (f" as text, not {type_name(schedule)}" if schedule is not None else "")
        )
    return kind, schedule


def agent_entry_change(entry: Mapping[str, object]) -> AgentChange:
    """An `[[agents]]` entry as the AgentChange `agent add` builds (validated by
    `build_agent`)."""
    _refuse_unknown(entry, AGENT_KEYS, "agent key")
    kind = entry.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidInput(_choice_message("kind", kind, KINDS))
    refused = _AGENT_HTTP_KEYS if kind == "command" else ("command",)
    for key in refused:
        if key in entry:
            raise InvalidInput(f"{key} does not apply to a {kind} agent")
    if kind == "command" and entry.get("command") is None:
        raise InvalidInput("a command agent needs command, the program to run")
    texts = {
        key: _require_text(entry[key], key)
        for key in _AGENT_TEXT_KEYS
        if entry.get(key) is not None
    }
    numbers = {
        key: _number_or_text(entry[key], key)
        for key in (
            "temperature",
            "max_tokens",
            "timeout",
            "budget_tokens",
            "price_in",
            "price_out",
        )
        if entry.get(key) is not None
    }
    headers = entry.get("headers")
    return AgentChange(
        name=_require_text(entry.get("name"), "name"),
        kind=None if kind == "command" else kind,  # `command` alone makes a command agent
        url=texts.get("url"),
        model=texts.get("model"),
        api_key_env=texts.get("api_key_env"),
        system=texts.get("system"),
        command=texts.get("command"),
        temperature=numbers.get("temperature"),
        max_tokens=numbers.get("max_tokens"),
        timeout=numbers.get("timeout"),
        budget_tokens=_whole(numbers.get("budget_tokens")),
        budget_per=texts.get("budget_per"),
        price_in=numbers.get("price_in"),
        price_out=numbers.get("price_out"),
        headers=None if headers is None else _text_table("headers", headers, "headers"),
    )


def _whole(value: str | float | None) -> str | int | None:
    """A token count read from a file (a float such as 1e6 as its whole number)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else str(value)
    return value


def _number_or_text(value: object, key: str) -> str | float:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InvalidInput(f"{key} must be text or a number, not {type_name(value)}")
    return value
