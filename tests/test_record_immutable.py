"""Records are immutable and a cached sample is served only for what made it (fast tier: the fake engine).

Every field of the cache key (``harness.pipeline.sample_identity``) has a case below that changes that one field
and checks the run generates afresh under a new run id; a key that drops any field fails its case, and a field
added to the key without a case fails ``test_every_field_of_the_key_has_a_case``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from fakes import FakeEngine
from test_pipeline import registered, run, tokenizer  # noqa: F401  (tokenizer: the fixture)
from typer.testing import CliRunner

import harness
from harness import cli, engines, pipeline
from harness.engines import EngineOptions, Sampling
from harness.errors import HarnessError
from harness.pipeline import RunConfig, execute, sample_identity
from harness.policy import Policy
from harness.record import read_record, read_summary, write_record

runner = CliRunner()
ANSWER = lambda p, j: (f"<answer>{j} + 1</answer>", -1.0 - j)  # noqa: E731


class Fixed:
    """Countdown's first problems whatever the seed, with stop strings a test may change between two runs."""

    name = "fixed"
    verifier = "countdown"

    def __init__(self) -> None:
        self.stop: list[str] = []
        self.problems = list(harness.get_task("countdown").examples(limit=2))

    def examples(self, split="test", limit=None, seed=0):
        return iter(self.problems[:limit])


@pytest.fixture
def fixed():
    with registered("task", Fixed()) as task:
        yield task


@pytest.fixture
def no_vllm_needed(monkeypatch):
    """``vllm`` resolves on any machine, on CPU, without importing vLLM (the fake engine generates)."""
    monkeypatch.setattr(engines, "vllm_unavailable", lambda: None)
    monkeypatch.setattr(engines, "_vllm_on_cpu", lambda: True)
    monkeypatch.setattr(engines, "_cuda", lambda: False)


def once(out: Path, tiny_llama, tok, task: Fixed, options: EngineOptions, **fields):
    """One run of the fixed task on the fake engine: (its run id, samples the engine generated, the prompts)."""
    config = RunConfig(policy=str(tiny_llama), task="fixed", limit=2, **fields)
    engine = FakeEngine(tok, ANSWER, [e.prompt for e in task.problems])
    records, summary = read_record(execute(config, out, options, engine=engine))
    return summary.run_id, engine.generated, [r.rendered_prompt for r in records]


def override(field: str, value):
    """Change one field of the engine's resolved numerics, whatever options produced them."""
    real = pipeline.numerics
    return lambda *args: {**real(*args), field: value}


# Each case: (config fields, engine options) of the first run, then of the second, and an override of one engine
# field for the second run (the fields no option can change alone on one machine, such as the LoRA serving mode).
BON = {"sampler": "bon", "n": 2}
CASES = {
    "temperature": ((BON | {"temperature": 0.5}, {}), (BON | {"temperature": 0.9}, {}), None),
    "top_p": ((BON, {}), (BON | {"top_p": 0.5}, {}), None),
    "max_tokens": (({}, {}), ({"max_tokens": 64}, {}), None),
    "seed": ((BON, {}), (BON | {"seed": 1}, {}), None),
    "stop": (({}, {}), ({}, {}), "stop"),
    "backend": (({"backend": "hf"}, {"dtype": "float32"}), ({"backend": "vllm"}, {"dtype": "float32"}), None),
    "device": (({}, {}), ({}, {}), ("device", "cuda")),
    "dtype": (({}, {"dtype": "float32"}), ({}, {"dtype": "bfloat16"}), None),
    "compile": (({"backend": "vllm"}, {"compile": False}), ({"backend": "vllm"}, {"compile": True}), None),
    "lora": (({}, {}), ({}, {}), ("lora", "per-request")),
    "batch_invariant": (({"backend": "vllm"}, {}), ({"backend": "vllm"}, {"batch_invariant": True}), None),
    "tensor_parallel_size": (({"backend": "vllm"}, {}), ({"backend": "vllm"}, {"tensor_parallel_size": 2}), None),
}


