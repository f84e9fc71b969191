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
    if isinstance(value, str):  # a URL's password goes before the cut, which could leave half of it
        value = without_passwords(value[: limit + 300])
    text = brief.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Terminated(KeyboardInterrupt):
    """SIGTERM, what `timeout`, Slurm, Docker and Kubernetes send to stop a job, raised where the
    program is, like Ctrl-C's KeyboardInterrupt: the same cleanup runs (temp files, half-made
    folders, a run with no finished epoch) and a run's resumable state is kept."""

    exit_code = 143  # 128 + SIGTERM, what a scheduler expects of a process it stopped


def without_passwords(text: str) -> str:
    """`text` with every password in it shown as ***: a query's password=..., then a URL's
    (scheme://user:PASSWORD@host, up to the last @, so a password holding @ goes whole).
    Terminal scrollback and CI logs keep what is printed, and storage and tracking URLs reach
    messages through libraries too. (SQLAlchemy's own hide_password rendering misreads a query
    password holding @ as the host, and shows part of it.)"""
    import re

    text = re.sub(r"((?:password|passwd|pwd)=)[^&\s'\"]*", r"\1***", text, flags=re.IGNORECASE)
    # Bounded: a password is not longer, and a megabyte of "a://b:" must not take quadratic time.
    return re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]{0,256}:)\S{0,256}@", r"\1***@", text)


def one_line(exc: BaseException) -> str:
    """An exception as one line of a message: its first line (a RuntimeError's text can be many
    lines, the first says what happened), after its type where the text alone would not say
    what went wrong (a KeyError's text is just the key)."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    first = lines[0][:300] if lines else ""
    if isinstance(exc, (MaskctlError, ValueError, TypeError, RuntimeError)) and first:
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
