"""Safety before anything else: the phrase screen and its normalising, helplines,
the crisis window, the gates a flow passes, not-a-human reminders. Never imports a
learned model: the phrase tier must act even where nothing else loads."""
