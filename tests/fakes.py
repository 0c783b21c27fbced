"""A fake engine with canned completions: the fast tier drives the real run path with answers known in advance."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from harness.engines import Request, Sampling
from harness.types import Completion

# (text, logprob) for sample ``index`` of the prompt whose user message is ``prompt``
Answer = Callable[[str, int], tuple[str, float]]


class FakeEngine:
    """Answers from a function of (prompt, sample index); finishes requests in reverse order, as a real engine may."""

    name = "fake"

    def __init__(self, tokenizer, answer: Answer, prompts: Sequence[str]):
        self.tokenizer = tokenizer
        self.answer = answer
        self.prompts = list(prompts)
        self.generated = 0
        self.closed = False

    def _prompt(self, request: Request) -> str:
        rendered = self.tokenizer.decode(request.token_ids)
        (prompt,) = [p for p in self.prompts if p in rendered]
        return prompt

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> Iterator[tuple[int, list[Completion]]]:
        for i in reversed(range(len(requests))):
            r = requests[i]
            prompt = self._prompt(r)
            out = []
            for j in range(r.first, r.first + r.n):
                text, logprob = self.answer(prompt, j)
                out.append(Completion(text, max(len(text.split()), 1), logprob,
                                      "length" if text.endswith("...") else "stop"))
            self.generated += len(out)
            yield i, out

    def describe(self) -> dict:
        return {"name": self.name}

    def close(self) -> None:
        self.closed = True
