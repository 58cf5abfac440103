"""Understanding free text: which intent a message is, and how sure to be about it.

A package rather than one module so that the seam (`base`), the content
(`examples`), the model (`classifier`), the decision rules (`fallback`) and the
measurements (`evaluation`) can each change without the others; the engine needs
only `Reader`, `Reading` and `FallbackPolicy`, and asks only after the safety screen.
It imports nothing else from Pausecheck, so it can be tested and benchmarked alone.

The model and the measurements are loaded on first use (PEP 562): scikit-learn and
scipy take about 1.5 s and 130 MiB to import, and code that only needs the seam
(flows, the safety path, tests with a fake reader) should not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dialogs.understanding.base import INTENTS, SAFETY_INTENTS, Reader, Reading
from dialogs.understanding.examples import (
    Example,
    ExampleProblem,
    ExamplesError,
    ExampleSet,
    IntentFile,
    check_evaluation,
    check_examples,
    load_evaluation,
    load_examples,
)
from dialogs.understanding.fallback import (
    Confident,
    Decision,
    FallbackPolicy,
    Unsure,
    safety_concern,
)

if TYPE_CHECKING:
    from dialogs.understanding.classifier import (
        MODEL_VERSION,
        IntentClassifier,
        ModelFileError,
        cache_path,
        examples_hash,
        load_or_train,
        normalise_text,
    )
    from dialogs.understanding.evaluation import (
        FallbackFigures,
        IntentScore,
        Miss,
        Report,
        SafetyFigures,
        build_report,
        cross_validate,
        evaluate_on,
        format_report,
    )

_LAZY = {
    **dict.fromkeys(
        (
            "MODEL_VERSION",
            "IntentClassifier",
            "ModelFileError",
            "cache_path",
            "examples_hash",
            "load_or_train",
            "normalise_text",
        ),
        "dialogs.understanding.classifier",
    ),
    **dict.fromkeys(
        (
            "FallbackFigures",
            "IntentScore",
            "Miss",
            "Report",
            "SafetyFigures",
            "build_report",
            "cross_validate",
            "evaluate_on",
            "format_report",
        ),
        "dialogs.understanding.evaluation",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # Later look-ups skip this function.
    return value


__all__ = [
    "INTENTS",
    "MODEL_VERSION",
    "SAFETY_INTENTS",
    "Confident",
    "Decision",
    "Example",
    "ExampleProblem",
    "ExampleSet",
    "ExamplesError",
    "FallbackFigures",
    "FallbackPolicy",
    "IntentClassifier",
    "IntentFile",
    "IntentScore",
    "Miss",
    "ModelFileError",
    "Reader",
    "Reading",
    "Report",
    "SafetyFigures",
    "Unsure",
    "build_report",
    "cache_path",
    "check_evaluation",
    "check_examples",
    "cross_validate",
    "evaluate_on",
    "examples_hash",
    "format_report",
    "load_evaluation",
    "load_examples",
    "load_or_train",
    "normalise_text",
    "safety_concern",
]
