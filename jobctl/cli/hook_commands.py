"""`jobctl hook`: webhook triggers for jobs (enable, rotate, disable, show)."""

from __future__ import annotations

import click

from jobctl.cli.complete import complete_job_names
from jobctl.cli.shared import cli, db_option, json_option, open_db, read_db
from jobctl.errors import NotFound

BASE_URL_HELP = "Public base URL (http:// or https://) when a reverse proxy fronts the daemon."


@cli.group()
def hook() -> None:
    """Webhook triggers: an authenticated POST to the daemon starts a run.

    Callers send `Authorization: Bearer SECRET`, or sign the body like GitHub
    (`X-Hub-Signature-256`). The daemon must run with --listen.

    A repeat of a request starts nothing: for 24 hours the daemon remembers each
    job's `X-GitHub-Delivery` ids and `Idempotency-Key` values and answers a repeat
    200 with the first request's run id and "duplicate": true. A request with
    neither header is always a new run: send a unique Idempotency-Key to be safe
    from replays.

    \b
    Examples:
      jobctl hook enable deploy
      curl -X POST -H "Authorization: Bearer $SECRET" http://127.0.0.1:8787/hooks/deploy
      curl -X POST -H "Authorization: Bearer $SECRET" -H "Idempotency-Key: $(uuidgen)" "$URL"
    """


def _print_secret(name: str, url: str, secret: str, as_json: bool, verb: str) -> None:
    from jobctl.output import to_json

    if as_json:
        click.echo(to_json({"job": name, "url": url, "secret": secret}))
        return
    click.echo(f"url:    {url}\nsecret: {secret}")
    click.echo(
        f"webhook {verb} for {name}: the secret is shown only now; keep it somewhere safe", err=True
    )
    if "PORT" in url:
        click.echo(
            "start the daemon with --listen HOST:PORT (or pass --base-url) for the real URL",
            err=True,
        )


@hook.command(name="enable")
@click.argument("name", shell_complete=complete_job_names)
@click.option("--base-url", metavar="URL", help=BASE_URL_HELP)
@db_option
@json_option
@click.pass_context
def hook_enable(ctx: click.Context, name: str, base_url: str | None, as_json: bool) -> None:
    """Create the job's webhook secret and print the URL and the secret, once.

    \b
    Examples:
      jobctl hook enable deploy
      jobctl hook enable deploy --base-url https://jobs.example.com --json
    """
    _new_secret(ctx, name, base_url, as_json, rotate=False)


@hook.command(name="rotate")
@click.argument("name", shell_complete=complete_job_names)
@click.option("--base-url", metavar="URL", help=BASE_URL_HELP)
@db_option
@json_option
@click.pass_context
def hook_rotate(ctx: click.Context, name: str, base_url: str | None, as_json: bool) -> None:
    """Replace the job's webhook secret (the old one stops working) and print it once.

    \b
    Examples:
      jobctl hook rotate deploy
    """
    _new_secret(ctx, name, base_url, as_json, rotate=True)


def _new_secret(
    ctx: click.Context, name: str, base_url: str | None, as_json: bool, *, rotate: bool
) -> None:
    from jobctl import hooks
    from jobctl.catalog import get_job

    hooks.validate_base_url(base_url)  # before anything changes
    store = open_db(ctx)
    with store.write():
        secret = hooks.set_secret(store, get_job(store, name), rotate=rotate)
    url = hooks.hook_url(store, name, base_url)
    _print_secret(name, url, secret, as_json, "rotated" if rotate else "enabled")


@hook.command(name="disable")
@click.argument("name", shell_complete=complete_job_names)
@db_option
@click.pass_context
def hook_disable(ctx: click.Context, name: str) -> None:
    """Remove the job's webhook: calls to its URL are refused from now on.

    \b
    Examples:
      jobctl hook disable deploy
    """
    from jobctl import hooks
    from jobctl.catalog import get_job

    store = open_db(ctx)
    with store.write():
        disabled = hooks.disable(store, get_job(store, name))
    if not disabled:
        raise NotFound(f"job {name!r} has no webhook")
    click.echo(f"webhook disabled for {name}")


@hook.command(name="show")
@click.argument("name", shell_complete=complete_job_names)
@click.option("--base-url", metavar="URL", help=BASE_URL_HELP)
@db_option
@json_option
@click.pass_context
def hook_show(ctx: click.Context, name: str, base_url: str | None, as_json: bool) -> None:
    """Print the job's webhook URL (never the secret).

    \b
    Examples:
      jobctl hook show deploy
    """
    from jobctl import hooks
    from jobctl.catalog import get_job
    from jobctl.output import to_json

    hooks.validate_base_url(base_url)  # before anything changes
    store = read_db(ctx)
    if not hooks.is_enabled(store, get_job(store, name)):
        raise NotFound(f"job {name!r} has no webhook: `jobctl hook enable {name}` creates one")
    url = hooks.hook_url(store, name, base_url)
    click.echo(to_json({"job": name, "url": url, "enabled": True}) if as_json else url)
