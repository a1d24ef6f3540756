"""`jobctl api token` (the API token: show or replace) and `jobctl dashboard` (a one-time
login link to the dashboard the daemon serves)."""

from __future__ import annotations

import click

from jobctl.cli.hook_commands import BASE_URL_HELP
from jobctl.cli.shared import cli, db_option, db_path, json_option, open_db, read_db


@cli.group()
def api() -> None:
    """The REST API the daemon serves under /api/v1/ (with --listen).

    Every request needs `Authorization: Bearer TOKEN`; `jobctl api token` shows the
    token. /healthz and /hooks/... stay open (webhooks keep their own secrets).

    \b
    Examples:
      jobctl api token
      curl -H "Authorization: Bearer $(jobctl api token)" http://127.0.0.1:8787/api/v1/jobs
    """


@api.command(name="token")
@click.option(
    "--rotate", is_flag=True, help="Replace the token (and log every dashboard session out)."
)
@db_option
@json_option
@click.pass_context
def api_token(ctx: click.Context, rotate: bool, as_json: bool) -> None:
    """Print the API token (made on first use), or with --rotate replace it.

    The old token is refused at once after --rotate, and browsers logged in to the
    dashboard must log in again (`jobctl dashboard`).

    \b
    Examples:
      jobctl api token
      jobctl api token --rotate --json
    """
    from jobctl import access
    from jobctl.output import to_json

    store = open_db(ctx)
    ended = 0
    if rotate:
        token, ended = access.rotate_token(store)
    else:
        token = access.ensure_token(store)
    if as_json:
        click.echo(to_json({"token": token, "rotated": rotate, "sessions_ended": ended}))
        return
    click.echo(token)
    if rotate:
        click.echo(
            "API token replaced: the old one is refused from now on; "
            f"{ended} dashboard session{'' if ended == 1 else 's'} logged out",
            err=True,
        )


@cli.command(name="dashboard")
@click.option("--open", "open_browser", is_flag=True, help="Open the link in a web browser.")
@click.option("--base-url", metavar="URL", help=BASE_URL_HELP)
@db_option
@json_option
@click.pass_context
def dashboard(ctx: click.Context, open_browser: bool, base_url: str | None, as_json: bool) -> None:
    """Print a login link to the dashboard: it works once, for 10 minutes.

    The link opens a browser session of 7 days on the daemon's listen address (the
    daemon must run with --listen; exit 4 if none listens). `jobctl api token
    --rotate` ends every session.

    \b
    Examples:
      jobctl dashboard --open
      jobctl dashboard --base-url https://jobs.example.com
    """
    from jobctl import access
    from jobctl.output import to_json
    from jobctl.timeutil import iso_z, local_text, utcnow

    store = read_db(ctx)
    url, expires_at = access.login_link(store, db_path(ctx), base_url, utcnow())
    opened = open_browser and _open(url)
    if as_json:
        click.echo(to_json({"url": url, "expires_at": iso_z(expires_at), "opened": opened}))
    else:
        click.echo(url)
        click.echo(f"the link works once, until {local_text(expires_at)}", err=True)
    if open_browser and not opened:
        click.echo("no web browser could be opened: open the link yourself", err=True)


def _open(url: str) -> bool:
    import webbrowser

    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False
