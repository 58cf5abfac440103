"""Platform-free dialog engine: events in, actions out, flows as data.

Nothing in this package may import from `bot`, python-telegram-bot or discord.py;
`tests/test_boundaries.py` enforces it.
"""
