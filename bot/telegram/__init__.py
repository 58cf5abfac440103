"""Telegram on python-telegram-bot: updates in, rendered replies out. Imports
`dialogs` and `bot`'s shared seams, never `bot.discord`."""
