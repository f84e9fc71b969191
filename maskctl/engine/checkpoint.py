"""Checkpoints: written atomically, read with weights_only=True (a checkpoint is data, never code)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from maskctl import io
from maskctl.errors import MaskctlError


def save(path: str | Path, state: dict[str, Any]) -> None:
    import torch

    with io.atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: str | Path, resume: bool = False) -> dict[str, Any]:
    """A maskctl checkpoint, its structure checked (with `resume`, the training state too)."""
    import torch

    from maskctl.schema import check_checkpoint

    path = Path(path)
    if not path.is_file():
        raise MaskctlError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the weights-only unpickler raises many types on a foreign or broken file
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise MaskctlError(f"cannot load checkpoint {path} (not a maskctl checkpoint, or damaged): {first_line[:200]}") from None
    return check_checkpoint(state, path, resume)


def load_weights(model, state_dict: dict, source: str | Path) -> None:
    """Refuse, in one line, weights of another architecture or class count."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line or "Missing" in line or "Unexpected" in line), str(exc).splitlines()[0])
        raise MaskctlError(f"checkpoint {source} does not fit the model: {first[:300]}") from None
