"""The one exception type a user sees as a one-line message instead of a traceback."""


class MaskctlError(Exception):
    """A problem with the user's input or environment; the CLI prints it in one line and exits 1."""

    exit_code = 1


class UsageError(MaskctlError):
    """The command line itself is wrong (exit code 2, like Typer's own usage errors)."""

    exit_code = 2


def shown(value: object, limit: int = 60) -> str:
    """A user's value as an error message quotes it, cut to `limit` characters: the value may be
    megabytes long (a YAML string, a pasted path) or deeply nested, and reprlib stops early."""
    import reprlib

    brief = reprlib.Repr()
    brief.maxstring = brief.maxother = brief.maxlong = limit
    text = brief.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(exc: BaseException) -> str:
    """An exception as one line of a message: its first line (a RuntimeError's text can be many
    lines, the first says what happened), after its type where the text alone would not say
    what went wrong (a KeyError's text is just the key)."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    first = lines[0][:300] if lines else ""
    if isinstance(exc, (MaskctlError, ValueError, TypeError, RuntimeError)) and first:
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
