"""The one exception type a user sees as a one-line message instead of a traceback."""


class MaskctlError(Exception):
    """A problem with the user's input or environment; the CLI prints it in one line and exits 1."""

    exit_code = 1


class UsageError(MaskctlError):
    """The command line itself is wrong (exit code 2, like Typer's own usage errors)."""

    exit_code = 2
