"""The one exception the CLI turns into a one-line message and exit code 2."""


class HarnessError(Exception):
    """A problem the user can fix: bad input, a missing file, an unknown name."""


def choices(kind: str, name: str, valid: list[str]) -> HarnessError:
    """An 'unknown NAME' error listing what would have worked."""
    listed = ", ".join(sorted(valid)) or "none installed"
    return HarnessError(f"unknown {kind} {name!r}; choose one of: {listed}")
