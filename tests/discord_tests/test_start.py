"""`DiscordAdapter.start`: returns once Discord says ready, or raises a clear error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.app import Guide, SetupError
from bot.config import Settings
from bot.discord.adapter import DiscordAdapter
from bot.discord.client import GuideClient
from tests.discord_tests.conftest import discord_settings
from tests.discord_tests.fake_gateway import Script, install


class OfflineAdapter(DiscordAdapter):
    def __init__(self, guide: Guide, settings: Settings, script: Script, **kw: Any) -> None:
        # A short wait for guilds after READY, so the test does not sit out the default 2 s.
        options = {"guild_ready_timeout": 0.01}
        super().__init__(guide, settings, client_options=options, **kw)
        self.script = script

    def make_client(self, shard: int = 0) -> GuideClient:
        client = super().make_client(shard)
        install(client, self.script)
        return client


async def test_start_logs_in_syncs_connects_and_returns_when_ready(guide: Guide) -> None:
    script = Script()
    adapter = OfflineAdapter(guide, guide.settings, script)
    await adapter.start()
    try:
        client = adapter.client
        assert client is not None and client.is_ready()
        [(_, path, body)] = [r for r in script.requests if r[0] == "PUT"]
        assert path == "/applications/{application_id}/commands"
        assert {c["name"] for c in body} == {c.name for c in guide.content.commands.menu()}
        identify = next(p for p in script.sent_to_gateway if p["op"] == 2)
        assert identify["d"]["intents"] == client.intents.value
        assert not (client.intents.message_content or client.intents.members)
        assert not client.intents.presences
    finally:
        await adapter.stop()
    assert client.is_closed()
    await adapter.stop()  # twice is fine


async def test_with_a_guild_id_start_syncs_to_that_guild(guide: Guide) -> None:
    script = Script()
    adapter = OfflineAdapter(guide, discord_settings(discord_guild_id=42), script)
    await adapter.start()
    await adapter.stop()
    [(_, path, _)] = [r for r in script.requests if r[0] == "PUT"]
    assert path == "/applications/{application_id}/guilds/{guild_id}/commands"


def puts(script: Script) -> list[str]:
    return [path for method, path, _ in script.requests if method == "PUT"]


async def test_a_second_start_with_the_same_commands_does_not_sync_them(guide: Guide) -> None:
    script = Script()
    for _ in range(2):
        adapter = OfflineAdapter(guide, guide.settings, script)
        await adapter.start()
        await adapter.stop()
    # Both starts asked what Discord has; only the first had to put the list.
    gets = [p for m, p, _ in script.requests if m == "GET" and p.endswith("/commands")]
    assert len(gets) == 2
    assert len(puts(script)) == 1


async def test_a_changed_command_list_is_synced_at_the_next_start(guide: Guide) -> None:
    script = Script()
    adapter = OfflineAdapter(guide, guide.settings, script)
    await adapter.start()
    await adapter.stop()
    # Someone changed a description in content/commands.yaml (or on another checkout).
    [pause] = [c for c in script.registered["global"] if c["name"] == "pause"]
    pause["description"] = "An older wording"

    adapter = OfflineAdapter(guide, guide.settings, script)
    await adapter.start()
    await adapter.stop()
    assert len(puts(script)) == 2
    [pause] = [c for c in script.registered["global"] if c["name"] == "pause"]
    assert pause["description"] == guide.content.commands.get("pause").description  # type: ignore[union-attr]


async def test_a_command_missing_from_discord_is_synced(guide: Guide) -> None:
    script = Script()
    adapter = OfflineAdapter(guide, guide.settings, script)
    await adapter.start()
    await adapter.stop()
    script.registered["global"] = [c for c in script.registered["global"] if c["name"] != "sos"]
    adapter = OfflineAdapter(guide, guide.settings, script)
    await adapter.start()
    await adapter.stop()
    assert len(puts(script)) == 2


@pytest.mark.parametrize(
    "script",
    [Script(sync_refused=True), Script(sync_refused=True, fetch_refused=True)],
    ids=["sync-refused", "fetch-and-sync-refused"],
)
async def test_start_goes_on_when_discord_refuses_the_command_sync(
    guide: Guide, script: Script, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = OfflineAdapter(guide, discord_settings(discord_guild_id=42), script)
    await adapter.start()
    try:
        assert adapter.client is not None and adapter.client.is_ready()
    finally:
        await adapter.stop()
    [warning] = [r for r in caplog.records if "could not sync" in r.getMessage()]
    assert "Missing Access" in warning.getMessage()
    assert "applications.commands scope" in warning.getMessage()


@pytest.mark.parametrize(
    ("script", "says"),
    [
        (Script(token_ok=False), "refused DISCORD_BOT_TOKEN"),
        (Script(close_on_identify=4014), "could not connect"),
    ],
)
async def test_start_raises_a_setup_error_and_cleans_up(
    guide: Guide, script: Script, says: str
) -> None:
    adapter = OfflineAdapter(guide, guide.settings, script, ready_timeout=5.0)
    with pytest.raises(SetupError, match=says):
        await adapter.start()
    assert adapter.client is None
    await adapter.stop()  # safe after a failed start, as `pausecheck run` may call it


async def test_start_gives_up_when_discord_never_gets_ready(guide: Guide) -> None:
    adapter = OfflineAdapter(guide, guide.settings, Script(hello=False), ready_timeout=0.2)
    with pytest.raises(SetupError, match="not ready within"):
        await adapter.start()
    await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() if t.get_name().startswith("discord-")]
    assert leftover == []


async def test_start_needs_a_token(guide: Guide) -> None:
    adapter = DiscordAdapter(guide, discord_settings(discord_bot_token=None))
    with pytest.raises(SetupError, match="DISCORD_BOT_TOKEN"):
        await adapter.start()


async def test_send_before_start_is_not_sent(guide: Guide) -> None:
    from dialogs.events import Address, Outbound
    from dialogs.followups.dispatcher import NotSent

    adapter = DiscordAdapter(guide, guide.settings)
    with pytest.raises(NotSent):
        await adapter.send(Address("discord", "1", "1"), [Outbound("hi")])
