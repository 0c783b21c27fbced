"""What an in-process vLLM engine leaves torch: intra-op threads and the CPUs this thread may run on, before the
engine starts, while it is up and after it closes (the RLOO trainer trains beside such an engine).

    python bench/engine_threads.py [POLICY]
"""

import os
import sys

import torch

from harness.engines.vllm import VLLMEngine
from harness.policy import resolve_policy


def show(when: str) -> None:
    print(f"{when}: torch threads {torch.get_num_threads()}, CPUs {sorted(os.sched_getaffinity(0))}", flush=True)


if __name__ == "__main__":
    show("before")
    engine = VLLMEngine(resolve_policy(sys.argv[1] if len(sys.argv) > 1 else "smollm2"))
    show("engine up")
    engine.close()
    show("closed")
