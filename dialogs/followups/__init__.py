"""Time-driven work: the dispatcher that claims due rows and delivers them at least
once, and the calendar arithmetic (local times, quiet hours, weekdays)."""
