"""The `points` command: run the local system and mint dev tokens."""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import Annotated

import typer
from rich.console import Console

from deploy.stack import Stack
from services.ingest.auth import mint_dev_token
from shared.settings import get_settings

# `points` runs the local dev stack: it (and every process `points up` starts) may use the public dev
# secrets. Anything else defaults to production and refuses them; an explicit POINTS_ENV wins.
os.environ.setdefault("POINTS_ENV", "dev")

# While a broker boots, every refused connection would otherwise print a line.
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

app = typer.Typer(help="Points ledger: local system and operator tools.", no_args_is_help=True)
console = Console(stderr=True)


def _refusing_drift(step) -> None:
    """A topic in a shape that cannot be repaired stops the command, saying which and why."""
    from shared.topic_admin import TopicDrift

    try:
        step()
    except TopicDrift as drift:
        console.print(f"[red]refused[/red]: {drift}")
        raise typer.Exit(1) from drift


@app.command()
def up(
    brokers: Annotated[int | None, typer.Option(min=1, max=9, help="Kafka brokers (a KRaft cluster when more than "
                                                "one); default POINTS_BROKERS, else what the state folder runs, else 1."
                                                )] = None,
    instances: Annotated[int | None, typer.Option(min=1, max=9, help="Instances of every service; default "
                                                  "POINTS_INSTANCES, else what the state folder runs, else 1.")] = None,
    monitoring: Annotated[bool, typer.Option("--monitoring", help="Also Prometheus (the guide's alerts) and "
                                             "Alertmanager (routing them to the gateway's webhook).")] = False,
) -> None:
    """Start Kafka, PostgreSQL and every service that is not running; return once all are ready."""
    from deploy.stack import ShapeChanged
    from shared.settings import Settings

    shape = {name: value for name, value in (("brokers", brokers), ("instances", instances),
                                             ("monitoring", monitoring or None)) if value is not None}
    stack = Stack(Settings(**shape) if shape else get_settings())

    def start() -> None:
        with console.status("starting the points system") as status:
            stack.up(echo=lambda msg: status.update(msg) if not msg.startswith("repaired") else console.print(msg))

    try:
        _refusing_drift(start)
    except ShapeChanged as refused:
        console.print(f"[red]refused[/red]: {refused}")
        raise typer.Exit(1) from refused
    console.print(f"[green]ready[/green]: {len(stack.brokers)} broker(s), {stack.settings.instances} instance(s) of "
                  f"every service; gateway on {', '.join(stack.gateway_urls)}")
    if stack.settings.monitoring:
        console.print(f"Prometheus on {stack.monitoring[0].url}, Alertmanager on {stack.monitoring[1].url}")


@app.command()
def init() -> None:
    """Create (or repair) the topics and apply the migrations on a Kafka and PostgreSQL that already run."""
    settings = get_settings().model_copy(update={"manage_kafka": False})
    _refusing_drift(lambda: Stack(settings).prepare(echo=lambda msg: console.print(msg)))


@app.command()
def down() -> None:
    """Stop everything `up` started."""
    stack = Stack(get_settings())
    with console.status("stopping the points system") as status:
        stack.down(echo=lambda msg: status.update(msg))
    console.print("[green]stopped[/green]")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False) -> None:
    """Which parts run, with their pids and readiness."""
    report = Stack(get_settings()).status()
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    from rich.table import Table

    table = Table("service", "pid", "ready")
    for name, info in report["services"].items():
        table.add_row(name, str(info["pid"] or "-"), "[green]yes[/green]" if info["ready"] else "[red]no[/red]")
    Console().print(table)
    Console().print(f"gateway {', '.join(report['gateway_urls'])}  kafka {report['kafka_bootstrap']}  "
                    f"db {report['database_url']}")


projector_app = typer.Typer(help="The read models: rebuild them from the log and compare.", no_args_is_help=True)
app.add_typer(projector_app, name="projector")


