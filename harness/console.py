"""What the user sees: one console for the harness's own lines, progress bars, and the libraries' chatter kept aside.

vLLM, torch and transformers print warnings and banners (to Python logging, ``warnings`` and
straight to file descriptors 1 and 2 from C++). While a model loads and generates, ``quiet``
sends all of it to a log file inside the run directory; the harness's console keeps writing to
the terminal through a duplicate of the original stderr, and a failure shows the log's tail.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.errors import HarnessError

T = TypeVar("T")


console = Console(stderr=True)  # while ``quiet`` holds fd 2, it writes through a saved copy of the terminal


def one_line(text: str) -> str:
    """``text`` as one terminal line: a newline or other control character (in a path a user typed, say) is shown
    escaped, as Python writes it in a string, so an error or a warning never spans two lines."""
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in text)


def guard(interrupted: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Bad input ends a command in one line on stderr and exit code 2 (a run that measured nothing: 1), never a
    traceback; Ctrl-C says what is kept."""

    def decorate(command: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(command)
        def wrapper(*args, **kwargs) -> T:
            try:
                return command(*args, **kwargs)
            except HarnessError as exc:
                typer.echo(f"error: {one_line(str(exc))}", err=True)
                raise typer.Exit(exc.exit_code) from None
            except KeyboardInterrupt:
                typer.echo(f"interrupted: {interrupted}", err=True)
                raise typer.Exit(130) from None

        return wrapper

    return decorate


def warn(message: str) -> None:
    """One yellow line: something went wrong that the run survived."""
    console.print(f"[yellow]warning:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)


def progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)


LIBRARY_LOGGERS = ("vllm", "torch", "transformers", "peft", "datasets", "huggingface_hub")


@contextlib.contextmanager
def quiet(log: Path, loggers: Sequence[str] = ()) -> Iterator[None]:
    """Send library logging (``LIBRARY_LOGGERS`` and a caller's ``loggers``), warnings and raw fd 1/2 output to
    ``log``; on an exception, show the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    handler = logging.FileHandler(log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    captured = [logging.getLogger(name) for name in (*LIBRARY_LOGGERS, *loggers)]
    kept = [(lg, list(lg.handlers), lg.propagate) for lg in captured]
    with open(log, "a", encoding="utf-8") as sink, warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda msg, cat, fn, ln, *_: sink.write(f"{fn}:{ln}: {cat.__name__}: {msg}\n")
        for lg in captured:
            lg.handlers, lg.propagate = [handler], False
        terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1)
        console.file = terminal
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved, kept, handler, terminal)
            saved = []
            if not isinstance(sys.exc_info()[1], KeyboardInterrupt):
                _show_tail(log)
            raise
        finally:
            if saved:
                _restore(saved, kept, handler, terminal)


def _restore(saved: list[int], kept: list, handler: logging.Handler, terminal) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    console.file = None  # back to the current sys.stderr
    terminal.close()
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
    for fd in saved:
        os.close(fd)
    for lg, handlers, propagate in kept:
        lg.handlers, lg.propagate = handlers, propagate
    handler.close()


def _show_tail(log: Path, lines: int = 15) -> None:
    tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    if tail:
        console.print(f"last lines of {log}:", style="dim", markup=False, highlight=False, soft_wrap=True)
        for line in tail:
            console.print(f"  {line}", style="dim", markup=False, highlight=False, soft_wrap=True)
