"""The command line: `aftersales ...` (Typer + Rich)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.table import Table
from typer import rich_utils
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandFunctionType

from aftersales import i18n
from aftersales.config import Settings
from aftersales.domain import policy as policy_mod
from aftersales.domain.errors import PolicyError
from aftersales.domain.messages import N_, Msg
from aftersales.service.context import Context
from aftersales.store.migrate import upgrade

#: Typer's own words around the help and the errors: its panel titles, the hint after an error (its placeholders
#: are Typer's), and the ``--help`` option's help.
_PANELS = {"ARGUMENTS_PANEL_TITLE": N_("Arguments"), "OPTIONS_PANEL_TITLE": N_("Options"),
           "COMMANDS_PANEL_TITLE": N_("Commands"), "ERRORS_PANEL_TITLE": N_("Error"), "ABORTED_TEXT": N_("Aborted."),
           "RICH_HELP": N_("Try [blue]'{command_path} {help_option}'[/] for help.")}
N_("Show this message and exit.")
USAGE = N_("Usage:")


def _spaced(label: str) -> str:
    """A label and the space before what follows it ("Usage: …"; a full-width colon carries its own: "用法：…")."""
    return label if label.endswith("：") else label + " "


def _localize_typer() -> None:
    """Typer's panel titles and error hint in the operator's language (read when a help or an error is drawn)."""
    lang = _lang()
    for name, title in _PANELS.items():
        setattr(rich_utils, name, i18n.translate(title, lang))


def _localize(command: Any) -> None:
    """Put a command's help, its parameters' help and its subcommands' summaries in the operator's language: the
    texts are English msgids, marked ``N_`` where they are declared, translated when the help is shown (the
    operator's environment, not the one the module was imported under, decides: :func:`_lang`)."""
    lang = _lang()
    _localize_typer()
    commands = getattr(command, "commands", {})
    for cmd in (command, *commands.values()):
        cmd.help = i18n.translate(cmd.help or "", lang) or cmd.help
        cmd.short_help = i18n.translate(cmd.short_help or "", lang) or cmd.short_help
    for param in command.params:
        if getattr(param, "help", None):  # options and Typer's arguments
            param.help = i18n.translate(param.help, lang)


def _local_help_option(option: Any) -> Any:
    if option is not None and option.help:
        option.help = i18n.translate(option.help, _lang())
    return option


class _Localized:
    """Mixed into Typer's command and group classes: their help is shown in the operator's language."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _localize(self)
        super().format_help(ctx, formatter)  # type: ignore[misc]

    def get_help_option(self, ctx: Any) -> Any:
        return _local_help_option(super().get_help_option(ctx))  # type: ignore[misc]

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        """Click's "Usage:" line, its prefix in the operator's language (the help and every usage error show it)."""
        formatter.write_usage(ctx.command_path, " ".join(self.collect_usage_pieces(ctx)),  # type: ignore[attr-defined]
                              prefix=_spaced(i18n.translate(USAGE, _lang())))


class _LocalCommand(_Localized, TyperCommand):
    pass


class _LocalGroup(_Localized, TyperGroup):
    pass


class Cli(typer.Typer):
    """A Typer app whose help (of the app, its groups, commands and options) is shown in the operator's language."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=_LocalGroup, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _localize_typer()  # before a usage error is drawn, too
        return super().__call__(*args, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", _LocalCommand)
        return super().command(*args, **kwargs)


app = Cli(help=N_("After-sales engine and workbench for group-buying marketplaces."), no_args_is_help=True)
policy_app = Cli(help=N_("The platform policy (RULEBOOK parameters)."), no_args_is_help=True)
app.add_typer(policy_app, name="policy")
console = Console()
err = Console(stderr=True)


def _lang() -> str:
    """The operator's language, as gettext reads it (LANGUAGE, LC_ALL, LC_MESSAGES, LANG: ``zh_CN.UTF-8`` → zh_CN),
    among the catalogs' zh-CN, es and en; English otherwise (``C``, ``POSIX``, unset)."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        if value:
            first = value.split(":")[0].split(".")[0].split("@")[0]
            return i18n.negotiate(first) if first not in ("C", "POSIX") else i18n.DEFAULT
    return i18n.DEFAULT


def _t(text: str, **values: Any) -> str:
    """A text a person reads in a table (a title, a column header), in the operator's language: ``text`` is an
    English msgid (marked ``N_``) with ``{named}`` placeholders for ``values``, rendered as the API's messages are."""
    return i18n.render(Msg(text, values), _lang()) if values else i18n.translate(text, _lang())


def _styled(style: str, text: str) -> str:
    """``text`` in Rich's ``style`` (a translated text stays outside f-strings, where the extractor finds it)."""
    return f"[{style}]{text}[/{style}]"


def _refused(exc: Any) -> None:
    """A service's refusal, in the operator's language (the catalogs the API's problem details use), on stderr."""
    err.print(f"[red]{exc.detail_in(_lang())}[/red]")


@policy_app.command("check", help=N_("Validate a policy file; exit 1 listing every problem."))
def policy_check(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True)) -> None:
    try:
        policy_mod.load(file)
    except PolicyError as exc:
        err.print(_styled("red", _t(N_("{file}: invalid policy"), file=str(file))))
        for problem in exc.problems:
            err.print(f"  - {problem}")
        raise typer.Exit(1) from None
    console.print(_styled("green", _t(N_("{file}: valid"), file=str(file))))


@policy_app.command("show", help=N_("Print the policy in force."))
def policy_show(
    file: Path | None = typer.Option(None, "--file", "-f", help=N_("Policy file (default: AFTERSALES_POLICY_FILE or the shipped one).")),
    as_json: bool = typer.Option(False, "--json", help=N_("Print JSON instead of a table.")),
) -> None:
    path = file or (Path(os.environ["AFTERSALES_POLICY_FILE"]) if os.environ.get("AFTERSALES_POLICY_FILE") else None)
    try:
        policy = policy_mod.load(path)
    except PolicyError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    data = policy.as_dict()
    if as_json:
        console.print_json(json.dumps(data))
        return
    table = Table(title=_t(N_("Policy ({source})"), source=str(path) if path else _t(N_("shipped default"))))
    table.add_column(_t(N_("parameter")))
    table.add_column(_t(N_("value")), justify="right")
    for key, value in data.items():
        table.add_row(key, str(value))
    console.print(table)


@policy_app.command("diff", help=N_("T0: parameter by parameter, how FILE differs from the policy in force (AFTERSALES_POLICY_FILE or the shipped "
    "one).\n\n"
    "Orders already paid keep the version they were paid under; the differences apply to orders paid after a "
    "restart with FILE. Exit 0 when both are the same version, 1 when FILE is invalid, 3 when they differ."))
def policy_diff(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True)) -> None:
    in_force = Path(os.environ["AFTERSALES_POLICY_FILE"]) if os.environ.get("AFTERSALES_POLICY_FILE") else None
    try:
        current, new = policy_mod.load(in_force), policy_mod.load(file)
    except PolicyError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    old_v, new_v = policy_mod.version_id(current), policy_mod.version_id(new)
    console.print(_t(N_("in force: {version} ({source})"), version=old_v, source=str(in_force or _t(N_("shipped default"))))
                  + f"\n{file}: {new_v}")
    a, b = current.as_dict(), new.as_dict()
    changed = [k for k in a if a[k] != b[k]]
    if not changed:
        console.print(_t(N_("same version: no parameter differs")))
        return
    table = Table(title=_t(N_("Parameters that differ")))
    table.add_column(_t(N_("parameter")))
    table.add_column(_t(N_("in force")), justify="right")
    table.add_column(str(file), justify="right")
    for key in changed:
        table.add_row(key, str(a[key]), str(b[key]))
    console.print(table)
    raise typer.Exit(3)


