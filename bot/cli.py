"""The `pausecheck` command line."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.app import SetupError, open_guide
from bot.config import Settings
from bot.console import PLATFORM, ConsoleAdapter, piped_lines, prompt_lines
from dialogs.clock import SystemClock
from dialogs.content import check_content
from dialogs.content_errors import ContentInvalid
from dialogs.dispatcher import Sender
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
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _settings() -> Settings:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]pausecheck:[/] {message}", markup=True)
    return typer.Exit(code)


def _setup_errors() -> tuple[type[Exception], ...]:
    from dialogs.safety_resources import SafetyContentError as ResourcesError
    from dialogs.safety_screen import SafetyContentError as SignalsError

    return (ContentInvalid, StorageError, SetupError, SignalsError, ResourcesError)


@app.command()
def console(
    clock_scale: Annotated[
        float,
        typer.Option(
            help="Make waits this many times shorter, for demos: 60 turns 20 minutes into 20 s.",
            min=0.001,
        ),
    ] = 1.0,
    user: Annotated[
        str, typer.Option(help="Local user name; a second run continues its conversation.")
    ] = "local",
) -> None:
    """Talk to the guide in this terminal (no token needed)."""
    settings = _settings()
    try:
        asyncio.run(_console(settings, clock_scale, user))
    except _setup_errors() as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


async def _console(settings: Settings, clock_scale: float, user: str) -> None:
    clock = SystemClock()
    senders: dict[str, Sender] = {}
    # A faster clock needs a faster sweep too, or demo follow-ups would wait for it.
    sweep = max(0.5, settings.sweep_seconds / clock_scale)
    guide = await open_guide(settings, senders, clock, delay_scale=clock_scale, sweep_seconds=sweep)
    interactive = sys.stdin.isatty()
    out = Console(highlight=False, force_terminal=interactive or None)
    adapter = ConsoleAdapter(guide.engine, clock, out, user_id=user)
    senders[PLATFORM] = adapter
    try:
        if interactive:
            from prompt_toolkit.patch_stdout import patch_stdout

            await guide.scheduler.start()
            with patch_stdout(raw=True):
                await adapter.run(prompt_lines(), echo=False)
        else:
            # Piped input: deliver anything already due, talk, and exit at end of input.
            await guide.dispatcher.run_due()
            await adapter.run(piped_lines(), echo=True)
    finally:
        await guide.close()


@app.command()
def run() -> None:
    """Run the guide on the chat platforms whose tokens are set."""
    settings = _settings()
    if settings.telegram_bot_token is None and settings.discord_bot_token is None:
        raise _fail(
            "no platform token is set. Set TELEGRAM_BOT_TOKEN (Telegram) or DISCORD_BOT_TOKEN "
            "(Discord), or try the guide without a token: pausecheck console",
            2,
        )
    raise _fail("the Telegram and Discord adapters are not built yet; use: pausecheck console", 2)


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
        from dialogs.safety_resources import SafetyResources
        from dialogs.safety_screen import SafetyScreen

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
        f"content ok: {flows} flows, {steps} steps, {len(content.commands.commands)} commands"
    )


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


def main() -> None:
    app()
