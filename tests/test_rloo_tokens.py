"""RLOO trains on the tokens the engine sampled: the trainer receives the engine's ids, the gap between the engine's
and the trainer's log-probabilities of them is measured each step, and the truncated importance weights cap it."""

from __future__ import annotations

import math
import os

import pytest
import torch

import harness
from harness.engines import Sampled
from harness.policy import resolve_policy
from policies import common, data, recipe, rloo, rollout

COUNTDOWN = 'data=[{source: task, task: countdown, args: {numbers: "3", shots: 0}, rows: 8}]'

TRAINER = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.1, -0.2]])
ENGINE = torch.tensor([[-1.5, -2.0, -1.0], [-0.5, -9.0, -9.0]])  # row 2 ends after one token: its padding differs
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


def test_the_gap_is_the_mean_and_largest_absolute_difference_over_sampled_tokens_only():
    mean, largest = rollout.logprob_gap(TRAINER, ENGINE, MASK)
    assert mean == pytest.approx((0.5 + 0.0 + 2.0 + 0.0) / 4) and largest == pytest.approx(2.0)
    assert rollout.logprob_gap(TRAINER, ENGINE, torch.zeros_like(MASK)) == (0.0, 0.0)


def test_truncated_weights_are_each_sequences_ratio_capped_without_overflow():
    ratios = rollout.log_ratios(TRAINER, ENGINE, MASK)
    assert ratios.tolist() == pytest.approx([0.5 + 0.0 - 2.0, 0.0])
    weights = rollout.truncated_weights(torch.tensor([-1.5, 0.0, math.log(1.5), 5.0, 1e4]), cap=2.0)
    assert weights.tolist() == pytest.approx([math.exp(-1.5), 1.0, 1.5, 2.0, 2.0])


def test_the_engine_logprobs_are_padded_to_the_trainers_shape():
    samples = [Sampled((5, 6), (-0.25, -0.5), "stop"), Sampled((7,), (-1.0,), "stop")]
    padded = rollout.pad_logprobs(samples, torch.zeros(2, 3))
    assert padded.tolist() == [[-0.25, -0.5, 0.0], [-1.0, 0.0, 0.0]]


def test_a_sample_longer_than_the_trainer_scored_is_cut_to_its_width():
    samples = [Sampled((5, 6, 7, 8), (-0.25, -0.5, -0.75, -1.0), "length"), Sampled((9,), (-2.0,), "stop")]
    padded = rollout.pad_logprobs(samples, torch.zeros(2, 3))
    assert padded.tolist() == [[-0.25, -0.5, -0.75], [-2.0, 0.0, 0.0]]


@pytest.mark.parametrize("cap", [0.5, -1.0])
def test_an_importance_cap_below_one_is_a_one_line_error(cap):
    with pytest.raises(harness.HarnessError, match=rf"importance_cap={cap} must be 0 \(no correction\) or at least 1"):
        recipe.load("quick", "rloo", base="smollm2", reward="countdown", overrides=[f"importance_cap={cap}"])
    assert recipe.load("quick", "rloo", base="smollm2", reward="countdown",
                       overrides=["importance_cap=2"]).importance_cap == 2


@pytest.mark.training
@pytest.mark.vllm
@pytest.mark.skipif(os.environ.get("HARNESS_SKIP_VLLM") == "1", reason="HARNESS_SKIP_VLLM=1")
def test_the_trainer_gets_the_engines_sampled_ids_and_logs_their_logprob_gap(tiny_llama, tmp_path, monkeypatch):
    """A random tiny model samples tokens whose decoded text tokenizes back to other ids; the trainer must still see
    the sampled ids. Engine and trainer run the same float32 weights at temperature 0.5, so their log-probabilities
    of those tokens agree to rounding: off by a token, or the engine's raw (untempered) distribution, they do not."""
    drawn: list[list[list[int]]] = []
    received: list[list[list[int]]] = []
    sample = rollout.EngineRollout.sample

    def recorded_sample(self, prompt_ids, sampling):
        samples = sample(self, prompt_ids, sampling)
        drawn.append([list(s.token_ids) for s in samples])
        return samples

    monkeypatch.setattr(rollout.EngineRollout, "sample", recorded_sample)
    config = recipe.load("quick", "rloo", base=str(tiny_llama), reward="countdown", overrides=[
        "steps=1", "logging_steps=1", "save_steps=10", "rollout=engine", "max_completion_length=12",
        "prompts_per_step=2", "k=3", "grad_accum=2", "dtype=float32", "temperature=0.5", "importance_cap=2",
        COUNTDOWN])
    rows, _ = data.load(config.data, "prompt", seed=config.seed)
    run = common.Run(resolve_policy(str(tiny_llama)), rows, common.Hardware("cpu", "float32"), tmp_path, None, 0.0,
                     harness.get_verifier("countdown"))
    trainer, tokenizer, _ = rloo.build_trainer(config, run, "engine")
    calculate = trainer._calculate_rewards

    def recorded_rewards(inputs, prompts, completions, completion_ids_list):
        received.append([list(ids) for ids in completion_ids_list])
        return calculate(inputs, prompts, completions, completion_ids_list)

    trainer._calculate_rewards = recorded_rewards
    try:
        common.fit(trainer, config, run)
    finally:
        trainer.rollout.close()
    assert len(drawn) == 1 and received == drawn and len(drawn[0]) == 6
    retokenized = [tokenizer(tokenizer.decode(ids), add_special_tokens=False).input_ids for ids in drawn[0]]
    assert retokenized != drawn[0]  # the case the sampled ids exist for: text would have trained other tokens
    (logged,) = [h for h in trainer.state.log_history if "sampling/sampling_logp_difference/mean" in h]
    mean, largest = logged["sampling/sampling_logp_difference/mean"], logged["sampling/sampling_logp_difference/max"]
    assert 0 <= mean <= largest < 1e-3
    assert logged["sampling/importance_truncated"] == 0.0
    assert -1e-2 < logged["sampling/importance_log_ratio/min"] <= logged["sampling/importance_log_ratio/max"] < 1e-2