def _instant(value: str, tz: str, option: str) -> datetime:
    """A date (local midnight in the platform time zone, T0) or an RFC 3339 instant."""
    from aftersales.domain.errors import InvalidInput
    from aftersales.domain.timeutil import period_bound

    try:
        return period_bound(value, tz, option)
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def _setting(text: str) -> tuple[str, Any]:
    """``name=value`` with a TOML value (``no_reason_days=15``, ``merchant_reminder_hours=[12, 2]``, bare text)."""
    import tomllib

    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise typer.BadParameter(_t(N_("{value} is not name=value"), value=repr(text)), param_hint="--set")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return name.strip(), value


@policy_app.command("replay", help=N_("What-if replay (issue 15): every order with something in [--from, --to) replayed under the policy version it "
    "was paid under and under a draft; differences by kind, shop, category and rule id. Reads a snapshot, writes "
    "nothing.\n\n"
    "The replay applies the recorded actions of people: it cannot see how they would have acted under the draft."))
def policy_replay(
    start: str = typer.Option(..., "--from", help=N_("Start (a date, local midnight in the platform zone, or an instant).")),
    end: str = typer.Option(..., "--to", help=N_("End, exclusive (a date or an instant).")),
    file: Path | None = typer.Option(None, "--policy", exists=True, dir_okay=False, readable=True,
                                     help=N_("The draft policy (default: the policy in force); its [categories.CODE] "
                                     "tables replace those categories' terms (E4–E6).")),
    sets: list[str] = typer.Option([], "--set", help=N_("Change one parameter of the draft: name=value (repeatable).")),
    csv_out: Path | None = typer.Option(None, "--csv", help=N_("Write one line per difference to this CSV file.")),
    as_json: bool = typer.Option(False, "--json", help=N_("Print the report as JSON.")),
    identity: bool = typer.Option(False, "--identity", help=N_("Replay under the version in force only; exit 1 unless "
                                  "every event and every amount matches the stored history.")),
    sample: int = typer.Option(20, "--sample", min=0, help=N_("How many differing cases to keep with both timelines.")),
    workers: int = typer.Option(1, "--workers", min=1, max=16, help=N_("Worker processes replaying ranges of the orders "
                                "(the same report, sooner on as many cores).")),
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from aftersales.service.errors import ServiceError
    from aftersales.service.publishing import replay_terms
    from aftersales.service.replay import csv_text, run_replay

    settings = _settings()
    ctx = _context(settings)
    drafted = None
    try:
        if file is not None:
            parsed, drafted = _draft_file(file)
            draft = parsed if parsed is not None else ctx.policy
        else:
            draft = ctx.policy
        changes = dict(_setting(s) for s in sets)
        if changes:
            draft = policy_mod.override(draft, changes)
        terms = replay_terms(ctx, drafted, draft.no_reason_days) if drafted is not None else None
    except PolicyError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    except ServiceError as exc:
        _refused(exc)
        raise typer.Exit(1) from None
    begin, finish = _instant(start, ctx.policy.timezone, "--from"), _instant(end, ctx.policy.timezone, "--to")
    if finish <= begin:
        raise typer.BadParameter(_t(N_("--to must come after --from")), param_hint="--to")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err, disable=as_json) as bar:
            task = bar.add_task(_t(N_("replaying orders")), total=None)
            report = run_replay(ctx, None if identity else draft, begin, finish, identity=identity, terms=terms,
                                sample=sample, workers=workers, progress=lambda done, total: bar.update(task, completed=done, total=total))
    finally:
        ctx.engine.dispose()
    if csv_out is not None:
        csv_out.write_text(csv_text(report.rows), encoding="utf-8")
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
    else:
        _print_replay(report)
    if report.mismatches or report.unreplayable:
        raise typer.Exit(1)


