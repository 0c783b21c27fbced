"""The ``sympy`` verifier: grades GSM8K-style answers against a numeric gold answer.

Plain numbers, fractions and decimals (nearly every answer) are compared exactly with
``fractions.Fraction`` in-process. Anything else (``2*3+1``, ``\\sqrt{324}``) goes to a
spawned worker process running math_verify and sympy's parser, which is killed when it
overruns its wall-clock limit, so hostile output (``9^{9^{9}}``) cannot hang the caller.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import re
import threading
from fractions import Fraction
from multiprocessing.connection import Connection
from typing import NamedTuple

import harness

RULES = ("final_answer", "hash", "boxed", "answer_is", "last_number")
"""Extraction rules, by priority; all but ``last_number`` are explicit markers (``strict``)."""

_TAIL = 4000  # answers come last; searching only the tail bounds regex work on huge completions
_MAX_SPAN = 300  # longest answer text taken after a marker or inside \boxed{}
_MAX_DIGITS = 100  # longer numbers leave the in-process path, keeping Fraction work trivial
_STARTUP_TIMEOUT = 120.0  # importing sympy in a fresh worker is not part of a check's time limit
_WORKER_MEMORY = 4 << 30  # extra address space a worker may map: a runaway power fails, not the host

_MARKERS = {
    "final_answer": re.compile(r"final\s+answer\s*\**\s*[:\uff1a]\s*", re.IGNORECASE),
    "hash": re.compile(r"####\s*"),
    "answer_is": re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\b\s*:?\s*", re.IGNORECASE),
}
_BOXED = "\\boxed{"
_DECIMAL = r"(?:\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
# A number as written in prose or LaTeX; a minus is a sign only where it cannot be subtraction.
_NUMBER = re.compile(
    rf"(?:(?<![\w.)\]}}])(?P<sign>-)\s*|(?<![\w.]))(?:\\?[$€£¥])?\s*"
    rf"(?P<num>\\[dt]?frac\{{{_DECIMAL}\}}\{{{_DECIMAL}\}}|{_DECIMAL}(?:\s*/\s*{_DECIMAL})?)"
)
_WORD = r"[A-Za-z'\u2019]+(?:[-/][A-Za-z'\u2019]+)*"
_UNITS = re.compile(rf"\s*(?:{_WORD}(?:[\s,]+{_WORD})*)?[\s.!?;:,]*")
_PROSE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")  # a word that is not a LaTeX command
_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_DECORATION = re.compile(r"\\[$%,!;]|[$%]|\\[()\[\]]|\\left\b|\\right\b")
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_PLAIN = re.compile(
    r"(?P<sign>-?)(?:\\frac\{(?P<a>\d+(?:\.\d+)?|\.\d+)\}\{(?P<b>\d+(?:\.\d+)?|\.\d+)\}"
    r"|(?P<c>\d+(?:\.\d+)?|\.\d+)(?:/(?P<d>\d+(?:\.\d+)?|\.\d+))?)"
)
_ARITHMETIC = re.compile(r"[\d.+\-*/^() ]+")  # no names at all, so sympy's parser can run no code


class Extracted(NamedTuple):
    """An answer taken from a completion and the rule (one of ``RULES``) that found it."""

    answer: str
    rule: str


class _Timeout(Exception):
    """The worker overran the check's time limit and was killed."""


class _WorkerError(Exception):
    """The worker raised; the message is the exception's type name."""


def _canonical(match: re.Match[str]) -> str:
    """A number token without currency, spaces or thousands separators."""
    num = re.sub(r"[\s,]", "", match["num"]).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return f"-{num}" if match["sign"] else num


