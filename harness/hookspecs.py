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
import, implements a hook that does not exist (a misspelt name), or returns an object that
breaks the contract is reported in one line and skipped; two plugins registering the same
name is an error naming both.

**Members.** Each hook below lists the members every object of its kind has, then the ones it
*may* define, each with the default the harness uses when it is absent. The harness reads nothing
else from your objects (``harness.types``: the Protocols ``Task``, ``Verifier``, ``Sampler`` and the
declared optional members ``TaskOptional``, ``VerifierOptional``, ``SamplerOptional``).

**Arguments.** Any registered object may be a factory: give it a
``configure(*args, **options)`` method returning the configured component. A factory carries
its kind's data members (``name``; a verifier's ``reference_free``, a task's ``verifier``, a
sampler's ``greedy`` and ``uses_scores``), so ``harness plugins`` can describe it, but needs none
of its methods: what ``configure`` returns is checked against the whole contract. Users name it
``NAME`` or ``NAME:ARG`` (``--verifier rm:path/to/model``; ``ARG`` is the first positional
argument, and may itself contain colons: ``winrate:rm:PATH``) plus ``KEY=VALUE`` options
(``--verifier-arg``, ``--grader-arg``, ``--task-arg``); ``harness.get_verifier("rm:PATH")``
does the same from Python. ``configure`` is called (with no arguments when none are given)
once per run, before any model loads: raise ``harness.HarnessError`` with a one-line message
for a bad argument. The run record keeps each component's spec, plugin, distribution and
version, so a run can be reproduced from its record alone.

**Metrics.** A verifier used as a grader (or a task) may declare ``metrics``: a list of
``harness.Metric`` (see ``harness.metrics``: ``accuracy()``, ``mean_score()``,
``side(key)``, ``micro(name, key, weight)``, or your own ``Metric(name, credit, weight,
reduce)``). The first is the run's headline number, and its ``credit`` is what scaling curves
count; each is reported with a 95% bootstrap interval over examples. Without a declaration a
run reports ``accuracy`` (value >= 1) and the mean of every side-score in ``Score.metrics``.

Hooks are grouped by when the harness calls them: the *component* hooks are called once, when
the plugin manager starts; the *command* hook once, when the ``harness`` command line starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

hookspec = pluggy.HookspecMarker("harness")


# -- Components: called once, when the plugin manager starts ---------------------------------


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

    A task may define:

    - ``stop: tuple[str, ...] = ()`` — strings that end a generation (a few-shot prompt's next
      "Q:", say); the stop string itself is not part of the completion;
    - ``metrics: list[harness.Metric] = []`` — the run's metrics when its grader declares none
      (see **Metrics** above);
    - ``configure(**options) -> task`` — keyword options (``--task-arg key=value``), returning a
      configured copy (see **Arguments** above).
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
      or a ``Score(value, answer=None, error=None, metrics={}, raw=None)`` carrying the
      extracted answer (which must not depend on the reference: samplers see it), any failure
      (a timeout, say) and named side-scores such as ``well_formed``. Answers and errors go
      into the samples log and the run summary counts them. A ``Score``'s value is checked
      where it is made: outside [0, 1], or NaN, it raises. A verifier whose own number is on
      another scale (a reward model's logit) returns ``Score.from_logit(reward)``: the
      logistic function of it as the value, the reward itself in ``raw``. A plain number
      outside [0, 1] is recorded as that plugin's error, never clipped. Completions are
      untrusted model output: never ``eval`` them.

    A verifier may define:

    - ``score_batch(pairs: list[tuple[Example, str]]) -> list[float | Score]`` (default: none,
      ``score`` per pair) — one result per pair, in order; the harness prefers it and passes
      pairs from many examples at once (a reward model scores them in a few forward passes);
    - ``extracts_answers: bool = True`` — False for a grader that never extracts an answer (a
      win-rate judge), so the run does not count every sample as an extraction failure;
    - ``metrics: list[harness.Metric] = []`` — as a grader, the run's metrics (see **Metrics**);
    - ``judge: str | None = None`` and ``judge_model: str | None = None`` — as a grader that
      consults a model (a win-rate judge), its spec and where its weights come from; the run
      records both and warns when the judge is the reward model the policy was trained against;
    - ``configure(*args, **options) -> verifier`` — see **Arguments** above.

    Every caller — a run, ``harness score``, a training reward — goes through
    ``harness.verify(verifier, pairs)``: a verifier that raises is reported as that plugin's
    failure (each pair gets ``Score(0, error=...)``, counted apart from wrong answers) and
    the run goes on. ``example.meta`` carries task facts (Countdown's ``numbers`` and
    ``target``).
    """


@hookspec
def register_samplers() -> list:
    """Return the samplers this plugin provides.

    A sampler is an object with:

    - ``name: str`` — what ``--sampler`` selects;
    - ``greedy: bool`` — True to decode at temperature 0 with a single sample (``--n``
      must then be 1);
    - ``uses_scores: bool`` — True when ``select`` reads ``candidate.score``, so the
      harness must run the run's verifier (``--verifier``, default the task's) on every sample;
    - ``select(candidates: Sequence[harness.Candidate]) -> int`` — the index of the
      chosen one among the N candidates of one example. A candidate has
      ``completion`` (``text``, ``tokens``, ``logprob``, ``finish_reason``,
      ``mean_logprob``), ``answer`` (the final answer the task's grader extracted,
      never whether it is right) and, when ``uses_scores``, ``score`` (the run's
      verifier's ``harness.Score``): enough for best-of-N, majority vote or a
      verifier-weighted vote.

    A sampler may define ``configure(*args, **options) -> sampler`` (see **Arguments** above).

    A sampler that raises, or returns something other than an index in range, fails on that
    example only: the example is recorded with the error and earns no credit, and the run
    says which plugin failed. A sampler the run did not ask for that fails while the harness
    draws scaling curves is skipped with a one-line warning.
    """


# -- Commands: called once, when the ``harness`` command line starts -----------------------


@hookspec
def register_commands(app: typer.Typer) -> None:
    """Add commands to the ``harness`` command line, as ``app.command()(function)``.

    The training package attaches ``harness train``, ``harness policies`` and ``harness augment``
    this way; the core imports nothing from a plugin. Import heavy or optional dependencies inside
    the command, not at module level, so ``harness --help`` stays fast and works without them; a
    command whose optional dependency is missing raises ``harness.HarnessError`` saying which extra
    to install. A plugin whose ``register_commands`` raises is reported in one line and its
    commands are missing; the rest of the command line works.
    """
