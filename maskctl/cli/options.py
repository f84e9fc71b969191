"""What every command module shares: the one error door (`user_errors`), option checks, the option
types several commands take, and the group class that keeps a renamed spelling working.

Heavy libraries are imported inside the commands, never here, so `maskctl --help` stays instant.
"""

import contextlib
import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from typer.core import TyperGroup

from maskctl.config import FIELDS
from maskctl.core.errors import MaskctlError, Terminated


@dataclass(frozen=True)
class Check:
    """A rule an option's value must pass (a config.Range or a function returning the problem, or
    None), put beside the option in its Annotated type; `user_errors` applies it before the command
    runs, so a bad value is exit code 2 and one line that names the option."""

    rule: Callable[[Any], Optional[str]]


def recipe_check(setting: str) -> Check:
    """The check of recipe setting `setting`, for another command's option of the same meaning
    (predict's --batch-size, split's --folds)."""
    return Check(FIELDS[setting].metadata["check"])


def command_check(command: str, option: str) -> Check:
    """The range of another command's own option (maskctl/commands/option_ranges.py, which the
    Python API checks its keywords against too)."""
    from maskctl.commands.option_ranges import RANGES

    return Check(RANGES[command][option])


def option_checks(command: Callable) -> dict[str, Check]:
    """The Check of each parameter of `command` that has one."""
    return {name: extra for name, param in inspect.signature(command).parameters.items()
            for extra in getattr(param.annotation, "__metadata__", ()) if isinstance(extra, Check)}


def check_options(checks: dict[str, Check], options: dict[str, Any]) -> None:
    from maskctl.core.errors import UsageError, shown

    for name, check in checks.items():
        value = options.get(name)
        problem = check.rule(value) if value is not None else None
        if problem:
            raise UsageError(f"--{name.replace('_', '-')} {problem}, got {shown(value)}")


def user_errors(command):
    """Check the options (their Checks), then run the command; turn MaskctlError and OSError into
    one red line and its exit code, never a traceback; output folders the failed command made are
    removed."""
    checks = option_checks(command)

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from maskctl.core.console import fail
        from maskctl.core.errors import shown
        from maskctl.core.io import discard_outputs_on_failure

        try:
            check_options(checks, kwargs)
            with sigterm_as_interrupt(), discard_outputs_on_failure():
                return command(*args, **kwargs)
        except MaskctlError as exc:
            fail(one_line(str(exc)))
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # a full, read-only or vanished place met while writing or reading
            fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
            raise typer.Exit(1) from None
        except SystemExit as exc:  # a plugin's sys.exit (maskctl's commands never call it): exit 0 would read as success
            fail(f"sys.exit({shown(exc.code)}) was called during `maskctl {command.__name__}` (by a plugin?); raise an exception to stop a command")
            raise typer.Exit(1) from None
        except Terminated:
            fail("interrupted (SIGTERM)")
            raise typer.Exit(Terminated.exit_code) from None
        except KeyboardInterrupt:
            fail("interrupted")
            raise typer.Exit(130) from None

    return wrapper


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While a command runs, SIGTERM raises Terminated (a KeyboardInterrupt) where the program
    is, so it gets Ctrl-C's cleanup and one line instead of a silent exit 143. Signal handlers
    belong to the main thread: elsewhere (a command called from a worker thread) nothing changes."""
    import signal
    import threading

    # A SIGTERM the parent chose to ignore stays ignored, as Python leaves an ignored SIGINT.
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


MAX_ERROR_CHARS = 1000  # the last guard against echoing unbounded input: values are cut where quoted


def one_line(message: str) -> str:
    """A DataLoader worker re-raises our error with the worker's traceback inside the message;
    its last line is the original 'module.ErrorType: message'. Any other message a library
    wrote over several lines (SQLAlchemy adds the SQL and a link) keeps its first."""
    lines = [line for line in message.splitlines() if line.strip()] or [""]
    if "DataLoader worker" in message:
        message = lines[-1].split(": ", 1)[1] if ": " in lines[-1] else lines[-1]
    else:
        message = lines[0]
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 3] + "..."


def with_old_spellings(rewrite: Callable[[list[str]], tuple[list[str], str]]) -> type:
    """A command group that still takes the spelling it had before it had sub-commands (`tune
    --study X`, `bench --batches 5`) for one release: when the first word after the group is an
    option, `rewrite(args)` gives the new spelling's words and the one-line note to print."""

    class OldSpellings(TyperGroup):
        def parse_args(self, ctx, args):
            if args and args[0].startswith("-") and args[0] != "--help":
                from maskctl.core.console import note

                args, message = rewrite(list(args))
                note(f"{message}; the old spelling goes in the next release")
            return super().parse_args(ctx, args)

    return OldSpellings


def opt(help_text: str, *names: str, **kwargs):
    """An option whose help says its default itself (\\[...]), or that has none worth showing."""
    return typer.Option(*names, help=help_text, show_default=False, **kwargs)


AgeEdges = Annotated[str, typer.Option(help="Age band edges: ages below the first are band 0, from the second on band 2.")]
LabelFixes = Annotated[
    Optional[Path],
    typer.Option(help="CSV of label corrections: columns id and any of gender, age, swap_mask (1 swaps normal/incorrect_mask)."),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output instead of refusing.")]
Device = Annotated[Optional[str], opt("cpu, cuda, cuda:1 \\[cuda when present].")]
Workers = Annotated[Optional[int], opt("DataLoader workers \\[from the CPU count]."), recipe_check("workers")]
BatchSize = Annotated[Optional[int], opt("Images per batch \\[32 on a CPU, 256 on CUDA]."), recipe_check("batch_size")]
RunArg = Annotated[Path, typer.Argument(help="A run folder (runs/NAME) or one checkpoint file (runs/NAME/fold0/best.pt).")]
PredictArg = Annotated[Path, typer.Argument(help="A run folder (runs/NAME), one checkpoint (runs/NAME/fold0/best.pt), or an export (runs/NAME/export, or its model.onnx).")]
TuneDecision = Annotated[bool, typer.Option("--tune-decision", help="Per-class offsets on log p fitted on the out-of-fold "
                                           "probabilities for macro F1; the gain is cross-fitted, and they are used only when it is positive.")]
