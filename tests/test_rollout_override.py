"""``policies/rollout.py`` overrides private ``RLOOTrainer`` methods: they are still there with the signatures the
overrides take, and the harness's RLOO trainer really generates through the override."""

from __future__ import annotations

import inspect

import pytest

import harness
from harness.engines import Sampled
from harness.policy import resolve_policy
from policies import common, data, recipe, rloo, rollout

COUNTDOWN = 'data=[{source: task, task: countdown, args: {numbers: "3", shots: 0}, rows: 8}]'


@pytest.mark.slow
def test_trl_still_has_the_overridden_methods_with_the_signatures_the_overrides_take():
    from trl import RLOOTrainer

    assert rollout.override_mismatch() is None
    ours = rollout.engine_trainer_class()
    for name, parameters in rollout.OVERRIDDEN.items():
        theirs = inspect.signature(getattr(RLOOTrainer, name)).parameters
        assert tuple(theirs)[:len(parameters)] == parameters, name
        assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in theirs.values()), name
    assert tuple(inspect.signature(ours._generate_single_turn).parameters) == \
        rollout.OVERRIDDEN["_generate_single_turn"]
    # the generation settings the override reads from the trainer are set by RLOOTrainer.__init__
    init = inspect.getsource(RLOOTrainer.__init__)
    for attribute in ("self.temperature", "self.top_p", "self.max_completion_length", "self._metrics"):
        assert f"{attribute} =" in init, attribute
    # the gap is read from the first scoring after generation, which must be the policy's own, and the loss must
    # read the advantages the override weights
    scoring = inspect.getsource(RLOOTrainer._generate_and_score_completions)
    policy = scoring.index("old_per_token_logps, _, _ = self._get_per_token_logps_and_entropies(")
    assert scoring.index("self._generate(prompts)") < policy < scoring.index("ref_per_token_logps, _, _ =")
    assert '"advantages": advantages' in scoring
    assert 'advantages = inputs["advantages"]' in inspect.getsource(RLOOTrainer._compute_loss)


def test_a_changed_signature_is_a_one_line_error_before_training(monkeypatch):
    from trl import RLOOTrainer

    def moved(self, prompt_ids, images):
        return []

    monkeypatch.setattr(RLOOTrainer, "_generate_single_turn", moved)
    with pytest.raises(harness.HarnessError, match=r"rollout=engine: .*takes \(self, prompt_ids, images\).*; use "
                                                   r"rollout=trl"):
        rollout.engine_trainer_class()


class FakeRollout:
    """Stands in for the vLLM engine: records what the trainer asks and answers one fixed completion, each token
    sampled with probability 1 (log-probability 0)."""

    made: list[FakeRollout] = []

    def __init__(self, base_model, seed, max_model_len, dtype):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base_model)
        self.synced, self.asked, self.closed = [], [], False
        self.answer = [*tokenizer("<answer> 1 + 2 </answer>", add_special_tokens=False).input_ids,
                       tokenizer.eos_token_id]
        FakeRollout.made.append(self)

    def sync(self, model, step):
        assert model.training  # the trainer's own model, as it trains
        self.synced.append(step)

    def sample(self, prompt_ids, sampling):
        self.asked.append((prompt_ids, sampling))
        return [Sampled(tuple(self.answer), (0.0,) * len(self.answer), "stop") for _ in prompt_ids]

    def close(self):
        self.closed = True


@pytest.mark.training
def test_the_harness_rloo_trainer_generates_through_the_override(tiny_llama, tmp_path, monkeypatch):
    monkeypatch.setattr(rollout, "EngineRollout", FakeRollout)
    FakeRollout.made.clear()
    config = recipe.load("quick", "rloo", base=str(tiny_llama), reward="countdown", overrides=[
        "steps=2", "logging_steps=1", "save_steps=10", "rollout=engine", "max_completion_length=16",
        "prompts_per_step=2", "k=3", "grad_accum=2", "dtype=float32", COUNTDOWN])
    rows, _ = data.load(config.data, "prompt", seed=config.seed)
    run = common.Run(resolve_policy(str(tiny_llama)), rows, common.Hardware("cpu", "float32"), tmp_path, None, 0.0,
                     harness.get_verifier("countdown"))
    trainer, tokenizer, wall = rloo.build_trainer(config, run, "engine")
    (fake,) = FakeRollout.made
    assert type(trainer).__name__ == "EngineRLOOTrainer" and trainer.rollout is fake
    common.fit(trainer, config, run)
    assert fake.synced == [0, 1]  # the weights were served afresh at each step
    assert [len(ids) for ids, _ in fake.asked] == [6, 6]  # 2 prompts x 3 samples, in one generation per step
    for step, (ids, sampling) in enumerate(fake.asked):
        assert ids[0] == ids[1] == ids[2] and ids[3] == ids[4] == ids[5]  # TRL repeats each prompt k times
        assert (sampling.temperature, sampling.top_p, sampling.max_tokens, sampling.seed) == (
            config.temperature, config.top_p, 16, config.seed + step)
    logged = [h for h in trainer.state.log_history if "completions/mean_length" in h]
    assert logged and all(h["completions/mean_length"] == len(fake.answer) for h in logged)
    # the engine said every token had probability 1: the gap is the trainer's own surprise at them, at least 0
    assert all(0 < h["sampling/sampling_logp_difference/mean"] <= h["sampling/sampling_logp_difference/max"]
               for h in logged)
    rewards = [h["rewards/verifier:countdown/mean"] for h in logged]
    expected = [harness.verify(run.reward, [(ex, "<answer> 1 + 2 </answer>")])[0].value for ex in rows]
    assert all(min(expected) - 1e-6 <= r <= max(expected) + 1e-6 for r in rewards)  # of the fake's completion
