"""The ``rm`` verifier: any Hugging Face sequence-classification reward model scores (prompt, response) pairs.

``--verifier rm:PATH_OR_ID`` names a local model directory (one the training package wrote, say)
or a hub id such as ``OpenAssistant/reward-model-deberta-v3-large-v2``. ``configure`` checks the
model cheaply (config and tokenizer, no weights) so a bad judge fails before any model loads; the
weights load on the first score.

The judge has its own tokenizer: policy and judge never share token ids, the response text is
re-tokenized here. The input is the judge tokenizer's chat template (user = prompt, assistant =
response) when it has one, else the text pair ``tokenizer(prompt, response)``, the way DeBERTa
reward models were trained. What does not fit the model's maximum length is cut from the *left*
of the prompt, so the response is always seen whole; only a response longer than the model's
window on its own is cut, at its end, after the whole prompt has gone (``encode_pair``, the rule
``harness train rm`` trains on too); a judge whose template alone exceeds its window gives each pair
a ``Score`` error. Pairs are scored in
batches across examples, sorted by length (little padding), on the GPU in bf16 where there is
one, in float32 on CPU. Each verdict is ``Score.from_logit(reward)``: the logistic function of
the raw reward as its value, the raw reward itself in ``Score.raw``.

Options (``--verifier-arg``): ``index=K``, the output that is the reward when the model has
several labels (or ``reward_index`` in its config.json); ``batch_size`` (default 32) and
``max_batch_tokens`` (padded tokens per forward pass; default 16384 on a GPU and 2048 on CPU, where
one pair already keeps the cores about half busy and large batches measured slower than single pairs:
``bench/rm_speed.py``); ``max_length``, a cap below the model's own maximum.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import harness
from harness.errors import choices, describe
from harness.plugins import int_option
from harness.policy import HUB_ID, reward_models_dir

CONFIG_FILES = ["*.json", "*.txt", "*.model", "*.jinja", "tokenizer*", "spm*", "*.tiktoken"]
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
OPTIONS = ("index", "batch_size", "max_batch_tokens", "max_length")
# Padded tokens per forward pass: large batches pay on a GPU; on a CPU they lose to small ones
# (bench/rm_speed.py; docs/performance.md).
GPU_BATCH_TOKENS, CPU_BATCH_TOKENS = 16384, 2048
UNBOUNDED = 1_000_000  # tokenizers without a maximum say ~1e30; anything above this means "not set"


def _fetch(repo_id: str, patterns: list[str]) -> Path:
    """A hub snapshot (only the files ``patterns`` match); offline or missing, one line saying what to do."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:  # offline, auth, no such repo: the remedy is the same
        reason = describe(exc)
        raise harness.HarnessError(f"reward model {repo_id!r} is not a local directory and could not be fetched "
                                   f"from the Hugging Face hub ({reason}); pass a local model directory") from None


def _locate(model: str) -> tuple[Path, str | None]:
    """The directory holding the model's config and tokenizer, and its hub id when it came from the hub."""
    path = Path(model).expanduser()
    trained = reward_models_dir() / model
    if not path.exists() and "/" not in model and trained.is_dir():
        path = trained  # a reward model `harness train rm` wrote: rm:NAME
    if path.exists():
        if not path.is_dir():
            raise harness.HarnessError(f"reward model {model} is a file; pass a model directory")
        return path.resolve(), None
    if not HUB_ID.match(model):
        raise harness.HarnessError(f"reward model {model!r}: no such directory (nor a trained reward model in "
                                   f"{reward_models_dir()}, nor a hub id like owner/name)")
    return _fetch(model, CONFIG_FILES), model


def _reward_index(path: Path, config: Any, index: Any) -> int:
    """Which output is the reward: the only one, or the declared one among several."""
    labels = int(getattr(config, "num_labels", 1) or 1)
    declared = index if index is not None else getattr(config, "reward_index", None)
    if declared is None:
        if labels > 1:
            names = ", ".join(f"{i}={n}" for i, n in sorted((getattr(config, "id2label", None) or {}).items()))
            raise harness.HarnessError(
                f"reward model {path} has {labels} output labels ({names}); say which is the reward with "
                f"--verifier-arg index=K (or reward_index in its config.json)")
        return 0
    number = int_option("rm", "index", declared, 0)
    if number >= labels:
        raise harness.HarnessError(f"reward index {number} is out of range: {path} has {labels} output label(s)")
    return number