def _boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}``, or None when it is unbalanced or too long."""
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    depth = 1
    body = start + len(_BOXED)
    for i, char in enumerate(text[body : body + _MAX_SPAN]):
        depth += (char == "{") - (char == "}")
        if depth == 0:
            return text[body : body + i]
    return None


def _normalise(span: str) -> str:
    """Reduce an answer span to what is graded: a bare number when there is one, else the expression."""
    text = span.replace("\u2212", "-").replace("{,}", ",")
    text = _boxed(text) or text
    text = _TEXT_CMD.sub(r" \1 ", text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac"))
    text = _DECORATION.sub("", text).lstrip(" \t*#:").rstrip(" \t*.")
    if "=" in text:
        text = text.rsplit("=", 1)[1].strip()
    lead = _NUMBER.match(text)
    if lead and _UNITS.fullmatch(text, lead.end()):
        return _canonical(lead)
    if not _PROSE.search(text):
        return text
    numbers = list(_NUMBER.finditer(text))
    return _canonical(numbers[-1]) if numbers else text


def _line_after(marker: re.Pattern[str], text: str) -> str | None:
    """The rest of the sentence after the last match of ``marker``."""
    matches = list(marker.finditer(text))
    if not matches:
        return None
    line = text[matches[-1].end() :].split("\n", 1)[0][:_MAX_SPAN]
    return _SENTENCE_END.split(line, maxsplit=1)[0]


def extract_answer(completion: str) -> Extracted | None:
    """The graded answer: the first marker rule whose answer has a digit, else the last number."""
    text = completion[-_TAIL:]
    for rule in RULES[:-1]:
        span = _boxed(text) if rule == "boxed" else _line_after(_MARKERS[rule], text)
        if span is not None:
            answer = _normalise(span)
            if any(c.isdigit() for c in answer):
                return Extracted(answer, rule)
    numbers = list(_NUMBER.finditer(text))
    return Extracted(_canonical(numbers[-1]), "last_number") if numbers else None


def _fraction(answer: str) -> Fraction | None:
    """The exact value of a plain number, ``a/b`` or ``\\frac{a}{b}``; None for anything else."""
    match = _PLAIN.fullmatch(answer)
    if match is None or sum(c.isdigit() for c in answer) > _MAX_DIGITS:
        return None
    denominator = Fraction(match["b"] or match["d"] or 1)
    if denominator == 0:
        return None
    value = Fraction(match["a"] or match["c"]) / denominator
    return -value if match["sign"] else value


def _symbolic(text: str) -> list:
    """Parse without evaluating model text: sympy's parser only on name-free arithmetic, else LaTeX."""
    from math_verify import LatexExtractionConfig, parse
    from sympy.parsing.sympy_parser import auto_number, convert_xor, parse_expr

    if _ARITHMETIC.fullmatch(text):
        try:
            return [parse_expr(text, transformations=(auto_number, convert_xor), evaluate=False)]
        except Exception:  # malformed arithmetic is a wrong answer, not a failed check
            return []
    return parse(f"${text}$", [LatexExtractionConfig()], parsing_timeout=None)


def _symbolic_equal(gold: str, answer: str) -> bool:
    from math_verify import verify

    return verify(_symbolic(gold), _symbolic(answer), timeout_seconds=None)


def _serve(conn: Connection) -> None:
    """Worker loop: answer ``(gold, answer)`` pairs with ``(ok, result)`` until the pipe closes."""
    import logging
    import resource

    with contextlib.suppress(ValueError, OSError):  # Linux only; the cap is headroom over what is mapped now
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(
            resource.RLIMIT_AS, (mapped + _WORKER_MEMORY, resource.getrlimit(resource.RLIMIT_AS)[1])
        )
    logging.disable(logging.WARNING)  # math_verify warns that its own signal timeouts are off
    _symbolic_equal("1", "\\frac{2}{2}")  # warm the imports and parsers before declaring readiness
    conn.send("ready")
    while True:
        try:
            gold, answer = conn.recv()
        except EOFError:
            return
        try:
            conn.send((True, _symbolic_equal(gold, answer)))
        except Exception as exc:
            conn.send((False, type(exc).__name__))


