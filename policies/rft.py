"""Rejection-sampling fine-tuning (RFT, the study's synthetic augmentation): the base samples ``n`` completions of
each training problem through the harness's engine (as RLOO's rollouts do: the chat prompt, no stop strings), the
``reward`` verifier keeps up to ``keep`` distinct accepted ones per problem (``policies.augment.select``, what
``harness augment`` keeps), and SFT continues the base on them.

The accepted rows are written into the output directory before training starts, so a resumed run trains on the
same rows without sampling again. The manifest's ``wall_seconds`` is sampling and training together; its ``rft``
entry has the counts and the sampling seconds.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.engines import EngineOptions, Sampling
from harness.errors import HarnessError
from harness.record import write_atomic
from policies import common, sft
from policies.augment import draw, select
from policies.common import Method, Result, Run
from policies.config import at_least_one, not_blank, sampling_problem, setting
from policies.manifest import read_json, write_json
from policies.rewards import resolve_reward

ROWS = "rft.jsonl"  # the accepted completions, the SFT data
COUNTS = "rft.counts.json"  # written after ROWS: where it exists, ROWS is complete


@dataclass
class RFTTrainConfig(sft.SFTTrainConfig):
    """RFT: SFT's settings, what is sampled from the base, and the verifier that accepts a sample."""

    method: ClassVar[str] = "rft"

    reward: str | None = setting(None, "The verifier that accepts a sample: any installed verifier spec (countdown, "
                                       "sympy, rm:PATH, ...).")
    n: int = setting(8, "Completions sampled per training problem.")
    keep: int = setting(4, "Distinct accepted completions kept per problem.")
    threshold: float = setting(1.0, "A sample is accepted when its verifier score reaches this, in (0, 1].")
    temperature: float = setting(0.7, "Sampling temperature.")
    top_p: float = setting(1.0, "Nucleus sampling (1: none).")
    max_completion_length: int = setting(256, "Tokens generated per completion at most.")

    def check(self) -> None:
        super().check()
        not_blank(self, "reward")
        at_least_one(self, "n", "keep", "max_completion_length")
        if not self.reward:
            raise HarnessError("rft needs a verifier to accept samples: --reward VERIFIER (e.g. countdown, sympy)")
        if not 0 < self.threshold <= 1:
            raise HarnessError(f"setting threshold={self.threshold} must lie in (0, 1]")
        problem = sampling_problem(self.temperature, self.top_p, self.max_completion_length)
        if problem:
            raise HarnessError(f"setting {problem}")


def accepted_rows(config: RFTTrainConfig, run: Run) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The SFT rows and counts of this run, sampled once by the main process (an interrupted run's are read back,
    and under a multi-process launcher every process reads what the main one wrote)."""
    from accelerate import PartialState

    rows_path, counts_path = run.out / ROWS, run.out / COUNTS
    ranks = PartialState()
    if ranks.is_main_process and not counts_path.exists():
        started = time.perf_counter()
        sampling = Sampling(temperature=config.temperature, top_p=config.top_p,
                            max_tokens=config.max_completion_length, seed=config.seed)
        texts = draw(run.base, run.rows, config.n, sampling, EngineOptions(), "auto", run.out / "sampling.log")
        rows, _, counts = select(run.rows, texts, run.reward, config.keep, config.threshold)
        write_atomic(rows_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        write_json(counts_path, {**counts, "sampling_seconds": round(time.perf_counter() - started, 1)})
    ranks.wait_for_everyone()
    rows = [json.loads(line) for line in rows_path.read_text(encoding="utf-8").splitlines() if line]
    return rows, read_json(counts_path)


def train(config: RFTTrainConfig, run: Run) -> Result:
    rows, facts = accepted_rows(config, run)
    if not rows:
        raise HarnessError(f"rft: {config.reward} accepted none of the {facts['samples']} samples of "
                           f"{facts['problems']} problems; there is nothing to fine-tune on (a stronger base, more "
                           f"samples or a lower threshold)")
    sft_run = dataclasses.replace(run, rows=[{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    result = common.fit_and_save(sft.build_trainer(config, sft_run), config, sft_run)
    result.wall += facts["sampling_seconds"]
    result.facts["rft"] = facts
    return result


METHOD = Method(RFTTrainConfig, train, resolve_reward=resolve_reward)
