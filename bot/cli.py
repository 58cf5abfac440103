"""The `pausecheck` command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bot.app import SetupError, open_guide
from bot.config import Settings, SettingsError, load_settings
from bot.console import PLATFORM, ConsoleAdapter, piped_lines, prompt_lines
from bot.logs import configure_logging, redact
from dialogs.clock import SystemClock
from dialogs.content import Content, check_content, load_content
from dialogs.flows.diagram import dot, mermaid
from dialogs.flows.errors import ContentInvalid
from dialogs.flows.journeys import table as journey_table
from dialogs.flows.journeys import walk_all
from dialogs.flows.model import Flow
from dialogs.flows.transcript import (
    DEFAULT_LIMIT,
    all_paths,
    main_path,
    markdown,
    markdown_all,
    write_transcripts,
)
from storage import StorageError, open_store

app = typer.Typer(
    help="Pausecheck: a guide for the pursue-withdraw cycle.",
    no_args_is_help=True,
    add_completion=False,
)
content_app = typer.Typer(help="Tools for content authors.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(content_app, name="content")
app.add_typer(db_app, name="db")
keys_app = typer.Typer(help="Encryption keys at rest.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
err = Console(stderr=True, highlight=False, soft_wrap=True)
log = logging.getLogger("bot.cli")


# The secrets of this run, so that an error printed by `_fail` never shows one.
_SECRETS: list[str] = []


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        # One line per wrong setting, and the status of a usage error.
        raise _fail(str(exc), 2) from None
    _SECRETS[:] = settings.secret_values()
    configure_logging(
        settings.log_level, library_level=settings.library_log_level, secrets=_SECRETS
    )
    return settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    for line in message.splitlines() or [""]:
        err.print(f"[bold red]pausecheck:[/] {escape(redact(line, _SECRETS))}", markup=True)
    return typer.Exit(code)


def _positive_finite(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"{value} is not a positive, finite number (such as 60)")
    return value


def _one_line(exc: Exception) -> str:
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        # Not the statement: the driver's own words say what went wrong.
        return f"the database refused: {exc.orig}"
    return str(exc)


# How many times shorter waits are, for demos; refused unless positive and finite.
ClockScale = Annotated[
    float,
    typer.Option(
        help="Make waits this many times shorter, for demos: 60 turns 20 minutes into 20 s.",
        callback=_positive_finite,
    ),
]


def _setup_errors() -> tuple[type[Exception], ...]:
    from sqlalchemy.exc import DBAPIError

    from dialogs.safety.resources import SafetyContentError as ResourcesError
    from dialogs.safety.screen import SafetyContentError as SignalsError

    # A database error that escapes the store's own checks still ends in one line.
    return (ContentInvalid, StorageError, SetupError, SignalsError, ResourcesError, DBAPIError)


@app.command()
def console(
    clock_scale: ClockScale = 1.0,
    user: Annotated[
        str, typer.Option(help="Local user name; a second run continues its conversation.")
    ] = "local",
) -> None:
    """Talk to the guide in this terminal (no token needed)."""
    settings = _settings()
    try:
        asyncio.run(_console(settings, clock_scale, user))
    except _setup_errors() as exc:
        raise _fail(_one_line(exc)) from None
    except KeyboardInterrupt:
        pass


async def _console(settings: Settings, clock_scale: float, user: str) -> None:
    clock = SystemClock()
    # A faster clock needs a faster sweep too, or demo follow-ups would wait for it.
    sweep = max(0.5, settings.sweep_seconds / clock_scale)
    guide = await open_guide(settings, clock, delay_scale=clock_scale, sweep_seconds=sweep)
    interactive = sys.stdin.isatty()
    out = Console(highlight=False, force_terminal=interactive or None)
    adapter = ConsoleAdapter(guide.engine, clock, out, user_id=user, delivery=guide.delivery)
    await guide.add_platform(PLATFORM, adapter)
    try:
        if interactive:
            from prompt_toolkit.patch_stdout import patch_stdout

            await guide.scheduler.start()
            with patch_stdout(raw=True):
                await adapter.run(prompt_lines(), echo=False)
        else:
            # Piped input: deliver anything owed or due, talk, and exit at end of input.
            await guide.delivery.resend_unsent(startup=True)
            await guide.dispatcher.run_due()
            await adapter.run(piped_lines(), echo=True)
    finally:
        await guide.close()


@app.command()
def run(
    clock_scale: Annotated[
        float,
        typer.Option(
            help="Make waits this many times shorter, for demos and soak tests: 60 turns "
            "20 minutes into 20 s.",
            min=0.001,
        ),
    ] = 1.0,
) -> None:
    """Run the guide on the chat platforms whose tokens are set."""
    settings = _settings()
    if settings.telegram_bot_token is None and settings.discord_bot_token is None:
        raise _fail(
            "no platform token is set. Set TELEGRAM_BOT_TOKEN (Telegram) or DISCORD_BOT_TOKEN "
            "(Discord), or try the guide without a token: pausecheck console",
            2,
        )
    try:
        asyncio.run(_run(settings, clock_scale=clock_scale))
    except _setup_errors() as exc:
        raise _fail(_one_line(exc)) from None
    except KeyboardInterrupt:
        pass


async def _run(
    settings: Settings, stop: asyncio.Event | None = None, *, clock_scale: float = 1.0
) -> None:
    """Start every configured platform in one process; stop on SIGINT/SIGTERM."""
    import signal

    from bot.platforms import build_adapters

    # As in the console: a faster clock needs a faster sweep too.
    sweep = max(0.5, settings.sweep_seconds / clock_scale)
    guide = await open_guide(settings, SystemClock(), delay_scale=clock_scale, sweep_seconds=sweep)
    adapters = build_adapters(guide, settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not every platform lets asyncio handle signals; Ctrl-C still works there.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    started = []
    health = None
    try:
        if settings.health_port is not None:
            from bot.ops_http import OpsServer, ops_routes

            health = OpsServer(
                ops_routes(guide), listen=settings.health_listen, port=settings.health_port
            )
            await health.start()
        for adapter in adapters:
            await guide.add_platform(adapter.name, adapter)
            await adapter.start()
            started.append(adapter)
        await guide.scheduler.start()
        await stop.wait()
        log.info("stopping: no new events or follow-ups; finishing what is in flight")
    finally:
        # No new follow-ups first, then no new events (each adapter finishes the
        # events it took), then the outboxes finish their sends while the platforms
        # are still connected; `guide.close` then releases this process's claims.
        await guide.scheduler.shutdown()
        for adapter in reversed(started):
            stop_receiving = getattr(adapter, "stop_receiving", None)
            if stop_receiving is not None:
                await stop_receiving()
        await guide.finish_sends()
        for adapter in reversed(started):
            await adapter.stop()
        if health is not None:
            await health.stop()
        await guide.close()


@content_app.command("check")
def content_check(
    directory: Annotated[
        Path | None, typer.Argument(help="Content directory (default: the configured one)")
    ] = None,
) -> None:
    """Validate every flow, the commands and the copy; print all errors at once."""
    settings = _settings()
    target = directory or settings.content_dir
    content, errors = check_content(target)
    safety_dir = target / "safety"
    try:
        from dialogs.safety.resources import SafetyResources
        from dialogs.safety.screen import SafetyScreen

        SafetyScreen.from_file(safety_dir / "signals.yaml")
        SafetyResources.from_file(safety_dir / "resources.yaml")
    except ValueError as exc:
        errors = [*errors]
        err.print(str(exc), markup=False)
        content = None
    for error in errors:
        err.print(str(error), markup=False)
    if content is None:
        raise _fail(f"content check failed: {max(len(errors), 1)} error(s)")
    flows = len(content.flows)
    steps = sum(len(f.steps) for f in content.flows.values())
    typer.echo(
        f"content ok: {flows} flows, {steps} steps, {len(content.commands.commands)} commands,"
        f" {len(content.reflections)} reflections"
    )


@content_app.command("eval")
def content_eval(
    folds: Annotated[int, typer.Option(min=2, max=20, help="Folds for cross-validation")] = 5,
    misses: Annotated[int, typer.Option(min=0, help="Wrong examples to list per report")] = 40,
) -> None:
    """How well typed text is understood: per-intent precision, recall and F1 on
    held-out folds of the examples, then on the separate evaluation set, with the
    safety figures (crisis and danger recall, false alarms) on their own line."""
    from dialogs.safety.screen import SafetyScreen
    from dialogs.safety_tiers import TieredReader
    from dialogs.understanding import (
        FallbackPolicy,
        IntentClassifier,
        cross_validate,
        evaluate_on,
        format_report,
        load_evaluation,
        load_examples,
    )

    settings = _settings()
    content = _load_content(settings)
    examples = load_examples(content.examples_dir)
    policy = FallbackPolicy()
    typer.echo(f"== the model alone, {folds}-fold cross-validation on the examples ==")
    typer.echo(format_report(cross_validate(examples, folds, policy=policy), max_misses=misses))
    held_out = content.directory / "understanding" / "evaluation.yaml"
    if not held_out.is_file():
        typer.echo(f"no evaluation set at {held_out}; only the folds above")
        return
    model = IntentClassifier.train(examples)
    messages = load_evaluation(held_out)
    screen = SafetyScreen.from_file(content.directory / "safety" / "signals.yaml")
    typer.echo(f"\n== the model alone, on the evaluation set ({len(messages)} messages) ==")
    typer.echo(format_report(evaluate_on(model, messages, policy=policy), max_misses=misses))
    typer.echo("\n== the guide: phrase rules, then the model, on the evaluation set ==")
    report = evaluate_on(TieredReader(screen, model), messages, policy=policy)
    typer.echo(format_report(report, max_misses=misses))


def _load_content(settings: Settings) -> Content:
    try:
        return load_content(settings.content_dir)
    except ContentInvalid as exc:
        raise _fail(
            f"the content has {len(exc.errors)} error(s); see: pausecheck content check"
        ) from None


def _flow(content: Content, flow_id: str) -> Flow:
    flow = content.flows.get(flow_id)
    if flow is None:
        known = ", ".join(sorted(content.flows))
        raise _fail(f"no flow called {flow_id!r}. Known flows: {known}")
    return flow


@content_app.command("transcript")
def content_transcript(
    flow_id: Annotated[
        str | None, typer.Argument(metavar="FLOW", help="Flow id, such as pause")
    ] = None,
    every_path: Annotated[
        bool, typer.Option("--all", help="Every path, not only the main one.")
    ] = False,
    limit: Annotated[
        int, typer.Option(help="With --all: stop after this many paths.", min=1)
    ] = DEFAULT_LIMIT,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the Markdown here instead of printing it.")
    ] = None,
    write_docs: Annotated[
        bool,
        typer.Option(
            "--write-docs", help="Rewrite docs/transcripts/ for every flow (no FLOW needed)."
        ),
    ] = False,
    docs_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where --write-docs writes (default: docs/transcripts/ of this checkout)."
        ),
    ] = None,
) -> None:
    """Show a flow as a readable Markdown conversation, without running the bot."""
    settings = _settings()
    content = _load_content(settings)
    if write_docs:
        if flow_id is not None or every_path or out is not None:
            raise _fail(
                "--write-docs writes every flow's main path; leave out FLOW, --all and --out"
            )
        target = docs_dir or settings.content_dir.parent / "docs" / "transcripts"
        written, removed = write_transcripts(content, target)
        typer.echo(
            f"{target}: {len(content.flows)} transcripts, "
            f"{len(written)} written, {len(removed)} removed"
        )
        # Taps to help, as written to journeys.md: the numbers to keep low.
        typer.echo("\n".join(journey_table(walk_all(content))))
        return
    if flow_id is None:
        raise _fail(
            "name a flow (for example: pausecheck content transcript pause), or --write-docs"
        )
    flow = _flow(content, flow_id)
    if every_path:
        text = markdown_all(all_paths(flow, content, limit))
    else:
        text = markdown(main_path(flow, content))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")


@content_app.command("graph")
def content_graph(
    flow_id: Annotated[str, typer.Argument(metavar="FLOW", help="Flow id, such as pause")],
    svg: Annotated[
        Path | None, typer.Option("--svg", help="Also draw it as SVG with Graphviz.")
    ] = None,
) -> None:
    """Print a flow as a Mermaid flowchart; --svg also draws it with Graphviz."""
    settings = _settings()
    flow = _flow(_load_content(settings), flow_id)
    typer.echo(mermaid(flow), nl=False)
    if svg is None:
        return
    dot_bin = shutil.which("dot")
    if dot_bin is None:
        raise _fail(
            "Graphviz is not installed (apt-get install graphviz); "
            "the Mermaid text above works in any Mermaid viewer"
        )
    result = subprocess.run(
        [dot_bin, "-Tsvg"], input=dot(flow), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise _fail(f"Graphviz failed: {result.stderr.strip()}")
    svg.write_text(result.stdout, encoding="utf-8")
    err.print(f"wrote {escape(str(svg))}", markup=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database if needed and apply all migrations."""
    settings = _settings()

    async def upgrade() -> None:
        store = await open_store(settings.database_url)
        await store.close()

    try:
        asyncio.run(upgrade())
    except StorageError as exc:
        raise _fail(str(exc)) from None
    typer.echo("database is up to date")