def _print_replay(report: Any) -> None:
    console.print(_t(N_("replayed {orders} orders, {cases} cases, {refused} refused openings, {events} stored events in "
                        "{seconds} s (clock: {clock})"), orders=report.orders, cases=report.cases,
                     refused=report.refused_openings, events=report.events, seconds=f"{report.seconds:.1f}",
                     clock=report.until.isoformat()))
    colour = "green" if not report.mismatches else "red"
    identity = _t(N_("identity: {mismatches} mismatch(es) in {orders} order(s) against the stored history"),
                  mismatches=report.mismatches, orders=report.mismatched_orders)
    console.print(f"[{colour}]{identity}[/{colour}]")
    for s in report.mismatch_samples[:5]:
        for m in s["mismatches"][:3]:
            console.print(f"  {s['order_id']} #{m['index']}: " + _t(N_("expected {expected}"), expected=str(m["expected"]))
                          + "\n      " + _t(N_("got {got}"), got=str(m["got"])))
    for u in report.unreplayable[:10]:
        console.print(_styled("red", _t(N_("not replayable:"))) + f" {u}")
    if report.identity:
        return
    console.print(_t(N_("draft {version}: {n} case(s) differ"), version=report.candidate_version, n=report.differing_cases))
    for title, counts in ((N_("kind"), report.by_kind), (N_("rule"), report.by_rule), (N_("shop"), report.by_shop),
                          (N_("category"), report.by_category)):
        if counts:
            table = Table(title=_t(N_("Differences by {what}"), what=_t(title)), title_justify="left", box=box.SIMPLE)
            table.add_column(_t(title))
            table.add_column(_t(N_("differences")), justify="right")
            for key, n in sorted(counts.items()):
                table.add_row(key, str(n))
            console.print(table)
    for s in report.samples[:5]:
        console.print(f"[bold]{s.case_id}[/bold] (" + _t(N_("order {order}, {shop}"), order=s.order_id, shop=s.merchant_id) + "): "
                      + "; ".join(f"{d.kind} [{','.join(d.rules)}] {d.before} → {d.after}" for d in s.differences))
