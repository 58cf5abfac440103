"""Flows as data: the typed model, loading with file and line, the content check's
graph pass, templates, typed values, commands and the authoring tools (transcripts,
diagrams). Imports only the standard library, pydantic and yaml, and nothing else
of `dialogs` but `dialogs.events`."""
