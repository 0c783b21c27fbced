"""Seconds per RLOO step for each rollout path, side by side in one run (not a test).

Workload (the issue's): SmolLM2-135M-Instruct with a fresh LoRA adapter, 4 Countdown prompts x 4
samples x 64 new tokens per step, Countdown verifier reward. Each path trains the same steps in
its own fresh process, one after another, so none shares the cores with another:

- ``trl``:     TRL's RLOOTrainer as is (transformers ``generate``)
- ``trl-cb``:  TRL's RLOOTrainer with ``use_transformers_continuous_batching``
- ``engine``:  TRL's RLOOTrainer with generation through the harness's vLLM engine serving the
               current weights each step (policies/rollout.py)

A path may carry settings after ``+``: a recipe override (``engine+lora_dropout=0.05``) or
``no-preload`` (without the tcmalloc/Intel OpenMP preload that ``harness train`` does), so a change is
measured beside the configuration it changes, in the same run.

Reported per path: the first step (includes engine start), the median of the later steps, the
ratio of ``trl``'s median (else the first path's) to each path's, and the same for process CPU seconds per step (all
threads, the in-process vLLM engine included), which other work on the machine hardly changes.

    python bench/train_speed.py [--steps 4] [--paths trl,trl-cb,engine] [--dtype auto] [--threads N]
    python bench/train_speed.py --paths engine,engine+no-preload,engine+lora_dropout=0.05

``--threads N`` gives every path the same N compute threads (torch and vLLM); on a machine whose cores
other work also uses, 1 thread keeps OpenMP from stalling on a busy core. The load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.hardware import preload_environment

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
from pathlib import Path
from transformers import TrainerCallback
from policies import recipe, train as training
rollout, steps, dtype, out, *extra = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), *sys.argv[5:]
steps_cpu = []

class CpuTime(TrainerCallback):
    # process CPU seconds per step (all threads, the in-process vLLM engine included): robust to other load
    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.process_time()

    def on_step_end(self, args, state, control, **kwargs):
        steps_cpu.append(time.process_time() - self.started)

config = recipe.load("quick", "rloo", base="smollm2", overrides=[
    f"rollout={rollout}", f"steps={steps}", f"save_steps={steps + 1}", "logging_steps=1", f"dtype={dtype}",
    "prompts_per_step=4", "k=4", "grad_accum=1", "max_completion_length=64", "temperature=1.0",
    'data=[{source: task, task: countdown, args: {numbers: "3", shots: 0}, rows: 200}]', *extra])
training.train(config, name=f"bench-{rollout}", output=out, callbacks=[CpuTime()])
(out / "cpu.json").write_text(json.dumps(steps_cpu))
"""


def run_path(path: str, steps: int, dtype: str, home: Path, threads: int | None) -> dict:
    rollout, *settings = path.split("+")
    out = home / f"bench-{len(list(home.glob('bench-*')))}"
    env = {**os.environ, "HARNESS_HOME": str(home)}
    if "no-preload" not in settings:
        env = preload_environment(env) or env  # as `harness train` runs
    overrides = [s for s in settings if s != "no-preload"]
    if threads:
        env |= {"OMP_NUM_THREADS": str(threads), "VLLM_CPU_OMP_THREADS_BIND": f"0-{threads - 1}"}
    done = subprocess.run([sys.executable, "-c", CHILD, rollout, str(steps), dtype, str(out), *overrides], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    if done.returncode:
        return {"path": path, "error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    manifest = json.loads((out / "policy.json").read_text())
    times = [h["step_time"] for h in manifest["history"] if "step_time" in h]
    cpu = json.loads((out / "cpu.json").read_text())
    return {"path": path, "first_s": times[0], "median_s": statistics.median(times[1:] or times),
            "cpu_s": statistics.median(cpu[1:] or cpu),
            "steps": len(times), "wall_s": manifest["wall_seconds"], "dtype": manifest["dtype"],
            "mean_length": statistics.mean(h.get("completions/mean_length", 0) for h in manifest["history"]
                                           if "step_time" in h)}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--paths", default="trl,trl-cb,engine")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    print(f"{cpu_model()}, {os.cpu_count()} cores, {args.threads or 'default'} threads; {args.steps} RLOO steps of "
          f"4 prompts x 4 samples x 64 tokens, SmolLM2-135M LoRA; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "models").mkdir()
        from harness.policy import embedded_model

        (home / "models" / embedded_model().name).symlink_to(embedded_model())
        results = [run_path(p, args.steps, args.dtype, home, args.threads) for p in args.paths.split(",")]
    done = [r for r in results if "median_s" in r]
    base = next((r for r in done if r["path"] == "trl"), done[0] if done else None)  # trl, else the first
    vs = f"x vs {base['path']}" if base else "x"
    width = max(8, *(len(r["path"]) for r in results))
    print(f"{'path':{width}} {'dtype':9} {'first step s':>12} {'median step s':>13} {vs:>12} {'CPU s/step':>10} "
          f"{vs:>12} {'wall s':>7}")
    for r in results:
        if "error" in r:
            print(f"{r['path']:{width}} failed: {r['error']}")
            continue
        wall = f"{base['median_s'] / r['median_s']:.2f}"
        cpu = f"{base['cpu_s'] / r['cpu_s']:.2f}"
        print(f"{r['path']:{width}} {r['dtype']:9} {r['first_s']:12.1f} {r['median_s']:13.1f} {wall:>12} "
              f"{r['cpu_s']:10.1f} {cpu:>12} {r['wall_s']:7.0f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    failed = [r["path"] for r in results if "error" in r]
    if failed:  # the table keeps the paths that ran; the exit status says that not all did
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
