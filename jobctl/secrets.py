"""`${NAME}` references: where they come from (the environment and env files), expanding them
at fire time, and redacting every form of their values in output."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from jobctl.errors import Failed, InvalidInput

REDACTED = "***"
# Values shorter than this are never masked: `***` for every "1" or "yes" in an output would
# hide everything and protect nothing (a secret that short can be guessed anyway).
MIN_SECRET_LENGTH = 4
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


def expand_url(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand references in a URL, each percent-encoded for the part it sits in, so that a
    value with `& ? # @ /` stays data and cannot change the URL's structure.

    A reference that is the URL's start (the whole base, `${BASE}/hook`) or sits in the host
    and port goes in as it is: those parts have no escaping.
    """
    if "${" not in text:
        return text, []
    expand(text, env)  # fails on an undefined name, as for any other field
    values: list[str] = []
    first = REFERENCE.match(text)
    if first is not None:  # the base URL itself comes from a secret
        base = env[first.group(1)]
        values.append(base)
        text = base + text[first.end() :]
    tokens: dict[str, str] = {}

    def tokenize(match: re.Match[str]) -> str:
        token = f"jobctlref{len(tokens)}z"
        tokens[token] = env[match.group(1)]
        return token

    tokenized = REFERENCE.sub(tokenize, text)
    try:
        parts = urlsplit(tokenized)
    except ValueError:
        parts = urlsplit("")
    userinfo, _, hostport = parts.netloc.rpartition("@")
    for token, value in tokens.items():
        values.append(value)
        if token in hostport and token not in userinfo:
            encoded = value
        else:
            encoded = quote(value, safe="")
        tokenized = tokenized.replace(token, encoded)
    return tokenized, values


def _json_ascii(text: str) -> str:
    return json.dumps(text)[1:-1]  # as a JSON string echoes it: \u00e9, \"


