"""harness: evaluate and compare fine-tuned small language models with inference-time tools.

The public API is deliberately small::

    import harness
    task = harness.get_task("countdown")
    verifier = harness.get_verifier(task.verifier)          # or "rm:path/to/reward-model"
    example = next(iter(task.examples(limit=1)))
    harness.verify(verifier, [(example, "<answer>(1 + 2) * 3</answer>")])

Plugins mark their hook functions with ``@harness.hookimpl``; see ``harness.hookspecs``.
"""

from harness.errors import HarnessError
from harness.metrics import Metric
from harness.plugins import get_sampler, get_task, get_verifier, hookimpl
from harness.types import Candidate, Completion, Example, Score
from harness.verify import verify

__all__ = [
    "Candidate",
    "Completion",
    "Example",
    "HarnessError",
    "Metric",
    "Score",
    "get_sampler",
    "get_task",
    "get_verifier",
    "hookimpl",
    "verify",
]
