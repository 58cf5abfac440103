"""How well, and how fast, the safety screen does on the labelled phrase set.

Run from the repository root:

    python -m bench.safety_eval
    python bench/safety_eval.py --seconds 2

Prints recall on the crisis and danger sets, the false-alarm rate on ordinary
messages, and screening throughput next to a baseline of `normalise` alone,
measured in the same run, so the ratio holds on any machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    # Run as a script, Python puts bench/ on the path instead of the repository root;
    # this keeps `dialogs` importable without an editable install.
    sys.path.insert(0, str(ROOT))

from dialogs.safety.normalise import normalise  # noqa: E402
from dialogs.safety.screen import SafetyScreen, SafetySignal  # noqa: E402

DEFAULT_SIGNALS = ROOT / "content" / "safety" / "signals.yaml"
DEFAULT_PHRASES = ROOT / "tests" / "safety" / "phrases.yaml"


def _load_phrases(path: Path) -> dict[str, list[str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {name: [str(p) for p in items] for name, items in data.items()}


def _quality(screen: SafetyScreen, phrases: dict[str, list[str]]) -> list[str]:
    rows = [f"{'set':<10}{'n':>6}{'flagged':>9}  result", "-" * 48]
    notes: list[str] = []
    for name, items in phrases.items():
        findings = [screen.screen(p) for p in items]
        flagged = sum(f is not None for f in findings)
        if name == "ordinary":
            result = f"false alarms {flagged / len(items):6.1%}"
            notes += [
                f"  false alarm: {p!r} ({f.rule_id})"
                for p, f in zip(items, findings, strict=True)
                if f
            ]
        else:
            want = SafetySignal.CRISIS if name == "crisis" else None
            hits = [f is not None and (want is None or f.signal is want) for f in findings]
            result = f"recall       {sum(hits) / len(items):6.1%}"
            notes += [
                f"  missed {name}: {p!r}" for p, hit in zip(items, hits, strict=True) if not hit
            ]
        rows.append(f"{name:<10}{len(items):>6}{flagged:>9}  {result}")
    return rows + notes


def _rate(fn: Callable[[str], object], messages: Sequence[str], seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for message in messages:
            fn(message)
        done += len(messages)
    return done / elapsed


def _speed(screen: SafetyScreen, messages: Sequence[str], seconds: float) -> list[str]:
    # Alternate the two and keep each one's best round, so a noisy moment on the
    # machine does not land on only one side of the ratio.
    best_norm = best_screen = 0.0
    for _ in range(3):
        best_norm = max(best_norm, _rate(normalise, messages, seconds / 3))
        best_screen = max(best_screen, _rate(screen.screen, messages, seconds / 3))
    return [
        f"throughput over {len(messages)} messages (best of 3 rounds each)",
        f"  normalise only  {best_norm:>10,.0f} messages/s",
        f"  full screen     {best_screen:>10,.0f} messages/s",
        f"  ratio           {best_screen / best_norm:>10.2f} (screen / normalise; "
        f"screening costs {best_norm / best_screen:.1f}x normalising)",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=Path, default=DEFAULT_SIGNALS)
    parser.add_argument("--phrases", type=Path, default=DEFAULT_PHRASES)
    parser.add_argument("--seconds", type=float, default=1.5, help="timing budget per side")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    screen = SafetyScreen.from_file(args.signals)
    load_ms = (time.perf_counter() - started) * 1000
    phrases = _load_phrases(args.phrases)
    messages = [p for items in phrases.values() for p in items]

    print(f"rules: {len(screen.rule_ids)} from {args.signals.name}, loaded in {load_ms:.0f} ms")
    print()
    print("\n".join(_quality(screen, phrases)))
    print()
    print("\n".join(_speed(screen, messages, args.seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
