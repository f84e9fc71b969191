"""Weights & Biases: offline in RUN/wandb/ unless you are logged in (an API key in $WANDB_API_KEY
or netrc) or set $WANDB_MODE; `wandb sync` uploads an offline run later."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from maskctl.engine.trackers.base import Tracker, fold_key, hyper_parameters, save_id, saved_ids
from maskctl.registry import TRACKERS

WANDB_DEFAULT_HOST = "https://api.wandb.ai"


def wandb_logged_in() -> bool:
    """An API key wandb would find without asking: in the environment or in netrc for its host."""
    import netrc
    from urllib.parse import urlsplit

    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or WANDB_DEFAULT_HOST).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):  # no netrc, or one wandb could not read either
        return False


@TRACKERS.register("wandb")
class WandbTracker(Tracker):
    """Weights & Biases: offline in RUN/wandb/ unless you are logged in."""

    name = "wandb"
    requires = ("wandb",)
    extra = "wandb"

    @staticmethod
    def server() -> str | None:
        online = (os.environ.get("WANDB_MODE") or ("online" if wandb_logged_in() else "offline")) not in ("offline", "dryrun", "disabled")
        return (os.environ.get("WANDB_BASE_URL") or WANDB_DEFAULT_HOST) if online else None

    def open(self, run_dir: Path, config) -> None:
        import wandb

        saved = saved_ids(run_dir).get("wandb", {})
        run_id = saved.get("id") or secrets.token_hex(4)  # wandb ids: lowercase letters and digits
        # Offline unless the user chose a mode or has a key: never a login prompt mid-run.
        mode = None if os.environ.get("WANDB_MODE") or wandb_logged_in() else "offline"
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "maskctl"), name=run_dir.name, id=run_id, resume="allow",
            dir=str(run_dir), config=hyper_parameters(config), mode=mode,
            # The progress bars redraw many times a second; the numbers are logged as metrics.
            settings=wandb.Settings(console="off"),
        )
        if not saved:
            save_id(run_dir, "wandb", {"id": run_id})
        self.folds_defined: set[int] = set()

    def log_epoch(self, state, scalars: dict[str, float]) -> None:
        prefix = fold_key(state) + "/"
        if state.fold not in self.folds_defined:
            # Each fold's numbers are plotted against that fold's epoch, not wandb's global step.
            self.run.define_metric(prefix + "epoch")
            self.run.define_metric(prefix + "*", step_metric=prefix + "epoch")
            self.folds_defined.add(state.fold)
        self.run.log({**{prefix + key: value for key, value in scalars.items()}, prefix + "epoch": state.epoch})

    def log_end(self, run, scalars: dict[str, float], plots: dict[str, Path]) -> None:
        import wandb

        self.run.summary.update(scalars)
        if plots:
            self.run.log({f"plots/{name}": wandb.Image(str(path)) for name, path in plots.items()})

    def close(self) -> None:
        self.run.finish()

    def fail(self, error: BaseException) -> None:
        self.run.finish(exit_code=1)  # W&B shows the run as failed
