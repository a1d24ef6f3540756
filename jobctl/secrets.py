"""`${NAME}` references: finding, expanding at fire time, and redacting in output."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jobctl.errors import Failed

REDACTED = "***"
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

_SENSITIVE_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie"}
_SENSITIVE_SUFFIXES = ("-token", "-key", "-secret")
_SENSITIVE_QUERY = re.compile(
    r"(^|_|-)(token|key|secret|password|passwd|pwd|signature|sig|auth)$", re.IGNORECASE
)


def references(text: str | None) -> list[str]:
    return REFERENCE.findall(text or "")


def has_reference(text: str | None) -> bool:
    return bool(text) and REFERENCE.search(text or "") is not None


def expand(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand references from `env`; returns the text and the expanded values.

    An undefined name fails the run: sending `${TOKEN}` literally would be worse.
    """
    missing = [name for name in references(text) if name not in env]
    if missing:
        raise Failed(
            f"undefined secret reference ${{{missing[0]}}}: set it in the daemon's "
            "environment or its env file"
        )
    values: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        value = env[match.group(1)]
        values.append(value)
        return value

    return REFERENCE.sub(substitute, text), values


def is_sensitive_header(name: str) -> bool:
    lowered = name.strip().lower()
    return lowered in _SENSITIVE_HEADERS or lowered.endswith(_SENSITIVE_SUFFIXES)


def redact_header_value(name: str, value: str) -> str:
    """A literal secret header value becomes `***`; a `${NAME}` reference reveals nothing."""
    if is_sensitive_header(name) and not has_reference(value):
        return REDACTED
    return value


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: redact_header_value(name, value) for name, value in headers.items()}


def redact_url(url: str) -> str:
    """Hide a password in the user info and credential-like query parameters."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            user, _, password = userinfo.partition(":")
            if not has_reference(password):
                netloc = f"{user}:{REDACTED}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SENSITIVE_QUERY.search(key) and not has_reference(val) for key, val in pairs):
            query = urlencode(
                [
                    (
                        key,
                        REDACTED
                        if _SENSITIVE_QUERY.search(key) and not has_reference(val)
                        else val,
                    )
                    for key, val in pairs
                ],
                safe="${}*",
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_values(text: str | None, secrets: list[str]) -> str | None:
    """Replace every expanded secret value in `text` (longest first) with `***`."""
    if not text:
        return text
    for value in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def literal_secrets(spec: Mapping[str, object]) -> list[str]:
    """Describe each literal secret an exported spec would write (for export's warnings)."""
    found: list[str] = []
    headers = spec.get("headers")
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            if redact_header_value(str(name), str(value)) == REDACTED:
                found.append(f"header {name}")
    for key, what in (("url", "URL credentials"), ("deliver", "--deliver URL credentials")):
        url = spec.get(key)
        if isinstance(url, str) and redact_url(url) != url:
            found.append(what)
    return found
