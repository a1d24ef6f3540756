"""Shell completion scripts, generated from click: `python -m jobctl.cli.completions [DIR]`.

Writes `jobctl.bash`, `jobctl.zsh` and `jobctl.fish` (default DIR: `completions`). Each is the
script that `_JOBCTL_COMPLETE={shell}_source jobctl` prints; the shell then calls jobctl back
with `_JOBCTL_COMPLETE={shell}_complete` on every TAB. Only the generator and the tests import
this module; tests/test_docs.py fails when a checked-in script differs from what it writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

SHELLS = ("bash", "zsh", "fish")
PROG_NAME = "jobctl"
COMPLETE_VAR = "_JOBCTL_COMPLETE"


def completion_script(shell: str) -> str:
    """The completion script click emits for `shell`, for the `jobctl` console script."""
    from click.shell_completion import ShellComplete, get_completion_class

    from jobctl.cli import cli

    complete_class = get_completion_class(shell)
    if complete_class is None:
        raise ValueError(f"click has no completion support for {shell!r}")
    completer = complete_class(cli, {}, PROG_NAME, COMPLETE_VAR)
    # The base class's source() only fills in the template; BashComplete.source() would also
    # run bash to warn about versions before 4.4, which a generator has no use for.
    script = ShellComplete.source(completer)
    return script if script.endswith("\n") else script + "\n"


def script_name(shell: str) -> str:
    return f"{PROG_NAME}.{shell}"


def write_completions(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for shell in SHELLS:
        path = directory / script_name(shell)
        path.write_text(completion_script(shell), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        sys.stderr.write("usage: python -m jobctl.cli.completions [DIR]  (default: completions)\n")
        return 2
    for path in write_completions(Path(args[0] if args else "completions")):
        sys.stderr.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
