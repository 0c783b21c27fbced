"""The exceptions the CLI turns into a one-line message: ``HarnessError`` (exit code 2) and ``RunFailed`` (1)."""


class HarnessError(Exception):
    """A problem the user can fix: bad input, a missing file, an unknown name."""

    exit_code = 2


class RunFailed(HarnessError):
    """A run that finished and kept its record but measured nothing (every grade errored)."""

    exit_code = 1


def choices(kind: str, name: str, valid: list[str]) -> HarnessError:
    """An 'unknown NAME' error listing what would have worked."""
    listed = ", ".join(sorted(valid)) or "none installed"
    return HarnessError(f"unknown {kind} {name!r}; choose one of: {listed}")


def describe(exc: BaseException) -> str:
    """An exception in one line, ``Type: first line of its message``, for messages that must stay one line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