@db_app.command("check")
def db_check() -> None:
    """Readiness: the database answers and its schema is at the newest migration.
    Changes nothing; exit 0 when ready, else one line saying what is wrong and 1."""
    from storage.readiness import check_database, shown

    settings = _settings()
    readiness = asyncio.run(check_database(settings.database_url))
    if readiness.problem is not None:
        raise _fail(readiness.problem)
    typer.echo(f"database ready: {shown(settings.database_url)} at migration {readiness.head}")


@db_app.command("copy")
def db_copy(
    source: Annotated[
        str | None,
        typer.Option(
            "--from", help="The database to copy, such as sqlite+aiosqlite:///./data/pausecheck.db"
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--to", help="Where to copy it (default: PAUSECHECK_DATABASE_URL)."),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Delete what the target holds first (otherwise refused)."),
    ] = False,
) -> None:
    """Copy a whole database to another (SQLite to PostgreSQL, or back): migrate the
    target, copy every table, keep encrypted values as they are, count the rows."""
    from bot.config import check_database_url
    from storage.copy import copy_database, count_lines

    settings = _settings()
    if source is None:
        raise _fail("name the database to copy: pausecheck db copy --from URL --to URL", 2)
    to = target or settings.database_url
    for option, url in (("--from", source), ("--to", to)):
        try:
            check_database_url(url)
        except ValueError as exc:
            raise _fail(f"{option}: {exc}", 2) from None
    _SECRETS.extend(_password(url) for url in (source, to) if _password(url))
    try:
        report = asyncio.run(copy_database(source, to, replace=replace))
    except StorageError as exc:
        raise _fail(str(exc)) from None
    from rich.table import Table

    table = Table("table", "from", "to", "", title=None, box=None, pad_edge=False)
    for line in count_lines(report):
        table.add_row(*line)
    Console(highlight=False).print(table)
    typer.echo(f"copied {report.rows} rows in {len(report.counts)} tables; the counts match")


