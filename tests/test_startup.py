"""Start-up stays cheap: heavy libraries are imported only by the commands that need them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("aiohttp", "asyncio", "tabulate", "sqlite_utils", "cronsim", "tomli_w", "daemon")


def imported_modules(code: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_cli_import_leaves_heavy_libraries_out() -> None:
    loaded = imported_modules("import jobctl.cli")
    assert "click" in loaded  # the measurement works
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_core_modules_never_import_click() -> None:
    code = (
        "import sys, jobctl.jobs, jobctl.store, jobctl.schedule, jobctl.timeutil; "
        "assert 'click' not in sys.modules, 'click imported by core'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_version_is_a_constant() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jobctl", "--version"], capture_output=True, text=True, check=True
    )
    from jobctl import __version__

    assert result.stdout.strip() == f"jobctl {__version__}"
