"""`maskctl list`: what the registries hold, and the shipped recipes and search spaces."""
from __future__ import annotations

import fnmatch

from maskctl.core.console import console


def list_entries(kind: str | None = None, pattern: str = "*") -> None:
    """Print the entries of one kind (a registry's, recipes or spaces), or of every kind, whose
    names match `pattern`; for models also timm's names."""
    import difflib

    from rich.table import Table

    from maskctl.config import shipped_recipes, shipped_spaces
    from maskctl.registry import REGISTRIES, UnknownNameError, registry_for

    shipped = {"recipes": ("recipe", shipped_recipes, "maskctl train --config NAME"), "spaces": ("space", shipped_spaces, "maskctl tune run --space NAME")}
    chosen = next((key for key, (single, _, _) in shipped.items() if kind in (key, single)), None)
    if chosen:
        _, listed, usage = shipped[chosen]
        table = Table(title=f"shipped {chosen} ({usage})")
        table.add_column("name", style="bold")
        table.add_column("what it is")
        for name, description in listed():
            if fnmatch.fnmatch(name, pattern):
                table.add_row(name, description)
        console.print(table)
        return
    try:
        registries = [registry_for(kind)] if kind else list(REGISTRIES.values())
    except UnknownNameError as exc:  # the registries' kinds, and the shipped files listed here
        close = difflib.get_close_matches(kind[:100], list(shipped), n=1)
        hint = "" if "Did you mean" in str(exc) or not close else f" Did you mean {close[0]!r}?"
        raise UnknownNameError(f"{exc}, recipes, spaces.{hint}".replace("..", ".")) from None
    table = Table(title="maskctl registry")
    table.add_column("kind")
    table.add_column("name", style="bold")
    table.add_column("what it is")
    for registry in registries:
        for entry in registry.entries(pattern):
            table.add_row(registry.kind, entry.name, entry.description)
    if kind is None:
        for single, listed, _ in shipped.values():
            for name, description in listed():
                if fnmatch.fnmatch(name, pattern):
                    table.add_row(single, name, description)
    if table.rows or pattern == "*":
        console.print(table)
    models = next((r for r in registries if r.kind == "model"), None)
    if models is not None and pattern == "*":
        console.print("models: also any timm model name, e.g. efficientnet_b4 (`maskctl list models --pattern 'efficientnet*'`)")
    elif models is not None:
        matches = models.fallback_names(pattern)
        shown = ", ".join(matches[:40]) + (f", ... ({len(matches)} in all)" if len(matches) > 40 else "")
        console.print(f"timm models matching {pattern!r}: {shown or 'none'}")
