"""Rejection-sampling fine-tuning data (RFT, a.k.a. STaR): sample N per training problem, keep what a verifier accepts.

The accepted samples become an SFT dataset (``prompt``/``completion`` chat rows, the ``jsonl`` data
source), and problems with both an accepted and a rejected sample give verifier-built preference
pairs (``chosen``/``rejected``) for DPO or reward models. Only the task's TRAIN split is sampled,
so held-out problems never leak into training data. Counts go beside the data.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from harness.console import console, quiet
from harness.engines import EngineOptions, Renderer, Request, Sampling, load_engine
from harness.errors import HarnessError
from harness.plugins import Spec, registry
from harness.policy import resolve_policy
from harness.record import write_atomic
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
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int = 0
    backend: str = "auto"
    batch_size: int = 32


def augment(config: AugmentConfig, output: Path) -> dict[str, Any]:
    """Write ``output`` (SFT rows), ``<output>.pairs.jsonl`` and ``<output>.counts.json``; return the counts."""
    if config.n < 1 or config.rows < 1 or config.keep < 1:
        raise HarnessError("--n, --rows and --keep must be at least 1")
    if output.suffix != ".jsonl":
        raise HarnessError(f"--output {output} must be a .jsonl file")
    task_spec = Spec.parse("task", config.task, config.task_args)
    task = registry().build(task_spec)
    verifier_spec = config.verifier or task.verifier
    verifier = harness.get_verifier(verifier_spec)
    components = {"task": registry().describe(task_spec),
                  "verifier": registry().describe(Spec.parse("verifier", verifier_spec))}
    policy = resolve_policy(config.policy)
    examples = list(task.examples(split="train", limit=config.rows, seed=config.seed))
    if not examples:
        raise HarnessError(f"task {config.task} has no training problems")
    started = time.perf_counter()
    renderer = Renderer(policy)
    requests = [Request(renderer.render(ex)[1], config.n) for ex in examples]
    sampling = Sampling(temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens,
                        seed=config.seed, stop=tuple(getattr(task, "stop", ()) or ()))
    log = output.with_name(output.name.removesuffix(".jsonl") + ".log")
    with quiet(log):
        engine = load_engine(config.backend, policy, renderer, EngineOptions(batch_size=config.batch_size),
                             seed=config.seed)
        try:
            samples = dict(engine.generate(requests, sampling))
        finally:
            engine.close()
    sft, pairs, counts = [], [], {"problems": len(examples), "samples": 0, "accepted": 0, "verifier_errors": 0,
                                  "problems_solved": 0, "rows": 0, "pairs": 0}
    for index, example in enumerate(examples):
        texts = [c.text for c in samples[index]]
        scores = harness.verify(verifier, [(example, t) for t in texts])
        counts["samples"] += len(texts)
        counts["verifier_errors"] += sum(s.error is not None for s in scores)
        accepted = [t for t, s in zip(texts, scores, strict=True) if s.error is None and s.value >= config.threshold]
        rejected = [t for t, s in zip(texts, scores, strict=True) if s.error is None and s.value < config.threshold]
        counts["accepted"] += len(accepted)
        distinct = list(dict.fromkeys(accepted))[:config.keep]
        counts["problems_solved"] += bool(distinct)
        prompt = example_messages(example)
        for text in distinct:
            sft.append({"prompt": prompt, "completion": [{"role": "assistant", "content": text}], "id": example.id})
        if distinct and rejected:
            pairs.append({"prompt": prompt, "chosen": distinct[0], "rejected": rejected[0], "id": example.id})
    counts["rows"], counts["pairs"] = len(sft), len(pairs)
    write_atomic(output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sft))
    pairs_path = output.with_name(output.name.removesuffix(".jsonl") + ".pairs.jsonl")
    write_atomic(pairs_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pairs))
    summary = {"config": {**vars(config), "verifier": verifier_spec}, "components": components, "counts": counts,
               "wall_seconds": round(time.perf_counter() - started, 1), "sft": str(output), "pairs": str(pairs_path)}
    write_json(output.with_name(output.name.removesuffix(".jsonl") + ".counts.json"), summary)
    console.print(f"augment: {counts['accepted']}/{counts['samples']} samples accepted by {verifier_spec}; "
                  f"{counts['problems_solved']}/{counts['problems']} problems solved; wrote {counts['rows']} SFT rows "
                  f"to {output} and {counts['pairs']} pairs to {pairs_path}", highlight=False)
    return summary
