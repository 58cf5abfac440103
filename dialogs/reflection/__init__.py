"""Guided group reflection: its content model, the store protocol for its rows, and
`GroupReflections`, the collaborator the engine holds and hands reflection events to."""
