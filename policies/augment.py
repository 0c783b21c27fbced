"""Rejection-sampling fine-tuning data (RFT, a.k.a. STaR): sample N per training problem, keep what a verifier accepts.

The accepted samples become an SFT dataset (``prompt``/``completion`` chat rows, the ``jsonl`` data
source), and problems with both an accepted and a rejected sample give verifier-built preference
pairs (``chosen``/``rejected``) for DPO or reward models. Only the task's TRAIN split is sampled,
so held-out problems never leak into training data. Counts go beside the data.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from harness.console import console, quiet
from harness.engines import BACKENDS, EngineOptions, Renderer, Request, Sampling, load_engine
from harness.errors import HarnessError
from harness.pipeline import check_lengths, examples_of
from harness.plugins import Spec, registry
from harness.policy import Policy, resolve_policy
from harness.record import check_output, write_atomic
from harness.types import DEFAULT_TEMPERATURE, RunConfig
from policies.data import example_messages
from policies.manifest import write_json


@dataclass(frozen=True)
class AugmentConfig:
    policy: str
    task: str
    task_args: dict[str, str]
    n: int = 8
    rows: int = 500
    keep: int = 4  # distinct accepted completions kept per problem
    verifier: str | None = None  # default: the task's own grader
    threshold: float = 1.0  # a sample is accepted when its verifier score reaches this
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int = 0
    backend: str = "auto"
    batch_size: int = 32
    max_model_len: int = 4096

    def check(self) -> None:
        """Every number's range and every name, before anything loads; one line naming the option."""
        for flag, value in (("--n", self.n), ("--rows", self.rows), ("--keep", self.keep),
                            ("--max-tokens", self.max_tokens), ("--batch-size", self.batch_size),
                            ("--max-model-len", self.max_model_len)):
            if value < 1:
                raise HarnessError(f"{flag} must be at least 1, got {value}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise HarnessError(f"--temperature must be a finite number >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise HarnessError(f"--top-p must lie in (0, 1], got {self.top_p}")
        if not 0 < self.threshold <= 1:  # scores lie in [0, 1]: 0 would accept every sample
            raise HarnessError(f"--threshold must lie in (0, 1], got {self.threshold}")
        if not 0 <= self.seed < 2**32:
            raise HarnessError(f"--seed must lie in [0, 2**32), got {self.seed}")
        if self.backend not in BACKENDS:
            raise HarnessError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        for flag, name in (("--policy", self.policy), ("--task", self.task), ("--verifier", self.verifier)):
            if name is not None and not name.strip():
                raise HarnessError(f"{flag} {name!r} is empty; name one (or leave the option out for the default)")


def beside(output: Path, suffix: str) -> Path:
    """``rft.jsonl`` -> ``rft<suffix>``: the pairs, counts and log written next to the SFT rows."""
    return output.with_name(output.name.removesuffix(".jsonl") + suffix)


def absolute(path: Path) -> Path:
    """``~`` expanded where it names a user (an unknown ``~name`` stays a folder of that name, as in a shell), then
    absolute: what the checks and the writes both use."""
    with contextlib.suppress(RuntimeError):
        path = path.expanduser()
    return path.absolute()


def check_outputs(output: Path) -> list[Path]:
    """The files augment writes, each refused in one line if it is a directory, lies in a run record, or has a
    parent that is a file."""
    if output.suffix != ".jsonl" or output.name == ".jsonl":
        raise HarnessError(f"--output {output} must be a .jsonl file")
    output = absolute(output)
    paths = [output, beside(output, ".pairs.jsonl"), beside(output, ".counts.json"), beside(output, ".log")]
    for path in paths:
        check_output(path, "--output" if path == output else f"--output's companion {path.name}", kind="file")
    return paths


def already_written(paths: list[Path], stored: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """The counts of a finished augment of this very configuration (nothing to do), None to write; data another
    configuration (or anything else) wrote there is kept unless ``overwrite``."""
    output, pairs, counts, _ = paths
    existing = [p for p in (output, pairs, counts) if p.exists()]
    if not existing or overwrite:
        return None
    try:
        summary = json.loads(counts.read_text(encoding="utf-8"))
        same = isinstance(summary, dict) and summary.get("config") == stored and output.is_file() and pairs.is_file()
    except (OSError, ValueError, RecursionError):
        same = False
    if same:
        return summary
    raise HarnessError(f"{existing[0]} exists and was not written by this augment configuration; pass --overwrite to "
                       f"replace it, or choose another --output")


def draw(policy: Policy, examples: list[harness.Example], n: int, sampling: Sampling, options: EngineOptions,
         backend: str, log: Path) -> list[list[str]]:
    """``n`` sampled completions of every example's prompt from the policy's engine (the libraries' chatter in
    ``log``); a prompt too long for the context is a one-line error before the engine starts."""
    renderer = Renderer(policy)
    rendered = [renderer.render(ex)[1] for ex in examples]
    check_lengths(examples, rendered, sampling.max_tokens, policy, options.max_model_len)
    with quiet(log):
        engine = load_engine(backend, policy, renderer, options, seed=sampling.seed)
        try:
            samples = dict(engine.generate([Request(ids, n) for ids in rendered], sampling))
        finally:
            engine.close()
    return [[c.text for c in samples[i]] for i in range(len(examples))]


def select(examples: list[harness.Example], texts: list[list[str]], verifier: Any, keep: int,
           threshold: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """What the verifier accepts: up to ``keep`` distinct accepted completions per problem as SFT rows, a pair
    (the first accepted against the first rejected) per problem with both, and the counts."""
    sft, pairs = [], []
    counts = {"problems": len(examples), "samples": 0, "accepted": 0, "verifier_errors": 0, "problems_solved": 0}
    for example, drawn in zip(examples, texts, strict=True):
        scores = harness.verify(verifier, [(example, t) for t in drawn])
        counts["samples"] += len(drawn)
        counts["verifier_errors"] += sum(s.error is not None for s in scores)
        accepted = [t for t, s in zip(drawn, scores, strict=True) if s.error is None and s.value >= threshold]
        rejected = [t for t, s in zip(drawn, scores, strict=True) if s.error is None and s.value < threshold]
        counts["accepted"] += len(accepted)
        distinct = list(dict.fromkeys(accepted))[:keep]
        counts["problems_solved"] += bool(distinct)
        prompt = example_messages(example)
        for text in distinct:
            sft.append({"prompt": prompt, "completion": [{"role": "assistant", "content": text}], "id": example.id})
        if distinct and rejected:
            pairs.append({"prompt": prompt, "chosen": distinct[0], "rejected": rejected[0], "id": example.id})
    counts["rows"], counts["pairs"] = len(sft), len(pairs)
    return sft, pairs, counts


def augment(config: AugmentConfig, output: Path, overwrite: bool = False) -> dict[str, Any]:
    """Write ``output`` (SFT rows), ``<output>.pairs.jsonl`` and ``<output>.counts.json``; return the counts.

    Rerunning a finished augment reads its counts back; data another configuration wrote is kept unless
    ``overwrite``."""
    config.check()
    paths = check_outputs(output)
    output = paths[0]
    task_spec = Spec.parse("task", config.task, config.task_args)
    task = registry().build(task_spec)
    verifier_spec = config.verifier or task.verifier
    verifier = harness.get_verifier(verifier_spec)
    stored = json.loads(json.dumps({**vars(config), "verifier": verifier_spec}))
    done = already_written(paths, stored, overwrite)
    if done is not None:
        counts = done.get("counts") if isinstance(done.get("counts"), dict) else {}
        console.print(f"augment: {output} already holds this configuration's data ({counts.get('rows')} SFT rows, "
                      f"{counts.get('pairs')} pairs); nothing to do (--overwrite samples again)", highlight=False,
                      soft_wrap=True)
        return done
    components = {"task": registry().describe(task_spec),
                  "verifier": registry().describe(Spec.parse("verifier", verifier_spec))}
    # the task's TRAIN problems, listed as a run lists them (a failing task plugin is one line naming it), before
    # the policy resolves: that may convert or download a model
    examples = examples_of(task, RunConfig(task=config.task, task_args=config.task_args, split="train",
                                           limit=config.rows, seed=config.seed))
    policy = resolve_policy(config.policy)
    started = time.perf_counter()
    sampling = Sampling(temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens,
                        seed=config.seed, stop=tuple(getattr(task, "stop", ()) or ()))
    options = EngineOptions(batch_size=config.batch_size, max_model_len=config.max_model_len)
    texts = draw(policy, examples, config.n, sampling, options, config.backend, paths[3])
    sft, pairs, counts = select(examples, texts, verifier, config.keep, config.threshold)
    pairs_path, counts_path = paths[1], paths[2]
    counts_path.unlink(missing_ok=True)  # written last: never beside rows of another configuration
    write_atomic(output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sft))
    write_atomic(pairs_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pairs))
    summary = {"config": stored, "components": components, "counts": counts,
               "wall_seconds": round(time.perf_counter() - started, 1), "sft": str(output), "pairs": str(pairs_path)}
    write_json(counts_path, summary)
    console.print(f"augment: {counts['accepted']}/{counts['samples']} samples accepted by {verifier_spec}; "
                  f"{counts['problems_solved']}/{counts['problems']} problems solved; wrote {counts['rows']} SFT rows "
                  f"to {output} and {counts['pairs']} pairs to {pairs_path}", highlight=False, soft_wrap=True)
    return summary
