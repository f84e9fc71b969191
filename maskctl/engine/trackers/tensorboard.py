"""TensorBoard: event files in RUN/tensorboard/, a folder per fold (the folds overlay in one chart),
run/ for the recipe, hyper-parameters, summary and plots."""
from __future__ import annotations

from pathlib import Path

from maskctl.engine.trackers.base import Tracker, fold_key, hyper_parameters
from maskctl.registry import TRACKERS

TENSORBOARD_FOLDER = "tensorboard"  # in the run folder; wandb makes its own wandb/ there


@TRACKERS.register("tensorboard")
class TensorBoardTracker(Tracker):
    """TensorBoard event files in RUN/tensorboard/, a folder per fold."""

    name = "tensorboard"
    requires = ("tensorboard",)
    extra = "tensorboard"

    def open(self, run_dir: Path, config) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.root = run_dir / TENSORBOARD_FOLDER
        self.fold_writers = {}
        resumed = (self.root / "run").is_dir()
        self.run_writer = SummaryWriter(str(self.root / "run"))
        if not resumed:
            table = "\n".join(f"| {key} | {value} |" for key, value in hyper_parameters(config).items())
            self.run_writer.add_text("config", "| setting | value |\n|---|---|\n" + table, 0)
            self.run_writer.flush()
        self.params = hyper_parameters(config)

    def start_fold(self, state) -> None:
        self._fold_writer(state)

    def _fold_writer(self, state):
        from torch.utils.tensorboard import SummaryWriter

        if state.fold not in self.fold_writers:
            # A resumed fold repeats the epochs after its last checkpoint: purge_step hides what a
            # killed process logged past it, in this fold's folder only.
            purge = state.resumed_from + 1 if state.resumed_from is not None else None
            self.fold_writers[state.fold] = SummaryWriter(str(self.root / fold_key(state)), purge_step=purge)
        return self.fold_writers[state.fold]

    def log_epoch(self, state, scalars: dict[str, float]) -> None:
        writer = self._fold_writer(state)
        for key, value in scalars.items():
            writer.add_scalar(key, value, state.epoch)
        writer.flush()  # an epoch is minutes: a kill must not lose the ones before it

    def end_fold(self, state) -> None:
        writer = self.fold_writers.pop(state.fold, None)
        if writer is not None:
            writer.close()

    def log_end(self, run, scalars: dict[str, float], plots: dict[str, Path]) -> None:
        import numpy as np
        from PIL import Image
        from torch.utils.tensorboard.summary import hparams

        # The hyper-parameters dashboard pairs the recipe with the run's final scores.
        for summary in hparams(self.params, {key: value for key, value in scalars.items() if key in ("summary/mean_f1", "summary/oof_f1")}):
            self.run_writer.file_writer.add_summary(summary, 0)
        for key, value in scalars.items():
            self.run_writer.add_scalar(key, value, 0)
        for name, path in plots.items():
            with Image.open(path) as image:
                self.run_writer.add_image(f"plots/{name}", np.asarray(image.convert("RGB")), 0, dataformats="HWC")

    def close(self) -> None:
        for writer in [*self.fold_writers.values(), self.run_writer]:
            writer.close()
        self.fold_writers = {}