@projector_app.command("rebuild")
def projector_rebuild(
    keep: Annotated[bool, typer.Option(help="Keep the rebuilt schema for inspection.")] = False,
) -> None:
    """Replay the log from offset 0 into a fresh schema and compare every table with the live one."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from services.projector.rebuild import rebuild_and_compare

    with Progress(TextColumn("replaying the log"), BarColumn(), MofNCompleteColumn(), console=console) as progress:
        task = progress.add_task("replay", total=None)
        schema, results = asyncio.run(rebuild_and_compare(
            get_settings(), keep=keep, progress=lambda done, total: progress.update(task, completed=done,
                                                                                   total=total)))
    table = Table("table", "live rows", "rebuilt rows", "checksum", "matches")
    for r in results:
        table.add_row(r.table, str(r.live_rows), str(r.rebuilt_rows), r.rebuilt_checksum[:12],
                      "[green]yes[/green]" if r.matches else "[red]NO[/red]")
    Console().print(table)
    if keep:
        console.print(f"rebuilt schema kept as {schema}")
    if not all(r.matches for r in results):
        raise typer.Exit(1)


deadletters_app = typer.Typer(help="Records set aside as untrusted or unreadable.", no_args_is_help=True)
app.add_typer(deadletters_app, name="deadletters")


def _select(service: str | None, reason: str | None):
    import asyncio

    from deploy.deadletters import read_all

    letters = asyncio.run(read_all(get_settings().kafka_bootstrap_servers))
    return [d for d in letters if (service is None or d.service == service)
            and (reason is None or reason.lower() in d.reason.lower())]


@deadletters_app.command("list")
def deadletters_list(
    service: Annotated[str | None, typer.Option(help="Only those set aside by this service.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only those whose reason contains this.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """What was set aside, where from, by whom and why."""
    letters = _select(service, reason)
    if as_json:
        for d in letters:
            topic, partition, offset = d.source
            sys.stdout.write(json.dumps({"partition": d.partition, "offset": d.offset, "service": d.service,
                                         "reason": d.reason, "source_topic": topic, "source_partition": partition,
                                         "source_offset": offset, "key": d.key.decode(errors="replace")}) + "\n")
        return
    from rich.table import Table

    table = Table("dead letter", "set aside by", "from", "key", "reason")
    for d in letters:
        table.add_row(f"{d.partition}/{d.offset}", d.service, "/".join(map(str, d.source)),
                      d.key.decode(errors="replace"), d.reason)
    Console().print(table)


@deadletters_app.command("replay")
def deadletters_replay(
    service: Annotated[str | None, typer.Option(help="Only those set aside by this service.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only those whose reason contains this.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do it without asking.")] = False,
) -> None:
    """Send dead letters back to their source topics (after fixing what made them fail)."""
    import asyncio

    from deploy.deadletters import replay

    letters = _select(service, reason)
    if not letters:
        console.print("no dead letters match")
        return
    if not yes and not typer.confirm(f"replay {len(letters)} dead letters to their source topics?"):
        raise typer.Exit(1)
    count = asyncio.run(replay(get_settings().kafka_bootstrap_servers, letters))
    console.print(f"replayed {count} dead letters")


admin_app = typer.Typer(help="Operator actions through the log (what the guide's SQL did to the read models).",
                         no_args_is_help=True)
app.add_typer(admin_app, name="admin")
template_app = typer.Typer(help="Coupon templates on offer.", no_args_is_help=True)
admin_app.add_typer(template_app, name="template")
Operator = Annotated[str, typer.Option("--operator", envvar="POINTS_OPERATOR",
                                       help="Who is acting (an email, say): recorded with the action.")]


def _done(status: int, body: dict) -> None:
    """One JSON object on stdout; a refusal exits 1."""
    sys.stdout.write(json.dumps({"http_status": status, **body}, default=str) + "\n")
    if status >= 400:
        raise typer.Exit(1)


def _run_refusals(step) -> tuple[int, dict]:
    """The API's refusals (problem documents) as an operator sees them."""
    import asyncio

    from pydantic import ValidationError

    from services.ingest.problems import Problem

    try:
        result = asyncio.run(step())
    except Problem as problem:
        return problem.status, problem.document()
    except ValidationError as invalid:
        return 422, {"detail": "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors())}
    return result.status_code, result.body


@admin_app.command("award")
def admin_award(
    operator: Operator,
    user: Annotated[str, typer.Option("--user", help="The user to credit.")],
    points: Annotated[int, typer.Option("--points", help="Points to credit (1 to 1,000,000).")],
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded with the ledger record.")],
    key: Annotated[str | None, typer.Option("--key", help="Idempotency key; by default the same operator, user, "
                                                          "points and reason are one award however often run.")] = None,
) -> None:
    """Credit a user: an admin_award on the ledger naming the operator (the guide's manual-award INSERT)."""
    from deploy import operators

    _done(*_run_refusals(lambda: operators.award(get_settings(), operator=operator, user_id=user, points=points,
                                                  reason=reason, key=key)))


@admin_app.command("clawback")
def admin_clawback(
    operator: Operator,
    user: Annotated[str, typer.Option("--user", help="The user to take points back from.")],
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded with the clawback record.")],
    points: Annotated[int | None, typer.Option("--points", help="An amount to take back.")] = None,
    event: Annotated[list[str] | None, typer.Option("--event", help="A validated event whose credit to take back "
                                                                     "(repeatable); instead of --points.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Idempotency key; by default the same clawback typed "
                                                          "twice is taken once.")] = None,
) -> None:
    """Take points back after the fact (the guide's Partial Rollback for credited fraud): a clawback record
    naming the operator; never below zero, the rest recorded as owed."""
    from uuid import UUID

    from deploy import operators

    try:
        events = [UUID(e) for e in event] if event else None
    except ValueError as exc:
        raise typer.BadParameter("not an event id (UUID)", param_hint="--event") from exc
    _done(*_run_refusals(lambda: operators.claw_back(get_settings(), operator=operator, user_id=user, points=points,
                                                      event_ids=events, reason=reason, key=key)))


@admin_app.command("revoke")
def admin_revoke(
    operator: Operator,
    coupon_id: Annotated[str, typer.Argument(help="The coupon to revoke.")],
    refund: Annotated[bool, typer.Option("--refund/--no-refund", help="Give its points back.")] = False,
) -> None:
    """Make a coupon unusable, refunding its points if asked (the guide's revoke-coupon UPDATE and refund INSERT)."""
    from uuid import UUID

    from deploy import operators

    try:
        parsed = UUID(coupon_id)
    except ValueError as exc:
        raise typer.BadParameter("not a coupon id (UUID)", param_hint="COUPON_ID") from exc
    status, body = _run_refusals(lambda: operators.revoke(get_settings(), operator=operator, coupon_id=parsed,
                                                          refund=refund))
    if body.get("type", "").endswith("/coupon-revoked"):
        status, body = 200, {"coupon_id": coupon_id, "status": "revoked", "already": True}  # run twice: done once
    _done(status, body)


@admin_app.command("verdict")
def admin_verdict(
    operator: Operator,
    decision: Annotated[str, typer.Argument(help="approve or reject")],
    user: Annotated[str | None, typer.Option("--user", help="Every held event of this user.")] = None,
    event: Annotated[list[str] | None, typer.Option("--event", help="A held event (repeatable); instead of "
                                                                     "--user.")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why, recorded with each verdict.")] = None,
) -> None:
    """Approve or reject held events in bulk (the review queue's bulk verdict), each recorded like a
    single verdict naming the operator; a repeat changes nothing."""
    import asyncio
    from uuid import UUID

    from deploy import operators

    if decision not in ("approve", "reject"):
        raise typer.BadParameter("approve or reject", param_hint="DECISION")
    if (user is None) == (not event):
        raise typer.BadParameter("give either --user or --event", param_hint="--user / --event")
    try:
        events = [UUID(e) for e in event] if event else None
    except ValueError as exc:
        raise typer.BadParameter("not an event id (UUID)", param_hint="--event") from exc
    outcomes = asyncio.run(operators.verdict(get_settings(), operator=operator, decision=decision, note=note,
                                             event_ids=events, user_id=user))
    _done(200, {"decision": decision, "validated_by": operator, "outcomes": outcomes})


@admin_app.command("hold-pending")
def admin_hold_pending(
    operator: Operator,
    user: Annotated[list[str] | None, typer.Option("--user", help="Only this user's events (repeatable).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do it without asking.")] = False,
) -> None:
    """Send every still-undecided event (of the named users, when given) to the review queue: the
    guide's partial-rollback UPDATE."""
    import asyncio

    from deploy import operators

    whose = f"of {', '.join(user)}" if user else "of every user"
    if not yes and not typer.confirm(f"hold every pending event {whose} for review?"):
        raise typer.Exit(1)
    _done(200, {"held": asyncio.run(operators.hold_pending(get_settings(), operator=operator, user_ids=user))})


def _template_active(operator: str, template_id: str, active: bool) -> None:
    import asyncio
    from uuid import UUID

    from deploy import operators

    try:
        parsed = UUID(template_id)
    except ValueError as exc:
        raise typer.BadParameter("not a template id (UUID)", param_hint="TEMPLATE_ID") from exc
    row = asyncio.run(operators.set_template_active(get_settings(), operator=operator, template_id=parsed,
                                                    active=active))
    if row is None:
        _done(404, {"template_id": template_id, "detail": "No such coupon template."})
    _done(200, row)


@template_app.command("disable")
def template_disable(operator: Operator, template_id: Annotated[str, typer.Argument()]) -> None:
    """Stop offering a coupon (the guide's coupon_templates UPDATE); coupons already issued keep their terms."""
    _template_active(operator, template_id, False)


@template_app.command("enable")
def template_enable(operator: Operator, template_id: Annotated[str, typer.Argument()]) -> None:
    """Offer a coupon again."""
    _template_active(operator, template_id, True)


@app.command()
def chaos(
    soak: Annotated[bool, typer.Option(help="A long run: every fault three times, more users.")] = False,
    users: Annotated[int, typer.Option(help="Users submitting events.", min=1)] = 20,
    cluster: Annotated[bool, typer.Option(help="The cluster's faults (a broker, one instance of each service, a "
                                                "rolling restart of the brokers); needs `points up --brokers 3 "
                                                "--instances 2`.")] = False,
    report: Annotated[str | None, typer.Option(help="Write the report (Markdown) to this file.")] = None,
) -> None:
    """Kill, pause and restart each part under load; then check that nothing acknowledged was lost or doubled."""
    import asyncio

    from rich.table import Table

    from deploy import chaos as chaos_run

    stack = Stack(get_settings())
    try:
        faults = chaos_run.cluster_faults(stack) if cluster else chaos_run.FAULTS
    except ValueError as refused:
        console.print(f"[red]refused[/red]: {refused}")
        raise typer.Exit(1) from refused
    result = asyncio.run(chaos_run.run(stack, faults=faults * (3 if soak else 1), users=users * (3 if soak else 1),
                                       down_seconds=12.0 if cluster else 0.0, echo=lambda msg: console.print(msg)))
    table = Table("invariant", "holds")
    for name, ok in result.checks.items():
        table.add_row(name, "[green]yes[/green]" if ok else "[red]NO[/red]")
    Console().print(table)
    Console().print(f"events acknowledged {len(result.tally.events_acked)}, redemptions {len(result.tally.coupons_acked)}, "
                    f"lost {result.details['lost_events']}, duplicates {result.details['duplicate_events']}")
    if result.details["undecided_events"]:
        console.print(f"undecided: {result.details['undecided_events']}, first: {result.details['first_undecided']}")
    for error in result.tally.client_errors[:10]:
        console.print(f"[red]client error[/red] {error}")
    if report:
        from pathlib import Path

        Path(report).write_text(result.markdown())
    if not result.passed:
        raise typer.Exit(1)


@app.command()
def simulate(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same report.")] = 7,
    honest: Annotated[int, typer.Option(help="Honest users.", min=1)] = 300,
    days: Annotated[int, typer.Option(help="Days of honest activity.", min=1)] = 7,
    scale: Annotated[int, typer.Option(help="Actors per kind of scripted abuse.", min=1)] = 10,
    report: Annotated[str | None, typer.Option(help="Write the report (Markdown) to this file.")] = None,
) -> None:
    """Run honest and scripted abusive traffic through the trust rules; report what each rule set catches."""
    from rich.progress import Progress
    from rich.table import Table

    from services.validator.signals import rule_set
    from deploy.simulation import markdown, population, rule_sets, run

    settings = get_settings()
    events = population(seed, honest, days, scale)
    results = []
    with Progress(console=console) as progress:
        for rules in rule_sets(rule_set(settings)):
            task = progress.add_task(f"rule set {rules.version}", total=len(events))
            results.append(run(events, rules, progress=lambda done, total, t=task: progress.update(t, completed=done)))
            progress.update(task, completed=len(events))
    table = Table("rule set", "abuse caught", "honest validated", "meets 95 % / 99 %")
    for r in results:
        table.add_row(r.rule_set, f"{r.abuse_caught:.2%}", f"{r.honest_validated:.2%}",
                      "[green]yes[/green]" if r.meets() else "[red]no[/red]")
    Console().print(table)
    if report:
        from pathlib import Path

        Path(report).write_text(markdown(results, seed, len(events)))
        console.print(f"report written to {report}")
    if not results[0].meets():
        raise typer.Exit(1)


@app.command()
def bench(
    samples: Annotated[int, typer.Option(help="Requests per single-client measure.", min=5)] = 60,
    rates: Annotated[str, typer.Option(help="Offered event rates (ev/s, comma-separated) stepped through until "
                                            "one breaks; empty: no throughput steps.")] = "250,500,750,1000,2000",
    # A minute a step: issue #10's goal is 1,000 ev/s sustained for 60 s.
    step_seconds: Annotated[float, typer.Option(help="How long each offered rate runs.", min=1)] = 60.0,
    report: Annotated[str | None, typer.Option(help="Write the report (Markdown) to this file.")] = None,
    warm_up_seconds: Annotated[float, typer.Option(help="How long the stack runs, unreported, at the first rate "
                                                        "(250 ev/s without rates) before anything is measured.",
                                                   min=0)] = 45.0,
) -> None:
    """The guide's load tests against the running system, then offered rates stepped up until the
    system stops keeping up: medians, ratios, CPU per event, thresholds and invariants."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from deploy import bench as bench_run
    from deploy import knee

    stack = Stack(get_settings())
    rate_steps = tuple(int(r) for r in rates.split(",")) if rates.strip() else ()
    warmed_up = None
    if warm_up_seconds:
        warmed_up = (rate_steps[0] if rate_steps else 250, warm_up_seconds)
        console.print(f"warming up: {warmed_up[0]} ev/s for {warm_up_seconds:.0f} s, not reported")
        asyncio.run(knee.warm_up(stack.settings, stack.pids(), rate=warmed_up[0], seconds=warm_up_seconds))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        def part(description: str, total: int):
            task = progress.add_task(description, total=total)
            return lambda n: progress.advance(task, n)

        result = asyncio.run(bench_run.run(get_settings(), samples=samples, progress=part, warmed_up=warmed_up))
    throughput = None
    if rate_steps:
        throughput = asyncio.run(knee.run(stack.settings, stack.pids(), rates=rate_steps, seconds=step_seconds,
                                          echo=lambda msg: console.print(msg)))
    table = Table("measure", "median (ms)", "p95 (ms)")
    for timing in result.serial:
        table.add_row(timing.name, f"{timing.median_ms:.1f}", f"{timing.p95_ms:.1f}")
    for load in result.loads:
        table.add_row(load.name, f"{load.response_ms('median'):.0f}", f"{load.response_ms('p95'):.0f}")
    Console().print(table)
    checks = Table("check", "holds")
    for name, ok in result.checks.items():
        checks.add_row(name, "[green]yes[/green]" if ok else "[red]NO[/red]")
    Console().print(checks)
    if report:
        from pathlib import Path

        redemptions = next((load for load in result.loads if "redemptions" in load.name), None)
        Path(report).write_text(result.markdown() + ("\n" + throughput.markdown(
            redemptions.response_ms("p95") if redemptions else None) if throughput else ""))
        console.print(f"report written to {report}")
    if not result.passed:
        raise typer.Exit(1)


@app.command()
def backup(
    output: Annotated[str | None, typer.Option("--output", help="A new folder for the backup; by default "
                                                                 "points-backup-<UTC time> here.")] = None,
) -> None:
    """Back the system up: each broker's log directory (topics, consumer offsets, transactions) and a
    pg_dump of the database, taken with the services stopped for a consistent cut; they start again
    after (docs/operations.md)."""
    from datetime import datetime, timezone
    from pathlib import Path

    from deploy.backup import BackupRefused, backup as take

    target = Path(output or f"points-backup-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}")
    with console.status("backing up") as status:
        try:
            manifest = take(Stack(get_settings()), target, echo=lambda msg: status.update(msg))
        except BackupRefused as refused:
            console.print(f"[red]refused[/red]: {refused}")
            raise typer.Exit(1) from refused
    console.print(f"[green]backed up[/green] into {target} in {manifest['seconds']} s: {', '.join(manifest['files'])}")


@app.command()
def restore(
    source: Annotated[str, typer.Argument(help="A folder `points backup` wrote.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do it without asking.")] = False,
) -> None:
    """Put the system back as the backup found it: the brokers' logs and the database are replaced, so
    everything since the backup is gone."""
    from pathlib import Path

    from deploy.backup import BackupRefused, restore as put_back

    if not yes and not typer.confirm(f"replace the log and the database with the backup in {source}?"):
        raise typer.Exit(1)
    with console.status("restoring") as status:
        try:
            manifest = put_back(Stack(get_settings()), Path(source), echo=lambda msg: status.update(msg))
        except BackupRefused as refused:
            console.print(f"[red]refused[/red]: {refused}")
            raise typer.Exit(1) from refused
    console.print(f"[green]restored[/green] the backup taken at {manifest['taken_at']}")


@app.command()
def asyncapi() -> None:
    """Print the AsyncAPI 3 document of the public topics (docs/asyncapi.json is this output)."""
    from shared.asyncapi import render

    sys.stdout.write(render())


@app.command()
def secrets(
    output: Annotated[str, typer.Option(help="The env file to write (mode 0600).")] = ".env.points",
    force: Annotated[bool, typer.Option(help="Replace an existing file (every secret changes: issued "
                                            "tokens, codes and signatures stop verifying).")] = False,
) -> None:
    """Write fresh production secrets to an env file, for docker compose or any other deployment."""
    import base64
    import secrets as random
    from datetime import date
    from pathlib import Path

    target = Path(output)
    if target.exists() and not force:
        console.print(f"[red]refused[/red]: {target} exists; pass --force to replace every secret in it")
        raise typer.Exit(1)
    values = {
        "POINTS_ENV": "prod",
        "POINTS_JWT_SECRET": random.token_urlsafe(48),
        "COUPON_SECRET": random.token_urlsafe(48),
        "COUPON_SECRET_ID": f"k-{date.today():%Y%m%d}",
        "POINTS_COUPON_CODE_KEY": random.token_urlsafe(48),
        "POINTS_CLIENT_IP_KEY": random.token_urlsafe(48),
        "POINTS_ALERT_WEBHOOK_SECRET": random.token_urlsafe(48),
        "POINTS_SIGNING_KEY": base64.b64encode(random.token_bytes(32)).decode(),
        "POINTS_SIGNING_KEY_ID": f"sig-{date.today():%Y%m%d}",
        # PostgreSQL logins: the owner's (migrations) and each service's own role (docker-compose.yml).
        "POSTGRES_PASSWORD": random.token_urlsafe(32),
        "POINTS_PROJECTOR_DB_PASSWORD": random.token_urlsafe(32),
        "POINTS_GATEWAY_DB_PASSWORD": random.token_urlsafe(32),
        "POINTS_READER_DB_PASSWORD": random.token_urlsafe(32),
    }
    target.touch(mode=0o600, exist_ok=True)
    target.chmod(0o600)
    target.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    console.print(f"wrote {len(values) - 1} secrets to {target} (mode 0600); keep it out of version control")


@app.command("dev-token")
def dev_token(
    sub: Annotated[str, typer.Option("--sub", help="User id (the JWT subject).")],
    role: Annotated[str, typer.Option("--role", help="user, admin or merchant.")] = "user",
    ttl: Annotated[int, typer.Option("--ttl", help="Lifetime in seconds.", min=1)] = 3600,
) -> None:
    """Print a JWT signed with the local dev secret."""
    if role not in ("user", "admin", "merchant"):
        raise typer.BadParameter("role must be user, admin or merchant", param_hint="--role")
    try:
        sys.stdout.write(mint_dev_token(get_settings(), sub, role, ttl) + "\n")
    except PermissionError as exc:
        console.print(f"[red]refused[/red]: {exc}")
        raise typer.Exit(1) from exc


if __name__ == "__main__":
    app()
