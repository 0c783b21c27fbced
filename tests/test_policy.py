"""Policy identity (every byte that changes generation, hashed once) and policy names (any manifest resolves)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

import harness.policy as policy_module
from harness.errors import HarnessError
from harness.policy import Policy, list_policies, policies_dir, resolve_policy

HOUR_AGO = time.time() - 3600


def _copy(src: Path, dst: Path) -> Path:
    """A copy whose files look settled (modified an hour ago), as a checkpoint on disk usually is."""
    shutil.copytree(src, dst)
    for f in dst.iterdir():
        os.utime(f, (HOUR_AGO, HOUR_AGO))
    return dst


def _fingerprint(folder: Path, adapter: Path | None = None) -> str:
    """A fresh Policy object each time, so only the on-disk memo can save work between calls."""
    return Policy("p", str(folder.resolve()), str(adapter.resolve()) if adapter else None).fingerprint


@pytest.fixture
def hashed(monkeypatch) -> list[Path]:
    """Records every file whose bytes are actually hashed."""
    calls: list[Path] = []
    real = policy_module._hash_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(policy_module, "_hash_file", counting)
    return calls


@pytest.fixture
def adapter(tiny_llama, tmp_path) -> Path:
    """A LoRA adapter folder of the shape peft writes (the fingerprint never loads it)."""
    import torch
    from safetensors.torch import save_file

    out = tmp_path / "adapter"
    out.mkdir()
    config = {"base_model_name_or_path": str(tiny_llama), "peft_type": "LORA", "r": 4, "lora_alpha": 16,
              "target_modules": ["q_proj", "v_proj"]}
    (out / "adapter_config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    save_file({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.randn(4, 128)},
              out / "adapter_model.safetensors", metadata={"format": "pt"})
    return out


@pytest.fixture
def manifests():
    """Writes ``policies_dir()/<name>/policy.json`` manifests and removes them afterwards."""
    written: list[Path] = []

    def write(name: str, data: dict | str) -> Path:
        manifest = policies_dir() / name / "policy.json"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(data if isinstance(data, str) else json.dumps(data))
        written.append(manifest.parent)
        return manifest

    yield write
    for folder in written:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_tensor_changed_in_the_middle_of_the_weights_changes_the_fingerprint(tiny_llama, tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    copy = _copy(tiny_llama, tmp_path / "copy")
    weights = copy / "model.safetensors"
    before = weights.read_bytes()
    with safe_open(weights, "pt") as fh:
        metadata = fh.metadata()
        tensors = {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    embed = tensors["model.embed_tokens.weight"]
    middle = slice(embed.shape[0] // 3, 2 * embed.shape[0] // 3)
    embed[middle] = embed[middle] / 2
    save_file(tensors, weights, metadata=metadata)
    after = weights.read_bytes()
    mib = 1 << 20
    assert len(after) == len(before) and after != before
    assert after[:mib] == before[:mib] and after[-mib:] == before[-mib:], "the change must lie away from both ends"
    with safe_open(weights, "pt") as fh:
        assert torch.equal(fh.get_tensor("model.embed_tokens.weight"), embed)
    assert _fingerprint(copy) != _fingerprint(tiny_llama)


@pytest.mark.parametrize("name", ["config.json", "generation_config.json", "tokenizer.json",
                                  "tokenizer_config.json", "chat_template.jinja"])
def test_a_config_or_tokenizer_change_changes_the_fingerprint(tiny_llama, tmp_path, name):
    copy = _copy(tiny_llama, tmp_path / "copy")
    assert _fingerprint(copy) == _fingerprint(tiny_llama), "an identical copy elsewhere must keep the identity"
    target = copy / name
    if not target.exists():
        pytest.fail(f"the tiny model has no {name}; the fixture's shape changed")
    text = target.read_text()
    target.write_text(text.replace("<|im_start|>", "<|im_begin|>", 1) if name == "chat_template.jinja"
                      else json.dumps({**json.loads(text), "harness_test_edit": 1}))
    assert _fingerprint(copy) != _fingerprint(tiny_llama)


@pytest.mark.parametrize("edit", ["adapter_config.json", "adapter_model.safetensors"])
def test_an_adapter_change_changes_the_fingerprint(tiny_llama, adapter, tmp_path, edit):
    copy = _copy(adapter, tmp_path / "copy")
    assert _fingerprint(tiny_llama, copy) == _fingerprint(tiny_llama, adapter) != _fingerprint(tiny_llama)
    if edit == "adapter_config.json":
        config = json.loads((copy / edit).read_text())
        (copy / edit).write_text(json.dumps({**config, "lora_alpha": 32}))
    else:
        from safetensors.torch import load_file, save_file

        tensors = {k: v / 2 for k, v in load_file(copy / edit).items()}
        save_file(tensors, copy / edit, metadata={"format": "pt"})
    assert _fingerprint(tiny_llama, copy) != _fingerprint(tiny_llama, adapter)


def test_each_file_is_hashed_once_until_it_changes(tiny_llama, tmp_path, hashed):
    copy = _copy(tiny_llama, tmp_path / "copy")
    files = sorted(f.name for f in copy.iterdir() if f.suffix in (".json", ".safetensors", ".jinja"))
    first = _fingerprint(copy)
    assert sorted(p.name for p in hashed) == files
    policy = Policy("p", str(copy))
    assert [policy.fingerprint for _ in range(100)] == [first] * 100 and _fingerprint(copy) == first
    assert len(hashed) == len(files), "a second look (new object or same) re-read the weights"

    renamed = _copy(tiny_llama, tmp_path / "renamed")
    assert _fingerprint(renamed) == first, "identical bytes under another folder name must keep the identity"
    assert len(hashed) == 2 * len(files)

    os.utime(copy / "model.safetensors", (HOUR_AGO - 60, HOUR_AGO - 60))
    assert _fingerprint(copy) == first
    assert [p.name for p in hashed[2 * len(files):]] == ["model.safetensors"], "only the touched file is rehashed"


def test_a_just_written_file_is_hashed_again_rather_than_trusted(tiny_llama, tmp_path, hashed):
    copy = tmp_path / "fresh"
    shutil.copytree(tiny_llama, copy)
    for f in copy.iterdir():
        os.utime(f)  # written just now: a second write this instant could keep its size and mtime
    first = _fingerprint(copy)
    assert _fingerprint(copy) == first
    assert len(hashed) == 2 * len(list(copy.iterdir()))


def test_any_manifest_name_resolves_and_is_listed(tiny_llama, adapter, manifests):
    manifests("my-tuned.v2", {"name": "my-tuned.v2", "base": str(tiny_llama), "adapter": str(adapter)})
    manifests("broken", "{not json")
    policy = resolve_policy("my-tuned.v2")
    assert policy == Policy("my-tuned.v2", str(tiny_llama.resolve()), str(adapter.resolve()))
    listed = dict(list_policies())
    assert listed["my-tuned.v2"]["adapter"] == str(adapter) and "error" in listed["broken"]


def test_an_unknown_name_lists_the_policies_that_exist(tiny_llama, manifests):
    manifests("alpha", {"base": str(tiny_llama)})
    manifests("beta", {"base": str(tiny_llama)})
    with pytest.raises(HarnessError) as err:
        resolve_policy("gamma")
    message = str(err.value)
    assert "'gamma'" in message and "alpha" in message and "beta" in message and "smollm2" in message
    assert "model directory" in message and "adapter" in message and "hub id" in message
    with pytest.raises(HarnessError, match=r"rloo/policy\.json \(see `harness train --help`\)"):
        resolve_policy("rloo")


def test_the_fingerprint_is_computed_once_per_policy_not_per_cache_key(tiny_llama, monkeypatch):
    looked_up: list[Path] = []
    real = policy_module._DigestStore.digest
    monkeypatch.setattr(policy_module._DigestStore, "digest", lambda self, f: looked_up.append(f) or real(self, f))
    policy = resolve_policy(str(tiny_llama))
    keys = {policy.fingerprint for _ in range(1600)}  # one per (example, sample) in a 100 x 16 run
    assert len(keys) == 1 and len(looked_up) == len(list(tiny_llama.iterdir()))
    assert policy == Policy(policy.name, policy.model) and hash(policy) == hash(Policy(policy.name, policy.model))


@pytest.mark.parametrize("content, says", [
    ("[]", "a JSON list, not an object"),
    ("{not json", "JSONDecodeError"),
    ('{"adapter": 5}', "'adapter' is 5, not a string"),
    ('{"model": 5}', "'model' is 5, not a string"),
    ('{"base": ["smollm2"]}', "'base' is ['smollm2'], not a string"),
    ('{"base": "smollm2", "name": {}}', "'name' is {}, not a string"),
    ("{}", "names neither a model nor a base"),
    ('{"base": "no-such-base"}', "has base 'no-such-base', which does not resolve: unknown policy 'no-such-base'"),
    ("[" * 100_000, "RecursionError"),
])
def test_a_malformed_manifest_is_one_line_naming_it(manifests, content, says):
    path = manifests("odd", content)
    with pytest.raises(HarnessError) as raised:
        resolve_policy("odd")
    message = str(raised.value)
    assert message.startswith(f"policy manifest {path} ") and says in message and "\n" not in message, message
    assert "odd" in dict(list_policies())


@pytest.mark.parametrize("bases, chain", [
    ({"self": "self"}, "self -> self"),
    ({"a": "b", "b": "a"}, "a -> b -> a"),
    ({"a": "b", "b": "c", "c": "b"}, "b -> c -> b"),
])
def test_a_cycle_of_bases_is_named_in_one_line(manifests, bases, chain):
    for name, base in bases.items():
        manifests(name, {"name": name, "base": base})
    with pytest.raises(HarnessError) as raised:
        resolve_policy(next(iter(bases)))
    message = str(raised.value)
    assert f"leads back to itself through its base: {chain};" in message and "\n" not in message, message
    assert message.startswith(f"policy manifest {policies_dir() / chain.split(' ')[0] / 'policy.json'} ")


def test_a_manifest_whose_base_is_its_own_directory_is_a_cycle(manifests):
    path = manifests("loop", {"base": str(policies_dir() / "loop")})
    with pytest.raises(HarnessError, match="leads back to itself through its base: loop -> loop"):
        resolve_policy(str(path.parent))


def test_an_adapter_whose_base_is_itself_is_a_cycle(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(adapter)}))
    with pytest.raises(HarnessError, match=f"adapter {adapter} leads back to itself through its base: {adapter} -> "):
        resolve_policy(str(adapter))
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": 7}))
    with pytest.raises(HarnessError, match="unreadable adapter_config.json: ValueError: base_model_name_or_path is 7"):
        resolve_policy(str(adapter))


def test_a_name_is_whole_a_trailing_newline_is_no_name(tiny_llama, manifests):
    manifests("sft-ok", {"base": str(tiny_llama)})
    assert resolve_policy("sft-ok").model == str(tiny_llama.resolve())
    assert policy_module.NAME.match("sft-ok") and not policy_module.NAME.match("sft-ok\n")
    assert policy_module.HUB_ID.match("owner/model") and not policy_module.HUB_ID.match("owner/model\n")
    with pytest.raises(HarnessError) as raised:
        resolve_policy("sft-ok\n")
    assert str(raised.value).startswith("unknown policy 'sft-ok\\n'") and "\n" not in str(raised.value)


@pytest.mark.parametrize("spec, says", [
    ("", "the policy '' is empty"), ("  ", "the policy '  ' is empty"), ("\t", "the policy '\\t' is empty"),
    ("/no/such/dir", "policy path '/no/such/dir' does not exist"),
    ("./nowhere", "policy path './nowhere' does not exist"),
    ("~no-such-user-here/x", "policy path '~no-such-user-here/x' does not exist"),
])
def test_an_empty_or_missing_policy_is_one_line(spec, says):
    with pytest.raises(HarnessError) as raised:
        resolve_policy(spec)
    assert str(raised.value).startswith(says) and "\n" not in str(raised.value), str(raised.value)
