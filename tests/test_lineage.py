"""Data lineage and judge independence: the prompts each trained model saw, and a judge that shares them.

Trained models are faked as directories whose ``policy.json`` and ``lineage.json`` are written by the
training package's own writers (``policies.manifest.write_json``, ``harness.provenance.write_lineage``
of ``policies.lineage.lineage``); the policy ``l-dpo`` starts from ``l-sft``, which starts from a hub id.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_reward_model import MINILM
from tiny import tiny_bert

import harness
from harness import leaderboard
from harness.pipeline import rescore
from harness.policy import Policy, policies_dir, resolve_policy, reward_models_dir
from harness.provenance import LINEAGE, Ancestor, example_digest, judge_facts, read_lineage, write_lineage
from harness.record import Counts as RunCounts
from harness.record import Headline, JudgeFacts, PolicyFacts, RunSummary, read_record, read_summary, write_record
from harness.types import Completion, ExampleRecord, RunConfig, SampleRecord
from policies.data import Counts, Pair, sft_row
from policies.lineage import lineage, row_digest
from policies.manifest import write_json

HUB = "HuggingFaceTB/SmolLM2-135M-Instruct"
SFT_PROMPTS = [f"Write a poem about the number {i}." for i in range(5)]
DPO_PROMPTS = [f"Explain why {i} is odd or even." for i in range(4)]
EVAL_PROMPTS = [f"Name {i} rivers of Europe." for i in range(4)]
JUDGE_OWN = [f"Summarise chapter {i} of a novel." for i in range(3)]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def pairs(prompts: list[str]) -> list[Pair]:
    return [Pair(user(p), "A careful answer.", "No.") for p in prompts]


def weights(base: str) -> Policy:
    """A base as ``resolve_policy`` hands it over without loading anything: a named policy's adapter in its folder
    on a hub model, else a model from elsewhere."""
    folder = policies_dir() / base
    adapter = str(folder / "adapter") if (folder / "policy.json").is_file() else None
    return Policy(base, "/hub/smollm2", adapter)


def trained(folder: Path, name: str, method: str, base: str, sources: dict[str, list]) -> Path:
    """A trained model's directory as ``harness train`` leaves it: its files, lineage and manifest."""
    rows = [r for part in sources.values() for r in part]
    counts = [Counts(source, kept=len(part)) for source, part in sources.items()]
    seen = lineage(name, method, base, weights(base), rows, counts)
    folder.mkdir(parents=True, exist_ok=True)
    if method != "rm":
        (folder / "adapter").mkdir(exist_ok=True)
    write_lineage(folder, seen)
    write_json(folder / "policy.json", {"name": name, "method": method, "base": base,
                                        "adapter": None if method == "rm" else "adapter", "lineage": LINEAGE,
                                        "bases": [a.name for a in seen.bases]})
    return folder


@pytest.fixture(scope="module")
def policy() -> PolicyFacts:
    """``l-dpo``: DPO pairs on DPO_PROMPTS from ``l-sft``, SFT on SFT_PROMPTS (as two sources) from a hub model."""
    trained(policies_dir() / "l-sft", "l-sft", "sft", HUB,
            {"lima": [sft_row(user(p), "Sure.") for p in SFT_PROMPTS[:3]],
             "smoltalk": [sft_row(user(p), "Sure.") for p in SFT_PROMPTS[3:]]})
    out = trained(policies_dir() / "l-dpo", "l-dpo", "dpo", "l-sft", {"jsonl": pairs(DPO_PROMPTS)})
    return PolicyFacts("l-dpo", model="/hub/smollm2", adapter=str(out / "adapter"))


def examples(prompts: list[str]) -> list[harness.Example]:
    return [harness.Example(p, reference="A reference answer.", id=f"e{i}") for i, p in enumerate(prompts)]


def judge_dir(name: str, prompts: list[str]) -> Path:
    return trained(reward_models_dir() / name, name, "rm", "minilm", {"hh-helpful": pairs(prompts)})


# -- the canonical prompt and the lineage file ------------------------------------------------------------------

def test_each_row_kind_digests_its_prompt_as_an_evaluation_example_does():
    text = "Name three rivers of Europe."
    expected = example_digest(harness.Example(text))
    assert row_digest(sft_row(user(text), "The Danube.")) == expected
    assert row_digest(Pair([{"role": "system", "content": "Be brief."}, *user(text)], "Rhine.", "No.")) == expected
    assert row_digest(harness.Example("  name three  RIVERS of Europe.\n")) == expected  # spacing and case
    assert row_digest(sft_row(user("Name three lakes of Europe."), "Lake Geneva.")) != expected
    shot = harness.Example(text, shots=(("Name a sea.", "The Baltic."),))  # a worked example is part of the chat
    assert row_digest(shot) == row_digest(sft_row([*user("Name a sea."), {"role": "assistant", "content": "The "
                                                   "Baltic."}, *user(text)], "The Rhine.")) != expected


