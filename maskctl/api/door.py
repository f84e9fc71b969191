"""The API's one door, as `user_errors` is the command line's: a call's arguments are checked
against the same ranges as the CLI's options (maskctl/commands/option_ranges.py), output folders a
failed call made are removed, and every failure a user can cause is one MaskctlError: never a
SystemExit, never a bare OSError. `quiet` silences everything maskctl prints."""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
from pathlib import Path
from typing import Any, Iterator

from maskctl.core.errors import MaskctlError, UsageError, shown


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """`with maskctl.quiet(): ...`: nothing maskctl prints (messages, tables, progress bars,
    warnings) inside the block. Every message goes through the two shared rich consoles, so
    muting them mutes all of it; the previous state comes back after the block."""
    from maskctl.core.console import console, error_console

    before = console.quiet, error_console.quiet
    console.quiet = error_console.quiet = True
    try:
        yield
    finally:
        console.quiet, error_console.quiet = before


def public(function):
    """A public API function: its arguments checked, `quiet=True` honoured, failures as
    MaskctlError naming its keywords, outputs of a failed call removed (core.io.discard_outputs_on_failure,
    which also releases the output folders the call claimed when it ends)."""
    signature = inspect.signature(function)
    keywords = keywords_of(signature)
    kinds = simple_kinds(function)
    settings_name = next((name for name, p in signature.parameters.items() if p.kind is p.VAR_KEYWORD), None)

    @functools.wraps(function)
    def call(*args, **kwargs):
        from maskctl.core.io import discard_outputs_on_failure

        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:  # an unknown keyword (named with the closest known one), a missing argument
            raise UsageError(f"maskctl.{function.__name__}: {unknown_keyword(signature, kwargs) or exc}") from None
        device_as_text(bound.arguments, settings_name)
        check_kinds(function.__name__, kinds, bound.arguments)
        check_arguments(function.__name__, bound.arguments)
        try:
            with quiet() if bound.arguments.get("quiet") else contextlib.nullcontext(), discard_outputs_on_failure():
                return function(*bound.args, **bound.kwargs)
        except MaskctlError as exc:
            if exc.args and isinstance(exc.args[0], str):
                exc.args = (keyword_spelling(exc.args[0], keywords), *exc.args[1:])
            raise
        except OSError as exc:  # a full, read-only or vanished place met while writing or reading
            text = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc) or type(exc).__name__
            raise MaskctlError(text) from None
        except SystemExit as exc:  # a plugin's sys.exit (maskctl never calls it) must not end the notebook's kernel
            raise MaskctlError(f"sys.exit({shown(exc.code)}) was called during maskctl.{function.__name__} (by a plugin?); "
                               "raise an exception to stop a call") from None

    return call


