"""The plugin contract: what a harness plugin may implement.

A plugin is any importable module (or object) with functions marked ``@harness.hookimpl``
whose names match the hooks below. Ship it as a distribution with an entry point in the
group ``harness``; it is loaded automatically, exactly as the built-in plugins are::

    # pyproject.toml of your package
    [project.entry-points.harness]
    myverifier = "my_package.verifier"

    # my_package/verifier.py
    import harness

    class Shorter:
        name = "shorter"
        reference_free = True          # never reads example.reference

        def score(self, example, completion):
            return 1.0 / (1 + len(completion))

    @harness.hookimpl
    def register_verifiers():
        return [Shorter()]

``harness plugins`` lists what every installed plugin registered. A plugin that fails to
import or returns an object that breaks the contract is reported in one line and skipped;
two plugins registering the same name is an error naming both.

Hooks are grouped by when the harness calls them: all three are *registration* hooks,
called once when the plugin manager starts.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("harness")


# -- Registration: called once, at start-up -------------------------------------------


@hookspec
def register_tasks() -> list:
    """Return the tasks this plugin provides.

    A task is an object with:

    - ``name: str`` — what ``--task`` selects;
    - ``verifier: str`` — the name of the verifier that grades it (its accuracy metric);
    - ``examples(split: str = "test", limit: int | None = None, seed: int = 0)`` — an
      iterable of ``harness.Example(prompt, reference=None, meta=None, id="", shots=())``.
      The same arguments must give the same examples, in the same order. ``id`` should be
      stable (it keys the samples log); the harness numbers examples when it is empty.
      ``shots`` are worked (user, assistant) pairs: prior chat turns under a chat
      template, plain text before the prompt without one.

    A task may declare ``stop: tuple[str, ...]``, strings that end a generation (a few-shot
    prompt's next "Q:", say); the stop string itself is not part of the completion.

    A task may also take keyword options (``--task-arg key=value``) through a
    ``configure(**options) -> task`` method returning a configured copy.
    """


@hookspec
def register_verifiers() -> list:
    """Return the verifiers this plugin provides.

    A verifier is an object with:

    - ``name: str`` — what ``--verifier`` selects;
    - ``reference_free: bool`` — True when it never reads ``example.reference``. Only a
      reference-free verifier may choose among samples at inference time; using any
      other one to select makes the run an *oracle* run, reported as pass@N;
    - ``score(example, completion: str) -> float | harness.Score`` — a value in [0, 1],
      or a ``Score(value, answer=None, error=None, metrics={})`` carrying the extracted
      answer (which must not depend on the reference: samplers see it), any failure (a
      timeout, say) and named side-scores such as ``well_formed``. Answers and errors go into the samples log and the
      run summary counts them. Completions are untrusted model output: never ``eval``
      them;
    - optionally ``score_batch(example, completions: list[str]) -> list[float | Score]``,
      which the harness prefers when present (one reward-model forward pass for all N
      samples of an example, say).

    ``example.meta`` carries task facts (Countdown's ``numbers`` and ``target``).
    """


@hookspec
def register_samplers() -> list:
    """Return the samplers this plugin provides.

    A sampler is an object with:

    - ``name: str`` — what ``--sampler`` selects;
    - ``greedy: bool`` — True to decode at temperature 0 with a single sample (``--n``
      must then be 1);
    - ``uses_scores: bool`` — True when ``select`` reads ``candidate.score``, so the
      harness must run a selection verifier (``--verifier``) on every sample;
    - ``select(candidates: Sequence[harness.Candidate]) -> int`` — the index of the
      chosen one among the N candidates of one example. A candidate has
      ``completion`` (``text``, ``tokens``, ``logprob``, ``finish_reason``,
      ``mean_logprob``), ``answer`` (the final answer the task's grader extracted,
      never whether it is right) and, when ``uses_scores``, ``score`` (the selection
      verifier's ``harness.Score``): enough for best-of-N, majority vote or a
      verifier-weighted vote.
    """
