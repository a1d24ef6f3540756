"""`jobctl team`: add, edit, list, show and rm the teams that team jobs prompt."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import click

from jobctl.cli.complete import complete_agent_names, complete_team_names
from jobctl.cli.shared import cli, db_option, json_option, open_db, read_db

MEMBER_HELP = (
    "A member, in order: AGENT or AGENT:ROLE TEXT (the role text goes before the prompt), "
    "or approve:TEXT (the run waits there for `jobctl runs approve`); repeat for more."
)
APPROVAL_TIMEOUT_HELP = "How long a run waits for an approval before it ends timed_out (24h)."

if TYPE_CHECKING:
    from jobctl.models import Team


def _now() -> datetime:
    from jobctl.timeutil import utcnow

    return utcnow()


def _describe(team: Team) -> str:
    chain = " -> ".join(member.label for member in team.members)
    return f"team {team.name!r}: {chain}"


@cli.group()
@db_option
def team() -> None:
    """Teams: agents that answer a job's prompt in turn, each seeing the answers before it.

    Each member is sent its role text, the job's prompt and the answer before its own
    ({previous}; {step:N} for member N's); each turn is a step of the run, and the last
    answer is the run's output.

    \b
    Examples:
      jobctl team add review --member scanner:'Find vulnerabilities.' --member writer
      jobctl add nightly --team review --prompt 'Check the repo' --cron '0 3 * * *'
      jobctl team show review
    """


@team.command()
@click.argument("name")
@click.option(
    "--member",
    "members",
    multiple=True,
    required=True,
    metavar="AGENT[:ROLE]",
    help=MEMBER_HELP,
    shell_complete=complete_agent_names,
)
@click.option("--approval-timeout", metavar="D", help=APPROVAL_TIMEOUT_HELP)
@db_option
@json_option
@click.pass_context
def add(
    ctx: click.Context,
    /,
    name: str,
    members: tuple[str, ...],
    approval_timeout: str | None,
    as_json: bool,
) -> None:
    """Add a team: its members answer in the order given.

    \b
    Examples:
      jobctl team add review --member scanner:'Find vulnerabilities.' --member writer:'Summarise for Slack.'
      jobctl add nightly-review --team review --prompt 'Check {job}' --cron '0 3 * * *'
    """
    from jobctl.output import to_json
    from jobctl.teams import add_team, team_to_dict

    added = add_team(open_db(ctx), name, members, _now(), approval_timeout)
    if as_json:
        click.echo(to_json(team_to_dict(added, [])))
        return
    click.echo(f"added {_describe(added)}")


@team.command()
@click.argument("name", shell_complete=complete_team_names)
@click.option(
    "--member",
    "members",
    multiple=True,
    metavar="AGENT[:ROLE]",
    help=MEMBER_HELP + " The members given replace the team's.",
    shell_complete=complete_agent_names,
)
@click.option("--approval-timeout", metavar="D", help=APPROVAL_TIMEOUT_HELP)
@db_option
@json_option
@click.pass_context
def edit(
    ctx: click.Context,
    /,
    name: str,
    members: tuple[str, ...],
    approval_timeout: str | None,
    as_json: bool,
) -> None:
    """Give a team new members (all of them, in order).

    \b
    Examples:
      jobctl team edit review --member scanner --member approve:'Post it?' --member writer
      jobctl team edit review --approval-timeout 4h
    """
    from jobctl.output import to_json
    from jobctl.teams import edit_team, team_to_dict

    store = open_db(ctx)
    edited = edit_team(store, name, members, _now(), approval_timeout)
    if as_json:
        click.echo(to_json(team_to_dict(edited, store.jobs_using_team(edited.name))))
        return
    click.echo(f"updated {_describe(edited)}")


@team.command(name="list")
@db_option
@json_option
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List teams with their members and the jobs using them.

    \b
    Examples:
      jobctl team list
      jobctl team list --json | jq '.[].name'
    """
    from jobctl.output import table, to_json
    from jobctl.teams import team_to_dict

    store = read_db(ctx)
    teams = store.all_teams()
    users = [store.jobs_using_team(item.name) for item in teams]
    if as_json:
        click.echo(
            to_json([team_to_dict(item, jobs) for item, jobs in zip(teams, users, strict=True)])
        )
        return
    if not teams:
        click.echo("no teams yet: add one with `jobctl team add NAME --member AGENT ...`", err=True)
        return
    rows = [
        [item.name, " -> ".join(m.label for m in item.members), ", ".join(jobs) or "-"]
        for item, jobs in zip(teams, users, strict=True)
    ]
    click.echo(table(rows, ["NAME", "MEMBERS", "JOBS"]))


@team.command()
@click.argument("name", shell_complete=complete_team_names)
@db_option
@json_option
@click.pass_context
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show a team's members with their role text, and the jobs that use it.

    \b
    Examples:
      jobctl team show review
      jobctl team show review --json
    """
    from jobctl.output import key_values, to_json
    from jobctl.teams import get_team, member_text, team_to_dict
    from jobctl.timeutil import format_duration, local_text

    store = read_db(ctx)
    found = get_team(store, name)
    data = team_to_dict(found, store.jobs_using_team(found.name))
    if as_json:
        click.echo(to_json(data))
        return
    pairs: list[tuple[str, object]] = [("name", found.name)]
    for number, member in enumerate(found.members, 1):
        pairs.append((f"step {number}", member_text(member).replace(":", ": ", 1)))
    if any(member.approve is not None for member in found.members):
        pairs.append(("approval timeout", format_duration(found.effective_approval_timeout)))
    pairs += [
        ("jobs", ", ".join(data["jobs"]) or None),
        ("created", local_text(found.created_at) if found.created_at else None),
        ("updated", local_text(found.updated_at) if found.updated_at else None),
    ]
    click.echo(key_values(pairs))


@team.command()
@click.argument(
    "names", metavar="NAME...", nargs=-1, required=True, shell_complete=complete_team_names
)
@click.option("--force", is_flag=True, help="Remove even if jobs use it; those jobs are paused.")
@db_option
@click.pass_context
def rm(ctx: click.Context, names: tuple[str, ...], force: bool) -> None:
    """Remove teams (all or none); refused while a job uses one, unless --force.

    \b
    Examples:
      jobctl team rm review
    """
    from jobctl.teams import remove_teams

    for removed in remove_teams(open_db(ctx), names, force=force, now=_now()):
        click.echo(f"removed team {removed.team!r}")
        for job in removed.paused_jobs:
            click.echo(f"paused job {job!r}: team {removed.team} was removed", err=True)
