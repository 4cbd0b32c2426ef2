"""`locker retention`: apply categories, list the review queue, plan and run the sweep.

`run` has the real clock only: no option moves time forward (tests seed past times through the
services). On scale-out it must run with the LIFECYCLE object-store credential in its
environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), the only one allowed to delete blobs and
bypass governance retention (deploy/README.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from evidence_locker.accounts.cli import cli_actor, cli_transaction, fail
from evidence_locker.clock import SystemClock
from evidence_locker.config import Settings

app = typer.Typer(help="Evidence retention: categories, the sweep.", no_args_is_help=True)
categories_app = typer.Typer(help="Retention categories.", no_args_is_help=True)
app.add_typer(categories_app, name="categories")


@app.callback()
def _retention() -> None:
    """Evidence retention: categories, the sweep."""


@categories_app.callback()
def _categories() -> None:
    """Retention categories."""


@categories_app.command("apply")
def apply(
    decision: Annotated[str | None, typer.Option(
        "--decision", help="Why a change that shortens flagged evidence's retention is "
        "accepted (recorded with the new versions).")] = None,
) -> None:
    """Record the configured categories as new versions (unchanged ones are left alone)."""
    from evidence_locker.lifecycle.service import LifecycleRefused, apply_categories

    settings = Settings()
    try:
        with cli_transaction(settings) as session:
            changes = apply_categories(session, clock=SystemClock(), actor=cli_actor(),
                                       settings=settings, decision=decision)
    except LifecycleRefused as exc:
        raise fail(str(exc)) from exc
    for c in changes:
        was = "new" if c.old is None else f"was {c.old.kind} {c.old.days} days"
        typer.echo(f"{c.name}: {c.new.kind} {c.new.days} days ({was}; {c.flagged} flagged)")
    typer.echo(f"{len(changes)} categories changed")


@app.command("plan")
def plan_command(
    days: Annotated[int, typer.Option("--days", min=0, help="Look this many days ahead.")] = 7,
) -> None:
    """What the retention rules will delete in the next N days, by unit."""
    from collections import Counter

    from evidence_locker.fleet.models import Unit
    from evidence_locker.lifecycle.sweep import plan

    settings = Settings()
    with cli_transaction(settings) as session:
        due = plan(session, now=SystemClock().now(), days=days)
        names = {u.id: u.code for u in session.query(Unit)}
    by_unit = Counter(names.get(d.unit_id, "(no unit)") if d.unit_id else "(no unit)"
                      for d in due)
    for unit, n in sorted(by_unit.items()):
        typer.echo(f"{unit}\t{n}")
    typer.echo(f"{len(due)} recordings due for deletion in the next {days} days")


@app.command("digest")
def digest_command(
    days: Annotated[int, typer.Option("--days", min=1, max=31, help="Look this many days "
                                      "ahead.")] = 7,
    out: Annotated[str | None, typer.Option("--out", help="Write under this directory "
                                            "(default: the configured digest directory).")]
    = None,
) -> None:
    """Write each unit's digest of what will be deleted in the next N days (one file each)."""
    from pathlib import Path

    from evidence_locker.lifecycle.digest import write_digests

    settings = Settings()
    with cli_transaction(settings) as session:
        paths = write_digests(session, clock=SystemClock(), settings=settings, days=days,
                              out_dir=Path(out) if out else None, actor=cli_actor())
    for path in paths:
        typer.echo(str(path))
    typer.echo(f"{len(paths)} unit digests written")


@app.command("reviews")
def reviews_command(
    days: Annotated[int, typer.Option("--days", min=0, max=366, help="Due within this many "
                                      "days (0: due now).")] = 0,
) -> None:
    """The review queue: evidence flags due for review (retain or dispose), soonest first."""
    from evidence_locker.lifecycle.reviews import review_queue

    settings = Settings()
    items: list[dict[str, object]] = []
    cursor: str | None = None
    with cli_transaction(settings) as session:
        while True:
            page = review_queue(session, clock=SystemClock(), principal=None, actor=cli_actor(),
                                days=days, limit=500, cursor=cursor)
            items += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
    for i in items:
        typer.echo(f"{i['review_due_at']}\t{i['unit'] or '(no unit)'}\t{i['recording_id']}\t"
                   f"flag {i['flag_id']}\t{i['category']}\t{i['reference'] or '-'}")
    typer.echo(f"{len(items)} flags due for review "
               + (f"in the next {days} days" if days else "now"))


@app.command("run")
def run(
    batch: Annotated[int | None, typer.Option("--batch", min=1, help="Recordings per "
                                              "transaction.")] = None,
) -> None:
    """Delete what the rule of deletion allows now; resume deletions a crash interrupted."""
    from evidence_locker.lifecycle.sweep import run_sweep
    from evidence_locker.runtime import build_runtime

    runtime = build_runtime(Settings())
    try:
        result = run_sweep(runtime.sessions, clock=runtime.clock, settings=runtime.settings,
                           store=runtime.store, batch=batch)
    finally:
        runtime.close()
    typer.echo(f"retention: {result.deleted} deleted ({result.resumed} resumed), "
               f"{result.kept} kept by a newer rule, {len(result.failed)} failed, "
               f"{result.bytes_deleted} bytes freed")
    for line in result.failed:
        typer.echo(f"FAILED {line}", err=True)
    if result.failed:
        raise typer.Exit(code=1)


@app.command("tombstones")
def tombstones_command(
    csv_file: Annotated[str | None, typer.Option(
        "--csv", help="Write the CSV here (written to a temporary file, then renamed).")] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="Only this unit's subtree.")] = None,
) -> None:
    """What the sweep deleted: one row per finished tombstone (no footage), audited."""
    import os
    from pathlib import Path

    from evidence_locker.lifecycle import records

    settings = Settings()
    out = None
    try:
        with cli_transaction(settings) as session:
            lines = records.csv_lines(records.tombstone_rows(session, unit=unit))
            if csv_file is None:
                for line in lines:
                    typer.echo(line, nl=False)
            else:
                out = Path(csv_file)
                tmp = out.with_name(out.name + ".tmp")
                n = -1
                with open(tmp, "w", newline="") as fh:
                    for line in lines:
                        fh.write(line)
                        n += 1
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, out)
                typer.echo(f"{n} tombstones written to {out}")
            records.audit_export(session, clock=SystemClock(), actor=cli_actor(), via="cli",
                                 filters={k: v for k, v in (("unit", unit),) if v})
    except LookupError as exc:
        raise fail(str(exc)) from exc
