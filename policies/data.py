"""Training data: offline files (``../shared/data``), hub datasets for online users, and the harness's own tasks.

Each source is a mapping in a recipe, ``{source: NAME, path: ..., rows: N, ...}``, and yields one
kind of row: SFT conversations (``prompt``/``completion`` chat messages), preference pairs, or
RL prompts (harness ``Example``s, so that rewards are the harness's verifiers). A row that does not
fit the source's schema is skipped and counted, never a crash; instruction data keeps only the
TRAIN half of the instruction split (``tasks.alpaca.instruction_split``), so an evaluation
instruction is never trained on, and what that excluded is counted too.

``half: A`` or ``half: B`` keeps one of two disjoint halves of a source's rows, by a content hash of the
prompt's user turns normalised as lineage digests them (``harness.provenance.normalise_prompt``): a judge trained on
half B never saw a prompt of a policy trained on half A, however a dataset spelled it (``overlap`` says when two
data lists may share prompts). A hub dataset is read from a local mirror,
``$HARNESS_DATA/OWNER/NAME/SPLIT.jsonl``, where there is one; offline (``HF_HUB_OFFLINE``) a hub id with no
mirror is a one-line error before any network access.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import harness
import harness.rows
from harness import splits
from harness.errors import HarnessError, choices
from harness.plugins import Spec, registry
from harness.provenance import example_turns, normalise_prompt
from harness.rows import shared_data
from policies.config import show

KINDS = ("sft", "pref", "prompt")
KIND_OF_METHOD = {"sft": "sft", "dpo": "pref", "rm": "pref", "rloo": "prompt", "rft": "prompt"}
CALC = re.compile(r"<<[^<>]*>>")
HH_TURN = re.compile(r"\n\n(Human|Assistant):")
HALVES = ("A", "B")


Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Pair:
    """One preference: the conversation so far, and the preferred and dispreferred final assistant turns."""

    prompt: Messages
    chosen: str
    rejected: str


@dataclass
class Counts:
    """What one source gave: rows read, kept, skipped for not fitting the schema, and excluded on purpose."""

    source: str
    path: str | None = None
    read: int = 0
    kept: int = 0
    skipped: int = 0
    eval_split: int = 0  # instruction rows in the evaluation half of the split
    ties: int = 0  # preference rows with no preferred side
    other_half: int = 0  # rows of the half this source does not keep (``half: A`` or ``B``)
    unsolvable: int = 0  # Countdown rows no expression using every number exactly once reaches
    reasons: dict[str, int] = field(default_factory=dict)
    component: dict[str, Any] | None = None  # a harness task: the registry's record of it (plugin, version, options)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


class Malformed(Exception):
    """A row that does not fit the schema; its message is the reason counted in the manifest."""


@dataclass(frozen=True)
class Take:
    """Which of a source's good rows are kept: those of ``half`` (all without one), then a sample of ``limit``
    of them seeded by ``seed`` (all without a limit)."""

    seed: int = 0
    limit: int | None = None
    half: str | None = None


def check(specs: list[dict[str, Any]], kind: str) -> None:
    """Source names, the kind of rows they give, and ``rows``: checked before anything slow happens."""
    for spec in specs:
        name = str(spec.get("source"))
        if name not in SOURCES:
            raise choices("data source", name, list(SOURCES))
        if kind not in SOURCES[name].kinds:
            offered = [n for n, s in SOURCES.items() if kind in s.kinds]
            raise HarnessError(f"data source {name!r} gives no {_KIND_NAMES[kind]}; sources that do: "
                               f"{', '.join(offered)}")
        if "half" in spec and not SOURCES[name].default and "path" not in spec:
            raise HarnessError(f"data source {name}: half= splits a file's prompts; {name} names no file")
        limit = spec.get("rows")
        if limit is not None and (type(limit) is not int or limit < 1):
            raise HarnessError(f"data source {name}: rows={show(limit)} must be a positive integer")
        for key, (wanted, fits) in OPTION_TYPES.items():
            if key in spec and not fits(spec[key]):
                raise HarnessError(f"data source {name}: {key}={show(spec[key])} must be {wanted}")


OPTION_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "path": ("a non-empty string without NUL bytes (quote a name YAML reads as a number)",
             lambda v: isinstance(v, str) and bool(v.strip()) and "\0" not in v),
    "split": ("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip())),
    "task": ("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip())),
    "args": ("a mapping of task options", lambda v: v is None or isinstance(v, dict)),
    "shots": ("a non-negative integer", lambda v: type(v) is int and v >= 0),
    "min_margin": ("a finite number >= 0", lambda v: type(v) in (int, float) and math.isfinite(v) and v >= 0),
    "half": ("A or B", lambda v: v in HALVES),
}


def load(specs: list[dict[str, Any]], kind: str, seed: int = 0) -> tuple[list[Any], list[Counts]]:
    """All rows of ``kind`` from the recipe's data sources, in order, with a ``Counts`` per source."""
    check(specs, kind)
    rows: list[Any] = []
    counts: list[Counts] = []
    for spec in specs:
        spec = dict(spec)
        name = str(spec.pop("source"))
        source = SOURCES[name]
        take = Take(seed, spec.pop("rows", None), spec.pop("half", None))
        if source.default and "path" not in spec:
            spec["path"] = source.default
        count = Counts(name)
        got = source.read(spec, kind, count, take)
        if not got:
            raise HarnessError(f"data source {name} ({count.path or 'generated'}) gave no usable rows "
                               f"({count.read} read, {count.skipped} skipped: {count.reasons or 'none'})")
        rows.extend(got)
        counts.append(count)
    return rows, counts