def _tokenize(tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> list[dict[str, list[int]]]:
    """Untruncated ids (and token types, where the tokenizer makes them) of many pairs, in one tokenizer call."""
    if getattr(tokenizer, "chat_template", None):
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                                               tokenize=False) for p, r in pairs]
        encoded = tokenizer(texts, add_special_tokens=False, verbose=False)
    else:
        encoded = tokenizer([p for p, _ in pairs], [r for _, r in pairs], verbose=False)
    keys = [k for k in ("input_ids", "token_type_ids") if k in encoded]
    return [{k: list(encoded[k][i]) for k in keys} for i in range(len(pairs))]


def _cut(tokenizer: Any, text: str, drop: int, left: bool) -> str:
    """``text`` without its first (``left``) or last ``drop`` tokens, cut at a token boundary and always shorter
    (tokens that share a character, as byte-level pieces of one emoji do, go together)."""
    spans = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    if drop >= len(spans):
        return ""
    if left:
        return text[max(spans[drop][0], spans[0][1]):]
    return text[: min(spans[len(spans) - drop - 1][1], spans[-1][0])]


def _fit(tokenizer: Any, max_length: int, prompt: str, response: str,
         encoded: dict[str, list[int]]) -> dict[str, list[int]] | None:
    """Cut one pair until it fits: prompt tokens from the left, then the response's end; None if nothing is left
    to cut."""
    while (excess := len(encoded["input_ids"]) - max_length) > 0:
        if prompt:
            prompt = _cut(tokenizer, prompt, excess, left=True)
        elif response:
            response = _cut(tokenizer, response, excess, left=False)
        else:
            return None
        (encoded,) = _tokenize(tokenizer, [(prompt, response)])
    return encoded


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]],
                 max_length: int) -> list[dict[str, list[int]] | None]:
    """``encode_pair`` of many pairs, in a few batched tokenizer calls: a pair too long is cut where the token
    counts say, re-tokenized, and cut further one pair at a time in the rare case that tokens merged across a cut."""
    encoded: list[dict[str, list[int]] | None] = list(_tokenize(tokenizer, pairs)) if pairs else []
    long = [i for i, e in enumerate(encoded) if len(e["input_ids"]) > max_length]
    if not long:
        return encoded
    spans = [tokenizer([pairs[i][side] for i in long], add_special_tokens=False, return_offsets_mapping=True,
                       verbose=False)["offset_mapping"] for side in (0, 1)]
    cut = []
    for i, prompt_spans, response_spans in zip(long, *spans, strict=True):
        prompt, response = pairs[i]
        room = max_length - (len(encoded[i]["input_ids"]) - len(prompt_spans) - len(response_spans))
        keep = room - len(response_spans)  # prompt tokens that still fit
        if keep > 0:
            cut.append((prompt[prompt_spans[len(prompt_spans) - keep][0]:], response))
        else:
            cut.append(("", response[: response_spans[room - 1][1]] if room > 0 else ""))
    for i, (prompt, response), e in zip(long, cut, _tokenize(tokenizer, cut), strict=True):
        encoded[i] = _fit(tokenizer, max_length, prompt, response, e)
    return encoded


def encode_pair(tokenizer: Any, prompt: str, response: str, max_length: int) -> dict[str, list[int]] | None:
    """A reward model's input for (prompt, response), the one rule for training and scoring, so that a reward
    model is trained on exactly the input it is scored on: the tokenizer's chat template (user = prompt,
    assistant = response) where it has one, else its text pair, with ``token_type_ids`` where it makes them.

    Over ``max_length``, prompt tokens go from the left, and the response's end only once no prompt is left:
    the response is what is judged, and its start says what it answers and how; the prompt's end is the
    request itself, nearest the response, while its start is the context most often dispensable. None when
    even an empty prompt and response do not fit (the template alone is longer than ``max_length``).
    """
    return encode_pairs(tokenizer, [(prompt, response)], max_length)[0]