def test_the_lineage_keeps_every_source_and_the_chain_of_bases(policy):
    dpo = read_lineage(policies_dir() / "l-dpo")
    assert (dpo.name, dpo.method, [(s.source, s.rows) for s in dpo.sources]) == ("l-dpo", "dpo", [("jsonl", 4)])
    assert dpo.sources[0].prompts == sorted(row_digest(p) for p in pairs(DPO_PROMPTS))
    sft, hub = dpo.bases
    assert (sft.name, sft.trained, sft.method) == ("l-sft", True, "sft")
    assert [(s.source, s.rows, len(s.prompts)) for s in sft.sources] == [("lima", 3, 3), ("smoltalk", 2, 2)]
    assert hub == Ancestor(HUB, trained=False)
    manifest = json.loads((policies_dir() / "l-dpo" / "policy.json").read_text())
    assert manifest["bases"] == ["l-sft", HUB]


# -- independence --------------------------------------------------------------------------------------------------

def test_a_judge_that_saw_training_and_evaluation_prompts_is_dependent(policy):
    # 2 of the SFT ancestor's prompts, 1 of the DPO policy's, 2 evaluation prompts, and 3 of its own
    judge = judge_dir("l-judge-shared", [*SFT_PROMPTS[3:], DPO_PROMPTS[0], *EVAL_PROMPTS[:2], *JUDGE_OWN])
    facts = judge_facts("rm:l-judge-shared", str(judge), False, policy, examples(EVAL_PROMPTS))
    assert (facts.independent, facts.shared_training, facts.shared_evaluation) == (False, 3, 2)
    assert "the judge saw 3 training prompts of the policy or an ancestor (1 of l-dpo (dpo), 2 of l-sft (sft))" \
        in facts.why
    assert "the judge saw 2 of the 4 evaluation prompts" in facts.why


def test_a_judge_on_disjoint_prompts_is_independent(policy):
    judge = judge_dir("l-judge-disjoint", JUDGE_OWN)
    facts = judge_facts("rm:l-judge-disjoint", str(judge), False, policy, examples(EVAL_PROMPTS))
    assert (facts.independent, facts.shared_training, facts.shared_evaluation) == (True, 0, 0)
    assert facts.why == ("the judge's 3 training prompts include none of the 9 training prompts of the policy l-dpo "
                         "and its bases and none of the 4 evaluation prompts")


def test_a_judge_or_policy_without_lineage_is_unknown_and_the_policys_reward_is_dependent(policy, tmp_path):
    bare = tmp_path / "judge"
    bare.mkdir()
    write_json(bare / "policy.json", {"name": "old", "method": "rm"})  # trained before lineage was recorded
    facts = judge_facts(f"rm:{bare}", str(bare), False, policy, examples(EVAL_PROMPTS))
    assert facts.independent == "unknown" and f"the judge directory {bare} has no lineage.json" in facts.why
    assert judge_facts(f"rm:{bare}", str(bare), True, policy, []).independent is False  # its reward all the same
    assert judge_facts("rm:org/rm", "org/rm", False, policy, []).independent == "unknown"  # a hub judge
    (bare / LINEAGE).write_text("{broken")
    facts = judge_facts(f"rm:{bare}", str(bare), False, policy, [])
    assert facts.independent == "unknown" and "lineage" in facts.why and "\n" not in facts.why
    old_policy = tmp_path / "old-policy"
    (old_policy / "adapter").mkdir(parents=True)
    write_json(old_policy / "policy.json", {"name": "old-policy", "method": "sft"})
    judge = judge_dir("l-judge-disjoint", JUDGE_OWN)
    facts = judge_facts("rm:x", str(judge), False, PolicyFacts("old", adapter=str(old_policy / "adapter")), [])
    assert facts.independent == "unknown" and "the policy directory" in facts.why
    untrained = judge_facts("rm:x", str(judge), False, PolicyFacts("smollm2", model="/models/smollm2"), [])
    assert untrained.independent is True and "not trained here" in untrained.why


