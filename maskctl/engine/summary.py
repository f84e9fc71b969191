"""After a run: the OOF table, summary.json, plots and the closing table per fold."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from maskctl.core import io
from maskctl.core.console import console
from maskctl.engine.metrics import confusion, scores
from maskctl.runs.folder import FoldFolder, RunFolder
from maskctl.runs.results import prob_columns, read_fold_result, read_metrics, read_oof


def summarise_run(run_dir: Path, num_classes: int, class_names: list[str], mask_classes: bool = True,
                  training_age_edges=None) -> dict:
    """summary.json: per-fold best F1 and the OOF scores, all against the competition's labels;
    for the mask classes it records the age edges training used and the ones scores used."""
    from maskctl.data import labels as L

    run = RunFolder(run_dir)
    results = [read_fold_result(f.result) for f in run.finished_folds()]
    best = [r["best_f1"] for r in results]
    summary = {
        "folds": {str(r["fold"]): r for r in results},
        "mean_f1": float(np.mean(best)) if best else None,
        "std_f1": float(np.std(best)) if best else None,
    }
    if mask_classes and training_age_edges is not None:
        summary["training_age_edges"] = list(L.parse_age_edges(training_age_edges))
        summary["scoring_age_edges"] = list(L.SCORING_AGE_EDGES)
    oof = read_oof(run_dir)
    if oof is not None:
        io.write_csv(run.oof, oof, float_format="%.6g")
        pred = oof[prob_columns(oof)].to_numpy().argmax(1)
        summary["oof"] = scores(oof["label"].to_numpy(), pred, mask_classes=mask_classes)
        summary["oof_images"] = len(oof)
        names = [L.class_name(c, L.SCORING_AGE_EDGES) for c in range(num_classes)] if mask_classes else class_names  # rows: the scored labels
        plot_confusion(run.confusion, confusion(oof["label"], pred, num_classes), names)
    histories = fold_histories(run)
    if histories:
        plot_curves(run.curves, histories)
    io.write_json(run.summary, summary)
    console.print(fold_table(summary, run_dir.name))
    return summary


def fold_histories(run: RunFolder) -> dict:
    """Each fold's metrics.csv by fold folder name, finished or not: curves show a fold in progress too."""
    return {f.path.name: read_metrics(f.metrics) for f in run.fold_folders() if f.metrics.is_file()}


def fold_result_table(result, fold_dir: Path):
    """The closing table of one fold: its best epoch's metrics."""
    from rich.table import Table

    best = read_metrics(FoldFolder(fold_dir).metrics).set_index("epoch").loc[result.best_epoch]
    table = Table(title=f"fold {result.fold}: best epoch {result.best_epoch + 1} of {result.epochs_run}" + (" (stopped early)" if result.stopped_early else ""))
    columns = [c for c in ("f1", "acc", "f1_mask", "f1_gender", "f1_age", "val_loss") if c in best.index and best[c] == best[c]]
    for column in columns:
        table.add_column("macro F1" if column == "f1" else column, justify="right")
    table.add_row(*(f"{best[c]:.4f}" for c in columns))
    return table


def fold_table(summary: dict, title: str):
    from rich.table import Table

    table = Table(title=f"run {title}: best validation macro F1 per fold")
    for column in ("fold", "best F1", "best epoch", "epochs", "early stop"):
        table.add_column(column, justify="right")
    for fold, r in summary["folds"].items():
        table.add_row(fold, f"{r['best_f1']:.4f}", str(r["best_epoch"] + 1), str(r["epochs_run"]), "yes" if r["stopped_early"] else "")
    if summary.get("mean_f1") is not None:
        table.add_row("mean", f"[bold]{summary['mean_f1']:.4f}[/] ± {summary['std_f1']:.4f}", "", "", "")
    if "oof" in summary:
        table.add_row("OOF", f"[bold]{summary['oof']['f1']:.4f}[/]", "", f"{summary['oof_images']} img", "")
    return table


def plot_curves(path: Path, histories: dict) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, 3)
    for name, history in histories.items():
        epochs = history["epoch"] + 1
        # Markers: a fold of one epoch is a point, which a line alone does not draw.
        axes[0].plot(epochs, history["train_loss"], marker="o", markersize=3, label=f"{name} train")
        axes[0].plot(epochs, history["val_loss"], "--", marker="o", markersize=3, label=f"{name} val")
        axes[1].plot(epochs, history["f1"], marker="o", markersize=3, label=name)
        axes[2].plot(epochs, history["lr"], marker="o", markersize=3, label=name)
    for ax, title in zip(axes, ("loss", "validation macro F1", "learning rate")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    io.save_figure(path, fig)


def plot_confusion(path: Path, matrix: np.ndarray, class_names: list[str]) -> None:
    from matplotlib.figure import Figure

    size = max(6, len(class_names) * 0.45)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=6, color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("out-of-fold confusion matrix")
    io.save_figure(path, fig)
