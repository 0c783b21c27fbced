"""What an in-process vLLM engine leaves torch: intra-op threads, and the CPUs each of this process's threads may
run on, before the engine starts, after it has generated and after it closes (the RLOO trainer trains beside such
an engine).

    python bench/engine_threads.py [POLICY]
"""

import collections
import os
import sys

import torch

from harness.engines import Request, Sampling
from harness.engines.vllm import VLLMEngine
from harness.policy import resolve_policy


def show(when: str) -> None:
    allowed: collections.Counter[str] = collections.Counter()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/status") as f:
            allowed.update(line.split()[1] for line in f if line.startswith("Cpus_allowed_list"))
    threads = ", ".join(f"{n} on CPUs {cpus}" for cpus, n in sorted(allowed.items()))
    print(f"{when}: torch threads {torch.get_num_threads()}; threads {threads}", flush=True)


if __name__ == "__main__":
    show("before")
    engine = VLLMEngine(resolve_policy(sys.argv[1] if len(sys.argv) > 1 else "smollm2"))
    show("engine up")
    list(engine.generate([Request(list(range(1, 20)), n=4)], Sampling(max_tokens=16)))
    torch.randn(512, 512) @ torch.randn(512, 512)
    show("after generating and a matmul")
    engine.close()
    show("closed")
