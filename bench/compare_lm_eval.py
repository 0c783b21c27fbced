"""GSM8K: the harness against lm-evaluation-harness's ``gsm8k_cot``, on the same problems, model, prompt and decoding.

Usage: python bench/compare_lm_eval.py [--model DIR] [--limit 50] [--data DIR] [--max-tokens 256] [--batch-size 8]
                                       [--backend auto|vllm|hf]

Both read the local GSM8K copy (``train.jsonl``, ``test.jsonl``) offline and take its first ``--limit`` test
problems. lm-eval runs in-process (``hf`` model, float32) on ``gsm8k_cot`` re-pointed at those files; the harness
runs task ``gsm8k`` with ``prompt=8shot`` (the same 8-shot context, byte for byte), no chat template, greedy.
Both stop generating at "Q:" (lm-eval's ``until``; the harness task's ``stop``); cutting the harness
completions at the first "Q:" again before scoring is then a no-op kept as a guard.
vLLM on CPU runs a float32 checkpoint in bfloat16, so greedy paths can part from lm-eval's float32 ones;
``--backend hf`` runs the harness in float32 too (slower).
Prints the accuracies, whether each lm-eval number lies in the harness's 95% bootstrap interval, and how many
problems each pair of scorers judged the same. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import Example  # noqa: E402
from harness.engines import BACKENDS  # noqa: E402
from harness.metrics import bootstrap_ci, mean  # noqa: E402
from harness.pipeline import RunConfig, execute  # noqa: E402
from harness.policy import resolve_policy  # noqa: E402
from harness.record import read_record  # noqa: E402
from harness.rows import shared_data  # noqa: E402
from plugins.math_verifier import SympyVerifier  # noqa: E402

DEFAULT_DATA = shared_data() / "gsm8k"
TASK = "gsm8k_cot_local"
STOP = "Q:"  # the stop sequence of lm-eval's gsm8k_cot that the harness lacks
# (lm-eval filter, harness metric): the pairs that apply the same rule
PAIRS = (("strict-match", "strict"), ("flexible-extract", "lenient"))


def run_lm_eval(model_dir: str, data: Path, limit: int, max_tokens: int, batch_size: int) -> dict:
    """lm-eval's stock ``gsm8k_cot`` on the local files: per filter, exact_match, its stderr, per-doc verdicts."""
    import lm_eval
    import yaml
    from lm_eval.tasks import TaskManager

    stock = Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k-cot.yaml"
    generation = yaml.safe_load(stock.read_text())["generation_kwargs"]
    config = {
        "include": str(stock),
        "task": TASK,
        "tag": [],  # not the stock chain_of_thought group
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(data / f"{split}.jsonl") for split in ("train", "test")}},
        "generation_kwargs": {**generation, "max_gen_toks": max_tokens},
    }
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, f"{TASK}.yaml").write_text(yaml.safe_dump(config))
        out = lm_eval.simple_evaluate(
            model="hf", model_args=f"pretrained={model_dir},dtype=float32", tasks=[TASK],
            task_manager=TaskManager(include_path=tmp), limit=limit, batch_size=batch_size, device="cpu",
            log_samples=True, verbosity="WARNING",
        )
    results = out["results"][TASK]
    verdicts: dict[str, dict[int, float]] = {name: {} for name, _ in PAIRS}
    for sample in out["samples"][TASK]:
        verdicts[sample["filter"]][sample["doc_id"]] = float(sample["exact_match"])
    return {
        name: (results[f"exact_match,{name}"], results[f"exact_match_stderr,{name}"], verdicts[name])
        for name, _ in PAIRS
    }


def run_harness(model_dir: str, data: Path, limit: int, max_tokens: int, backend: str, output: Path) -> tuple:
    """The harness run (``auto``: vLLM when it starts): engine name and per-doc verdicts, raw and cut at "Q:"."""
    config = RunConfig(policy=model_dir, task="gsm8k", sampler="greedy", limit=limit, max_tokens=max_tokens,
                       chat_template=False, task_args={"data": str(data), "prompt": "8shot"}, backend=backend)
    records, summary = read_record(execute(config, output))
    verifier = SympyVerifier()
    verdicts: dict[str, dict[int, float]] = {}
    for record in records:
        doc = int(record.example.id.rsplit("-", 1)[1])  # gsm8k-test-<row>: lm-eval's doc_id
        sample = record.chosen
        cut = verifier.score(Example(record.example.prompt, record.example.reference),
                             sample.completion.text.split(STOP, 1)[0])
        for metric in ("strict", "lenient"):
            verdicts.setdefault(metric, {})[doc] = sample.grade.metrics[metric]
            verdicts.setdefault(f"{metric}, cut at {STOP}", {})[doc] = cut.metrics[metric]
    return summary.engine["name"] if summary.engine else "cache", verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--limit", type=int, default=50, help="first N test problems (default 50)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GSM8K dir with train.jsonl, test.jsonl")
    parser.add_argument("--max-tokens", type=int, default=256, help="new tokens per problem, both sides")
    parser.add_argument("--batch-size", type=int, default=8, help="lm-eval hf batch size")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="harness engine (default auto: vLLM)")
    args = parser.parse_args()
    model_dir = str(Path(args.model).resolve()) if args.model else resolve_policy("smollm2").model
    data = args.data.resolve()

    # lm-eval first: starting vLLM on CPU pins this process to one torch thread, which would slow transformers
    started = time.perf_counter()
    lm = run_lm_eval(model_dir, data, args.limit, args.max_tokens, args.batch_size)
    lm_eval_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        engine, ours = run_harness(model_dir, data, args.limit, args.max_tokens, args.backend, Path(tmp))
    harness_s = time.perf_counter() - started - lm_eval_s

    print(f"\nGSM8K test, first {args.limit} problems of {data}")
    print(f"model {model_dir}; 8-shot CoT (lm-eval gsm8k_cot prompt), greedy, at most {args.max_tokens} new tokens")
    print(f"lm-eval {version('lm_eval')}: hf float32, batch {args.batch_size}, {lm_eval_s:.0f} s; "
          f"harness: {engine} engine, {harness_s:.0f} s\n")
    print(f"{'scorer':<40} {'accuracy':>8}  uncertainty")
    for name, (value, stderr, _) in lm.items():
        print(f"{'lm-eval ' + name:<40} {value:8.3f}  ± {stderr:.3f} (stderr)")
    cis = {}
    for metric, verdict in ours.items():
        values = list(verdict.values())
        cis[metric] = bootstrap_ci(values)
        print(f"{'harness ' + metric:<40} {mean(values):8.3f}  95% CI [{cis[metric][0]:.3f}, {cis[metric][1]:.3f}]")

    print(f"\n{'lm-eval vs harness':<40} {'lm-eval in CI':>13}  same verdict")
    for name, metric in PAIRS:
        value, _, lm_verdict = lm[name]
        for variant in (metric, f"{metric}, cut at {STOP}"):
            low, high = cis[variant]
            same = sum(lm_verdict[doc] == ours[variant].get(doc) for doc in lm_verdict)
            inside = "yes" if low <= value <= high else "no"
            print(f"{name + ' vs ' + variant:<40} {inside:>13}  {same}/{len(lm_verdict)}")


if __name__ == "__main__":
    main()
