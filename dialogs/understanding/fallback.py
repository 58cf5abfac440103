"""When to act on a reading, when to ask, and when to worry.

Acting on a wrong guess costs more than asking: starting the "take space" flow for
someone who wanted to plan a talk feels like not being listened to. So, as in Rasa's
FallbackClassifier, a reading is acted on only when its top intent is both likely
enough (`threshold`) and clearly ahead of the runner-up (`ambiguity_gap`); otherwise
the engine offers the likeliest few as "Did you mean..." buttons.

Safety is judged separately and more eagerly. The safety screen (phrase rules) runs
first on every message; this is a second net for phrasings it has no rule for. A
crisis or danger intent that is merely *plausible* (`concern_threshold`, well below
`threshold`) makes the engine ask one gentle question, even when another intent
ranks first: a needless question costs a moment, a missed crisis can cost far more.

The defaults come from the evaluation figures of the shipped classifier (5-fold
cross-validation on the 1,084 real examples / the 381 held-out messages):

  concern   crisis caught   danger caught   false alarms (ordinary messages)
  0.10      0.97 / 1.00     0.99 / 1.00     0.32 / 0.24
  0.15      0.95 / 0.96     0.97 / 1.00     0.20 / 0.15
  0.20      0.93 / 0.92     0.96 / 1.00     0.15 / 0.10
  0.25      0.91 / 0.92     0.96 / 1.00     0.12 / 0.07   <- default
  0.30      0.90 / 0.91     0.96 / 1.00     0.11 / 0.07
  0.40      0.88 / 0.89     0.95 / 0.98     0.10 / 0.06

Since then the examples grew to about 1,570 (hard negatives, indirect crisis
wording, codes and keyboard mash, the guide's own "alarm" words). With both tiers as
the engine runs them (phrase rules, then the model), on the held-out set:

  concern   crisis caught   danger caught   false alarms
  0.20      0.981           1.000           0.046
  0.25      0.981           1.000           0.037   <- default
  0.30      0.962           1.000           0.033

The engine also never asks about a text of fewer than three words or one that
answers the step the person is at ("reach out", "8/10"): out of context, those are
where the model is least sure, and the phrase rules have read them already.

Earlier reasoning, at 1,084 examples: `concern_threshold` 0.25: below it every step
buys a little crisis recall for many
more false alarms (0.15 asks one ordinary message in six or seven whether they are
safe, which wears out the question); above it recall falls while false alarms barely
move, since most are then top-1 mistakes no threshold can remove. The phrase-rule
safety screen, which runs first, is the main net; this one catches what it misses.

  threshold/gap   acted on      right when acted on   right intent among the choices
  0.30 / 0.10     0.83 / 0.92   0.89 / 0.94           0.70 / 0.87
  0.40 / 0.10     0.76 / 0.87   0.92 / 0.96           0.74 / 0.82
  0.50 / 0.10     0.66 / 0.79   0.95 / 0.97           0.77 / 0.84   <- default
  0.60 / 0.10     0.54 / 0.70   0.96 / 0.99           0.81 / 0.86

`threshold` 0.50 with `ambiguity_gap` 0.10: about one wrong flow in twenty to thirty
acted-on messages, while a "Did you mean" question comes up for one message in five
(held-out) to three (cross-validation). Above 0.5 the gap rarely binds, but it still
catches the 0.50-vs-0.45 split; raising the threshold further mostly adds questions.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialogs.understanding.base import SAFETY_INTENTS, Reading

__all__ = [
    "DEFAULT_AMBIGUITY_GAP",
    "DEFAULT_CONCERN_THRESHOLD",
    "DEFAULT_THRESHOLD",
    "Confident",
    "Decision",
    "FallbackPolicy",
    "Unsure",
    "safety_concern",
]

DEFAULT_THRESHOLD = 0.50
DEFAULT_AMBIGUITY_GAP = 0.10
DEFAULT_CONCERN_THRESHOLD = 0.25

# Never offered as a "Did you mean" button: it is the absence of an intent.
_NOT_A_CHOICE = frozenset({"out_of_scope"})


@dataclass(frozen=True, slots=True)
class Confident:
    """Act on this intent."""

    intent: str


@dataclass(frozen=True, slots=True)
class Unsure:
    """Ask: the likeliest intents, best first, to offer as choices (may be empty)."""

    candidates: tuple[str, ...]


Decision = Confident | Unsure


def safety_concern(reading: Reading, *, threshold: float = DEFAULT_CONCERN_THRESHOLD) -> str | None:
    """The safety intent ("crisis" or "danger") whose probability reaches `threshold`, if any.

    Looks at the whole ranking, not only the top. When both reach it, the one *not*
    ranked first is returned, since the top one is already the reading's intent and
    one value should carry the most news; otherwise "crisis" is checked before
    "danger", because a risk to life is the one to ask about first.
    """
    flagged = [i for i in SAFETY_INTENTS if reading.probability(i) >= threshold]
    if len(flagged) > 1:
        flagged = [i for i in flagged if i != reading.intent] or flagged
    return flagged[0] if flagged else None


class FallbackPolicy:
    """Turns a reading into `Confident` or `Unsure`, and flags safety concerns."""

    def __init__(
        self,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        ambiguity_gap: float = DEFAULT_AMBIGUITY_GAP,
        concern_threshold: float = DEFAULT_CONCERN_THRESHOLD,
        max_candidates: int = 3,
        candidate_floor: float = 0.10,
    ) -> None:
        for name, value in (
            ("threshold", threshold),
            ("ambiguity_gap", ambiguity_gap),
            ("concern_threshold", concern_threshold),
            ("candidate_floor", candidate_floor),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        if max_candidates < 2:
            raise ValueError("max_candidates must be at least 2: one choice is no choice")
        self.threshold = threshold
        self.ambiguity_gap = ambiguity_gap
        self.concern_threshold = concern_threshold
        self.max_candidates = max_candidates
        self.candidate_floor = candidate_floor

    def decide(self, reading: Reading) -> Decision:
        """`Confident` when the top intent is likely and clearly ahead; else `Unsure`."""
        runner_up = reading.ranking[1][1] if len(reading.ranking) > 1 else 0.0
        if (
            reading.confidence >= self.threshold
            and reading.confidence - runner_up >= self.ambiguity_gap
        ):
            return Confident(reading.intent)
        return Unsure(self._candidates(reading))

    def _candidates(self, reading: Reading) -> tuple[str, ...]:
        choices = [intent for intent, _ in reading.ranking if intent not in _NOT_A_CHOICE]
        # Two choices always (one button is not a question); a third only if it is
        # a real possibility, so the buttons do not fill up with noise.
        probabilities = dict(reading.ranking)
        picked = choices[:2] + [
            intent
            for intent in choices[2 : self.max_candidates]
            if probabilities[intent] >= self.candidate_floor
        ]
        return tuple(picked)

    def safety_concern(self, reading: Reading) -> str | None:
        """`safety_concern` with this policy's concern threshold."""
        return safety_concern(reading, threshold=self.concern_threshold)
