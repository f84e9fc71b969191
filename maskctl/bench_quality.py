"""`maskctl bench quality`: does a maskctl recipe score higher than a plain PyTorch loop
(bench/plain_loop.py) given the same wall time on the same machine?

For each data seed: a synthetic set in the competition layout (240 training and 80 eval people at
512x384 by default); the plain loop trains on every training person for the whole budget (its
one-cycle lr follows the clock); then `maskctl train --config NAME` with `time_budget_minutes` set
to the same budget; each predicts the eval people, whom neither saw, and is scored against their
answers.csv. The two arms run one after the other in this process, with the same torch threads.
Both budgets count from the start of training, decoding the images included; predicting comes
after and is timed on its own.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from maskctl.console import console
from maskctl.errors import MaskctlError

QUALITY_RECIPE = "cpu-score"  # the score-tuned CPU recipe; --config names another
PEOPLE, EVAL_PEOPLE = 240, 80
IMAGE_HW = (512, 384)
SEEDS = (0, 1)


def plain_loop():
    """bench/plain_loop.py from the source checkout, as a module."""
    path = Path(__file__).resolve().parent.parent / "bench" / "plain_loop.py"
    if not path.is_file():
        raise MaskctlError(f"{path} not found: `maskctl bench quality` runs from a source checkout")
    spec = importlib.util.spec_from_file_location("plain_loop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_quality(out: Path, config: str = QUALITY_RECIPE, minutes: float = 10.0, seeds=SEEDS, people: int = PEOPLE, eval_people: int = EVAL_PEOPLE,
                image_hw=IMAGE_HW, device_name: str | None = None, overwrite: bool = False) -> dict:
    from maskctl import io
    from maskctl.config import load_config, resolve_recipe
    from maskctl.engine.runtime import configure_threads, cpu_plan, default_workers, resolve_device

    resolve_recipe(config)  # a wrong name fails before minutes of work
    out = io.prepare_output_dir(out, overwrite)
    plain = plain_loop()
    device = resolve_device(device_name)
    configure_threads(device, default_workers(device))
    record = {"config": config, "minutes": minutes, "people": people, "eval_people": eval_people, "image_size": list(image_hw),
              "device": str(device), "cpu": cpu_plan(default_workers(device)), "rows": []}
    console.print(f"bench quality: plain loop vs maskctl --config {config}, {minutes:g} min each, data seeds {', '.join(map(str, seeds))}; {record['cpu']}")
    for seed in seeds:
        data = _synthetic_set(out / f"seed{seed}", seed, people, eval_people, image_hw)
        console.rule(f"data seed {seed}: the plain loop")
        # Equal wall time: the plain loop trains for the whole budget, not for its 12 epochs (3.4 min
        # on a quiet 2-core machine; 37.7 epochs in 10 min scored 0.548 there against 12 epochs' 0.559).
        plain_result = plain.run(data / "train", data / "eval", minutes, seed=seed, epochs=None, device=str(device))
        console.print(f"plain loop: eval macro F1 {plain_result['f1']:.4f} after {plain_result['epochs']:.1f} epochs")
        console.rule(f"data seed {seed}: maskctl --config {config}")
        ours = _maskctl_arm(load_config(config, {"data": str(data / "train"), "runs_dir": str(out / f"seed{seed}" / "runs"), "name": "maskctl",
                                                 "time_budget_minutes": minutes, "seed": seed, "device": device_name}), data / "eval", device_name)
        row = {"seed": seed, "plain_f1": plain_result["f1"], "maskctl_f1": ours["f1"], "gap": ours["f1"] - plain_result["f1"],
               "plain_train_s": plain_result["train_s"], "plain_predict_s": plain_result["predict_s"], "plain_epochs": plain_result["epochs"],
               "maskctl_train_s": ours["train_s"], "maskctl_predict_s": ours["predict_s"], "maskctl_epochs": ours["epochs"], "maskctl_run": ours["run"]}
        record["rows"].append(row)
    for key in ("plain_f1", "maskctl_f1", "gap"):
        record[f"mean_{key}"] = sum(row[key] for row in record["rows"]) / len(record["rows"])
    console.print(_table(record))
    io.write_json(out / "quality.json", record)
    console.print(f"[green]wrote[/] {out / 'quality.json'}")
    return record


def _synthetic_set(folder: Path, seed: int, people: int, eval_people: int, image_hw) -> Path:
    from maskctl.data.synth import synthesize

    synthesize(folder / "data", people=people, eval_people=eval_people, seed=seed, height=image_hw[0], width=image_hw[1], overwrite=True)
    return folder / "data"


def _maskctl_arm(config, eval_dir: Path, device_name: str | None) -> dict:
    from maskctl.engine import kfold
    from maskctl.engine.report import read_fold_result
    from maskctl.predict import predict
    from maskctl.runfolder import RunFolder

    started = time.monotonic()
    run = kfold.train(config)
    trained = time.monotonic()
    result = predict(run, data=eval_dir, device_name=device_name)
    epochs = [read_fold_result(fold.result)["epochs_run"] for fold in RunFolder(run).finished_folds()]
    return {"f1": result["scores"]["f1"], "train_s": trained - started, "predict_s": time.monotonic() - trained, "epochs": epochs, "run": str(run)}


def _table(record: dict):
    from rich.table import Table

    table = Table(title=f"eval macro F1 on held-out synthetic people, {record['minutes']:g} min of training each "
                        f"({record['people']} training / {record['eval_people']} eval people at {record['image_size'][0]}x{record['image_size'][1]})",
                  caption="seconds: training (decoding included) + predicting (epochs trained)")
    recipe = Path(record["config"]).stem  # a recipe's name, or its file's
    for column in ("data seed", "plain loop F1", f"{recipe} F1", "gap", "plain loop s", f"{recipe} s"):
        table.add_column(column, justify="right")
    for row in record["rows"]:
        table.add_row(str(row["seed"]), f"{row['plain_f1']:.4f}", f"{row['maskctl_f1']:.4f}", _gap(row["gap"]),
                      f"{row['plain_train_s']:.0f} + {row['plain_predict_s']:.0f} ({row['plain_epochs']:.1f})",
                      f"{row['maskctl_train_s']:.0f} + {row['maskctl_predict_s']:.0f} ({'/'.join(map(str, row['maskctl_epochs']))})")
    table.add_row("mean", f"{record['mean_plain_f1']:.4f}", f"{record['mean_maskctl_f1']:.4f}", _gap(record["mean_gap"]), "", "", style="bold")
    return table


def _gap(value: float) -> str:
    return f"[{'green' if value > 0 else 'red'}]{value:+.4f}[/]"
