"""The shared rich console, progress bars and one-line messages."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from maskctl.core.errors import without_passwords

console = Console(highlight=False, soft_wrap=True)  # messages stay one line when piped; tables still fit the width
error_console = Console(stderr=True, highlight=False)


NO_CUDA = "CUDA is not available: running on the CPU (--device cpu says so and silences this; on a CPU, use small models and sizes, e.g. --config cpu-quick)"


# The one-line doors: messages are plain text (a path or a shape in square brackets must not read
# as markup), and never show a password a library put into them (a storage or tracking URL's).


def warn(message: str) -> None:
    error_console.print(f"[yellow]warning:[/] {escape(without_passwords(message))}", soft_wrap=True)


def note(message: str) -> None:
    """Something the user should change, though nothing is wrong yet (a renamed recipe)."""
    error_console.print(f"[yellow]note:[/] {escape(without_passwords(message))}", soft_wrap=True)


def fail(message: str) -> None:
    error_console.print(f"[bold red]error:[/] {escape(without_passwords(message))}", soft_wrap=True)


def progress(transient: bool = False):
    """A Progress with count, rate and ETA columns, the same look for every long job."""
    import importlib.util

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=error_console,
        transient=transient,
        # In Jupyter rich draws a live bar through ipywidgets; without it every bar is a warning
        # and blank outputs in the notebook, so no bar is drawn (the messages and tables still are).
        disable=error_console.is_jupyter and importlib.util.find_spec("ipywidgets") is None,
    )


def track(iterable, description: str, total: int | None = None):
    """Iterate with a progress bar on stderr (kept off stdout so output stays pipeable)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with progress(transient=True) as bar:
        task = bar.add_task(description, total=total, info="")
        for item in iterable:
            yield item
            bar.advance(task)
