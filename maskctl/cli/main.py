"""The `maskctl` command line: one Typer app per command group, joined here.

    data.py         synth, eda, split
    train.py        train, tune run / tune show
    infer.py        predict, tta-eval, ensemble, pseudo, export
    inspect_runs.py audit, explain, report
    tools.py        demo, list, bench loader|train|predict|all|quality
    options.py      the one error door (user_errors), option checks, shared option types

Each command parses its options, calls one library function and prints; heavy libraries (torch,
timm, albumentations, pandas) are imported inside the commands, so `maskctl --help` stays instant.
"""

import sys

import typer

from maskctl.cli import data, infer, inspect_runs, tools, train

app = typer.Typer(
    help="Train and ship face-mask status classifiers (18 classes, scored by macro F1).\n\n"
    "A typical loop: maskctl eda data/train -> maskctl split data/train -> maskctl train "
    "--folds 5 -> maskctl tta-eval runs/exp -> maskctl predict runs/exp -> maskctl ensemble runs/*. "
    "New here? Run `maskctl demo` first: it does the whole loop on built-in synthetic data.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
for group in (data, train, infer, inspect_runs, tools):
    app.add_typer(group.app)


def main() -> int:
    """The console script: the app, with command-line mistakes (an unknown option, a missing
    argument) as one red line and exit code 2, like every other error, instead of click's box."""
    from maskctl.core.console import fail

    try:
        return app(prog_name="maskctl", standalone_mode=False) or 0
    except typer.Abort:
        fail("interrupted")
        return 130
    except Exception as exc:
        # Typer raises click's UsageError from its own copy of click (typer._click) or from click
        # itself, depending on its version: known by the class name, not by one import.
        if not any(kind.__name__ == "UsageError" for kind in type(exc).__mro__):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # `maskctl` alone: the help, as always
            exc.show()
            return exc.exit_code
        command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "maskctl"
        fail(f"{exc.format_message()} (see `{command} --help`)")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
