"""How fast, how heavy and how good the intent classifier is, next to keyword matching.

Run from the repository root:

    python -m bench.understanding
    python -m bench.understanding --rounds 20

The baseline, measured in the same run on the same texts, is the simplest reader
worth the name: every word of every example votes for its intent, and a message
goes to the intent whose words it shares most. It needs no scikit-learn, so the
ratios say what the model costs (time per message, start-up, memory) and what it
buys (accuracy, safety recall, false alarms) on this machine.

Start-up and memory are measured in fresh interpreters (`--child`), so interpreter
start and imports count and nothing is shared with the parent; latency is measured in-process, one
message at a time, the way the engine asks. Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    # Run as a script, Python puts bench/ on the path instead of the repository root.
    sys.path.insert(0, str(ROOT))

# The seam only: the package loads scikit-learn lazily, so the baseline never pays for it.
from dialogs.understanding.base import Reading  # noqa: E402

DEFAULT_EXAMPLES = ROOT / "content" / "understanding" / "examples"
DEFAULT_EVALUATION = ROOT / "content" / "understanding" / "evaluation.yaml"
FIXTURES = ROOT / "tests" / "understanding" / "fixtures"


def _rss_bytes() -> int:
    try:
        import psutil  # type: ignore[import-untyped]  # a dev dependency; fall back without it
    except ImportError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return int(psutil.Process().memory_info().rss)


# -- the keyword baseline ------------------------------------------------------------------


class KeywordReader:
    """Word votes: each example word votes for its intent, weighted by how specific it is."""

    def __init__(self, examples: Sequence[tuple[str, str]]) -> None:
        self._exact: dict[str, str] = {}
        votes: dict[str, Counter[str]] = defaultdict(Counter)
        for text, intent in examples:
            self._exact[self._key(text)] = intent
            for word in set(self._words(text)):
                votes[word][intent] += 1
        self._intents = tuple(sorted({intent for _, intent in examples}))
        # A word seen under many intents ("i", "he") says little; one seen under one says a lot.
        self._weights = {
            word: {intent: n / sum(counts.values()) for intent, n in counts.items()}
            for word, counts in votes.items()
        }

    @staticmethod
    def _key(text: str) -> str:
        return " ".join(text.casefold().split())

    @staticmethod
    def _words(text: str) -> list[str]:
        return "".join(c if c.isalnum() or c == "'" else " " for c in text.casefold()).split()

    def read(self, text: str) -> Reading | None:
        if not text.strip():
            return None
        exact = self._exact.get(self._key(text))
        scores = dict.fromkeys(self._intents, 0.0)
        if exact is not None:
            scores[exact] = 1.0
        else:
            for word in self._words(text):
                for intent, weight in self._weights.get(word, {}).items():
                    scores[intent] += weight
        total = sum(scores.values())
        if total == 0:
            scores["out_of_scope" if "out_of_scope" in scores else self._intents[0]] = 1.0
            total = 1.0
        ranking = tuple(
            sorted(((i, s / total) for i, s in scores.items()), key=lambda p: p[1], reverse=True)
        )
        return Reading(ranking[0][0], ranking[0][1], ranking)


def _baseline_from(examples_dir: Path) -> KeywordReader:
    import yaml

    pairs: list[tuple[str, str]] = []
    for path in sorted(examples_dir.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        pairs += [(str(text), str(data["intent"])) for text in data["examples"]]
    return KeywordReader(pairs)


# -- fresh-interpreter measurements ---------------------------------------------------------


def _child(mode: str, examples_dir: Path, cache_dir: Path) -> None:
    rss_before = _rss_bytes()
    begun = time.perf_counter()
    if mode == "baseline":
        reader: object = _baseline_from(examples_dir)
    else:
        from dialogs.understanding import load_or_train

        reader = load_or_train(examples_dir, cache_dir)
    assert reader is not None
    ready = time.perf_counter()
    # Memory is counted from here, after the interpreter and the light seam are up,
    # so it is what the reader itself adds (scikit-learn's imports included).
    print(json.dumps({"own_s": ready - begun, "rss_added": _rss_bytes() - rss_before}))


def _in_child(mode: str, examples_dir: Path, cache_dir: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.understanding", "--child", mode]
    command += ["--examples", str(examples_dir), "--cache", str(cache_dir)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    parsed: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    # The whole process, interpreter start to exit: what a restart of the bot waits for
    # (an over-estimate by the exit, which is a few milliseconds).
    parsed["startup_s"] = time.perf_counter() - started
    return parsed


# -- in-process latency --------------------------------------------------------------------


def _latencies(fn: Callable[[str], object], texts: Sequence[str], rounds: int) -> list[float]:
    timings: list[float] = []
    clock = time.perf_counter
    for _ in range(rounds):
        for text in texts:
            start = clock()
            fn(text)
            timings.append(clock() - start)
    return timings


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "n/a"
    return f"{ours / theirs:.2f}x"


def _fmt(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else "n/a"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, default=DEFAULT_EXAMPLES)
    parser.add_argument("--evaluation", type=Path, default=DEFAULT_EVALUATION)
    parser.add_argument("--rounds", type=int, default=10, help="passes over the texts")
    parser.add_argument("--startups", type=int, default=3, help="fresh interpreters per kind")
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["load", "train", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        _child(args.child, args.examples, args.cache)
        return 0

    if not args.examples.is_dir():
        print(f"{args.examples} is missing; using the test fixtures instead")
        args.examples, args.evaluation = FIXTURES / "examples", FIXTURES / "evaluation.yaml"

    from dialogs.understanding import (
        FallbackPolicy,
        evaluate_on,
        load_evaluation,
        load_or_train,
    )

    messages = load_evaluation(args.evaluation)
    texts = [m.text for m in messages]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        trained = [_in_child("train", args.examples, cache)]
        loads = [_in_child("load", args.examples, cache) for _ in range(args.startups)]
        bases = [_in_child("baseline", args.examples, cache) for _ in range(args.startups)]
        classifier = load_or_train(args.examples, cache)
    baseline = _baseline_from(args.examples)

    # Alternate the two readers so a noisy moment does not land on one side only.
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(args.rounds):
        ours += _latencies(classifier.predict, texts, 1)
        theirs += _latencies(baseline.read, texts, 1)

    policy = FallbackPolicy()
    our_report = evaluate_on(classifier, messages, policy=policy)
    their_report = evaluate_on(baseline, messages, policy=policy)

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    ms = 1000.0
    mib = 1024.0 * 1024.0
    rows: list[tuple[str, float | None, float | None, str]] = [
        ("classify p50 (ms/message)", _percentile(ours, 0.5) * ms, _percentile(theirs, 0.5) * ms,
         ".3f"),
        ("classify p99 (ms/message)", _percentile(ours, 0.99) * ms,
         _percentile(theirs, 0.99) * ms, ".3f"),
        ("start-up from cache (s, incl. import)", median(loads, "startup_s"),
         median(bases, "startup_s"), ".2f"),
        ("start-up training from scratch (s)", median(trained, "startup_s"),
         median(bases, "startup_s"), ".2f"),
        ("memory added, from cache (MiB RSS)", median(loads, "rss_added") / mib,
         median(bases, "rss_added") / mib, ".1f"),
        ("intent accuracy (held-out)", our_report.accuracy, their_report.accuracy, ".3f"),
        ("crisis recall (held-out)", our_report.safety.crisis_recall,
         their_report.safety.crisis_recall, ".3f"),
        ("danger recall (held-out)", our_report.safety.danger_recall,
         their_report.safety.danger_recall, ".3f"),
        ("false alarms (held-out)", our_report.safety.false_alarm_rate,
         their_report.safety.false_alarm_rate, ".3f"),
    ]  # fmt: skip

    print(
        f"{len(texts)} held-out messages from {args.evaluation.name}, {args.rounds} rounds; "
        f"start-up median of {args.startups} fresh interpreters (training: 1); "
        f"thresholds: act {policy.threshold:.2f}, gap {policy.ambiguity_gap:.2f}, "
        f"concern {policy.concern_threshold:.2f}"
    )
    print()
    print("| measure | classifier | keyword baseline | ratio |")
    print("|---|---:|---:|---:|")
    for name, mine, base, spec in rows:
        print(f"| {name} | {_fmt(mine, spec)} | {_fmt(base, spec)} | {_ratio(mine, base)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
