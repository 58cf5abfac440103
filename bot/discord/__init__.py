"""Discord on discord.py: slash commands and buttons in, rendered replies out.
Imports `dialogs` and `bot`'s shared seams, never `bot.telegram`."""