def test_every_field_of_the_key_has_a_case():
    policy = Policy("p", "/nowhere")
    key = sample_identity(Sampling(), engines.numerics("hf", EngineOptions(), policy))
    assert set(key) == set(CASES)


@pytest.mark.parametrize("field", sorted(CASES))
def test_changing_one_field_of_the_key_generates_afresh(tmp_path, tiny_llama, tokenizer, fixed,  # noqa: F811
                                                        no_vllm_needed, monkeypatch, field):
    (first, first_options), (second, second_options), change = CASES[field]
    run_id, generated, prompts = once(tmp_path, tiny_llama, tokenizer, fixed, EngineOptions(**first_options),
                                      **first)
    assert generated == 2 * first.get("n", 1)
    if change == "stop":
        fixed.stop = ["</answer>"]
    elif change:
        monkeypatch.setattr(pipeline, "numerics", override(*change))
    again, generated, same = once(tmp_path, tiny_llama, tokenizer, fixed, EngineOptions(**second_options), **second)
    assert same == prompts, "the case changed the prompts, not only its field"
    assert generated == 2 * second.get("n", 1), f"samples made under another {field} were served from the cache"
    assert again != run_id
    key = read_summary(tmp_path / again).numerics
    if change and change != "stop":
        assert key[change[0]] == change[1], "the record keeps the numerics that keyed its samples"


def test_the_rendered_prompt_keys_its_samples(tmp_path, tiny_llama, tokenizer, fixed):  # noqa: F811
    """Besides the identity's fields the key holds the weights (test_pipeline: a retrained policy), the sample's index
    (test_pipeline: raising --n) and the rendered prompt: a system prompt or no chat template is another prompt."""
    seen = []
    for fields in ({}, {"system_prompt": "Be terse."}, {"chat_template": False}):
        run_id, generated, prompts = once(tmp_path, tiny_llama, tokenizer, fixed, EngineOptions(), **fields)
        assert generated == 2 and prompts not in [p for _, p in seen] and run_id not in [r for r, _ in seen]
        seen.append((run_id, prompts))


def test_the_same_key_reuses_the_cache_and_auto_resolves_before_the_look_up(tmp_path, tiny_llama, tokenizer, fixed,  # noqa: F811
                                                                            monkeypatch):
    options = EngineOptions(dtype="float32")
    _, generated, _ = once(tmp_path, tiny_llama, tokenizer, fixed, options, backend="hf")
    assert generated == 2
    monkeypatch.setattr(engines, "vllm_unavailable", lambda: "vLLM is not installed (test)")
    run_id, generated, _ = once(tmp_path, tiny_llama, tokenizer, fixed, options, backend="auto")
    assert generated == 0, "auto without vLLM is hf: the same samples"
    assert read_summary(tmp_path / run_id).numerics["backend"] == "hf"
    monkeypatch.setattr(engines, "vllm_unavailable", lambda: None)
    monkeypatch.setattr(engines, "_vllm_on_cpu", lambda: True)
    run_id, generated, _ = once(tmp_path, tiny_llama, tokenizer, fixed, options, backend="auto")
    assert generated == 2, "auto with vLLM is vllm: never the hf samples"
    assert read_summary(tmp_path / run_id).numerics["backend"] == "vllm"


