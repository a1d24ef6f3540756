"""Actions: a spec and a fire context in, an Outcome out. They never touch the database."""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobctl.models import OutputStream
from jobctl.secret_tails import stream_cut
from jobctl.secrets import Redactor, expand, expand_url, file_secrets

OUTPUT_CAP = 64 * 1024  # bytes of output/body stored per run


@dataclass(slots=True)
class FireContext:
    """What one run needs to know besides its spec."""

    job: str
    run_id: int
    scheduled_for: datetime  # aware UTC: the slot, sent as X-Jobctl-Scheduled-For
    attempt: int
    timeout: float  # seconds
    env: Mapping[str, str]  # where ${NAME} references are expanded from
    payload: str | None = None  # webhook body
    payload_type: str | None = None  # its Content-Type, as the caller sent it
    # Prompt placeholders ({job}, {now}, {last_output} ...), filled in after secrets are
    # expanded, so that text from outside (a payload, an answer) can never pull a secret in.
    placeholders: Mapping[str, str] | None = None
    # Told the pid of a command the run started (its process group's id), so that the
    # engine can record it for a takeover should this process die.
    on_process: Callable[[int], None] | None = None
    # Told each piece of output as it is produced, redacted (the engine's OutputWriter);
    # None: nobody watches, and actions need not stream.
    on_piece: Callable[[OutputStream, str], None] | None = None
    # The run's secrets: what the action expanded and the env file's values (see Expansion).
    expansion: Expansion = field(init=False, repr=False)
    _held: dict[OutputStream, str] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.expansion = Expansion(self.env)

    @property
    def streaming(self) -> bool:
        """Whether anyone is told of output as it comes (an action may then ask to stream)."""
        return self.on_piece is not None

    def on_output(self, stream: OutputStream, text: str) -> None:
        """An action produced `text` on `stream`: pass it on, redacted. The end of a stream's
        text is held back while a secret may still be arriving in it (see end_output)."""
        if self.on_piece is None or not text:
            return
        pending = self._held.pop(stream, "") + text
        cut = stream_cut(self.expansion.redactor, pending)
        if cut:
            self.on_piece(stream, self.expansion.redact(pending[:cut]))
        if cut < len(pending):
            self._held[stream] = pending[cut:]

    def end_output(self) -> None:
        """The run is over: pass on what on_output held back."""
        held, self._held = self._held, {}
        if self.on_piece is not None:
            for stream, text in held.items():
                self.on_piece(stream, self.expansion.redact(text))


@dataclass
class Outcome:
    """How a run ended; the engine records it as it is."""

    status: str  # 'succeeded' | 'failed' | 'timed_out' ('interrupted' in Cancelled)
    started_at: datetime  # aware UTC, when the request or process actually started
    finished_at: datetime
    http_status: int | None = None
    exit_code: int | None = None
    output: str | None = None  # capped text
    error: str | None = None  # one line, None on success
    snapshot: dict[str, Any] | None = None  # what was sent, secrets redacted
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> int:
        return round((self.finished_at - self.started_at).total_seconds() * 1000)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def cap_output(data: bytes, total: int | None = None, *, complete: bool = True) -> str:
    """Decode at most OUTPUT_CAP bytes as UTF-8, with a marker line when some were dropped.

    `total` is the full size when known (it may exceed len(data) when the caller stopped
    reading); `complete=False` says the caller stopped reading and does not know the size.
    """
    size = len(data) if total is None else max(total, len(data))
    if size <= OUTPUT_CAP:
        return data.decode("utf-8", errors="replace")
    # An incremental decoder drops a multi-byte character cut in half at the cap.
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(
        data[:OUTPUT_CAP], final=False
    )
    if complete or total is not None:
        marker = f"[output truncated: {size} bytes in all, {OUTPUT_CAP} kept]"
    else:
        marker = f"[output truncated: more than {OUTPUT_CAP} bytes, {OUTPUT_CAP} kept]"
    return f"{text}\n{marker}"


