"""`python -m bot` is the same as the `pausecheck` command."""

from bot.cli import main

main()
