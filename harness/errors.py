"""The one exception the CLI turns into a one-line message and exit code 2."""


class HarnessError(Exception):
    """A problem the user can fix: bad input, a missing file, an unknown name."""


def choices(kind: str, name: str, valid: list[str]) -> HarnessError:
    """An 'unknown NAME' error listing what would have worked."""
    listed = ", ".join(sorted(valid)) or "none installed"
    return HarnessError(f"unknown {kind} {name!r}; choose one of: {listed}")


def describe(exc: BaseException) -> str:
    """An exception in one line, ``Type: first line of its message``, for messages that must stay one line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