def _json_unicode(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _quoter(safe: str) -> Callable[[str], str]:
    return lambda text: quote(text, safe=safe)


# Each encodes one character at a time, so a form can be matched whatever the case of each
# letter was when it was encoded (an upper-cased "é" escapes as \u00c9, percent-encodes as
# %C3%89). The URL forms are what urllib writes and what yarl (aiohttp's URL library) makes
# of a part when it re-quotes a URL: after a redirect, or reading back the URL it was given.
_CHAR_ENCODERS: tuple[Callable[[str], str], ...] = (
    str,
    _json_ascii,
    _json_unicode,
    _quoter(""),
    _quoter("/"),
    lambda text: quote_plus(text, safe=""),
    lambda text: quote_plus(text, safe="/"),
    _quoter("!$&'()*,;=:@"),  # a path segment, re-quoted by yarl
    _quoter("!$'()*,/:?@"),  # a query value
    _quoter("!$&'()*+,/:;=?@"),  # a fragment
    _quoter("!$&'()*+,;="),  # a user name or password
    _quoter("!#$&'()*+,/:;=?@[]"),  # a raw URL (a Location header): only what is illegal
)


def secret_forms(value: str) -> set[str]:
    """Every form a secret value may take on its way back into an output or an error (each
    also matched with its letters in another case: see _form_pattern)."""
    if len(value) < MIN_SECRET_LENGTH:
        return set()
    forms = {encode(value) for encode in _CHAR_ENCODERS}
    forms |= {form.replace("/", "\\/") for form in forms}  # JSON as PHP writes it: \/
    forms.add(value.casefold())  # host names come back lower-cased
    try:
        forms.add(value.encode("idna").decode("ascii"))  # a host name with non-ASCII letters
    except UnicodeError:
        pass
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def encoders() -> list[Callable[[str], str]]:
    """What a secret may have been through, each encoding a character at a time."""
    return _encoders()


def _encoders() -> list[Callable[[str], str]]:
    """_CHAR_ENCODERS, each also with JSON's optional escaped slash (PHP writes `\\/`)."""
    escaped = [_slashed(encode) for encode in _CHAR_ENCODERS]
    return [*_CHAR_ENCODERS, *escaped]


def _slashed(encode: Callable[[str], str]) -> Callable[[str], str]:
    return lambda text: encode(text).replace("/", "\\/")


def _form_pattern(value: str, encode: Callable[[str], str]) -> str:
    """`encode(value)` as a regex in which each character may have had another case before
    it was encoded (with re.IGNORECASE, this also covers hex digits in either case)."""
    pieces = []
    for char in value:
        encoded = {encode(variant) for variant in (char, char.upper(), char.lower())}
        unique = {form.lower(): form for form in sorted(encoded)}  # IGNORECASE does the rest
        alternatives = sorted(unique.values(), key=len, reverse=True)
        if len(alternatives) == 1:
            pieces.append(re.escape(alternatives[0]))
        else:
            pieces.append("(?:" + "|".join(re.escape(form) for form in alternatives) + ")")
    return "".join(pieces)


@lru_cache(maxsize=256)
def _pattern_for(values: frozenset[str]) -> re.Pattern[str]:
    """One regex for all forms, longest first; cached, as a burst of runs shares its secrets."""
    patterns: dict[str, int] = {}
    first: set[str] = set()  # the characters a form can start with
    for value in values:
        if len(value) < MIN_SECRET_LENGTH:
            continue
        head = value[0]
        for encode in _encoders():
            form = encode(value)
            if len(form) >= MIN_SECRET_LENGTH:
                pattern = _form_pattern(value, encode)
                patterns[pattern] = max(len(form), patterns.get(pattern, 0))
                first |= {encode(case)[:1] for case in (head, head.upper(), head.lower())}
        for form in secret_forms(value):  # the literal ones too (casefold, IDNA)
            patterns.setdefault(re.escape(form), len(form))
            first.add(form[0])
    alternatives = sorted(patterns, key=lambda pattern: patterns[pattern], reverse=True)
    # The lookahead rules most positions out at once: the alternatives are tried only where
    # a form can start (three times faster on a long output).
    starts = "".join(re.escape(char) for char in sorted(first - {""}))
    return re.compile(f"(?=[{starts}])(?:{'|'.join(alternatives)})", re.IGNORECASE)


class Redactor:
    """Masks every form of a set of secret values (secret_forms), ignoring case, longest first."""

    __slots__ = ("_pattern", "_values")

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        if values:  # most runs have no env file's secret: each makes an empty one
            self.add(values)

    def add(self, values: Iterable[str]) -> None:
        new = {value for value in values if len(value) >= MIN_SECRET_LENGTH} - self._values
        if new:
            self._values |= new
            self._pattern = None

    def __bool__(self) -> bool:
        return bool(self._values)

    def __call__(self, text: str) -> str:
        if not self._values or not text:
            return text
        if self._pattern is None:
            self._pattern = _pattern_for(frozenset(self._values))
        return self._pattern.sub(REDACTED, text)

    @property
    def values(self) -> frozenset[str]:
        return frozenset(self._values)

    def pattern(self) -> re.Pattern[str] | None:
        """The one regex that matches every form of every value (None: no value)."""
        if self._pattern is None and self._values:
            self._pattern = _pattern_for(frozenset(self._values))
        return self._pattern

    def data(self, value: Any) -> Any:
        """`value` with every string in it (JSON-like: dicts, lists) redacted."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {key: self.data(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        return value


class FireEnvironment(dict[str, str]):
    """Where `${NAME}` comes from; `file_values` are the env file's values, each a secret
    wherever it shows up (in a command's own output too), whether referenced or not."""

    file_values: frozenset[str] = frozenset()

    def __init__(self, base: Mapping[str, str], file_values: Mapping[str, str]) -> None:
        super().__init__(base)
        self.update(file_values)
        self.file_values = frozenset(file_values.values())


def read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines (optional `export`, quotes, `#` comments), as systemd and docker take."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read env file {str(path)!r}: {exc.strerror}") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise InvalidInput(f"env file {str(path)!r} line {number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def fire_environment(env_file: Path | None) -> FireEnvironment:
    """Where `${NAME}` references come from: the process environment, then the env file
    (whose values are secrets wherever they show up)."""
    chosen = env_file or (
        Path(os.environ["JOBCTL_ENV_FILE"]) if os.environ.get("JOBCTL_ENV_FILE") else None
    )
    return FireEnvironment(os.environ, read_env_file(chosen) if chosen is not None else {})


def file_secrets(env: Mapping[str, str]) -> frozenset[str]:
    return env.file_values if isinstance(env, FireEnvironment) else frozenset()


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
