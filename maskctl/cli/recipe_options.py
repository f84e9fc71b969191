"""`train`'s recipe options, built from TrainConfig's fields: each field's help text, group (its
--help panel), default and check are read from the field itself (maskctl.config._setting), so
the option, its help, its range check and docs/reference/settings.md cannot drift apart."""

import inspect
import typing
from typing import Annotated, Callable, Optional

import typer

from maskctl.cli.options import Check
from maskctl.config import FIELDS, GROUPS, TrainConfig, field_default

PANELS = {group: group.capitalize() for group in GROUPS}
# The options of `train`, panel by panel: every field that has one (the rest are --set only).
TRAIN_SETTINGS = tuple(name for group in GROUPS for name, spec in FIELDS.items() if spec.metadata["group"] == group and spec.metadata["option"])

FIELD_TYPES = typing.get_type_hints(TrainConfig)


def option_name(setting: str) -> str:
    return "--" + setting.replace("_", "-")


def option_type(setting: str) -> type:
    """The type the command line reads: the field's type without None; a list of names is one
    comma-separated text."""
    kind = FIELD_TYPES[setting]
    if type(None) in typing.get_args(kind):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    return str if typing.get_origin(kind) is list else kind


def default_text(setting: str) -> str:
    """The default --help and the settings reference show: the field's value, or what None means."""
    default = field_default(setting)
    if isinstance(default, bool):
        return f"{option_name(setting) if default else '--no-' + option_name(setting)[2:]}"
    if isinstance(default, list):
        return ",".join(map(str, default)) or "none"
    if default is None:
        return FIELDS[setting].metadata["unset"] or "none"
    return str(default) if default != {} else "none"


def recipe_option(setting: str, panels: bool = True):
    """The Annotated type of setting's option: None by default (a recipe's value is not overridden
    by a default), its help and panel from the field, its check beside it."""
    meta = FIELDS[setting].metadata
    kind = option_type(setting)
    names = (f"{option_name(setting)}/--no-{option_name(setting)[2:]}",) if kind is bool else (option_name(setting),)
    help_text = f"{meta['help']} [default: {default_text(setting)}]".replace("[", "\\[")  # plain text, not rich markup
    info = typer.Option(*names, help=help_text, show_default=False, rich_help_panel=PANELS[meta["group"]] if panels else None)
    extras = (Check(meta["check"]),) if meta["check"] is not None else ()
    return Annotated.__class_getitem__((Optional[kind], info, *extras))


def with_recipe_options(settings: tuple[str, ...], panels: bool = True) -> Callable:
    """Gives `command` one keyword option per setting (its **settings receive them): the signature
    Typer reads is the command's own parameters followed by the settings' options."""

    def build(command):
        own = [p for p in inspect.signature(command).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=recipe_option(name, panels)) for name in settings]
        command.__signature__ = inspect.Signature(own + added)
        return command

    return build
