"""Masking secrets in output that is still arriving: how much of it can be shown now.

A secret may come in two pieces (a read ends in the middle of it). `stream_cut` says where
to cut a stream's pending text: before a tail that may be the beginning of a form of a
secret (secrets.Redactor's forms, whatever the case of their letters), and never inside a
whole one; the rest waits for more text or for the end of the run.
"""

from __future__ import annotations

from functools import lru_cache

from jobctl.secrets import Redactor, encoders, secret_forms

FormSteps = tuple[tuple[str, ...], ...]  # a form, as what each character may be encoded as


def stream_cut(redactor: Redactor, text: str) -> int:
    """How much of `text` can be redacted and shown now (len(text) when no secret is known)."""
    pattern = redactor.pattern()
    if pattern is None or not text:
        return len(text)
    forms, first, hold = _form_steps(redactor.values)
    cut = len(text)
    for start in range(max(0, len(text) - hold), len(text)):
        if text[start].lower() in first and any(
            _may_begin(text, start, 0, steps) for steps in forms
        ):
            cut = start
            break
    for match in pattern.finditer(text, max(0, cut - hold)):
        if match.start() < cut < match.end():
            return match.start()
    return cut


@lru_cache(maxsize=256)
def _form_steps(values: frozenset[str]) -> tuple[list[FormSteps], frozenset[str], int]:
    """Every form of every value as steps (lower-cased), the characters a form may start
    with, and the longest form's length."""
    forms: list[FormSteps] = []
    for value in values:
        for encode in encoders():
            forms.append(
                tuple(
                    tuple({encode(case).lower() for case in (char, char.upper(), char.lower())})
                    for char in value
                )
            )
        forms.extend(tuple((char.lower(),) for char in form) for form in secret_forms(value))
    first = frozenset(step[:1] for steps in forms if steps for step in steps[0])
    hold = max((sum(max(map(len, step)) for step in steps) for steps in forms), default=0)
    return forms, first, hold


def _may_begin(text: str, at: int, step: int, steps: FormSteps) -> bool:
    """Whether text[at:] (to its end) may be the beginning of the form `steps[step:]`."""
    if at == len(text):
        return True
    if step == len(steps):
        return False  # a whole form with text after it: the pattern masks that one
    for choice in steps[step]:
        seen = text[at : at + len(choice)].lower()
        if len(seen) < len(choice):
            if choice.startswith(seen):
                return True
        elif seen == choice and _may_begin(text, at + len(choice), step + 1, steps):
            return True
    return False


__all__ = ["stream_cut"]