def _publishing_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a publishing command (issue 15) as the platform, recorded (D3) as done from the command line."""
    import getpass

    from aftersales.service.context import PLATFORM
    from aftersales.service.errors import ServiceError

    ctx = _context(_settings(), migrate=True)
    try:
        return fn(ctx, PLATFORM, *args, by=f"cli:{getpass.getuser()}", **kwargs)
    except ServiceError as exc:
        _refused(exc)
        for e in getattr(exc, "errors", None) or []:
            err.print(f"  - {e['message']}")
        raise typer.Exit(1) from None


def _print_draft(d: dict[str, Any]) -> None:
    console.print(_t(N_("draft {id}: {state}, version {version}, effective at {at} (in force: {in_force})"), id=d["id"],
                     state=d["status"], version=d["version"] or _t(N_("(policy unchanged)")), at=d["effective_at"],
                     in_force=d["in_force_version"]))
    if not d["difference"] and not d["category_difference"]:
        console.print(_t(N_("nothing differs from the version in force")))
        return
    table = Table(title=_t(N_("Difference from the version in force")))
    table.add_column(_t(N_("parameter")))
    table.add_column(_t(N_("in force")), justify="right")
    table.add_column(_t(N_("draft")), justify="right")
    for row in d["difference"]:
        table.add_row(row["name"], str(row["in_force"]), str(row["draft"]))
    for row in d["category_difference"]:
        table.add_row(f"categories.{row['category']}.{row['name']}", str(row["in_force"]), str(row["draft"]))
    console.print(table)


def _draft_file(file: Path) -> tuple[policy_mod.Policy | None, dict[str, Any] | None]:
    """A draft file: policy parameters (checked like `policy check`; absent ones take their shipped value) and/or
    ``[categories.CODE]`` tables of category terms (E4–E6). A file of category tables only leaves the policy as it is."""
    import tomllib

    try:
        try:
            raw = tomllib.loads(file.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError([f"not valid TOML: {exc}"]) from None
        categories = raw.pop("categories", None)
        policy = policy_mod.validate(raw) if raw or categories is None else None
    except PolicyError as exc:
        err.print(_styled("red", _t(N_("{file}: invalid policy"), file=str(file))))
        for problem in exc.problems:
            err.print(f"  - {problem}")
        raise typer.Exit(1) from None
    return policy, categories


@policy_app.command("draft", help=N_("T0: draft a new policy version and/or new category terms from FILE (parameters checked like `policy check`; "
    "`[categories.CODE]` tables give a category's terms, E4–E6) and print the difference from what is in force. "
    "Nothing changes until `policy schedule ID`."))
def policy_draft(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    reason: str = typer.Option(..., "--reason", help=N_("Why the policy changes (kept in the record, D3).")),
    effective_at: str | None = typer.Option(None, "--effective-at", help=N_("RFC 3339 instant with an offset (default: now).")),
) -> None:
    from aftersales.service import publishing

    policy, categories = _draft_file(file)
    at = None
    if effective_at is not None:
        try:
            at = datetime.fromisoformat(effective_at)
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            err.print(f"[red]--effective-at {effective_at!r}: " + _t(N_("give an RFC 3339 instant with an offset")) + "[/red]")
            raise typer.Exit(2)
    _print_draft(_publishing_call(publishing.create_draft, policy.as_dict() if policy is not None else None,
                                  reason=reason, effective_at=at, categories=categories))


@policy_app.command("drafts", help=N_("The policy drafts, newest first: status, when each takes effect, why, and how many parameters change."))
def policy_drafts(as_json: bool = typer.Option(False, "--json", help=N_("Print JSON instead of a table."))) -> None:
    from aftersales.service import publishing

    items = _publishing_call(publishing.list_drafts)["items"]
    if as_json:
        console.print_json(json.dumps(items))
        return
    table = Table(title=_t(N_("Policy drafts")), box=box.SIMPLE)
    for col in (N_("id"), N_("status"), N_("version"), N_("effective at"), N_("changes"), N_("reason")):
        table.add_column(_t(col))
    for d in items:
        changes = [f"{x['name']}: {x['in_force']} → {x['draft']}" for x in d["difference"]]
        changes += [f"{x['category']}.{x['name']}: {x['in_force']} → {x['draft']}" for x in d["category_difference"]]
        table.add_row(d["id"], d["status"], d["version"] or "-", d["effective_at"], ", ".join(changes) or _t(N_("none")),
                      d["reason"])
    console.print(table)


@policy_app.command("schedule", help=N_("T0: make the draft the version in force from its effective instant (now if past), for orders paid from then "
    "on."))
def policy_schedule(draft_id: str = typer.Argument(..., help=N_("The draft's id (from `policy drafts`).")),
                    reason: str | None = typer.Option(None, "--reason", help=N_("Why now (default: the draft's reason)."))) -> None:
    from aftersales.service import publishing

    _print_draft(_publishing_call(publishing.schedule, draft_id, reason=reason))


@policy_app.command("withdraw", help=N_("Withdraw a draft, or a scheduled version before it takes effect (a version in force never changes)."))
def policy_withdraw(draft_id: str = typer.Argument(..., help=N_("The draft's id (from `policy drafts`).")),
                    reason: str | None = typer.Option(None, "--reason", help=N_("Why (default: the draft's reason)."))) -> None:
    from aftersales.service import publishing

    _print_draft(_publishing_call(publishing.withdraw, draft_id, reason=reason))


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        err.print(_styled("red", _t(N_("invalid configuration:"))) + f"\n{exc}")
        raise typer.Exit(2) from None


def _context(settings: Settings, *, migrate: bool = False) -> Context:
    """The service context on the configured database: with ``migrate``, upgraded to the code's schema first;
    otherwise a database that is not at it is refused with what to do (exit 2), not a traceback."""
    from aftersales.api.app import build_context
    from aftersales.store.migrate import pending

    ctx = build_context(settings)
    if migrate:
        upgrade(ctx.engine)
    elif (behind := pending(ctx.engine)) is not None:
        ctx.engine.dispose()
        err.print(_styled("red", _t(N_("the database is at revision {current}, the code needs {head}: run `aftersales migrate` "
                                       "first"), current=behind[0], head=behind[1])), soft_wrap=True)
        raise typer.Exit(2)
    return ctx


@app.command(help=N_("Create or upgrade the database schema (SQLite by default, PostgreSQL via AFTERSALES_DATABASE_URL)."))
def migrate() -> None:
    settings = _settings()
    ctx = _context(settings, migrate=True)
    console.print(_styled("green", _t(N_("database at head"))) + f" ({ctx.engine.url.render_as_string(hide_password=True)})")


@app.command(help=N_("Serve the HTTP API, with the deadline worker in the same process (unless --no-worker)."))
def serve(
    host: str | None = typer.Option(None, help=N_("Interface to listen on (default AFTERSALES_HOST).")),
    port: int | None = typer.Option(None, help=N_("Port (default AFTERSALES_PORT).")),
    workers: int = typer.Option(1, min=1, help=N_("API server processes (uvicorn workers) sharing the port.")),
    in_process_worker: bool | None = typer.Option(
        None, "--worker/--no-worker",
        help=N_("Run the deadline worker inside each server process (default AFTERSALES_WORKER_IN_PROCESS); "
             "--no-worker when `aftersales worker` processes do it.")),
    threads: int | None = typer.Option(None, min=1, max=1000,
                                       help=N_("Requests each process handles at once (default AFTERSALES_SERVER_THREADS).")),
) -> None:
    import uvicorn

    settings = _settings()
    if host:
        os.environ["AFTERSALES_HOST"] = host
    if port:
        os.environ["AFTERSALES_PORT"] = str(port)
    if in_process_worker is not None:  # the server processes read their settings from the environment
        os.environ["AFTERSALES_WORKER_IN_PROCESS"] = "true" if in_process_worker else "false"
    if threads is not None:
        os.environ["AFTERSALES_SERVER_THREADS"] = str(threads)
    settings = _settings()
    for warning in settings.warnings():  # loud: the same lines are logged by the application (api/security.py)
        err.print(_styled("bold yellow", _t(N_("WARNING:"))) + f" {warning}", soft_wrap=True)
    uvicorn.run("aftersales.api.server:app", factory=True, host=settings.host, port=settings.port, workers=workers,
                log_level="info", access_log=False)


@app.command(help=N_("Run the deadline worker on its own."))
def worker(
    once: bool = typer.Option(False, "--once", help=N_("Apply what is due now and exit.")),
) -> None:
    import threading

    from aftersales import worker as worker_mod

    settings = _settings()
    ctx = _context(settings)
    if once:
        console.print(_t(N_("worker pass: {result}"), result=str(worker_mod.run_once(ctx))))
        return
    stop = threading.Event()
    worker_mod.tune_gc()  # a process of its own: its collector set for batches of aggregates
    try:
        worker_mod.loop(ctx, stop, settings.worker_poll_seconds)
    except KeyboardInterrupt:
        stop.set()


keys_app = Cli(help=N_("API keys."), no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create", help=N_("Create an API key and print it (only its hash is stored)."))
def keys_create(
    role: str = typer.Option(..., "--role", help=N_("platform, merchant or buyer")),
    subject: str | None = typer.Option(None, "--subject", help=N_("merchant or buyer id")),
    label: str | None = typer.Option(None, "--label"),
) -> None:
    from aftersales.service import setup
    from aftersales.service.errors import ServiceError

    ctx = _context(_settings(), migrate=True)
    try:
        key = setup.create_api_key(ctx, None, role=role, subject_id=subject, label=label)
    except ServiceError as exc:
        _refused(exc)
        raise typer.Exit(1) from None
    console.print(key["key"])


def _credentials_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    from aftersales.service.errors import ServiceError

    ctx = _context(_settings(), migrate=True)
    try:
        return fn(ctx, None, *args, **kwargs)
    except ServiceError as exc:
        _refused(exc)
        raise typer.Exit(1) from None


@keys_app.command("list", help=N_("List API keys (never the keys themselves): id, role, subject, label, created, revoked."))
def keys_list(
    role: str | None = typer.Option(None, "--role", help=N_("platform, merchant or buyer")),
    subject: str | None = typer.Option(None, "--subject", help=N_("merchant or buyer id")),
    active: bool = typer.Option(False, "--active", help=N_("Leave revoked keys out.")),
    as_json: bool = typer.Option(False, "--json", help=N_("One JSON object per key.")),
) -> None:
    from aftersales.service import credentials

    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = _credentials_call(credentials.list_api_keys, role=role, subject_id=subject, include_revoked=not active,
                                 cursor=cursor, limit=credentials.MAX_PAGE)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    if as_json:
        for item in items:
            console.print_json(json.dumps(item))
        return
    table = Table(title=_t(N_("API keys ({count})"), count=len(items)), box=box.SIMPLE_HEAD, title_justify="left")
    for column in (N_("id"), N_("role"), N_("subject"), N_("label"), N_("created"), N_("revoked")):
        table.add_column(_t(column))
    for k in items:
        table.add_row(k["id"], k["role"], k["subject_id"] or "", k["label"] or "", k["created_at"], k["revoked_at"] or "")
    console.print(table)


@keys_app.command("revoke", help=N_("Revoke an API key: every server refuses it within 5 s (the per-process key cache)."))
def keys_revoke(key_id: str = typer.Argument(..., help=N_("The key's id (from `keys list`)."))) -> None:
    from aftersales.service import credentials

    key = _credentials_call(credentials.revoke_api_key, key_id)
    who = key["role"] + (":" + key["subject_id"] if key["subject_id"] else "")
    console.print(_t(N_("revoked {id} ({who}) at {at}"), id=key["id"], who=who, at=key["revoked_at"]))


@keys_app.command("rotate", help=N_("Replace an API key: prints the new key once (same role, subject, label); the old one is revoked."))
def keys_rotate(key_id: str = typer.Argument(..., help=N_("The key's id (from `keys list`)."))) -> None:
    from aftersales.service import credentials

    key = _credentials_call(credentials.rotate_api_key, key_id)
    err.print(_t(N_("{id} replaces {old} (revoked)"), id=key["id"], old=key["replaces"]))
    console.print(key["key"])


sessions_app = Cli(help=N_("Signed-in workbench staff."), no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")


@sessions_app.command("list", help=N_("Unexpired staff sessions: id (the sha256 kept of the cookie), user, created, expires."))
def sessions_list() -> None:
    from aftersales.service import credentials

    cursor = None
    while True:  # one line each: the 64-character ids do not fit a table in a terminal
        page = _credentials_call(credentials.list_sessions, cursor=cursor, limit=credentials.MAX_PAGE)
        for x in page["items"]:
            console.print(f"{x['id']}  {x['username']}  {x['role']}  {x['merchant_id'] or '-'}  "
                          + _t(N_("created {created}  expires {expires}"), created=x["created_at"], expires=x["expires_at"]),
                          soft_wrap=True, highlight=False)
        cursor = page["next_cursor"]
        if cursor is None:
            break


@sessions_app.command("revoke", help=N_("Sign a staff session out now."))
def sessions_revoke(session_id: str = typer.Argument(..., help=N_("The session's id (from `sessions list`)."))) -> None:
    from aftersales.service import credentials

    _credentials_call(credentials.revoke_session, session_id)
    console.print(_t(N_("signed out {session}"), session=session_id))


# --- the demo marketplace, `run`, bulk imports ------------------------------------------------------------
DEMO_KEYS_FILE = Path("var/demo-keys.json")
KEYS_FILE_OPTION = typer.Option(DEMO_KEYS_FILE, "--keys-file",
                                help=N_("Where the demo keys' plaintext is kept (development only, mode 0600)."))


def _print_demo_keys(keys: list[Any], keys_file: Path, base: str | None = None) -> None:
    """The demo's keys, workbench logins and portal links; ``base``: the URL the server answers on (default: the
    configured host and port)."""
    table = Table(title=_t(N_("Demo API keys (send as: Authorization: Bearer <key>)")), box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column(_t(N_("role")))
    table.add_column(_t(N_("subject")))
    table.add_column(_t(N_("key")), no_wrap=True, min_width=max((len(k.key) for k in keys), default=10))
    for k in keys:
        if k.role != "workbench":
            table.add_row(k.role, k.subject_id or "", k.key)
    console.print(table)
    logins = [k for k in keys if k.role == "workbench"]
    if logins:
        settings = _settings()
        base = base or f"http://{settings.host}:{settings.port}"
        wb = Table(title=_t(N_("Workbench logins ({url})"), url=f"{base}/app/login"), box=box.SIMPLE_HEAD, title_justify="left")
        for column in (N_("username"), N_("password"), N_("who")):
            wb.add_column(_t(column), no_wrap=True)
        for k in logins:
            wb.add_row(k.subject_id or "", k.key, k.label)
        console.print(wb)
        from aftersales import demo as demo_mod
        from aftersales.service.users import buyer_link_token

        now = datetime.now(UTC)
        for buyer_id in demo_mod.BUYERS_WITH_KEYS:
            link = f"{base}/app/buyer/enter?token={buyer_link_token(settings.secret_key, buyer_id, now)}"
            console.print(_t(N_("buyer portal of {buyer}: {link}"), buyer=buyer_id, link=link), soft_wrap=True)
    console.print(_t(N_("(kept in {file} for the next run; development only)"), file=str(keys_file)), style="dim")


def _seed_demo(ctx: Context, keys_file: Path) -> list[Any]:
    """Seed an empty database and keep the keys; on a seeded one, the kept keys this database still accepts."""
    from aftersales import demo as demo_mod

    keys = demo_mod.seed(ctx, on_skip=lambda why: err.print(f"[yellow]{why}[/yellow]"))
    if keys:
        demo_mod.save_keys(keys_file, keys)
        return keys
    return demo_mod.load_keys(keys_file, ctx)


@app.command(help=N_("Seed a demo marketplace through the service layer and print its API keys (only into an empty database).\n\n"
    "Three shops (fruit, apparel, electronics with a 365-day warranty category), orders in every state relative to "
    "now, open cases close to their deadlines and a few closed ones. Keys: platform, one per merchant, two buyers."))
def demo(keys_file: Path = KEYS_FILE_OPTION) -> None:
    settings = _settings()
    if settings.env == "production":
        err.print(_styled("red", _t(N_("the demo is for development: refusing to seed with AFTERSALES_ENV=production"))))
        raise typer.Exit(1)
    ctx = _context(settings, migrate=True)
    from aftersales import demo as demo_mod

    if not demo_mod.is_empty(ctx):
        console.print(_styled("yellow", _t(N_("the database already has merchants: nothing seeded"))))
        known = demo_mod.load_keys(keys_file, ctx)
        if known:
            _print_demo_keys(known, keys_file)
        return
    keys = _seed_demo(ctx, keys_file)
    console.print(_styled("green", _t(N_("demo marketplace seeded"))) + f" ({ctx.engine.url.render_as_string(hide_password=True)})")
    _print_demo_keys(keys, keys_file)


@app.command("run", help=N_("Migrate, seed the demo if the database is empty, print the demo keys and the URL, then serve API + worker."))
def run_all(
    host: str | None = typer.Option(None, help=N_("Interface to listen on (default AFTERSALES_HOST).")),
    port: int | None = typer.Option(None, help=N_("Port (default AFTERSALES_PORT).")),
    keys_file: Path = KEYS_FILE_OPTION,
) -> None:
    settings = _settings()
    ctx = _context(settings, migrate=True)
    keys: list[Any] = []
    if settings.env == "production":
        console.print(_styled("yellow", _t(N_("AFTERSALES_ENV=production: no demo data"))))
    else:
        keys = _seed_demo(ctx, keys_file)
    url = f"http://{host or settings.host}:{port or settings.port}"
    if keys:
        _print_demo_keys(keys, keys_file, url)  # the links name the port this run serves on
    else:
        console.print(_t(N_("No demo keys to show (the database was not seeded by this demo). "
                            "Create one with: aftersales keys create --role platform")))
    ctx.engine.dispose()
    worker_note = (_t(N_("the worker runs in-process")) if settings.worker_in_process
                   else _t(N_("no in-process worker (AFTERSALES_WORKER_IN_PROCESS=false)")))
    console.print(_styled("bold", _t(N_("Serving the API on {url}"), url=url)) + " "
                  + _t(N_("(OpenAPI: {url}/docs) and the workbench on {url}/app; {worker}. Ctrl-C stops."), url=url, worker=worker_note))
    platform = next((k.key for k in keys if k.role == "platform"), None)
    if platform:
        console.print(_t(N_("Try: {command}"), command=f'curl -H "Authorization: Bearer {platform}" {url}/v1/cases'), soft_wrap=True)
    serve(host=host, port=port, workers=1, in_process_worker=None, threads=None)


@app.command(help=N_("Check an exported record (D3): exit 0 when intact, 1 saying where it was changed.\n\n"
    "The hash chain and the file's canonical form are always checked; the signature only when "
    "AFTERSALES_RECORD_SECRET (the secret of the server that exported it) is set."))
def verify(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help=N_("A record file (GET .../record)."))) -> None:
    from rich.markup import escape

    from aftersales.domain import record

    secret = os.environ.get("AFTERSALES_RECORD_SECRET") or None
    verdict = record.verify(file.read_bytes(), secret)
    signature = _t({"valid": N_("signature valid"), "invalid": N_("signature INVALID"),
                    "not checked": N_("signature not checked (AFTERSALES_RECORD_SECRET is not set)")}[verdict.signature])
    name = escape(str(file))
    if verdict.ok:
        console.print(_styled("green", _t(N_("{file}: intact"), file=name)) + " — "
                      + _t(N_("{subject}, {links} links, head {head}; chain and canonical form checked; {signature}"),
                           subject=escape(verdict.subject or ""), links=verdict.links, head=verdict.head, signature=signature),
                      soft_wrap=True)
        return
    console.print(_styled("red", _t(N_("{file}: NOT intact"), file=name)) + " ("
                  + _t(N_("{n} problem(s); {signature}"), n=len(verdict.problems), signature=signature) + ")", soft_wrap=True)
    for problem in verdict.problems:
        console.print(f"  - {escape(problem)}", soft_wrap=True)
    raise typer.Exit(1)


ledger_app = Cli(help=N_("The ledger (D2)."), no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("audit", help=N_("Check the D2 invariants over the whole ledger: every transaction balances, no account but a merchant's debt is"
    " negative, refunded ≤ paid per order and equal to what the ledger credited. Exit 1 on any finding."))
def ledger_audit() -> None:
    from aftersales.service.context import UnitOfWork
    from aftersales.service.ledger import audit

    ctx = _context(_settings())
    with UnitOfWork(ctx, readonly=True) as uow:
        problems = audit(uow)
    for line in problems:
        console.print(f"[red]✗[/red] {line}")
    if problems:
        raise typer.Exit(1)
    console.print("[green]✓[/green] " + _t(N_("the ledger balances (D2)")))


users_app = Cli(help=N_("Workbench users and buyers' portal links."), no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("create", help=N_("Create a workbench user (its password is stored as an argon2id hash)."))
def users_create(
    username: str = typer.Option(..., help=N_("The login name.")),
    role: str = typer.Option(..., help=N_("merchant_agent, merchant_admin or platform_agent.")),
    merchant: str | None = typer.Option(None, "--merchant", help=N_("The merchant of a merchant role.")),
    display_name: str | None = typer.Option(None, help=N_("The name shown in the workbench.")),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True,
                                 help=N_("At least 10 characters (prompted when not given).")),
) -> None:
    from aftersales.service import users
    from aftersales.service.errors import ServiceError

    ctx = _context(_settings())
    try:
        user = users.create_user(ctx, None, username=username, password=password, role=role, merchant_id=merchant,
                                 display_name=display_name)
    except ServiceError as exc:
        _refused(exc)
        raise typer.Exit(1) from None
    console.print(_styled("green", _t(N_("user created"))) + f" {user['username']} ({user['role']}{', ' + merchant if merchant else ''})")


@users_app.command("link", help=N_("Print a signed link that takes a buyer into their portal (valid 7 days)."))
def users_link(buyer_id: str = typer.Argument(..., help=N_("The buyer's id.")),
               base_url: str | None = typer.Option(None, help=N_("Default http://AFTERSALES_HOST:AFTERSALES_PORT."))) -> None:
    from aftersales.service.users import buyer_link_token

    settings = _settings()
    base = base_url or f"http://{settings.host}:{settings.port}"
    console.print(f"{base}/app/buyer/enter?token={buyer_link_token(settings.secret_key, buyer_id, datetime.now(UTC))}",
                  soft_wrap=True)


import_app = Cli(help=N_("Bulk imports: every row is validated first; nothing is written if any is rejected."), no_args_is_help=True)
app.add_typer(import_app, name="import")


class _RichProgress:
    """Adapts a Rich progress bar to :class:`aftersales.importer.Progress`."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.task: Any = None

    def phase(self, description: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[-1].total)
        self.task = self.progress.add_task(_t(description), total=total)  # a msgid of the importer's (N_)

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task, n)


