"""`maskctl.Run`: a run folder made by `maskctl train` (or maskctl.train), its files as
DataFrames, and the commands that take one run as its methods."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from maskctl.api.door import as_path
from maskctl.core.errors import MaskctlError


class Run:
    """An existing run folder: `maskctl.Run("runs/exp")`. A folder that is not a run (no
    config.yaml and folds.csv) is refused in one line. A Run is a path-like object, so it goes
    wherever a run folder does: `maskctl.ensemble([run_a, run_b])`, `Path(run)`."""

    def __init__(self, path: str | os.PathLike):
        from maskctl.runs.folder import RunFolder

        folder = RunFolder(as_path(path, "a run"))
        if not folder.path.is_dir() or not folder.is_run():
            raise MaskctlError(f"{folder.path} is not a run folder (no config.yaml / folds.csv); "
                               "open a folder made by maskctl.train or `maskctl train`, e.g. runs/exp")
        self.path = folder.path
        self._folder = folder

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"maskctl.Run({str(self.path)!r})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Run) and self.path.resolve() == other.path.resolve()

    def __hash__(self) -> int:
        return hash(self.path.resolve())

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self):
        """The run's recipe (a maskctl.config.TrainConfig), as config.yaml holds it."""
        from maskctl.config import load_config

        return load_config(self._folder.config)

    @property
    def scores(self):
        """Validation scores as a DataFrame: one row per finished fold (its best epoch's macro F1,
        accuracy and per-task F1, which epoch that was, how many ran, whether it stopped early)
        and a row `oof` (every finished fold's out-of-fold predictions scored together)."""
        import pandas as pd

        from maskctl.engine.metrics import scores
        from maskctl.runs.results import prob_columns, read_fold_result, read_metrics, read_oof

        measured = ("f1", "acc", "f1_mask", "f1_gender", "f1_age")
        rows = {}
        for fold in self._folder.finished_folds():
            result = read_fold_result(fold.result)
            epochs = read_metrics(fold.metrics).set_index("epoch") if fold.metrics.is_file() else None
            best = epochs.loc[result["best_epoch"]] if epochs is not None and result["best_epoch"] in epochs.index else {}
            rows[f"fold {result['fold']}"] = {**{key: best[key] for key in measured if key in best},
                                              "f1": result["best_f1"], "best_epoch": result["best_epoch"] + 1,
                                              "epochs": result["epochs_run"], "stopped_early": result["stopped_early"]}
        oof = read_oof(self.path)
        if oof is not None:
            probs = oof[prob_columns(oof)].to_numpy()
            rows["oof"] = {**scores(oof["label"].to_numpy(), probs.argmax(1), mask_classes=self._mask_classes(probs.shape[1])), "images": len(oof)}
        table = pd.DataFrame.from_dict(rows, orient="index")
        return table.reindex(columns=[c for c in (*measured, "best_epoch", "epochs", "stopped_early", "images") if c in table])

    def _mask_classes(self, num_classes: int) -> bool:
        """Whether the run learned the 18 mask classes (per-task scores exist only for them), as
        its checkpoints record it."""
        from maskctl.core.schema import read_json

        metas = [f.best_meta for f in self._folder.finished_folds() if f.best_meta.is_file()]
        meta = read_json(metas[0], "checkpoint record") if metas else {}
        return bool(meta.get("mask_classes", num_classes == 18)) if isinstance(meta, dict) else num_classes == 18

    @property
    def oof(self):
        """Every finished fold's out-of-fold predictions: image, person, fold, label, p0..p{C-1}
        (None before a fold has finished)."""
        from maskctl.runs.results import read_oof

        return read_oof(self.path)

    @property
    def metrics(self):
        """Each fold's metrics.csv, one row per epoch, with a `fold` column."""
        import pandas as pd

        from maskctl.runs.results import read_metrics

        tables = [read_metrics(f.metrics).assign(fold=f.fold) for f in self._folder.fold_folders() if f.metrics.is_file()]
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()

    def predict(self, data: str | os.PathLike = "data/eval", **options):
        """maskctl.predict(this run, data, ...): (submission, probabilities) as DataFrames."""
        from maskctl.api.predictions import predict

        return predict(self, data, **options)

    def tta_eval(self, **options) -> dict:
        """maskctl.tta_eval(this run, ...)."""
        from maskctl.api.predictions import tta_eval

        return tta_eval(self, **options)

    def export(self, **options) -> Path:
        """maskctl.export(this run, ...)."""
        from maskctl.api.predictions import export

        return export(self, **options)

    def explain(self, **options) -> dict:
        """maskctl.explain(this run, ...)."""
        from maskctl.api.inspect import explain

        return explain(self, **options)

    def resume(self, fold: int | None = None, quiet: bool = False) -> "Run":
        """maskctl.resume(this run)."""
        from maskctl.api.training import resume

        return resume(self, fold=fold, quiet=quiet)