def keywords_of(signature: inspect.Signature) -> frozenset[str]:
    """The keywords a call takes: its parameters, and the recipe's settings where it takes
    them as **settings (train, tune_study)."""
    names = {name for name, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        from maskctl.config import FIELDS

        names |= set(FIELDS)
    return frozenset(names)


def keyword_spelling(message: str, keywords: frozenset[str]) -> str:
    """A message the command line and the API share names options as the command line spells
    them (--tta-weights); from Python it names the keyword instead (tta_weights). An option the
    call has no keyword for (--set) keeps its spelling."""
    import re

    def spelled(match: re.Match) -> str:
        keyword = match.group(1).replace("-", "_")
        return keyword if keyword in keywords else match.group(0)

    return re.sub(r"(?<![\w-])--([a-z][a-z0-9-]*)", spelled, message)


def unknown_keyword(signature: inspect.Signature, kwargs: dict[str, Any]) -> str | None:
    import difflib

    known = [name for name, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = next((key for key in kwargs if key not in known), None)
    if unknown is None:
        return None
    close = difflib.get_close_matches(unknown, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown keyword {unknown!r}{hint}; it takes {', '.join(known)}"


def device_as_text(arguments: dict[str, Any], settings_name: str | None) -> None:
    """A notebook holds its device as torch.device("cuda:0"); maskctl takes it as the text the
    command line's --device takes, so the two spellings mean the same. A recipe setting (train's
    **settings) is mended where it sits."""
    import sys

    torch = sys.modules.get("torch")  # a torch.device exists only where torch is imported already
    if torch is None:
        return
    for place in (arguments, arguments.get(settings_name) or {}):
        if isinstance(place.get("device"), torch.device):
            place["device"] = str(place["device"])


# what a caller is told a value must be, for the annotations a value is checked against
KIND_NAMES = {int: "a whole number", float: "a number", bool: "True or False", str: "a text"}


def simple_kinds(function) -> dict[str, tuple[type, ...]]:
    """keyword -> the types its annotation allows, for the keywords annotated with int, float,
    bool or str (optionally | None); paths, lists and the rest are checked where they are used."""
    import types
    import typing

    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation that does not resolve at run time: no type checks, the commands' own remain
        return {}
    kinds = {}
    for name, hint in hints.items():
        members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        if all(member in KIND_NAMES or member is type(None) for member in members):
            kinds[name] = tuple(members)
    return kinds


def check_kinds(name: str, kinds: dict[str, tuple[type, ...]], arguments: dict[str, Any]) -> None:
    """A value of the wrong type ('3' for people) fails here in one line, not as a TypeError
    deep inside. True is not a number here, though Python counts it as 1."""
    import numbers

    for key, value in arguments.items():
        allowed = kinds.get(key)
        if allowed is None:
            continue
        # numbers' ABCs: 3 is a fine float, and numpy's integers and floats are whole numbers and numbers too
        checks = tuple({int: numbers.Integral, float: numbers.Real}.get(kind, kind) for kind in allowed)
        if isinstance(value, checks) and (bool in allowed or not isinstance(value, bool)):
            continue
        wanted = " or ".join(KIND_NAMES.get(kind, "None") for kind in allowed)
        raise UsageError(f"maskctl.{name}: {key} must be {wanted}, got {shown(value)}")


# API functions named otherwise than the command whose options they take
COMMAND_OF = {"tune_study": "tune"}


def check_arguments(name: str, arguments: dict[str, Any]) -> None:
    """The arguments against the checks of the options of the same name, before any work: the
    message names the keyword as the caller wrote it."""
    from maskctl.commands.option_ranges import checks_of

    checks = checks_of(COMMAND_OF.get(name, name))
    for key, value in arguments.items():
        check = checks.get(key)
        problem = check(value) if check is not None and value is not None and _is_number(value) else None
        if problem:
            raise UsageError(f"maskctl.{name}: {key} {problem}, got {shown(value)}")


def _is_number(value: Any) -> bool:
    """The range checks compare numbers: a value of another type was refused by check_kinds,
    or is checked where it is used."""
    values = value if isinstance(value, list) else [value]
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def as_path(value: Any, what: str) -> Path:
    """A str, Path or Run (anything with __fspath__) as a Path; anything else, one line."""
    try:
        return Path(os.fspath(value))
    except TypeError:
        raise UsageError(f"{what} must be a path (str, pathlib.Path or maskctl.Run), got {shown(value)}") from None


def as_paths(values: Any, what: str) -> list[Path]:
    """One path or a list of them (runs of an ensemble, report or audit)."""
    if isinstance(values, (str, os.PathLike)):
        values = [values]
    try:
        values = list(values)
    except TypeError:
        raise UsageError(f"{what} must be a list of paths or maskctl.Run objects, got {shown(values)}") from None
    if not values:
        raise UsageError(f"{what} is empty: give at least one")
    return [as_path(value, what) for value in values]


def optional_path(value: Any, what: str) -> Path | None:
    return None if value is None else as_path(value, what)