_KIND_NAMES = {"sft": "SFT conversations", "pref": "preference pairs", "prompt": "RL prompts"}


@dataclass(frozen=True)
class Source:
    kinds: tuple[str, ...]
    read: Callable[[dict[str, Any], str, Counts, Take], list[Any]]
    default: str | None = None  # the file or hub id read when the spec names no path


# ---------------------------------------------------------------- halves

def prompt_turns(row: Any) -> list[str]:
    """A row's prompt as lineage digests it and halves hash it: the user turns of an SFT conversation's or a
    preference pair's prompt, and an RL example's as the renderer builds it (worked examples' questions first)."""
    if isinstance(row, harness.Example):
        return example_turns(row)
    messages = row.prompt if isinstance(row, Pair) else row["prompt"]
    return [m["content"] for m in messages if m.get("role") == "user"]


def half_of(row: Any) -> str:
    """``A`` or ``B`` for a row, by a content hash of its normalised prompt salted apart from the train/eval
    instruction split and from a reward model's held-out share (both hash the same texts)."""
    return HALVES[splits.fraction(f"half\n{normalise_prompt(prompt_turns(row))}") >= 0.5]


def pool(spec: dict[str, Any]) -> str:
    """Which prompts a data source draws from: AlpacaEval's instructions for every file of that set, else its file
    (or hub id) by its resolved place under the data root or absolute path, however the recipe spelled it; else
    its task."""
    source = SOURCES.get(str(spec.get("source")))
    where = spec.get("path") or (source.default if source else None)
    if not where:
        return str(spec.get("task") or spec.get("source"))
    root = shared_data().resolve()
    place = harness.rows.locate(str(where)) or root / str(where)
    with contextlib.suppress(OSError, ValueError):  # a name no file system holds (a NUL byte): as written
        place = place.resolve()
    if not place.is_relative_to(root):
        return str(place)
    parts = place.relative_to(root).parts
    return "alpaca_eval" if parts[:1] == ("alpaca_eval",) else "/".join(parts)