class _Worker:
    """One spawned checker process; it starts at once but is waited for only on first use."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # fork is unsafe once an engine has started threads
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child,), name="sympy-verifier", daemon=True)
        self.process.start()
        child.close()
        self.ready = False

    def check(self, gold: str, answer: str, timeout: float) -> bool:
        if not self.ready:
            if not self.conn.poll(_STARTUP_TIMEOUT):
                raise RuntimeError("sympy verifier worker did not start")
            self.conn.recv()
            self.ready = True
        self.conn.send((gold, answer))
        if not self.conn.poll(timeout):
            raise _Timeout
        ok, result = self.conn.recv()
        if not ok:
            raise _WorkerError(result)
        return result

    def close(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()


class _Pool:
    """Idle workers shared by all verifier instances: one per concurrent caller, none until needed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_Worker] = []
        self.pid = os.getpid()

    def check(self, gold: str, answer: str, timeout: float) -> bool:
        with self.lock:
            if self.pid != os.getpid():  # a forked child must not share the parent's pipes
                self.idle, self.pid = [], os.getpid()
            worker = self.idle.pop() if self.idle else _Worker()
        healthy = False
        try:
            result = worker.check(gold, answer, timeout)
            healthy = True
        except _WorkerError:
            healthy = True
            raise
        finally:
            if not healthy:  # timed out, died or interrupted mid-check: restart now, to be warm for the next
                worker.close()
                worker = _Worker()
            with self.lock:
                self.idle.append(worker)
        return result

    def close(self) -> None:
        with self.lock:
            if self.pid == os.getpid():
                for worker in self.idle:
                    worker.close()
            self.idle = []


_POOL = _Pool()
atexit.register(_POOL.close)


class SympyVerifier:
    """Grades a completion's final number against ``example.reference``; ``value`` is lenient accuracy."""

    name = "sympy"
    reference_free = False

    def __init__(self, timeout: float = 1.0) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.timeout = timeout

    def score(self, example: harness.Example, completion: str) -> harness.Score:
        return self._score(example.reference, completion, {})

    def score_batch(self, pairs: list[tuple[harness.Example, str]]) -> list[harness.Score]:
        """Score many samples, checking each distinct (gold, answer) once (slow checks repeat across samples)."""
        verdicts: dict[tuple[str | None, str], tuple[bool, str | None]] = {}
        return [self._score(example.reference, completion, verdicts) for example, completion in pairs]

    def _score(
        self, reference: str | None, completion: str, verdicts: dict[tuple[str | None, str], tuple[bool, str | None]]
    ) -> harness.Score:
        try:
            found = extract_answer(completion)
        except Exception as exc:  # never let a checker bug escape into the run
            return harness.Score(0.0, error=type(exc).__name__, metrics={"strict": 0.0, "lenient": 0.0})
        if found is None:
            return harness.Score(0.0, metrics={"strict": 0.0, "lenient": 0.0})
        if (reference, found.answer) not in verdicts:
            verdicts[reference, found.answer] = self._judge(reference, found.answer)
        correct, error = verdicts[reference, found.answer]
        value = float(correct)
        metrics = {"strict": value if found.rule != "last_number" else 0.0, "lenient": value}
        return harness.Score(value, answer=found.answer, error=error, metrics=metrics)

    def _judge(self, reference: str | None, answer: str) -> tuple[bool, str | None]:
        """(correct, error): exact in-process for two plain numbers, else a time-limited worker check."""
        if reference is None:
            return False, "no reference"
        try:
            gold = _normalise(reference)
            exact_gold, exact_answer = _fraction(gold), _fraction(answer)
            if exact_gold is not None and exact_answer is not None:
                return exact_gold == exact_answer, None
            return _POOL.check(gold, answer, self.timeout), None
        except _Timeout:
            return False, "timeout"
        except _WorkerError as exc:
            return False, str(exc)
        except Exception as exc:
            return False, type(exc).__name__


@harness.hookimpl
def register_verifiers() -> list:
    return [SympyVerifier()]
