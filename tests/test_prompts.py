"""Prompt placeholders are replaced; every other brace stays as written."""

from __future__ import annotations

import pytest

from jobctl.prompts import render_prompt, uses

VALUES = {
    "job": "digest",
    "scheduled_for": "2026-06-01T09:00:00Z",
    "now": "2026-06-01 11:00",
    "last_output": "old answer",
    "payload": '{"ref": "main"}',
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Summarise for {job}", "Summarise for digest"),
        ("Since {scheduled_for}; now {now}", "Since 2026-06-01T09:00:00Z; now 2026-06-01 11:00"),
        ("Before: {last_output}", "Before: old answer"),
        ("Push: {payload}", 'Push: {"ref": "main"}'),
        ('Reply as JSON like {"ok": true}', 'Reply as JSON like {"ok": true}'),
        ("{unknown} and {JOB}", "{unknown} and {JOB}"),
        ("{{job}} is literal", "{job} is literal"),
        ("{{{job}}}", "{digest}"),
        ("def f(): return {}", "def f(): return {}"),
        ("${TOKEN} stays for the secrets step", "${TOKEN} stays for the secrets step"),
    ],
)
def test_render_prompt(template: str, expected: str) -> None:
    assert render_prompt(template, VALUES) == expected


def test_uses_ignores_escaped_braces() -> None:
    assert uses("compare with {last_output}", "last_output")
    assert not uses("literal {{last_output}}", "last_output")
