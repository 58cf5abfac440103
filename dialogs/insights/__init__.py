"""What the journal shows a person about their own pauses (`/insights`).

Read from the journal only: taps and 0-10 numbers, never free text. `signals` says
which journal rows mean what, `numbers` computes the figures, `summary` puts them
in words from `content/insights.yaml`, `chart` turns them into a plain chart
description, and `drawing` draws that as a PNG after the turn has committed
(matplotlib, imported only there and only when a chart is drawn).
"""