def test_each_engine_field_resolves_as_its_engine_will(monkeypatch):
    base, adapted = Policy("p", "/nowhere"), Policy("p", "/nowhere", "/adapter")
    monkeypatch.setattr(engines, "_vllm_on_cpu", lambda: True)
    monkeypatch.setattr(engines, "cpu_dtype", lambda requested: "bfloat16" if requested == "auto" else requested)
    cpu = engines.numerics("vllm", EngineOptions(), adapted)
    assert cpu == {"backend": "vllm", "device": "cpu", "dtype": "bfloat16", "compile": False, "lora": "merged",
                   "batch_invariant": False, "tensor_parallel_size": 1}
    assert engines.numerics("vllm", EngineOptions(compile=True, dtype="float32"), base)["compile"] is True
    assert engines.numerics("vllm", EngineOptions(dtype="float32"), base)["lora"] is None
    monkeypatch.setattr(engines, "_vllm_on_cpu", lambda: False)
    monkeypatch.setattr(engines, "native_bf16", lambda device: True)
    gpu = engines.numerics("vllm", EngineOptions(), adapted)
    assert (gpu["device"], gpu["dtype"], gpu["compile"], gpu["lora"]) == ("cuda", "bfloat16", True, "per-request")
    monkeypatch.setattr(engines, "_cuda", lambda: False)
    hf = engines.numerics("hf", EngineOptions(compile=True, batch_invariant=True, tensor_parallel_size=2), adapted)
    assert hf == {"backend": "hf", "device": "cpu", "dtype": "float32", "compile": False, "lora": "peft",
                  "batch_invariant": False, "tensor_parallel_size": 1}  # what transformers does with them
    monkeypatch.setattr(engines, "vllm_unavailable", lambda: "vLLM is not installed (test)")
    assert engines.resolve_backend("auto") == "hf"
    with pytest.raises(HarnessError, match="--backend vllm: vLLM is not installed"):
        engines.resolve_backend("vllm")
    with pytest.raises(HarnessError, match="unknown backend 'foo'"):
        engines.resolve_backend("foo")


def test_vllm_auto_dtype_on_a_gpu_follows_vllms_rule(tmp_path, monkeypatch):
    for declared, native, effective in (("float32", True, "bfloat16"), ("float32", False, "float16"),
                                        ("bfloat16", True, "bfloat16"), ("bfloat16", False, "float16"),
                                        ("float16", True, "float16"), (None, True, "bfloat16")):
        (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": declared} if declared else {}))
        monkeypatch.setattr(engines, "native_bf16", lambda device, native=native: native)
        assert engines.vllm_gpu_dtype("auto", str(tmp_path)) == effective, (declared, native)
    assert engines.vllm_gpu_dtype("float32", str(tmp_path)) == "float32"


def test_an_engine_that_runs_other_numerics_than_its_key_generates_nothing(tmp_path, tiny_llama, tokenizer,  # noqa: F811
                                                                          fixed):
    class Mismatched(FakeEngine):
        def describe(self):
            return {"name": "hf", "device": "cpu", "dtype": "bfloat16", "batch_invariant": False, "lora": None}

    engine = Mismatched(tokenizer, ANSWER, [e.prompt for e in fixed.problems])
    config = RunConfig(policy=str(tiny_llama), task="fixed", limit=2, backend="hf")
    with pytest.raises(HarnessError, match="runs with dtype 'bfloat16' where this run's samples are keyed by "
                                           "'float32'"):
        execute(config, tmp_path, EngineOptions(dtype="float32"), engine=engine)
    assert engine.generated == 0 and not list(tmp_path.glob("*/summary.json"))


# -- a finished record is never rewritten ---------------------------------------------------------------------


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "cache" not in p.parts}


