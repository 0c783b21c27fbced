"""Each trainer and the transformers engine on whatever accelerator is here, on tiny models; prints seconds per step.

Usage: python bench/gpu_check.py --tokenizer DIR --encoder-tokenizer DIR [--steps 4]

Builds a tiny random Llama (SmolLM2's tokenizer) and a tiny random BERT (MiniLM's tokenizer), then trains SFT,
DPO, a reward model and RLOO (rollouts by TRL's transformers generation, the path a GPU without vLLM takes)
for a few steps each through ``policies.train``, and generates with ``HFEngine``. Needs no data files and no
network, so it runs on a lent GPU machine as one short script; run it here too for the CPU figure beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.tiny builds the models


def tiny_models(root: Path, tokenizer_dir: str, encoder_tokenizer_dir: str) -> tuple[Path, Path]:
    from tests.tiny import tiny_bert, tiny_llama

    return tiny_llama(tokenizer_dir, root / "tiny-llama"), tiny_bert(encoder_tokenizer_dir, root / "tiny-bert")


def train_each(llama: Path, bert: Path, pairs: Path, steps: int) -> list[dict]:
    from policies import recipe
    from policies.manifest import default_output
    from policies.train import train

    countdown = 'data=[{source: task, task: countdown, args: {numbers: "3", shots: 0}, rows: 64}]'
    fast = ["logging_steps=1", "batch_size=4", "max_length=256", f"steps={steps}"]
    jobs = [("sft", "g-sft", str(llama), [countdown, *fast]),
            ("dpo", "g-dpo", "g-sft", [f"data=[{{source: jsonl, path: {pairs}}}]", *fast]),
            ("rm", "g-rm", str(bert), [f"data=[{{source: jsonl, path: {pairs}}}]", "eval_fraction=0.25", *fast]),
            ("rloo", "g-rloo", "g-sft", [countdown, "rollout=trl", "prompts_per_step=4", "k=4",
                                         "max_completion_length=64", "logging_steps=1", f"steps={steps}"])]
    results = []
    for method, name, base, overrides in jobs:
        config = recipe.load("quick", method, base=base, overrides=overrides)
        started = time.perf_counter()
        train(config, name=name)
        wall = time.perf_counter() - started
        folder = default_output(method, name)
        m = json.loads((folder / "policy.json").read_text())
        runtime = m["metrics"].get("train_runtime")
        results.append({"method": method, "device": m["device"], "dtype": m["dtype"], "steps": m["steps"],
                        "s_per_step": runtime / m["steps"] if runtime else m["wall_seconds"] / m["steps"],
                        "wall_s": round(wall, 1), "metrics": {k: v for k, v in m["metrics"].items()
                                                             if k in ("loss", "reward", "heldout_pair_accuracy")}})
    return results


def generate(llama: Path) -> dict:
    from harness.engines import EngineOptions, HFEngine, Renderer, Request, Sampling
    from harness.policy import resolve_policy
    from harness.types import Example

    policy = resolve_policy("g-sft")
    renderer = Renderer(policy)
    engine = HFEngine(policy, renderer.tokenizer, EngineOptions(batch_size=64))
    prompts = [renderer.render(Example(f"Use 3, 5 and {i} to make {i + 8}."))[1] for i in range(16)]
    list(engine.generate([Request(prompts[0], 1)], Sampling(0.0, max_tokens=4)))  # warm-up
    started = time.perf_counter()
    out = dict(engine.generate([Request(p, 4) for p in prompts], Sampling(0.7, max_tokens=64)))
    seconds = time.perf_counter() - started
    tokens = sum(c.tokens for cs in out.values() for c in cs)
    return {"engine": engine.describe(), "sequences": 64, "tokens": tokens, "tok_per_s": tokens / seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", required=True, help="SmolLM2's tokenizer files")
    parser.add_argument("--encoder-tokenizer", required=True, help="MiniLM's tokenizer files")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["HARNESS_HOME"] = str(root / "home")
        llama, bert = tiny_models(root, args.tokenizer, args.encoder_tokenizer)
        pairs = root / "pairs.jsonl"
        words = ["yes", "hi", "ok", "go", "sun", "sea", "red", "tea"]
        pairs.write_text("".join(json.dumps({"prompt": f"Say {w}.", "chosen": f"{w}!", "rejected": "No."}) + "\n"
                                 for w in words * 4))
        results = train_each(llama, bert, pairs, args.steps)
        engine = generate(llama)
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(json.dumps({"device": device, "torch": torch.__version__, "trainers": results, "generate": engine}))
    print(f"\n| method | device | dtype | steps | s/step |  ({device})\n| --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['method']} | {r['device']} | {r['dtype']} | {r['steps']} | {r['s_per_step']:.2f} |")
    e = engine["engine"]
    print(f"\nHFEngine on {e.get('device')} in {e.get('dtype')}: {engine['tokens']} tokens, "
          f"{engine['tok_per_s']:.0f} tok/s")


if __name__ == "__main__":
    main()
