"""Writing roff for the man page: escaping, text and no-fill lines, macro arguments, and
click help text (paragraphs and `\\b` blocks) as roff lines. Plain text in, roff out."""

from __future__ import annotations

import inspect
import re

# Characters the page writes as ASCII, so that every output device can show them.
_ASCII = {
    "…": "...",
    "·": "*",
    "✓": "+",
    "✗": "x",
    "—": "\\-\\-",
    "–": "\\-",
    "‘": "\\(aq",
    "’": "\\(aq",
    "“": '"',
    "”": '"',
}
_CODE = re.compile(r"`([^`]+)`")


def escape(text: str) -> str:
    """Text for a roff text line: backslashes, hyphens, quotes and non-ASCII made safe."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\e")
        elif char == "-":
            out.append("\\-")
        elif char == "'":
            out.append("\\(aq")
        elif char == "`":
            out.append("\\(ga")
        elif char in _ASCII:
            out.append(_ASCII[char])
        elif ord(char) > 127:
            out.append(f"\\[u{ord(char):04X}]")
        else:
            out.append(char)
    return "".join(out)


def text_line(text: str) -> str:
    """One roff text line; `code` spans in bold. A leading dot would start a request."""
    pieces = []
    position = 0
    for match in _CODE.finditer(text):
        pieces.append(escape(text[position : match.start()]))
        # \% keeps code from being hyphenated at a line end.
        pieces.append(f"\\fB\\%{escape(match.group(1))}\\fR")
        position = match.end()
    pieces.append(escape(text[position:]))
    line = "".join(pieces).strip()
    return "\\&" + line if line.startswith(".") else line


def literal_line(text: str) -> str:
    """A line of a no-fill block: escaped, no markup, a leading dot neutralised."""
    line = escape(text)
    return "\\&" + line if line.startswith(".") else line


def macro_argument(text: str) -> str:
    """A quoted macro argument (for .SS and .TH)."""
    return '"' + escape(text).replace('"', "\\(dq") + '"'


def help_blocks(help_text: str) -> list[str]:
    """Click's help text (paragraphs, `\\b` blocks kept as written) as roff lines."""
    text = inspect.cleandoc(help_text).partition("\f")[0]
    lines: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        if not paragraph.strip():
            continue
        lines.append(".PP")
        if paragraph.startswith("\b"):
            lines.extend(_literal_block(paragraph.splitlines()[1:]))
        else:
            lines.append(text_line(" ".join(line.strip() for line in paragraph.splitlines())))
    return lines


def _literal_block(block: list[str]) -> list[str]:
    """A `\\b` block: unindented lines as they are, indented runs as an indented display."""
    lines = [".nf"]
    indents = [len(line) - len(line.lstrip()) for line in block if line.strip()]
    inner = min((indent for indent in indents if indent), default=0)
    indented = False
    for line in block:
        if not line.strip():
            continue
        if line[0].isspace() and not indented:
            lines.append(".RS 4")
            indented = True
        elif not line[0].isspace() and indented:
            lines.append(".RE")
            indented = False
        lines.append(literal_line(line[inner:] if indented else line))
    if indented:
        lines.append(".RE")
    lines.append(".fi")
    return lines
