"""Wiring, CLI, configuration, scheduling and the platform adapters."""