def test_rerunning_a_finished_command_reads_its_record_back(tmp_path, tiny_llama, tokenizer):  # noqa: F811
    _, summary, _ = run(tmp_path, tiny_llama, tokenizer, ANSWER, limit=2)
    before = digests(tmp_path)
    result = runner.invoke(cli.app, ["run", "--policy", str(tiny_llama), "--limit", "2", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"record: {tmp_path / summary.run_id} (finished before: read back, not rewritten)" in result.stderr
    assert "grading" not in result.stderr and "warning" not in result.stderr, "no work done, nothing raced"
    assert result.stdout.startswith(f"{summary.run_id}: accuracy ")
    assert digests(tmp_path) == before


def test_a_record_is_written_once_even_by_two_writers(tmp_path, tiny_llama, tokenizer):  # noqa: F811
    _, summary, _ = run(tmp_path, tiny_llama, tokenizer, ANSWER, limit=2)
    records, _ = read_record(tmp_path / summary.run_id)
    before = digests(tmp_path)
    later = dataclasses.replace(summary, created="2099-01-01T00:00:00+00:00")
    assert write_record(tmp_path / summary.run_id, records[:1], later) is False
    assert digests(tmp_path) == before


def test_an_unreadable_record_in_the_way_is_left_as_it_is(tmp_path, tiny_llama, tokenizer):  # noqa: F811
    _, summary, _ = run(tmp_path, tiny_llama, tokenizer, ANSWER, limit=2)
    (tmp_path / summary.run_id / "summary.json").write_text("{torn")
    before = digests(tmp_path)
    with pytest.raises(HarnessError, match="never overwritten: move it aside") as info:
        run(tmp_path, tiny_llama, tokenizer, ANSWER, limit=2)
    assert "\n" not in str(info.value) and digests(tmp_path) == before


def test_score_repeated_reads_its_record_back(tmp_path):
    source = next(p for p in sorted((Path(__file__).parent / "fixtures" / "records-v2").iterdir()))
    out = tmp_path / "rescored"
    first = runner.invoke(cli.app, ["score", str(source), "-o", str(out)])
    assert first.exit_code == 0, first.output
    before = digests(out)
    again = runner.invoke(cli.app, ["score", str(source), "-o", str(out)])
    assert again.exit_code == 0, again.output
    assert "finished before: read back, not rewritten" in again.stderr and "grading" not in again.stderr
    assert digests(out) == before and again.stdout == first.stdout


def test_a_data_file_changed_in_place_is_another_run(tmp_path, tiny_llama, tokenizer, fixed):  # noqa: F811
    first, _, _ = once(tmp_path, tiny_llama, tokenizer, fixed, EngineOptions())
    fixed.problems = [dataclasses.replace(e, reference="changed") for e in fixed.problems]
    second, generated, _ = once(tmp_path, tiny_llama, tokenizer, fixed, EngineOptions())
    assert second != first and generated == 0  # same prompts: the samples are reused, the record is new


# -- files are written whole or not at all -------------------------------------------------------------------


def test_plot_writes_atomically(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from harness.plot import plot

    source = next(p for p in sorted((Path(__file__).parent / "fixtures" / "records-v2").iterdir())
                  if "-bon-" in p.name)
    out = tmp_path / "curves.png"
    out.write_bytes(b"the previous plot")

    def torn(self, path, **kwargs):
        Path(path).write_bytes(b"half a PNG")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", torn)
    with pytest.raises(OSError, match="disk full"):
        plot([source], out)
    assert out.read_bytes() == b"the previous plot" and [p.name for p in tmp_path.iterdir()] == ["curves.png"]
    monkeypatch.undo()
    assert plot([source], out) == out and out.read_bytes().startswith(b"\x89PNG")
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # the mode of a plain open(), not mkstemp's


def test_a_run_copied_elsewhere_still_reads_back(tmp_path, tiny_llama, tokenizer):  # noqa: F811
    _, summary, _ = run(tmp_path / "a", tiny_llama, tokenizer, ANSWER, limit=2)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    _, again, engine = run(tmp_path / "b", tiny_llama, tokenizer, ANSWER, limit=2)
    assert engine.generated == 0 and again == summary


def test_a_filesystem_without_hard_links_still_writes_a_record_once(tmp_path, tiny_llama, tokenizer, monkeypatch):  # noqa: F811
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("os.link", no_links)
    _, summary, _ = run(tmp_path, tiny_llama, tokenizer, ANSWER, limit=2)
    records, _ = read_record(tmp_path / summary.run_id)
    before = digests(tmp_path)
    assert write_record(tmp_path / summary.run_id, records, dataclasses.replace(summary, created="later")) is False
    assert digests(tmp_path) == before
    assert not [p for p in (tmp_path / summary.run_id).iterdir() if p.name.startswith(".")]  # no temporary left
