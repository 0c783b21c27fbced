"""Tiny randomly initialised models with real tokenizers: the test fixtures and bench/gpu_check.py build them here."""

from __future__ import annotations

from pathlib import Path


def gguf_tokenizer(folder: str | Path, gguf_file: str, out: Path) -> Path:
    """A GGUF file's tokenizer (and chat template) saved as a Hugging Face folder; the weights are not read."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file).save_pretrained(out)
    return out


def tiny_llama(tokenizer_dir: str | Path, out: Path) -> Path:
    """A 2-layer Llama causal LM with ``tokenizer_dir``'s tokenizer and chat template: fast, real weights."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_bert(tokenizer_dir: str | Path, out: Path, head: bool = False, max_positions: int = 512,
              seed: int = 0, **config) -> Path:
    """A 2-layer BERT with ``tokenizer_dir``'s tokenizer: an encoder laid out like the MiniLM package (no head),
    or with ``head`` a sequence classifier (``config`` passes e.g. ``num_labels``)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=max_positions, **config)
    torch.manual_seed(seed)
    (BertForSequenceClassification if head else BertModel)(cfg).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