class Cancelled(asyncio.CancelledError):
    """A run cancelled in flight (Ctrl-C on `jobctl run`, a stopping daemon), carrying what it
    had produced so far (output, snapshot), so that the run's row can keep it. Still a
    CancelledError: whoever does not look for the outcome sees a plain cancellation."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__("interrupted")
        self.outcome = outcome


def interrupted(started_at: datetime, **fields: Any) -> Cancelled:
    """The Cancelled to raise from an action's cancellation path, with its partial outcome."""
    from jobctl.timeutil import utcnow

    return Cancelled(
        Outcome(
            status="interrupted",
            started_at=started_at,
            finished_at=utcnow(),
            error="interrupted",
            **fields,
        )
    )


def fail_before_start(
    message: str, now: datetime, snapshot: dict[str, object] | None = None
) -> Outcome:
    """A run that failed before anything was sent or started (an undefined ${NAME}, ...)."""
    return Outcome(
        status="failed", started_at=now, finished_at=now, error=message, snapshot=snapshot
    )


class Expansion:
    """Expands ${NAME} references and remembers every value used, for redaction.

    The env file's values are secrets from the start: they are masked in whatever this
    run's redact() sees, even when a command prints one without referencing it.
    """

    __slots__ = ("env", "redactor", "secrets")

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.secrets: list[str] = []
        self.redactor = Redactor(file_secrets(env))

    def __call__(self, text: str) -> str:
        """Raises jobctl.errors.Failed for an undefined name."""
        if "${" not in text:  # the common case costs one scan, not a regex
            return text
        expanded, values = expand(text, self.env)
        self._remember(values)
        return expanded

    def url(self, text: str) -> str:
        """A URL's references, each percent-encoded for its part (secrets.expand_url)."""
        if "${" not in text:
            return text
        expanded, values = expand_url(text, self.env)
        self._remember(values)
        return expanded

    def _remember(self, values: list[str]) -> None:
        self.secrets.extend(values)
        self.redactor.add(values)

    def redact(self, text: str) -> str:
        """Every form of every secret value in `text` as `***` (secrets.Redactor)."""
        return self.redactor(text)

    def none_in(self, texts: Iterable[str]) -> bool:
        """No form of any secret is in any of `texts`: one scan of them all, and then none
        needs redact() (the usual case)."""
        pattern = self.redactor.pattern()
        return pattern is None or pattern.search("\x00".join(texts)) is None

    def redact_outcome(self, outcome: Outcome) -> Outcome:
        """The last pass before a run is stored: every string in every stored field (output,
        error, snapshot, details, recursively), whatever the action masked already."""
        if self.redactor and not self._none_left(outcome):
            outcome.output = self.redactor.data(outcome.output)
            outcome.error = self.redactor.data(outcome.error)
            outcome.snapshot = self.redactor.data(outcome.snapshot)
            outcome.details = self.redactor.data(outcome.details)
        return outcome

    def _none_left(self, outcome: Outcome) -> bool:
        """No form of a secret is in any stored string of `outcome` (the usual case: the
        action masked them), and redact_outcome's pass would give back what is there: one
        scan of them all instead of a substitution per string and a copy of each dict."""
        texts: list[str] = []
        stored = (outcome.output, outcome.error, outcome.snapshot, outcome.details)
        return all(_strings_in(value, texts) for value in stored) and self.none_in(texts)


_LEAVES = frozenset({int, float, bool, type(None)})  # what Redactor.data gives back as it is


def _strings_in(value: object, texts: list[str]) -> bool:
    """Adds the strings in `value` (JSON-like) to `texts`; False if Redactor.data might give
    back one of its containers otherwise (a tuple as a list, a Mapping as a dict)."""
    if type(value) is str:
        texts.append(value)
        return True
    items: Iterable[object]
    if type(value) is dict:
        items = value.values()
    elif type(value) is list:
        items = value
    else:
        return type(value) in _LEAVES
    for item in items:
        if type(item) is str:
            texts.append(item)
        elif type(item) not in _LEAVES and not _strings_in(item, texts):
            return False
    return True


__all__ = [
    "OUTPUT_CAP",
    "Cancelled",
    "Expansion",
    "FireContext",
    "Outcome",
    "cap_output",
    "fail_before_start",
    "interrupted",
]
