"""Commands that treat jobs as a file: export and apply."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from jobctl.cli.complete import complete_job_names
from jobctl.cli.progress import phased_progress, quiet_option
from jobctl.cli.shared import cli, db_option, json_option, open_db, read_db
from jobctl.errors import InvalidInput

if TYPE_CHECKING:
    from jobctl.apply import Plan


@cli.command()
@click.argument("names", metavar="[NAME]...", nargs=-1, shell_complete=complete_job_names)
@click.option(
    "--format", "fmt", type=click.Choice(["toml", "json"]), help="Document format (default toml)."
)
@db_option
@json_option
@click.pass_context
def export(ctx: click.Context, names: tuple[str, ...], fmt: str | None, as_json: bool) -> None:
    """Print jobs (all, or those named), agents and teams as a file `jobctl apply` reads back.

    The agents and teams are all of them, or with NAMEs the ones those jobs prompt (and the
    agents of those teams); an agent's API key
    is only ever the name of its variable. Jobs and agents are written as stored, secrets
    included, so that apply round-trips: a literal secret (an Authorization header, a
    password in a URL) is written with a warning on stderr; `${NAME}` references stay
    references. --json is --format json.

    \b
    Examples:
      jobctl export > jobs.toml
      jobctl export backup report --format json
    """
    from jobctl.jobfile import export_jobs

    if as_json and fmt == "toml":
        raise InvalidInput("--json and --format toml cannot be combined")
    text, warnings = export_jobs(read_db(ctx), names, "json" if as_json else fmt or "toml")
    for warning in warnings:
        click.echo(f"jobctl: warning: {warning}", err=True)
    click.echo(text, nl=False)


@cli.command()
@click.option(
    "-f",
    "--file",
    "path",
    metavar="FILE",
    required=True,
    help="TOML or JSON jobs file, or - for standard input.",
)
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@click.option(
    "--prune",
    is_flag=True,
    help="Also remove jobs (and their history) that the file does not list, and agents it "
    "does not list that none of its jobs use.",
)
@quiet_option
@db_option
@json_option
@click.pass_context
def apply(
    ctx: click.Context, path: str, dry_run: bool, prune: bool, quiet: bool, as_json: bool
) -> None:
    """Make the jobs match a file from `jobctl export`: add, change, and with --prune remove.

    Agents in the file are applied first, then its teams (added or changed; teams the file
    does not list are kept), so its agent and team jobs find them. All or nothing: a bad
    entry anywhere changes nothing and is named in the error. Applying the same file again
    changes nothing. A changed job keeps its history; a job renamed in the file is a new job
    (rename with `jobctl edit NAME --name NEW` to keep the history). A file without an
    `agents` list leaves the agents alone. A terminal shows the jobs checked, then written,
    as progress bars on stderr.

    \b
    Examples:
      jobctl apply -f jobs.toml --dry-run
      jobctl export | ssh other-host jobctl apply -f - --prune
    """
    from jobctl.apply import apply_document
    from jobctl.jobfile import read_document
    from jobctl.timeutil import utcnow

    doc = read_document(path)
    store = open_db(ctx)
    labels = {"checking": "checking jobs", "writing": "writing jobs"}
    with phased_progress(labels, "jobs", quiet=quiet) as on_progress:
        plan = apply_document(
            store, doc, utcnow(), prune=prune, dry_run=dry_run, on_progress=on_progress
        )
    if as_json:
        from jobctl.output import to_json

        click.echo(to_json({**plan.names(), "dry_run": dry_run}))
    else:
        click.echo(_plan_text(plan, dry_run))
    for names, noun, why in (
        (plan.not_in_file, "job", "--prune removes them"),
        (
            plan.agents.not_in_file,
            "agent",
            "its jobs use them" if prune else "--prune removes those no job uses",
        ),
    ):
        if names:
            count = len(names)
            click.echo(
                f"jobctl: {_count(count, noun)} in the database {'is' if count == 1 else 'are'} "
                f"not in the file and kept ({why})",
                err=True,
            )


def _plan_text(plan: Plan, dry_run: bool) -> str:
    names = plan.names()
    agents = names["agents"]
    prefix = "would " if dry_run else ""
    marks = (("+", "added"), ("~", "changed"), ("-", "removed"))
    lines = [f"{prefix}{mark} agent {name}" for mark, key in marks for name in agents[key]]
    teams = plan.teams.names()
    lines += [f"{prefix}{mark} team {name}" for mark, key in marks[:2] for name in teams[key]]
    lines += [f"{prefix}{mark} {name}" for mark, key in marks for name in names[key]]
    if plan.has_changes:
        summary = (
            f"{'would apply' if dry_run else 'applied'}: {len(names['added'])} added, "
            f"{len(names['changed'])} changed, {len(names['removed'])} removed, "
            f"{len(names['unchanged'])} unchanged"
        )
        if any(agents.values()):
            summary += (
                f"; agents: {len(agents['added'])} added, {len(agents['changed'])} changed, "
                f"{len(agents['removed'])} removed, {len(agents['unchanged'])} unchanged"
            )
        lines.append(summary)
    else:
        unchanged = _count(len(names["unchanged"]), "job")
        if agents["unchanged"]:
            unchanged += f" and {_count(len(agents['unchanged']), 'agent')}"
        lines.append(f"nothing to change: {unchanged} unchanged")
    return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
