"""Generation-cache look-up: the old whole-file JSONL load against the SQLite store, side by side in one run.

Usage: python bench/cache_lookup.py [--samples 100000] [--lookups 100000]

Writes the same N cached samples both ways, then times what a rerun of a fully cached run does:
open the cache and find every one of its samples. Prints a Markdown table and the ratio; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import tempfile
import time
from pathlib import Path

from harness.cache import GenerationCache, sample_key
from harness.types import Completion


def _jsonl_load(path: Path, keys: list[str]) -> int:
    """What the previous cache did on start: parse the whole file into a dict, then look keys up."""
    entries = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            entries[row["key"]] = (Completion(row["text"], row["tokens"], row["logprob"], row["finish_reason"]),
                                   row["seconds"])
    return sum(k in entries for k in keys)


def _sqlite_load(path: Path, keys: list[str]) -> int:
    cache = GenerationCache(path)
    try:
        return len(cache.get_many(keys))
    finally:
        cache.close()


def _best(fn, *args, repeats: int = 3) -> tuple[float, int]:
    times, found = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        found = fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times), found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(0)
    text = "<think> 12 + 7 = 19, 19 * 3 = 57 </think>\n<answer> (12 + 7) * 3 </answer>"
    items = [(sample_key("fp", f"prompt {i // 16}", {"temperature": 0.7}, i % 16),
              Completion(text, 40, -rng.random() * 20, "stop"), 0.01) for i in range(args.samples)]
    keys = [k for k, _, _ in rng.sample(items, min(args.lookups, len(items)))]
    with tempfile.TemporaryDirectory() as tmp:
        jsonl, db = Path(tmp) / "generations.jsonl", Path(tmp) / "generations.sqlite"
        jsonl.write_text("".join(json.dumps({"key": k, "text": c.text, "tokens": c.tokens, "logprob": c.logprob,
                                             "finish_reason": c.finish_reason, "seconds": s}) + "\n"
                                 for k, c, s in items))
        cache = GenerationCache(db)
        for start in range(0, len(items), 1000):
            cache.put(items[start:start + 1000])
        cache.close()
        old, found_old = _best(_jsonl_load, jsonl, keys)
        new, found_new = _best(_sqlite_load, db, keys)
        small = keys[:1000]
        old_small, _ = _best(_jsonl_load, jsonl, small)
        new_small, _ = _best(_sqlite_load, db, small)
    cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/Model name: *//p'"], capture_output=True, text=True).stdout
    print(f"processor: {cpu.strip() or platform.processor()}; {args.samples:,} cached samples\n")
    print("| look-up | JSONL whole-file load (s) | SQLite (s) | JSONL / SQLite |")
    print("| --- | --- | --- | --- |")
    print(f"| all {len(keys):,} samples of a cached run | {old:.3f} | {new:.3f} | {old / new:.1f}x |")
    print(f"| 1,000 samples (a small run on a big cache) | {old_small:.3f} | {new_small:.3f} | "
          f"{old_small / new_small:.1f}x |")
    if not found_old == found_new == len(keys):
        raise SystemExit(f"the two caches disagree: {found_old} vs {found_new} of {len(keys)} found")


if __name__ == "__main__":
    main()
