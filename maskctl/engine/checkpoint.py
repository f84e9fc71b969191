"""Checkpoints: written atomically, read with weights_only=True (a checkpoint is data, never code)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from maskctl.core import io
from maskctl.core.errors import MaskctlError
from maskctl.core.schema import check_checkpoint, finite, mapping, sequence, tensors, unreadable_reason, whole

# What last.pt holds for a resume besides the model weights and meta: the one list of keys,
# built by `training_state`, read back by `restore_training_state`, checked on loading.
RESUME_STATE = {
    "optimizer": mapping, "scheduler": mapping, "scaler": mapping, "epoch": whole(0, 10**6),
    "history": sequence(mapping), "best_f1": finite, "best_epoch": whole(-1, 10**6),
    "ema": tensors,  # the EMA weights, present when the recipe sets `ema`
    "callbacks": mapping,  # callback name -> its state_dict(); absent from an older maskctl's last.pt
}
OPTIONAL_RESUME_KEYS = ("ema", "callbacks")


def save(path: str | Path, state: dict[str, Any]) -> None:
    import torch

    with io.atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: str | Path, resume: bool = False) -> dict[str, Any]:
    """A maskctl checkpoint, its structure checked (with `resume`, the training state too)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MaskctlError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the weights-only unpickler raises many types on a foreign or broken file
        raise MaskctlError(f"cannot load checkpoint {path}: {unreadable_reason(exc)}") from None
    return check_checkpoint(state, path, RESUME_STATE if resume else None, OPTIONAL_RESUME_KEYS)


def training_state(state, callback_states: dict[str, dict]) -> dict[str, Any]:
    """The resume checkpoint (a fold's last.pt) from the fold's state (maskctl.engine.callbacks.FoldState): the stepped model's
    weights, everything that steps it, the EMA weights when on, the fold's history so far and the callbacks' states
    (CallbackList.state_dicts)."""
    from maskctl.engine.step import unwrapped

    saved = {
        "model": unwrapped(state.train_model).state_dict(), "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(), "scaler": state.scaler.state_dict(), "epoch": state.epoch,
        "history": state.history, "best_f1": state.best_f1, "best_epoch": state.best_epoch, "meta": state.meta,
        "callbacks": callback_states,
    }
    if state.ema is not None:
        saved["ema"] = state.ema.module.state_dict()
    return saved


def restore_training_state(state, path: Path) -> dict[str, dict]:
    """Puts last.pt back into a freshly built fold state; the next epoch is `state.epoch + 1`.
    Returns the callbacks' states it holds (none in an older maskctl's last.pt)."""
    from maskctl.engine.step import unwrapped

    saved = load(path, resume=True)
    load_weights(unwrapped(state.train_model), saved["model"], path)
    if (state.ema is None) != ("ema" not in saved):
        raise MaskctlError(f"checkpoint {path} was saved {'without' if state.ema is not None else 'with'} EMA weights, the run's config says otherwise")
    if state.ema is not None:
        load_weights(state.ema.module, saved["ema"], path)
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.scaler.load_state_dict(saved["scaler"])
    state.epoch, state.history = saved["epoch"], saved["history"]
    state.best_f1, state.best_epoch = saved["best_f1"], saved["best_epoch"]
    return saved.get("callbacks", {})


def callback_states(path: Path) -> dict[str, dict]:
    """The callbacks' states a fold's last.pt holds (none in an older maskctl's last.pt)."""
    return load(path, resume=True).get("callbacks", {})


def load_weights(model, state_dict: dict, source: str | Path) -> None:
    """Refuse, in one line, weights of another architecture or class count."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line or "Missing" in line or "Unexpected" in line), str(exc).splitlines()[0])
        raise MaskctlError(f"checkpoint {source} does not fit the model: {first[:300]}") from None