@import_app.command("orders", help=N_("Import paid orders (the body of POST /v1/orders, one per JSON line or one item per CSV line); exit 1 if any "
    "row is rejected.\n\n"
    "CSV columns: id, merchant_id, buyer_id, paid_at, shipping_fee_fen, return_shipping_insured, sku, title, "
    "category, quantity, unit_price_fen, exclusion_confirmed, group_id, group_size, group_auto_complete. "
    "Consecutive lines with the same id are the items of one order."))
def import_orders(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help=N_("A .csv or .jsonl file.")),
    fmt: str | None = typer.Option(None, "--format", help=N_("csv or jsonl (default: from the file extension).")),
    dry_run: bool = typer.Option(False, "--dry-run", help=N_("Validate every row, write nothing.")),
    show: int = typer.Option(50, "--show", min=1, help=N_("How many rejected rows to list.")),
) -> None:
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from aftersales import importer

    ctx = _context(_settings(), migrate=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err, refresh_per_second=2) as bar:  # B4: redrawing costs the import CPU
            report = importer.import_orders(ctx, file, fmt, progress=_RichProgress(bar), dry_run=dry_run)
    except importer.ImportFileError as exc:
        err.print(_styled("red", escape(i18n.render(exc.msg, _lang()))))
        raise typer.Exit(2) from None
    finally:
        ctx.engine.dispose()
    if report.rejections:
        table = Table(title=_t(N_("Rejected rows of {file} ({count})"), file=str(file), count=len(report.rejections)),
                      title_justify="left")
        table.add_column(_t(N_("line")), justify="right")
        table.add_column(_t(N_("field")))
        table.add_column(_t(N_("message")))
        lang, tz = _lang(), ctx.policy.timezone
        for r in report.rejections[:show]:
            table.add_row(str(r.line), r.field, escape(r.text(lang, tz)))
        console.print(table)
        if len(report.rejections) > show:
            console.print(_t(N_("… and {n} more (--show to list more)"), n=len(report.rejections) - show))
        console.print(_styled("red", _t(N_("{problems} problem(s) in {orders} order(s): nothing was imported"),
                                        problems=len(report.rejections), orders=report.orders)))
        raise typer.Exit(1)
    rate = report.orders / report.seconds if report.seconds else 0.0
    if dry_run:
        console.print(_styled("green", _t(N_("valid: {orders} orders ({rows} rows, {groups} new groups); nothing written "
                                             "(--dry-run)"), orders=report.orders, rows=report.rows, groups=report.groups)))
        return
    console.print(_styled("green", _t(N_("imported {orders} orders ({rows} rows, {groups} new groups) in {seconds} s "
                                         "({rate} orders/s), one transaction"), orders=report.orders, rows=report.rows,
                                      groups=report.groups, seconds=f"{report.seconds:.1f}", rate=f"{rate:,.0f}")))


if __name__ == "__main__":
    app()
