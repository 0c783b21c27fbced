"""What a study's pending cells will cost on this machine: tokens and minutes per cell.

Rates come from this machine's own measurements where there are any — the records under the output directory
(``RunSummary.tokens`` and ``timings``: tokens per sample of the same task, generation tok/s of the same backend
for one or several samples per problem, engine load and verification seconds) and the trained policies'
manifests under ``$HARNESS_HOME`` (seconds and tokens per step of the same method and recipe) — and from the
stated defaults below otherwise; every estimate says which.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.policy import policies_dir, reward_models_dir
from harness.record import RunSummary, iter_summaries

# Defaults, measured on a 2-core Intel Xeon with AMX (docs/results.md, 2026-11-26): SmolLM2-135M through vLLM in
# bf16, greedy 243.9 tok/s and best-of-16 811.7 tok/s (make demo); the quick recipe's training runs (wall, steps,
# tokens): sft 738 s, 100, 128k; rloo 4,589 s, 80, 816k; dpo 679 s, 40, 84k; rft by hand as `harness augment`
# then 40 SFT steps, 713 s (283 s of it sampling 3,200 completions), 51k, its sampling folded into the per-step
# rate (so it scales with steps, where the sampling scales with rows x n); the MiniLM reward model (batch 16,
# max_length 384) 10 of its steps on 2026-12-06 (docs/study.md): 128 s, 81k tokens, of which 49 s were its held-out
# evaluation, so 7.9 s per step.
DEFAULT_TOK_S = {False: 243.9, True: 811.7}  # generation, keyed by "several samples per problem"
DEFAULT_LOAD_S = 18.0  # starting vLLM on that CPU (docs/performance.md)
DEFAULT_STEP = {("quick", "sft"): (7.38, 1280.0), ("quick", "rloo"): (57.4, 10200.0),
                ("quick", "dpo"): (17.0, 2100.0), ("quick", "rft"): (17.8, 1280.0)}  # (seconds, tokens) per step
RM_BASE = "minilm"  # the encoder whose reward-model step was measured: the default for any recipe that trains it
RM_STEP = (7.9, 8140.0, {"batch_size": 16, "grad_accum": 1, "max_length": 384})  # seconds, tokens, at this shape
DEFAULT_TRAIN_TOK_S = 170.0  # the quick recipe's training tokens per second on that CPU (a 135M model)
DEFAULTS = ("defaults: generation 243.9 tok/s greedy, 811.7 tok/s with n > 1, engine start 18 s (SmolLM2-135M, vLLM "
            "bf16); training per step as the quick recipe ran (sft 7.4 s, rloo 57.4 s, dpo 17.0 s, rft 17.8 s with "
            "its sampling), a MiniLM reward model 7.9 s per step at batch 16 and max_length 384, scaled by batch "
            "size and max_length, else ~170 training tok/s over tokens bounded from the configuration (a 135M "
            "model); all measured on a 2-core Xeon with AMX (docs/results.md, docs/study.md)")


@dataclass(frozen=True)
class Estimate:
    tokens: float | None
    seconds: float | None
    basis: str  # "measured", "partly measured" or "default"
    note: str = ""


class Rates:
    """This machine's measured rates: the records under ``output`` and the manifests of trained policies."""

    def __init__(self, output: Path):
        self.summaries: list[RunSummary] = []
        if output.is_dir():
            self.summaries = [s for _, s in iter_summaries(output) if s.rescored_from is None and s.tokens]
        self.manifests = _manifests()

    def describe(self) -> str:
        generated = [s for s in self.summaries if s.engine is not None]
        return (f"measured on this machine: {len(self.summaries)} records under the output directory "
                f"({len(generated)} that generated), {len(self.manifests)} training manifests")

    # -- runs

    def run(self, config: Any, examples: int | None, fingerprint: str | None, backend: str | None,
            cached: bool = False) -> Estimate:
        """``cached``: another cell generates the same samples first, so this one only grades them."""
        if examples is None:
            return Estimate(None, None, "default")
        samples = examples * config.n
        verify = [s for s in self.summaries if s.task == config.task and s.config.grader == config.grader
                  and s.timings.verification_s is not None]
        per_verify = (sum(s.timings.verification_s for s in verify) / max(1, sum(s.counts.samples for s in verify))
                      if verify else 0.0)
        if cached:
            return Estimate(0.0, per_verify * samples, "measured" if verify else "default",
                            "its samples come from the generation cache")
        per_sample = self._per_sample(config, fingerprint)
        measured = int(per_sample is not None)
        tokens = samples * (float(config.max_tokens) if per_sample is None else per_sample)
        several = config.n > 1
        timed = [s for s in self.summaries if s.engine is not None and s.timings.tokens_per_s
                 and (s.config.n > 1) == several and (backend is None or (s.numerics or {}).get("backend") == backend)]
        if timed:
            rate = sum(s.tokens.generated for s in timed) / sum(s.tokens.generated / s.timings.tokens_per_s
                                                                for s in timed)
            load = sum(s.timings.load_s for s in timed) / len(timed)
            measured += 1
        else:
            rate, load = DEFAULT_TOK_S[several], DEFAULT_LOAD_S
        seconds = load + tokens / rate + per_verify * samples
        return Estimate(tokens, seconds, ("measured", "partly measured", "default")[2 - measured])

    def _per_sample(self, config: Any, fingerprint: str | None) -> float | None:
        """Generated tokens per sample in records of the same task and ``--max-tokens``: of the same weights and
        sampler, else the same sampler, else the same weights, else any (answer lengths follow how a policy is
        sampled more than which trained policy it is); None without such a record."""
        same_task = [s for s in self.summaries if s.task == config.task and s.config.max_tokens == config.max_tokens]

        def mine(s: RunSummary) -> bool:
            return bool(fingerprint) and s.policy is not None and s.policy.fingerprint == fingerprint

        def sampled_alike(s: RunSummary) -> bool:
            return s.config.sampler == config.sampler

        for keep in (lambda s: mine(s) and sampled_alike(s), sampled_alike, mine, lambda s: True):
            source = [s for s in same_task if keep(s)]
            if source:
                return sum(s.tokens.generated for s in source) / max(1, sum(s.counts.samples for s in source))
        return None

    # -- training

    def train(self, config: dict[str, Any]) -> Estimate:
        method, recipe, steps = config.get("method"), config.get("recipe"), int(config.get("steps") or 0)
        if method == "rm" and (scaled := self._reward_model(config, steps)):
            return scaled
        same = [m for m in self.manifests if m.get("method") == method and m.get("recipe") == recipe
                and _number(m.get("steps")) and _number(m.get("wall_seconds"))]
        if same:
            total_steps = sum(m["steps"] for m in same)
            per_s = sum(m["wall_seconds"] for m in same) / total_steps
            with_tokens = [m for m in same if _number(m.get("tokens"))]
            per_tok = (sum(m["tokens"] for m in with_tokens) / sum(m["steps"] for m in with_tokens)
                       if with_tokens else None)
            return Estimate(per_tok * steps if per_tok else None, per_s * steps, "measured")
        if (recipe, method) in DEFAULT_STEP:
            per_s, per_tok = DEFAULT_STEP[recipe, method]
            return Estimate(per_tok * steps, per_s * steps, "default")
        if method == "rm" and config.get("base") == RM_BASE:
            per_s, per_tok, shape = RM_STEP
            per_s, per_tok = _rescaled(per_s, per_tok, shape, config)
            return Estimate(per_tok * steps, per_s * steps, "default")
        tokens = _bounded_tokens(config) * steps
        return Estimate(tokens, tokens / DEFAULT_TRAIN_TOK_S, "default")

    def _reward_model(self, config: dict[str, Any], steps: int) -> Estimate | None:
        """A reward model priced from the manifests of reward models with the same backbone, trained the same way,
        of any recipe, each rescaled to this configuration's shape (``_rescaled``)."""
        backbone = (config.get("base"), config.get("finetune"))
        like = [m for m in self.manifests if m.get("method") == "rm" and isinstance(m.get("config"), dict)
                and (m["config"].get("base"), m["config"].get("finetune")) == backbone
                and _number(m.get("steps")) and _number(m.get("wall_seconds"))]
        if not like:
            return None
        rescaled = [(m["steps"], *_rescaled(m["wall_seconds"] / m["steps"], m["tokens"] / m["steps"] if _number(
            m.get("tokens")) else None, m["config"], config)) for m in like]
        seconds = sum(n * t for n, t, _ in rescaled) / sum(n for n, _, _ in rescaled)
        counted = [(n, tok) for n, _, tok in rescaled if tok is not None]
        tokens = sum(n * tok for n, tok in counted) / sum(n for n, _ in counted) * steps if counted else None
        return Estimate(tokens, seconds * steps, "measured")


