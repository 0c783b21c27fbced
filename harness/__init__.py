"""harness: evaluate and compare fine-tuned small language models with inference-time tools.

The public API is deliberately small::

    import harness
    task = harness.get_task("countdown")
    verifier = harness.get_verifier(task.verifier)
    example = next(iter(task.examples(limit=1)))
    verifier.score(example, "<answer>(1 + 2) * 3</answer>")

Plugins mark their hook functions with ``@harness.hookimpl``; see ``harness.hookspecs``.
"""

from harness.errors import HarnessError
from harness.plugins import get_sampler, get_task, get_verifier, hookimpl
from harness.types import Candidate, Completion, Example, Score

__all__ = [
    "Candidate",
    "Completion",
    "Example",
    "HarnessError",
    "Score",
    "get_sampler",
    "get_task",
    "get_verifier",
    "hookimpl",
]
