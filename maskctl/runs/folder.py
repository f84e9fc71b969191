"""The one module that knows a run folder's layout; every other module asks it for paths.

    runs/NAME/config.yaml     the resolved recipe (`--config runs/NAME/config.yaml` reproduces it)
    runs/NAME/folds.csv       image, person, fold used
    runs/NAME/skipped.csv     image, path, reason: training images that could not be decoded
    runs/NAME/fold{k}/        best.pt, best.json, last.pt, metrics.csv, oof.csv, result.json
    runs/NAME/oof.csv         every training image's out-of-fold probabilities, joined for users
                              (maskctl's own readers join the finished folds' tables instead:
                              runs/results.read_oof, current while farmed --fold jobs finish)
    runs/NAME/summary.json    per-fold best macro F1, mean, std, OOF F1
    runs/NAME/curves.png, confusion.png
    runs/NAME/tta.json        what `maskctl tta-eval` measured and recommends
    runs/NAME/submission.csv, probs.csv, predict.json   `maskctl predict`'s outputs (sealed set)
    runs/NAME/trackers.json   the experiment trackers' run ids, reused by a resume (`--log`)
    runs/NAME/tensorboard/, wandb/   those trackers' own folders (maskctl.engine.trackers)

A fold is finished when its result.json exists (written after its last epoch): only finished
folds count towards scores (OOF, summary, report, audit). best.pt is the checkpoint predict,
tta-eval and export use, from every fold that has one, finished or not (see
RunFolder.checkpointed_folds); last.pt is the state a resume continues from.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from maskctl.core.errors import MaskctlError

CONFIG = "config.yaml"
FOLDS = "folds.csv"
SKIPPED = "skipped.csv"
OOF = "oof.csv"
SUMMARY = "summary.json"
CURVES = "curves.png"
CONFUSION = "confusion.png"
TTA = "tta.json"
SUBMISSION = "submission.csv"
PROBS = "probs.csv"
PREDICT_RECORD = "predict.json"
TRACKER_IDS = "trackers.json"
PREDICT_SET = (SUBMISSION, PROBS)  # written together; PREDICT_RECORD, written last, seals both

FOLD_PREFIX = "fold"
BEST = "best.pt"
BEST_META = "best.json"  # best.pt's meta, readable without torch
LAST = "last.pt"
METRICS = "metrics.csv"
RESULT = "result.json"


@dataclass(frozen=True)
class FoldFolder:
    path: Path

    @property
    def fold(self) -> int:
        return int(self.path.name[len(FOLD_PREFIX):])

    @property
    def best(self) -> Path:
        return self.path / BEST

    @property
    def best_meta(self) -> Path:
        return self.path / BEST_META

    @property
    def last(self) -> Path:
        return self.path / LAST

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def oof(self) -> Path:
        return self.path / OOF

    @property
    def result(self) -> Path:
        return self.path / RESULT

    def is_finished(self) -> bool:
        return self.result.is_file()

    def has_best(self) -> bool:
        return self.best.is_file()


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    config = property(lambda self: self.path / CONFIG)
    folds = property(lambda self: self.path / FOLDS)
    skipped = property(lambda self: self.path / SKIPPED)
    oof = property(lambda self: self.path / OOF)
    summary = property(lambda self: self.path / SUMMARY)
    curves = property(lambda self: self.path / CURVES)
    confusion = property(lambda self: self.path / CONFUSION)
    tta = property(lambda self: self.path / TTA)
    submission = property(lambda self: self.path / SUBMISSION)
    probs = property(lambda self: self.path / PROBS)
    predict_record = property(lambda self: self.path / PREDICT_RECORD)
    trackers = property(lambda self: self.path / TRACKER_IDS)

    def fold(self, k: int) -> FoldFolder:
        return FoldFolder(self.path / f"{FOLD_PREFIX}{k}")

    def fold_folders(self) -> list[FoldFolder]:
        """The fold{k} folders present, by k."""
        found = (p for p in self.path.glob(f"{FOLD_PREFIX}*") if p.is_dir() and p.name[len(FOLD_PREFIX):].isdigit())
        return [FoldFolder(p) for p in sorted(found, key=lambda p: int(p.name[len(FOLD_PREFIX):]))]

    def finished_folds(self) -> list[FoldFolder]:
        return [f for f in self.fold_folders() if f.is_finished()]

    def checkpointed_folds(self) -> list[FoldFolder]:
        """The folds with a best.pt, finished or not: predict, tta-eval and export use each. A fold
        keeps its best model from its first validated epoch on, so a run stopped part-way (or
        farmed --fold jobs still training) predicts with what it has; scores, which must be
        final, read finished folds only."""
        return [f for f in self.fold_folders() if f.has_best()]

    def is_run(self) -> bool:
        return self.config.is_file() and self.folds.is_file()

    def require(self) -> "RunFolder":
        if not self.is_run():
            raise MaskctlError(f"{self.path} is not a run folder (no {CONFIG} / {FOLDS}); pass folders made by `maskctl train`, e.g. runs/exp")
        return self


def run_folder_of(path: str | Path) -> RunFolder:
    """The run folder `path` is, or the one a checkpoint file in it belongs to
    (runs/NAME/fold{k}/best.pt -> runs/NAME)."""
    path = Path(path)
    return RunFolder(path.parent.parent if path.is_file() else path)


def new_run_folder(runs_dir: str | Path, name: str) -> RunFolder:
    """runs/NAME, or NAME2, NAME3... when it exists: a run folder is never overwritten."""
    runs_dir = Path(runs_dir)
    candidate, number = runs_dir / name, 1
    while candidate.exists():
        number += 1
        candidate = runs_dir / f"{name}{number}"
    candidate.mkdir(parents=True)
    return RunFolder(candidate)
