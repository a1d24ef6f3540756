"""Prompt placeholders: {job}, {scheduled_for}, {now}, {last_output}, {payload}; in a team's
run also {previous} (the answer of the member before) and {step:N} (member N's answer).

Any other brace is left as written (prompts often hold JSON or code); `{{` and `}}` give
literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDERS = ("job", "scheduled_for", "now", "last_output", "payload", "previous")
_TOKEN = re.compile(r"\{\{|\}\}|\{(" + "|".join(PLACEHOLDERS) + r"|step:[1-9][0-9]?)\}")


def render_prompt(template: str, values: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return values.get(match.group(1), "")

    return _TOKEN.sub(substitute, template)


def uses(template: str, placeholder: str) -> bool:
    return any(m.group(1) == placeholder for m in _TOKEN.finditer(template))