def _shape(config: dict[str, Any]) -> tuple[float, float]:
    """Pairs per optimizer step and tokens per input at most: what a reward model's step time follows."""
    return float((config.get("batch_size") or 8) * (config.get("grad_accum") or 1)), float(
        config.get("max_length") or 512)


def _rescaled(seconds: float, tokens: float | None, measured: dict[str, Any],
              config: dict[str, Any]) -> tuple[float, float | None]:
    """A reward model's seconds and tokens per step measured at one shape, at another: time in proportion to pairs
    times window (an upper bound where a longer window outgrows the pairs), tokens in proportion to pairs, at most
    two full windows each (chosen and rejected)."""
    (pairs, window), (was_pairs, was_window) = _shape(config), _shape(measured)
    time = seconds * pairs * window / (was_pairs * was_window)
    per_pair = None if tokens is None else min(tokens / was_pairs, 2 * window)
    return time, None if per_pair is None else per_pair * pairs


def _bounded_tokens(config: dict[str, Any]) -> float:
    """Tokens per step at most, from the configuration: sequences per step times their length."""
    accum = config.get("grad_accum") or 1
    if config.get("method") == "rloo":
        return (config.get("prompts_per_step") or 8) * (config.get("k") or 8) * (
            config.get("max_completion_length") or 256)
    pair = 2 if config.get("method") in ("dpo", "rm") else 1
    return (config.get("batch_size") or 8) * accum * (config.get("max_length") or 1024) * pair


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _manifests() -> list[dict[str, Any]]:
    found = []
    for root in (policies_dir(), reward_models_dir()):
        for path in sorted(root.glob("*/policy.json")) if root.is_dir() else []:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and "output" not in data:  # a pointer repeats a manifest kept elsewhere
                found.append(data)
    return found


def minutes(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds / 60:,.1f}"


def tokens_text(tokens: float | None) -> str:
    return "?" if tokens is None else f"{tokens:,.0f}"


def duration(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"