def overlap(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> tuple[str, str] | None:
    """Two data sources, one of each list, that may share prompts: the same pool, unless both keep halves and
    different ones; None when the lists are disjoint by construction."""
    for a in first:
        for b in second:
            if pool(a) == pool(b) and not (a.get("half") and b.get("half") and a["half"] != b["half"]):
                return describe_source(a), describe_source(b)
    return None


def describe_source(spec: dict[str, Any]) -> str:
    half = f"half {spec['half']}" if spec.get("half") else "no half"
    return f"{spec.get('source')} ({pool(spec)}, {half})"


# ---------------------------------------------------------------- files and the hub

def read_rows(path: str, count: Counts, split: str = "train", config: str | None = None) -> Iterable[Any]:
    """Raw rows of a local JSONL/JSON/Parquet file (or folder of them), of a hub dataset's local mirror or of a hub
    dataset split (``harness.rows.read_rows``); a line that is not JSON comes as a row to skip and count."""
    local = harness.rows.locate(path, split)
    count.path = str(local) if local else path
    remedy = f"pass path= a local file with the same fields (data source {count.source})"
    return harness.rows.read_rows(path, "", remedy, split=split, config=config, bad_line=_BAD_JSON)


_BAD_JSON = object()


def _limited(rows: Iterable[Any], convert: Callable[[Any], Any], count: Counts, take: Take,
             solvable: Callable[[Any], bool] | None = None) -> list[Any]:
    """Convert every row (counting the ones that do not fit), keep those of the half, then a seeded sample of
    ``limit`` of them; ``solvable``, too slow for every row, is asked of the sample's rows only."""
    kept = []
    for row in rows:
        count.read += 1
        try:
            if row is _BAD_JSON:
                raise Malformed("not valid JSON")
            if not isinstance(row, dict):
                raise Malformed("not a JSON object")
            out = convert(row)
        except Malformed as exc:
            count.skip(str(exc))
            continue
        if out is _EVAL_SPLIT:
            count.eval_split += 1
        elif out is _TIE:
            count.ties += 1
        elif take.half is not None and half_of(out) != take.half:
            count.other_half += 1
        else:
            kept.append(out)
    if solvable is not None:
        kept = _solvable(kept, solvable, count, take)
    elif take.limit is not None and take.limit < len(kept):
        kept = random.Random(take.seed).sample(kept, take.limit)
    count.kept = len(kept)
    return kept


def _solvable(rows: list[Any], solvable: Callable[[Any], bool], count: Counts, take: Take) -> list[Any]:
    """The first ``limit`` rows in a seeded shuffle (all rows in order without a limit) that ``solvable`` accepts,
    the ones it refuses on the way counted."""
    if take.limit is not None:
        rows = random.Random(take.seed).sample(rows, len(rows))
    kept = []
    for row in rows:
        if take.limit is not None and len(kept) == take.limit:
            break
        if solvable(row):
            kept.append(row)
        else:
            count.unsolvable += 1
    return kept


_EVAL_SPLIT = object()
_TIE = object()


def _text(row: dict, key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Malformed(f"missing or empty {key!r}")
    return value


def _in_train_split(instruction: str) -> bool:
    """The instruction-following issue's split: a stable hash of the instruction text, about half each."""
    from tasks.alpaca import instruction_split

    return instruction_split(instruction) == "train"


def _options(spec: dict[str, Any], name: str, allowed: tuple[str, ...]) -> None:
    unknown = set(spec) - set(allowed)
    if unknown:
        raise choices(f"{name} data option", sorted(unknown)[0], ["rows", *allowed])


# ---------------------------------------------------------------- SFT conversations

def sft_row(prompt: Messages, answer: str) -> dict[str, Messages]:
    """TRL's conversational prompt-completion row: the loss is on the completion only."""
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": answer}]}


def example_messages(example: harness.Example) -> Messages:
    """The chat the harness's renderer builds for an example: worked examples as prior turns, then the prompt."""
    messages = [{"role": role, "content": text} for q, a in example.shots
                for role, text in (("user", q), ("assistant", a))]
    return [*messages, {"role": "user", "content": example.prompt}]


def countdown_answer(example: harness.Example) -> str:
    """The think/answer format the Countdown verifier reads, around the solution the generator knows."""
    solution, target = example.meta.get("solution"), example.meta.get("target")
    if not solution:
        raise Malformed("countdown problem without a known solution")
    return f"<think> {solution} = {target} </think>\n<answer> {solution} </answer>"


def gsm8k_answer(solution: str) -> str:
    """A GSM8K worked solution in the chat prompt's format: steps without calculator marks, then the answer line."""
    steps, sep, answer = solution.rpartition("####")
    if not sep or not answer.strip():
        raise Malformed("answer has no '#### <number>' line")
    lines = [CALC.sub("", line).strip() for line in steps.strip().splitlines() if line.strip()]
    return "\n".join([*lines, f"Final answer: {answer.strip().replace(',', '')}"])


ANSWERS: dict[str, Callable[[harness.Example], str]] = {
    "countdown": countdown_answer,
    "gsm8k": lambda ex: gsm8k_answer(str(ex.meta.get("solution", ""))),
    "gsm8k-synth": lambda ex: gsm8k_answer(str(ex.meta.get("solution", ""))),
}


def task_examples(spec: dict[str, Any], seed: int, limit: int | None) -> tuple[Spec, list[harness.Example]]:
    """TRAIN-split examples of a harness task (``task: countdown``, ``args: {numbers: "3", shots: 0}``), built
    through the plugin registry as evaluation builds it."""
    _options(spec, "task", ("task", "args", "split"))
    args = spec.get("args") or {}
    if not isinstance(args, dict):
        raise HarnessError(f"task data args={args!r} must be a mapping")
    task_spec = Spec.parse("task", str(spec.get("task", "")), {k: str(v) for k, v in args.items()})
    task = registry().build(task_spec)
    split = spec.get("split", "train")
    return task_spec, list(task.examples(split=split, limit=limit, seed=seed))


def _read_task(spec: dict[str, Any], kind: str, count: Counts, take: Take) -> list[Any]:
    task_spec, examples = task_examples(spec, take.seed, take.limit)
    name = task_spec.name
    count.path = f"task:{name}"
    count.component = registry().describe(task_spec)
    if kind == "prompt":
        count.read = count.kept = len(examples)
        return examples
    if name not in ANSWERS:
        raise HarnessError(f"task {name!r} has no known solutions to fine-tune on; SFT tasks: {', '.join(ANSWERS)}")
    rows = []
    for ex in examples:
        count.read += 1
        try:
            rows.append(sft_row(example_messages(ex), ANSWERS[name](ex)))
        except Malformed as exc:
            count.skip(str(exc))
    count.kept = len(rows)
    return rows


def _read_gsm8k(spec: dict[str, Any], kind: str, count: Counts, take: Take) -> list[Any]:
    """GSM8K-layout rows (``question``, ``answer`` ending ``#### N``): worked solutions, or prompts for ``sympy``."""
    _options(spec, "gsm8k", ("path",))
    from tasks.gsm8k import chat_prompt, reference_of

    def convert(row: dict) -> Any:
        question, solution = _text(row, "question"), _text(row, "answer")
        answer = gsm8k_answer(solution)
        if kind == "sft":
            return sft_row([{"role": "user", "content": chat_prompt(question)}], answer)
        return harness.Example(chat_prompt(question), reference_of(solution), {"solution": solution},
                               id=f"gsm8k-train-{count.read}")

    return _limited(read_rows(spec["path"], count), convert, count, take)


def _read_conversations(spec: dict[str, Any], kind: str, count: Counts, take: Take) -> list[Any]:
    """LIMA's ``conversations`` (alternating user/assistant strings) or chat ``messages`` (SmolTalk): the last
    assistant turn is the completion, every turn before it the prompt."""
    _options(spec, "conversations", ("path", "split"))

    def convert(row: dict) -> Any:
        if "conversations" in row:
            turns = row["conversations"]
            if not isinstance(turns, list) or len(turns) < 2 or len(turns) % 2:
                raise Malformed("conversations is not an even list of turns")
            messages = [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)]
        else:
            messages = row.get("messages")
            if not isinstance(messages, list) or len(messages) < 2:
                raise Malformed("no conversations or messages list")
        messages = [_message(m) for m in messages]
        if messages[-1]["role"] != "assistant" or not any(m["role"] == "user" for m in messages[:-1]):
            raise Malformed("conversation does not end with an assistant turn after a user turn")
        return {"prompt": messages[:-1], "completion": messages[-1:]}

    return _limited(read_rows(spec["path"], count, spec.get("split", "train")), convert, count, take)


def _message(m: Any) -> dict[str, str]:
    if isinstance(m, str):
        raise Malformed("message is a bare string where a {role, content} mapping is expected")
    if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
        raise Malformed("message without a system/user/assistant role")
    if not isinstance(m.get("content"), str) or not m["content"].strip():
        raise Malformed("message with empty content")
    return {"role": m["role"], "content": m["content"]}


def _read_jsonl(spec: dict[str, Any], kind: str, count: Counts, take: Take) -> list[Any]:
    """Rows this package writes (``harness augment``) or any file of the same shape: ``prompt``/``completion``
    messages for SFT, ``prompt``/``chosen``/``rejected`` for preferences."""
    _options(spec, "jsonl", ("path",))
    if "path" not in spec:
        raise HarnessError("data source jsonl needs path=FILE")

    def convert(row: dict) -> Any:
        prompt = row.get("prompt")
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if not isinstance(prompt, list) or not prompt:
            raise Malformed("prompt is neither text nor a message list")
        prompt = [_message(m) for m in prompt]
        if kind == "sft":
            return {"prompt": prompt, "completion": [{"role": "assistant", "content": _reply(row, "completion")}]}
        return Pair(prompt, _reply(row, "chosen"), _reply(row, "rejected"))

    return _limited(read_rows(str(spec["path"]), count), convert, count, take)


def _reply(row: dict, key: str) -> str:
    value = row.get(key)
    if isinstance(value, list) and value:
        value = _message(value[-1])["content"]
    if not isinstance(value, str) or not value.strip():
        raise Malformed(f"missing or empty {key!r}")
    return value


# ---------------------------------------------------------------- preference pairs

def _read_alpaca_judge(spec: dict[str, Any], kind: str, count: Counts, take: Take) -> list[Any]:
    """AlpacaEval's GPT-4 Turbo verdicts: ``preference`` 1 prefers ``output_1``, 2 ``output_2``; 1.5 is a tie."""
    _options(spec, "alpaca-judge", ("path", "min_margin"))
    margin = float(spec.get("min_margin", 0.0))

    def convert(row: dict) -> Any:
        instruction = _text(row, "instruction")
        if not _in_train_split(instruction):
            return _EVAL_SPLIT
        first, second = _text(row, "output_1"), _text(row, "output_2")
        preference = row.get("preference")
        if type(preference) not in (int, float) or not 1 <= preference <= 2:
            raise Malformed("preference is not a number in [1, 2]")
        if abs(preference - 1.5) <= margin or preference == 1.5:
            return _TIE
        chosen, rejected = (first, second) if preference < 1.5 else (second, first)
        return Pair([{"role": "user", "content": instruction}], chosen, rejected)

    return _limited(read_rows(spec["path"], count), convert, count, take)


def hh_messages(transcript: str) -> Messages:
    """An HH-RLHF transcript (``\\n\\nHuman: ...\\n\\nAssistant: ...``, ending at an Assistant marker) as chat turns."""
    parts = HH_TURN.split(transcript)
    if parts[0].strip() or len(parts) < 3:
        raise Malformed("prompt is not a Human/Assistant transcript")
    roles = {"Human": "user", "Assistant": "assistant"}
    messages = [{"role": roles[who], "content": text.strip()} for who, text in zip(parts[1::2], parts[2::2],
                                                                                   strict=True)]
    if messages[-1] != {"role": "assistant", "content": ""} or len(messages) < 2:
        raise Malformed("transcript does not end with an empty Assistant turn")
    messages = messages[:-1]
    if any(not m["content"] for m in messages) or messages[-1]["role"] != "user":
        raise Malformed("transcript has an empty turn or does not end with the user")
    return messages


def _read_hh(spec: dict[str, Any], kind: str, count: Counts, take: Take) -> list[Any]:
    """Anthropic HH-RLHF pairs: ``prompt`` (a transcript up to its last Assistant marker), ``chosen``, ``rejected``."""
    _options(spec, "hh-harmless", ("path",))

    def convert(row: dict) -> Any:
        prompt = hh_messages(_text(row, "prompt"))
        chosen, rejected = _text(row, "chosen").strip(), _text(row, "rejected").strip()
        if not chosen or not rejected or chosen == rejected:
            raise Malformed("chosen and rejected are empty or identical")
        if not _in_train_split(next(m["content"] for m in prompt if m["role"] == "user")):
            return _EVAL_SPLIT
        return Pair(prompt, chosen, rejected)

    return _limited(read_rows(spec["path"], count), convert, count, take)


def _read_ultrafeedback(spec: dict[str, Any], kind: str, count: Counts, take: Take) -> list[Any]:
    """``HuggingFaceH4/ultrafeedback_binarized`` (split ``train_prefs``): ``chosen``/``rejected`` are whole chats
    that share every turn but the last."""
    _options(spec, "ultrafeedback", ("path", "split"))

    def convert(row: dict) -> Any:
        chosen, rejected = row.get("chosen"), row.get("rejected")
        if not isinstance(chosen, list) or not isinstance(rejected, list) or len(chosen) < 2:
            raise Malformed("chosen/rejected are not chat message lists")
        chosen, rejected = [_message(m) for m in chosen], [_message(m) for m in rejected]
        if chosen[:-1] != rejected[:-1] or chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
            raise Malformed("chosen and rejected do not share a prompt and end with an assistant turn")
        if chosen[-1]["content"] == rejected[-1]["content"]:
            return _TIE
        if not _in_train_split(next(m["content"] for m in chosen if m["role"] == "user")):
            return _EVAL_SPLIT
        return Pair(chosen[:-1], chosen[-1]["content"], rejected[-1]["content"])

    return _limited(read_rows(spec["path"], count, spec.get("split", "train_prefs")), convert, count, take)


# ---------------------------------------------------------------- RL prompts

def _read_countdown_data(spec: dict[str, Any], kind: str, count: Counts, take: Take) -> list[Any]:
    """Countdown rows (``nums``, ``target``: ``Jiayi-Pan/Countdown-Tasks-3to4`` or a local JSONL) as prompts; the
    harness's held-out test and validation problems (by the task's own hash split) are left out, and so are
    problems no expression using every number exactly once solves (the verifier's rule: no reward could be
    earned), counted: only as many as are met before ``rows`` solvable ones are kept, since solving every hub row
    would take minutes."""
    _options(spec, "countdown-data", ("path", "shots"))
    from tasks.countdown import NEEDS, canonical, example, solve, split_of, valid_row

    def convert(row: dict) -> Any:
        if not valid_row(row):
            raise Malformed(f"needs {NEEDS}")
        if split_of(canonical(row["nums"], row["target"])) != "train":
            return _EVAL_SPLIT
        return example(row["nums"], row["target"], None, int(spec.get("shots", 0)))

    def solvable(problem: harness.Example) -> bool:
        return solve(problem.meta["numbers"], problem.meta["target"]) is not None

    return _limited(read_rows(spec["path"], count), convert, count, take, solvable)


def _read_instructions(spec: dict[str, Any], kind: str, count: Counts, take: Take) -> list[Any]:
    """Instruction prompts (``instruction`` as in AlpacaEval, or ``prompt`` as in UltraFeedback), TRAIN half only:
    for reference-free rewards such as ``rm:PATH``, or with their reference ``output`` (AlpacaEval's GPT-4 Turbo
    answers) as SFT conversations."""
    _options(spec, "instructions", ("path", "split"))

    def convert(row: dict) -> Any:
        text = row.get("instruction") if "instruction" in row else row.get("prompt")
        if not isinstance(text, str) or not text.strip():
            raise Malformed("no instruction or prompt text")
        if not _in_train_split(text):
            return _EVAL_SPLIT
        if kind == "sft":
            return sft_row([{"role": "user", "content": text}], _text(row, "output"))
        return harness.Example(text, None, {}, id=f"instruction-{count.read}")

    return _limited(read_rows(spec["path"], count, spec.get("split", "train")), convert, count, take)


SOURCES: dict[str, Source] = {
    "task": Source(("sft", "prompt"), _read_task),
    "gsm8k": Source(("sft", "prompt"), _read_gsm8k, "gsm8k/train.jsonl"),
    "lima": Source(("sft",), _read_conversations, "lima/train.jsonl"),
    "smoltalk": Source(("sft",), _read_conversations, "HuggingFaceTB/smol-smoltalk"),
    "jsonl": Source(("sft", "pref"), _read_jsonl),
    "alpaca-judge": Source(("pref",), _read_alpaca_judge, "alpaca_eval/judge_annotations.jsonl"),
    "hh-harmless": Source(("pref",), _read_hh, "preferences/hh_rlhf_harmless_base_test.jsonl"),
    "ultrafeedback": Source(("pref",), _read_ultrafeedback, "HuggingFaceH4/ultrafeedback_binarized"),
    "countdown-data": Source(("prompt",), _read_countdown_data, "Jiayi-Pan/Countdown-Tasks-3to4"),
    "instructions": Source(("sft", "prompt"), _read_instructions, "alpaca_eval/eval.jsonl"),
}
