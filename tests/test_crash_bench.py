"""bench/crash.py's checks find what they are there to find: a fire without its row, a slot
fired twice, a fired slot recorded missed, a slot nobody accounted for."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000_000  # a whole second, epoch ms


@pytest.fixture(scope="module")
def crash() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_crash", ROOT / "bench" / "crash.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_crash"] = module
    spec.loader.exec_module(module)
    return module


def iso(ms: int) -> str:
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond // 1000:03d}Z"


def row(run_id: int, slot: int, status: str = "succeeded", until: int | None = None) -> tuple:
    details = f'{{"missed_count": 1, "missed_until": "{iso(until)}"}}' if until else None
    return (run_id, "j", iso(slot), status, "schedule", 1, "host", details, None, None)


def findings(crash: ModuleType, requests: list[tuple[int, int]], rows: list[tuple]) -> object:
    """Job `j`, slots T0 .. T0+4 s; `requests` as (run id, slot)."""
    records = [(slot / 1000 + 0.01, "j", str(run_id), iso(slot)) for run_id, slot in requests]
    return crash.analyse(records, crash.make_rows(rows), {"j": T0}, {"j": T0 + 5000})


def test_a_clean_history_passes(crash: ModuleType) -> None:
    rows = [row(1, T0), row(2, T0 + 1000, "missed", until=T0 + 2000), row(3, T0 + 3000)]
    rows.append(row(4, T0 + 4000, "skipped"))
    found = findings(crash, [(1, T0), (3, T0 + 3000)], rows)
    verdicts = crash.Verdicts()
    crash.common_verdicts(found, verdicts)
    assert all(ok for _, ok, _ in verdicts.items), verdicts.items
    assert found.missed_slots == 2 and found.expected_slots == 5


def test_each_fault_is_found(crash: ModuleType) -> None:
    rows = [
        row(1, T0),
        row(2, T0, "interrupted"),  # a second row for the same slot
        row(3, T0 + 1000, "missed", until=T0 + 1000),
        row(4, T0 + 1000),  # ... and a fire of the slot recorded missed
        row(5, T0 + 3000),  # succeeded, never received; T0 + 2 s and + 4 s: no row at all
    ]
    requests = [(1, T0), (1, T0), (4, T0 + 1000), (9, T0 + 2000)]
    found = findings(crash, requests, rows)
    assert len(found.no_row) == 1 and "9" in found.no_row[0]
    assert found.sink_twice == 1 and found.run_ids_twice == 1
    assert found.rows_twice == 1
    assert found.fired_in_missed == 1
    assert found.succeeded_not_received == 1
    assert found.unaccounted == 2
    verdicts = crash.Verdicts()
    crash.common_verdicts(found, verdicts)
    assert not any(ok for _, ok, _ in verdicts.items)
