"""The dashboard in a real browser (Debian's chromium driven by Playwright; nothing is
downloaded) against a real daemon: logging in through `jobctl dashboard`'s link, live
updates, following and cancelling a run, pausing, resuming, running now, the timeline, and
HTML in data shown as text (issue 15). One daemon and one browser for the module."""

from __future__ import annotations

import json
import shutil
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.realparts import DaemonProcess, add_job, query, run_jobctl, wait_until

CHROMIUM = Path("/usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api", reason="the test extra: playwright")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and shutil.which("chromium") is None,
    reason="no chromium: `apt-get install chromium` (.ci/run does)",
)

EVIL = "<script>alert(1)</script>"
TIMEOUT_MS = 15_000


def db_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def add_finished_run(
    db: Path, job: str, status: str, at: datetime, *, output: str | None = None, **details: Any
) -> None:
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    try:
        (job_id,) = conn.execute("SELECT id FROM jobs WHERE name = ?", (job,)).fetchone()
        conn.execute(
            "INSERT INTO runs (job_id, trigger, status, scheduled_for, started_at, finished_at,"
            " duration_ms, output, details, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                job_id,
                "schedule",
                status,
                db_time(at),
                db_time(at),
                db_time(at),
                12,
                output,
                json.dumps(details) if details else None,
                db_time(at),
            ),
        )
    finally:
        conn.close()