def _password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return str(make_url(url).password or "")
    except Exception:
        return ""


@keys_app.command("rotate")
def keys_rotate(
    discard_unreadable: Annotated[
        bool,
        typer.Option(
            "--discard-unreadable",
            help="Reset what no configured key opens (after a lost key); otherwise it is "
            "only counted.",
        ),
    ] = False,
) -> None:
    """Re-encrypt everything under the first key of PAUSECHECK_ENCRYPTION_KEYS."""
    from storage.keys import rotate_database

    settings = _settings()
    keys = settings.encryption_key_list()
    if not keys:
        raise _fail(
            "set PAUSECHECK_ENCRYPTION_KEYS first: the new key, then the old ones, comma-separated",
            2,
        )
    try:
        rotation = asyncio.run(
            rotate_database(settings.database_url, keys, discard_unreadable=discard_unreadable)
        )
    except StorageError as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"keys rotated: {rotation.resealed} value(s) re-encrypted under the first key, "
        f"{rotation.sealed_plain} sealed for the first time, "
        f"{rotation.unreadable} unreadable ({rotation.discarded} reset)"
    )
    if rotation.unreadable and not discard_unreadable:
        raise _fail(
            f"{rotation.unreadable} value(s) open with none of the keys "
            f"({', '.join(sorted(rotation.by_column))}); keep the old keys until they do, "
            "or reset them with --discard-unreadable"
        )


def main() -> None:
    app()
