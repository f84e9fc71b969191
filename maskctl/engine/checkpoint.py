"""Checkpoints: written atomically, read with weights_only=True (a checkpoint is data, never code)."""
from __future__ import annotations

import re
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
        raise MaskctlError(f"cannot load checkpoint {path}: {unreadable_reason(exc)}") from None
    return check_checkpoint(state, path, resume)


def unreadable_reason(exc: Exception) -> str:
    """Why a weights or checkpoint file did not load, as a sentence. Never torch's or timm's
    advice to retry with weights_only=False: that would run whatever code the file holds."""
    text = str(exc)
    if "weights_only" in text or "Weights only" in text:
        found = re.search(r"(?:GLOBAL|globals:)\s+([\w.]*\w)", text)
        named = f" ({found.group(1)[:60]})" if found else ""
        return f"the weights-only loader refused it: it is damaged, or it holds Python objects other than tensors and plain data{named}"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not re.search(r"[A-Za-z]{3}", first):  # e.g. a KeyError whose message is a bare byte value
        return f"it is not a PyTorch or safetensors weights file, or it is damaged ({type(exc).__name__})"
    return f"it is not a PyTorch or safetensors weights file, or it is damaged ({first[:160]})"


def load_weights(model, state_dict: dict, source: str | Path) -> None:
    """Refuse, in one line, weights of another architecture or class count."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line or "Missing" in line or "Unexpected" in line), str(exc).splitlines()[0])
        raise MaskctlError(f"checkpoint {source} does not fit the model: {first[:300]}") from None
