"""A job changed by a partial `[[jobs]]` entry (the API's PATCH): the keys given replace
those of the stored job, as `jobctl edit`'s options do; the rest stays.

The stored job is exported as an entry, the patch laid over it (the `spec` and `policies`
tables key by key, a null clearing that key as `''` does for `edit`), and the result read
by `file_entries.entry_change`, so validation is that of `apply` and `edit`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from jobctl.errors import InvalidInput
from jobctl.file_entries import ENTRY_KEYS, entry_change, type_name
from jobctl.jobfile import export_entry
from jobctl.models import Job, JobChange

_TABLES = ("spec", "policies")
# What a null clears a table's key to (else ''), as `edit` takes it.
_CLEARED: dict[str, object] = {
    "headers": {},
    "env": {},
    "notify": [],
    "expect_json": [],
    "expect_headers": [],
    "timings": False,
}


def patch_change(job: Job, patch: Mapping[str, object]) -> JobChange:
    """The JobChange `edit_job` applies to `job` for `patch` (InvalidInput if it is bad)."""
    if not patch:
        raise InvalidInput("nothing to change: give at least one key of a job")
    unknown = [key for key in patch if key not in ENTRY_KEYS]
    if unknown:
        entry_change(dict(patch))  # raises with the closest known key
    merged: dict[str, object] = dict(export_entry(job))
    action_changes = "action" in patch and patch["action"] != job.action
    for key, value in patch.items():
        if key in _TABLES and not (key == "spec" and action_changes):
            merged[key] = _merge_table(key, merged.get(key), value)
        elif value is None and key in ("schedule", "description"):
            merged[key] = "" if key == "description" else None
        else:
            merged[key] = value
    if patch.get("trigger") == "manual" and "schedule" not in patch:
        merged.pop("schedule", None)
    change = entry_change(merged)
    if "trigger" not in patch and "schedule" not in patch:
        # The schedule not given is kept as `edit` keeps it, not given again: that would
        # count as a new one (next fire, last slot, a completed one-shot brought back).
        change = replace(change, cron=None, every=None, offset=None, at=None, manual=None)
    new_name = change.name if change.name != job.name else None
    return replace(change, name=None, new_name=new_name)


def _merge_table(key: str, stored: object, given: object) -> dict[str, object]:
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise InvalidInput(f"{key} must be a table, not {type_name(given)}")
    table = dict(stored) if isinstance(stored, Mapping) else {}
    for name, value in given.items():
        if value is None:
            table[name] = _CLEARED.get(name, "")
        else:
            table[name] = value
    return table