@dataclass
class Served:
    db: Path
    daemon: DaemonProcess
    url: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("dashboard") / "data" / "jobctl.db"
    db.parent.mkdir()
    add_job(db, "evil", "--exec", f"printf '<b>bold</b>{EVIL}'", "--manual", "--description", EVIL)
    add_job(db, "flaky", "--exec", "false", "--manual")
    add_job(
        db,
        "slow",
        "--exec",
        'for i in 1 2 3; do echo "line $i"; sleep 0.5; done; sleep 60',
        "--manual",
    )
    now = datetime.now(UTC)
    add_finished_run(db, "evil", "succeeded", now - timedelta(hours=1), output=f"<b>bold</b>{EVIL}")
    add_finished_run(db, "flaky", "succeeded", now - timedelta(hours=5))
    add_finished_run(db, "flaky", "failed", now - timedelta(hours=4))
    add_finished_run(db, "flaky", "failed", now - timedelta(hours=3))
    add_finished_run(
        db,
        "flaky",
        "missed",
        now - timedelta(hours=2),
        missed_count=6,
        missed_until=db_time(now - timedelta(hours=1)),
    )
    daemon = DaemonProcess(db, "--listen", "127.0.0.1:0").wait_ready()
    try:
        row = wait_until(
            lambda: query(db, "SELECT listen FROM daemon WHERE listen IS NOT NULL"),
            what="the listener",
        )
        yield Served(db, daemon, str(row[0]["listen"]).rstrip("/"))
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
            args=["--no-sandbox"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


def login_link(served: Served) -> str:
    """A one-time login link, as `jobctl dashboard` prints it."""
    result = run_jobctl(served.db, "dashboard")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def page(served: Served, browser: Any) -> Iterator[Any]:
    """A page logged in through `jobctl dashboard`'s one-time link."""
    link = login_link(served)
    assert link.startswith(served.url + "/login?code="), link
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(link)
    assert page.url == served.url + "/"
    yield page
    context.close()
    assert not [text for text in dialogs if "alert" in text or text == "1"], dialogs
    # No script error and nothing the Content-Security-Policy had to block.
    assert not [text for text in problems if "status of 4" not in text], problems


def mark_page(page: Any) -> None:
    """A value that only survives as long as the page is not loaded again."""
    page.evaluate("window.notReloaded = true")


def not_reloaded(page: Any) -> bool:
    return bool(page.evaluate("window.notReloaded === true"))


def test_without_the_token_every_page_and_call_is_refused(served: Served) -> None:
    for path in ("/", "/jobs", "/jobs/flaky", "/runs/1", "/api/v1/jobs", "/api/v1/events"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(served.url + path, timeout=10)
        assert refused.value.code == 401, path


def test_a_used_login_link_is_refused(served: Served, browser: Any) -> None:
    link = login_link(served)
    context = browser.new_context()
    try:
        first = context.new_page()
        assert first.goto(link).status == 200  # after the redirect to /
        other = browser.new_context()
        second = other.new_page()
        assert second.goto(link).status == 401
        assert "jobctl dashboard" in second.content()
        other.close()
    finally:
        context.close()


def test_a_job_firing_every_second_appears_and_updates_without_a_reload(
    served: Served, page: Any
) -> None:
    page.goto(served.url + "/jobs")
    page.locator("#connection", has_text="live").wait_for()  # on the event stream
    mark_page(page)
    add_job(served.db, "beat", "--exec", "echo tick", "--every", "1s")
    row = page.locator('tr[data-job="beat"]')
    row.wait_for()
    page.goto(served.url + "/jobs/beat")
    mark_page(page)
    counts = page.locator("dd", has_text="total,")
    first = counts.inner_text()
    wait_until(lambda: counts.inner_text() != first, timeout=10, what="the run counts to move")
    later = counts.inner_text()
    wait_until(lambda: counts.inner_text() != later, timeout=10, what="them to move again")
    assert not_reloaded(page)
    assert page.locator('.timeline[data-window="last 24 hours"] rect.mark').count() >= 1


def test_pause_and_resume(served: Served, page: Any) -> None:
    page.goto(served.url + "/jobs/flaky")
    page.locator("#pause").click()
    page.locator("#job-state", has_text="paused").wait_for()
    assert query(served.db, "SELECT state FROM jobs WHERE name = 'flaky'")[0][0] == "paused"
    page.locator("#resume").focus()  # with the keyboard this time
    page.keyboard.press("Enter")
    page.locator("#job-state", has_text="enabled").wait_for()
    assert query(served.db, "SELECT state FROM jobs WHERE name = 'flaky'")[0][0] == "enabled"


def test_run_now_follow_the_output_live_and_cancel(served: Served, page: Any) -> None:
    page.goto(served.url + "/jobs/slow")
    page.locator("#run-now").click()
    link = page.locator("#notice a")
    link.wait_for()
    link.click()
    page.wait_for_url("**/runs/*")
    mark_page(page)
    output = page.locator("#output")
    output.filter(has_text="line 1").wait_for()
    output.filter(has_text="line 3").wait_for()  # came while the page was open
    assert not_reloaded(page)
    page.locator("#cancel").click()
    page.locator("#run-status", has_text="cancelled").wait_for()
    assert not_reloaded(page)
    run_id = int(page.url.rsplit("/", 1)[1])
    assert query(served.db, "SELECT status FROM runs WHERE id = ?", run_id)[0][0] == "cancelled"


def test_the_timeline_shows_failures_and_missed_slots(served: Served, page: Any) -> None:
    page.goto(served.url + "/jobs/flaky")
    day = page.locator('.timeline[data-window="last 24 hours"]')
    assert day.locator('rect[data-lane="failed"]').count() == 2
    assert day.locator('rect[data-lane="missed"]').count() == 1
    assert day.locator('rect[data-lane="succeeded"]').count() >= 1
    caption = day.locator("figcaption").inner_text()
    assert "2 failed" in caption and "6 missed slots" in caption
    assert day.locator("text.lane-label", has_text="missed").is_visible()
    box = day.locator('rect[data-lane="missed"]').bounding_box()
    assert box is not None and box["width"] > 5  # the missed row spans its hour of slots


def test_html_in_a_description_and_in_output_is_shown_as_text(served: Served, page: Any) -> None:
    page.goto(served.url + "/jobs/evil")
    assert page.locator(".description").inner_text() == EVIL
    page.locator("table.runs a").first.click()
    page.wait_for_url("**/runs/*")
    assert page.locator("#output").inner_text() == f"<b>bold</b>{EVIL}"
    assert page.locator("#output b").count() == 0
    assert page.locator("main script").count() == 0


def test_clear_history(served: Served, page: Any) -> None:
    page.goto(served.url + "/jobs/flaky")
    assert page.locator("table.runs tbody tr").count() == 4
    page.locator("#clear").click()  # the confirmation is accepted by the page fixture
    page.locator("#notice", has_text="deleted 4 runs").wait_for()
    page.locator("#history + p", has_text="No runs").wait_for()
    assert (
        query(
            served.db,
            "SELECT count(*) FROM runs JOIN jobs ON jobs.id = runs.job_id"
            " WHERE jobs.name = 'flaky'",
        )[0][0]
        == 0
    )


def test_no_page_is_wider_than_a_phone(served: Served, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        phone = context.new_page()
        phone.set_default_timeout(TIMEOUT_MS)
        phone.goto(login_link(served))
        for path in ("/", "/jobs", "/jobs/flaky"):
            phone.goto(served.url + path)
            # wide tables scroll inside their box; the page itself never scrolls sideways
            assert phone.evaluate("document.documentElement.scrollWidth") <= 390, path
    finally:
        context.close()


def test_keyboard_focus_stays_put_when_the_page_updates(served: Served, page: Any) -> None:
    page.goto(served.url + "/jobs")
    page.locator('table.jobs a[href="/jobs/flaky"]').focus()  # a link without an id
    page.evaluate("document.querySelector('table.jobs').dataset.old = 'yes'")
    add_job(served.db, "focus-probe", "--exec", "true", "--manual")  # an event: a refresh
    wait_until(
        lambda: page.evaluate("!document.querySelector('table.jobs[data-old]')"),
        what="the jobs table fetched again",
    )
    assert page.evaluate("document.activeElement.getAttribute('href')") == "/jobs/flaky"
