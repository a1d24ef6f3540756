"""Prompt placeholders: {job}, {scheduled_for}, {now}, {last_output}, {payload}.

Any other brace is left as written (prompts often hold JSON or code); `{{` and `}}` give
literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDERS = ("job", "scheduled_for", "now", "last_output", "payload")
_TOKEN = re.compile(r"\{\{|\}\}|\{(" + "|".join(PLACEHOLDERS) + r")\}")


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
