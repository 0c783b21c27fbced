"""Prompt rendering: an example becomes the text the model sees and its token ids, once, for every engine.

Rendering outside the engines means vLLM and transformers are given the very same token ids, and the record
keeps the exact prompt text each sample answered.
"""

from __future__ import annotations

import os

from harness.errors import HarnessError
from harness.policy import Policy
from harness.types import Example


def has_tokenizer(folder: str) -> bool:
    """Whether a model or adapter folder carries its own tokenizer (an adapter may have changed the template)."""
    return os.path.exists(os.path.join(folder, "tokenizer_config.json"))


class Renderer:
    """Applies the chat template (when there is one and it is wanted) and tokenizes, once, for every engine."""

    def __init__(self, policy: Policy, chat_template: bool = True, system_prompt: str | None = None):
        from transformers import AutoTokenizer

        source = policy.adapter if policy.adapter and has_tokenizer(policy.adapter) else policy.model
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        self.chat = chat_template and bool(getattr(self.tokenizer, "chat_template", None))
        if system_prompt and not self.chat:
            raise HarnessError("--system-prompt needs a chat template, and this policy's tokenizer has none "
                               "(or --no-chat-template was given)")
        self.system_prompt = system_prompt

    def render(self, example: Example) -> tuple[str, list[int]]:
        """The prompt text the model sees (recorded with every sample) and its token ids."""
        if not self.chat:
            text = "".join(f"{q}\n{a}\n\n" for q, a in example.shots) + example.prompt
            return text, self.tokenizer(text).input_ids
        messages = [{"role": role, "content": content} for q, a in example.shots
                    for role, content in (("user", q), ("assistant", a))]
        messages.append({"role": "user", "content": example.prompt})
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text, self.tokenizer(text, add_special_tokens=False).input_ids
