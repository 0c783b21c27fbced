"""The dry run's estimates. Runs: tokens per sample from records of the same sampler before the same weights, and
a run whose samples another cell generates priced as grading only. Training: a reward model priced per step,
rescaled to its batch and window, from its own backbone's manifests where there are any, else from the measured
MiniLM step, for any recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.estimate import DEFAULT_TRAIN_TOK_S, RM_STEP, Rates
from harness.record import Counts, Headline, PolicyFacts, RunSummary, Timings, Tokens
from harness.types import RunConfig
from policies.rm import RMTrainConfig


def _rm(recipe: str = "quick-instruct:judge", **values) -> dict:
    """The resolved configuration a study hands the estimate, as ``harness train rm`` would store it."""
    return RMTrainConfig(recipe=recipe, **{"base": "minilm", "finetune": "full", **values}).to_json()


def _manifest(home: Path, name: str, steps: int, wall: float, tokens: int, **config) -> None:
    folder = home / "reward_models" / name
    folder.mkdir(parents=True)
    stored = _rm(recipe="elsewhere", **config)
    manifest = {"name": name, "method": "rm", "recipe": "elsewhere", "steps": steps, "wall_seconds": wall,
                "tokens": tokens, "config": stored}
    (folder / "policy.json").write_text(json.dumps(manifest))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty $HARNESS_HOME: no manifests but the ones a test writes."""
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_minilm_reward_model_of_any_recipe_costs_the_measured_step_at_its_shape(home, tmp_path):
    per_step, tokens, shape = RM_STEP
    assert (shape["batch_size"], shape["grad_accum"], shape["max_length"]) == (16, 1, 384)
    rates = Rates(tmp_path / "runs")
    same_shape = rates.train(_rm(steps=150, batch_size=16, max_length=384))
    assert same_shape.basis == "default"
    assert same_shape.seconds == pytest.approx(150 * per_step) and same_shape.tokens == pytest.approx(150 * tokens)
    # twice the pairs per step (8, 4 accumulated), a 4/3 longer window: 8/3 the time per step
    other = rates.train(_rm(recipe="mine", steps=60, batch_size=8, grad_accum=4, max_length=512))
    assert other.seconds == pytest.approx(60 * per_step * (32 * 512) / (16 * 384))
    assert other.tokens == pytest.approx(60 * tokens * 2)  # twice the pairs; no more than they have
    short = rates.train(_rm(steps=10, batch_size=16, max_length=128))  # pairs longer than the window: cut to it
    assert short.tokens == pytest.approx(10 * 16 * 2 * 128)
    assert short.seconds == pytest.approx(10 * per_step / 3)


def test_a_reward_model_manifest_of_the_same_backbone_prices_another_shape(home, tmp_path):
    # 100 steps of 8 pairs in a 256-token window took 1,200 s and 400,000 tokens: 12 s and 500 tokens a pair-step
    _manifest(home, "measured", 100, 1200.0, 400_000, batch_size=8, max_length=256)
    _manifest(home, "other-backbone", 10, 99_999.0, 1, base="smollm2", batch_size=8, max_length=256)
    _manifest(home, "other-finetune", 10, 99_999.0, 1, finetune="lora", batch_size=8, max_length=256)
    estimate = Rates(tmp_path / "runs").train(_rm(steps=60, batch_size=16, max_length=384))
    assert estimate.basis == "measured"
    assert estimate.seconds / 60 == pytest.approx(36.0)  # 60 steps x 12 s x (16 x 384) / (8 x 256) = 2,160 s
    assert estimate.tokens == pytest.approx(60 * 16 * 500)  # 500 tokens a pair, within 2 x 384


def test_several_manifests_weigh_by_their_steps(home, tmp_path):
    _manifest(home, "a", 30, 300.0, 30 * 4000, batch_size=16, max_length=384)  # 10 s a step
    _manifest(home, "b", 10, 300.0, 10 * 2000, batch_size=8, max_length=384)  # 30 s a step at half the pairs
    estimate = Rates(tmp_path / "runs").train(_rm(steps=4, batch_size=16, max_length=384))
    assert estimate.seconds == pytest.approx(4 * (30 * 10 + 10 * 60) / 40)
    assert estimate.tokens == pytest.approx(4 * (30 * 4000 + 10 * 4000) / 40)


def test_another_backbone_without_a_manifest_keeps_the_bound_from_its_configuration(home, tmp_path):
    estimate = Rates(tmp_path / "runs").train(_rm(base="smollm2", finetune="lora", steps=10, batch_size=4,
                                                  max_length=512))
    assert estimate.tokens == 10 * 4 * 512 * 2 and estimate.basis == "default"
    assert estimate.seconds == pytest.approx(estimate.tokens / DEFAULT_TRAIN_TOK_S)


# -- runs ---------------------------------------------------------------------------------------------------


def _record(fingerprint: str, sampler: str, n: int, samples: int, per_sample: int, verify_s: float = 0.0,
            grader: str | None = None) -> RunSummary:
    config = RunConfig(policy=fingerprint, task="countdown", sampler=sampler, n=n, grader=grader)
    return RunSummary(run_id=f"{fingerprint}-{sampler}", config=config, metric=Headline(0.5), task="countdown",
                      sampler=sampler, counts=Counts(examples=samples // n, samples=samples),
                      tokens=Tokens(samples * per_sample, per_sample * n, per_sample),
                      timings=Timings(verification_s=verify_s),
                      policy=PolicyFacts(fingerprint, fingerprint=fingerprint))


def test_tokens_per_sample_come_from_the_same_sampler_before_the_same_weights(tmp_path):
    """A policy's greedy answers (40 tokens) do not price its sampled ones: another policy's sampled answers
    (200 tokens) do; its own greedy record prices its greedy run, and any greedy record a new policy's."""
    rates = Rates(tmp_path / "none")
    rates.summaries = [_record("p", "greedy", 1, 100, 40), _record("q", "greedy", 1, 100, 60),
                       _record("q", "bon", 16, 1600, 200)]

    def tokens(fingerprint: str, sampler: str, n: int) -> float:
        return rates.run(RunConfig(task="countdown", sampler=sampler, n=n), 10, fingerprint, None).tokens

    assert tokens("p", "bon", 16) == 10 * 16 * 200
    assert tokens("p", "greedy", 1) == 10 * 40
    assert tokens("new", "greedy", 1) == 10 * 50  # both greedy records: 10,000 tokens over 200 samples
    assert tokens("p", "beam", 4) == 10 * 4 * 40  # no record of that sampler: the same weights'


def test_a_run_served_from_the_cache_costs_its_grading_alone(tmp_path):
    rates = Rates(tmp_path / "none")
    rates.summaries = [_record("p", "greedy", 1, 100, 40, verify_s=5.0, grader="judge")]
    config = RunConfig(task="countdown", grader="judge")
    cached = rates.run(config, 10, "p", None, cached=True)
    assert (cached.tokens, cached.seconds, cached.basis) == (0.0, 0.5, "measured") and "cache" in cached.note
    assert rates.run(config, 10, "p", None).seconds > 0.5 + 10 * 40 / 1000  # an engine start and generation