class RewardModel:
    """A configured reward model: ``score_texts`` for raw rewards of text pairs, ``score_batch`` for the harness."""

    name = "rm"
    reference_free = True

    def __init__(self, model: str, index: Any = None, batch_size: Any = 32, max_batch_tokens: Any = None,
                 max_length: Any = None) -> None:
        import torch
        from transformers import AutoConfig, AutoTokenizer

        self.source = model
        self.path, self.hub_id = _locate(model)
        if not (self.path / "config.json").is_file():
            raise harness.HarnessError(f"{model} is not a Hugging Face model directory: it has no config.json")
        try:
            config = AutoConfig.from_pretrained(self.path)
        except Exception as exc:  # no/garbled config.json, unknown model type
            raise harness.HarnessError(f"{model} is not a Hugging Face model directory ("
                                       f"{describe(exc)})") from None
        architectures = list(getattr(config, "architectures", None) or [])
        if not any(a.endswith("ForSequenceClassification") for a in architectures):
            raise harness.HarnessError(
                f"{model} is not a reward model: its config.json names {', '.join(architectures) or 'no architecture'}"
                f", not a *ForSequenceClassification model")
        if self.hub_id is None and not any(f for p in WEIGHT_PATTERNS for f in self.path.glob(p)):
            raise harness.HarnessError(f"reward model {model} has no weights (*.safetensors or pytorch_model*.bin)")
        self.index = _reward_index(self.path, config, index)
        self.batch_size = int_option("rm", "batch_size", batch_size, 1)
        if max_batch_tokens is None:
            max_batch_tokens = GPU_BATCH_TOKENS if torch.cuda.is_available() else CPU_BATCH_TOKENS
        self.max_batch_tokens = int_option("rm", "max_batch_tokens", max_batch_tokens, 1)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        except Exception as exc:
            raise harness.HarnessError(f"reward model {model} has no usable tokenizer ({type(exc).__name__})") from None
        if not getattr(self.tokenizer, "is_fast", False):
            raise harness.HarnessError(f"reward model {model} needs a fast (tokenizers) tokenizer; "
                                       f"{type(self.tokenizer).__name__} is not one")
        limits = [getattr(config, "max_position_embeddings", None), self.tokenizer.model_max_length]
        if max_length is not None:
            limits.append(int_option("rm", "max_length", max_length, 8))
        self.max_length = min([n for n in limits if isinstance(n, int) and 0 < n < UNBOUNDED] or [UNBOUNDED])
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        if self.tokenizer.pad_token is None:  # decoder reward models often have none; the model reads the last real one
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self._model: Any = None
        self._pad_id = self.tokenizer.pad_token_id
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RewardModel({self.source!r}, index={self.index})"

    # -- input ------------------------------------------------------------------------

    def encode(self, prompt: str, response: str) -> dict[str, list[int]] | None:
        """The judge's input for one pair, exactly as ``encode_pair`` builds it (and training reads it)."""
        return encode_pair(self.tokenizer, prompt, response, self.max_length)

    def _collate(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        """Padded tensors with an attention mask, on the tokenizer's padding side."""
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        left = self.tokenizer.padding_side == "left"

        def pad(seq: list[int], value: int) -> list[int]:
            fill = [value] * (width - len(seq))
            return fill + seq if left else seq + fill

        batch = {"input_ids": [pad(r["input_ids"], self._pad_id) for r in rows],
                 "attention_mask": [pad([1] * len(r["input_ids"]), 0) for r in rows]}
        if "token_type_ids" in rows[0]:
            batch["token_type_ids"] = [pad(r["token_type_ids"], 0) for r in rows]
        return {k: torch.tensor(v) for k, v in batch.items()}

    # -- scoring ----------------------------------------------------------------------

    def load(self) -> Any:
        """The model, loaded once on first use: GPU in bf16 where supported, CPU in float32."""
        with self._lock:
            if self._model is None:
                import torch
                from transformers import AutoModelForSequenceClassification
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # the harness shows its own progress
                path = self.path
                for weights in WEIGHT_PATTERNS if self.hub_id else ():  # safetensors, else .bin: never both
                    path = _fetch(self.hub_id, [*CONFIG_FILES, weights])
                    if any(path.glob(weights)):
                        break
                cuda = torch.cuda.is_available()
                dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
                model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype)
                if model.config.pad_token_id is None:
                    model.config.pad_token_id = self.tokenizer.pad_token_id
                self._pad_id = model.config.pad_token_id  # what last-token models look for to find the end
                self._model = model.to("cuda" if cuda else "cpu").eval()
            return self._model

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices longest first, grouped so no batch exceeds ``batch_size`` pairs or ``max_batch_tokens`` padded."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        for i in order:
            batch = batches[-1] if batches else None
            # sorted longest first, so a batch's padded width is the length of its first pair
            if batch and len(batch) < self.batch_size and lengths[batch[0]] * (len(batch) + 1) <= self.max_batch_tokens:
                batch.append(i)
            else:
                batches.append([i])
        return batches

    def unfit(self) -> str:
        """Why a pair has no input: the same reason for every pair, since the template alone is too long."""
        return f"the judge's input template alone is longer than its maximum length {self.max_length}"

    def rewards(self, pairs: Sequence[tuple[str, str]]) -> list[float | None]:
        """Raw rewards (the model's reward logit) of (prompt, response) text pairs, in order; None for a pair
        that cannot fit the judge's window (``encode_pair``)."""
        import torch

        encoded = encode_pairs(self.tokenizer, pairs, self.max_length)
        fitted = [i for i, e in enumerate(encoded) if e is not None]
        rewards: list[float | None] = [None] * len(pairs)
        if not fitted:
            return rewards
        model = self.load()
        with torch.inference_mode():
            for batch in self._batches([len(encoded[i]["input_ids"]) for i in fitted]):
                inputs = self._collate([encoded[fitted[j]] for j in batch])
                logits = model(**{k: v.to(model.device) for k, v in inputs.items()}).logits
                for j, value in zip(batch, logits[:, self.index].float().tolist(), strict=True):
                    rewards[fitted[j]] = value
        return rewards

    def score_texts(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Raw rewards of (prompt, response) text pairs, in order; a pair that cannot fit is a one-line error.

        The win-rate grader and the training package call this directly; the harness calls
        ``score_batch`` through ``harness.verify``.
        """
        rewards = self.rewards(pairs)
        if any(r is None for r in rewards):
            raise harness.HarnessError(f"reward model {self.source}: {self.unfit()}")
        return rewards

    def score_batch(self, pairs: Sequence[tuple[harness.Example, str]]) -> list[harness.Score]:
        """Verdicts on completions to their examples' prompts: the squashed reward as the value, the raw one in
        ``raw``; a pair that cannot fit is that pair's error."""
        return [harness.Score(0.0, error=self.unfit()) if r is None else harness.Score.from_logit(r)
                for r in self.rewards([(e.prompt, text) for e, text in pairs])]

    def score(self, example: harness.Example, completion: str) -> harness.Score:
        return self.score_batch([(example, completion)])[0]


class RewardModelFactory:
    """What ``rm`` names before it is given a model: ``configure(PATH_OR_ID, **options)`` builds a ``RewardModel``."""

    name = "rm"
    reference_free = True

    def configure(self, model: str | None = None, **options: Any) -> RewardModel:
        if not model:
            raise harness.HarnessError("verifier rm needs a reward model: --verifier rm:PATH_OR_HUB_ID")
        for key in options:
            if key not in OPTIONS:
                raise choices("rm option", key, list(OPTIONS))
        return RewardModel(model, **options)


@harness.hookimpl
def register_verifiers() -> list:
    return [RewardModelFactory()]