def test_a_base_trained_elsewhere_is_found_through_its_pointer_manifest(tmp_path):
    """``--output`` elsewhere: the name's manifest points at the real folder, whose lineage the child's chain reads."""
    away = trained(tmp_path / "away", "l-away", "sft", HUB, {"lima": [sft_row(user(p), "Sure.") for p in SFT_PROMPTS]})
    (away / "model").mkdir()
    (away / "model" / "config.json").write_text("{}")
    pointer = json.loads((away / "policy.json").read_text()) | {"model": str(away / "model"), "adapter": None,
                                                                 "output": str(away)}
    write_json(policies_dir() / "l-away" / "policy.json", pointer)
    rows = pairs(DPO_PROMPTS)
    seen = lineage("l-child", "dpo", "l-away", resolve_policy("l-away"), rows, [Counts("jsonl", kept=len(rows))])
    sft, hub = seen.bases
    assert (sft.name, sft.trained, sft.method, [s.rows for s in sft.sources]) == ("l-away", True, "sft", [5])
    assert hub == Ancestor(HUB, trained=False)


def test_a_base_trained_before_lineage_makes_the_childs_lineage_unknown(tmp_path):
    old = policies_dir() / "l-old"
    (old / "adapter").mkdir(parents=True)
    write_json(old / "policy.json", {"name": "l-old", "method": "sft", "adapter": "adapter"})
    child = trained(tmp_path / "child", "l-child", "dpo", "l-old", {"jsonl": pairs(DPO_PROMPTS)})
    assert read_lineage(child).bases == [Ancestor("l-old", trained=True, method="sft")]
    judge = judge_dir("l-judge-disjoint", JUDGE_OWN)
    facts = judge_facts("rm:x", str(judge), False, PolicyFacts("l-child", adapter=str(child / "adapter")), [])
    assert facts.independent == "unknown" and "the policy's base l-old was trained before lineage" in facts.why


def test_records_before_lineage_read_back(tmp_path):
    assert JudgeFacts.from_json({"spec": "rm:rm", "trained_against": True}) == JudgeFacts(
        "rm:rm", trained_against=True, independent=False, why="the policy was trained against this judge")
    assert JudgeFacts.from_json({"spec": "rm:rm", "model": "/m"}).independent is None
    with pytest.raises(ValueError, match="not true, false or 'unknown'"):
        JudgeFacts.from_json({"spec": "rm:rm", "independent": "maybe"})
    with pytest.raises(ValueError, match="not true, false or 'unknown'"):
        JudgeFacts.from_json({"spec": "rm:rm", "independent": 1})


# -- a judged run and the leaderboard ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def judged_run(policy, tmp_path_factory) -> Path:
    """A run of ``l-dpo`` on the four evaluation prompts, rescored by a (tiny, untrained) judge that shares prompts."""
    judge = tiny_bert(MINILM, reward_models_dir() / "l-judge-real", head=True, num_labels=1)
    trained(judge, "l-judge-real", "rm", "minilm",
            {"hh-helpful": pairs([*SFT_PROMPTS[:2], DPO_PROMPTS[1], *EVAL_PROMPTS[2:], *JUDGE_OWN])})
    root = tmp_path_factory.mktemp("judged")
    records = [ExampleRecord(e, e.prompt, [SampleRecord(Completion(f"Answer {i}.", 3, -1.0, "stop"))], selected=0,
                             credit=1.0) for i, e in enumerate(examples(EVAL_PROMPTS))]
    source = root / "source"
    write_record(source, records, RunSummary(
        run_id="source", config=RunConfig(task="alpaca", policy="l-dpo"), metric=Headline(1.0),
        counts=RunCounts(examples=len(records)), task="alpaca", sampler="greedy", policy=policy))
    return rescore(source, root / "runs", grader=f"winrate:rm:{judge}")


def test_a_judged_run_records_its_judges_independence(judged_run):
    judge = read_summary(judged_run).judge
    assert (judge.independent, judge.shared_training, judge.shared_evaluation) == (False, 3, 2)
    assert judge.spec.startswith("rm:") and Path(judge.model) == (reward_models_dir() / "l-judge-real").resolve()


def test_the_leaderboard_marks_a_dependent_judge_with_why(judged_run):
    text = leaderboard.render(judged_run.parent, "md")
    spec = read_summary(judged_run).judge.spec
    (row,) = [line for line in text.splitlines() if line.startswith("| l-dpo")]
    assert f"| {spec}† |" in row
    assert f"† {spec} judging l-dpo: the judge saw 3 training prompts of the policy or an ancestor" in text
    (data,) = json.loads(leaderboard.render(judged_run.parent, "json"))
    assert data["judge_independent"] is False and "2 of the 4 evaluation prompts" in data["judge_why"]


def test_the_leaderboard_leaves_an_independent_judge_unmarked(judged_run, tmp_path):
    summary = read_summary(judged_run)
    clean = dataclasses.replace(summary.judge, independent=True, why="none shared")
    records, _ = read_record(judged_run)
    write_record(tmp_path / "clean", records, dataclasses.replace(summary, run_id="clean", judge=clean))
    text = leaderboard.render(tmp_path, "md")
    assert f"| {summary.judge.spec} |" in text and "†" not in text
