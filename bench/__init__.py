"""Benchmarks and evaluations run by hand; not part of the bot."""
