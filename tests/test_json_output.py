"""`--json` output is written by jobctl's own indenting encoder (json's is pure Python
once an indent is asked for): it must give json.dumps(indent=2) byte for byte."""

from __future__ import annotations

import enum
import json
import random

import pytest

from jobctl.output import to_json


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def reference(data: object) -> str:
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return "".join(f"\\u{ord(c):04x}" if 0x7F <= ord(c) <= 0x9F else c for c in text)


CASES: list[object] = [
    [],
    {},
    [[]],
    {"a": {}},
    {"a": []},
    None,
    True,
    0,
    -7,
    1.5,
    1e-7,
    "plain",
    'quote " backslash \\ tab \t newline \n bell \x07 del \x7f csi \x9b',
    "é 日本 ✓ \U0001f600 \u2028",
    [None, True, False, 0, 2.25, "x", [], {}, [1, [2, [3]]]],
    {"name": "a", "recent": ["succeeded", "failed"], "spec": {"headers": {"K": "v"}}},
    {"colour": Colour.RED, "level": Level.HIGH, "flag": False, "tuple": (1, "two")},
    [Colour.RED, Level.HIGH, (), ({"a": None},)],
    {"nan": float("nan")},  # json.dumps writes NaN; the fast path hands it over
    {"inf": [float("inf"), float("-inf")]},
    {1: "int key", None: "none key", 2.5: "float key", False: "bool key"},
    {Colour.RED: "StrEnum key"},
]


@pytest.mark.parametrize("data", CASES, ids=range(len(CASES)))
def test_to_json_is_json_dumps_indent_2(data: object) -> None:
    assert to_json(data) == reference(data)


def random_value(rng: random.Random, depth: int) -> object:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.randint(-(10**12), 10**12)
    if kind == 3:
        return rng.uniform(-1e6, 1e6)
    if kind in (4, 5):
        return "".join(rng.choice('ab é"\\\n\t\x1b\x85日✓') for _ in range(rng.randrange(6)))
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return tuple(random_value(rng, depth + 1) for _ in range(rng.randrange(3)))
    return {f"k{i}é": random_value(rng, depth + 1) for i in range(rng.randrange(4))}


def test_to_json_matches_json_dumps_on_random_documents() -> None:
    rng = random.Random(18)
    for _ in range(2000):
        data = random_value(rng, 0)
        assert to_json(data) == reference(data)


def test_to_json_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        to_json({"when": object()})
