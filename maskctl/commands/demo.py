"""`maskctl demo`: the whole loop on built-in synthetic data, for a new user's first command.

synth -> eda -> split -> train two runs on the same folds -> tta-eval -> predict -> ensemble,
then a summary of where everything went and the macro F1 on the synthetic answers.
"""
from __future__ import annotations

import time
from pathlib import Path

from maskctl.core.console import console


def run_demo(out: Path, people: int = 160, epochs: int | None = None, overwrite: bool = False) -> dict:
    import pandas as pd
    from rich.table import Table

    from maskctl.commands.eda import run_eda
    from maskctl.commands.ensemble import ensemble
    from maskctl.commands.tta_eval import tta_eval
    from maskctl.config import load_config
    from maskctl.core import io
    from maskctl.data.folds import SPLIT_FILE, write_folds_file
    from maskctl.data.synth import synthesize
    from maskctl.engine import kfold
    from maskctl.engine.metrics import scores
    from maskctl.infer.predict import predict
    from maskctl.runs.folder import SUBMISSION

    started = time.perf_counter()
    out = io.prepare_output_dir(out, overwrite)
    data = out / "data"

    def step(title: str) -> None:
        console.rule(f"[bold]{title}[/]  ({time.perf_counter() - started:.0f}s)")

    step(f"1/7 synth: {people} people in the competition layout")
    synthesize(data, people=people, seed=0, overwrite=True)
    step("2/7 eda")
    run_eda(data / "train", out_dir=out / "reports" / "eda-train", overwrite=True)
    step("3/7 split: person-grouped, stratified folds")
    write_folds_file(data / "train", data / SPLIT_FILE, folds=2, seed=0, overwrite=True)
    runs = []
    common = {"data": str(data / "train"), "folds_file": str(data / SPLIT_FILE), "runs_dir": str(out / "runs"), "epochs": epochs}
    # Two members for the ensemble: the recipe as it is, and a variant with another loss mix,
    # CutMix of face halves and another seed; both on the same folds, so weights can be fitted.
    variants = (("quick", {}), ("quick-cutmix", {"loss": "focal:0.6,f1:0.4", "mix": "cutmix", "seed": 1}))
    for number, (name, changes) in enumerate(variants, start=4):
        described = ", ".join(f"{k} {v}" for k, v in changes.items())
        step(f"{number}/7 train {name} (recipe cpu-quick{', ' + described if described else ''}; 2 folds)")
        runs.append(kfold.train(load_config("cpu-quick", {**common, "name": name, **changes})))
    step("6/7 tta-eval and predict")
    tta_eval(runs[0])
    for run in runs:
        predict(run, data / "eval", tta="auto" if run == runs[0] else "none", overwrite=True)
    step("7/7 ensemble")
    ensemble(runs, out / "ensemble", overwrite=True)

    answers = pd.read_csv(data / "eval" / "answers.csv", dtype={"ImageID": str}).set_index("ImageID")["ans"]
    summary = Table(title=f"maskctl demo: done in {time.perf_counter() - started:.0f}s")
    summary.add_column("what")
    summary.add_column(f"where (under {out.name}/)")
    summary.add_column("eval macro F1", justify="right")
    summary.add_row("data", "data/", "")
    summary.add_row("eda report", "reports/eda-train/report.md", "")
    result = {}
    for label, folder in [(r.name, r) for r in runs] + [("ensemble", out / "ensemble")]:
        submission = pd.read_csv(folder / SUBMISSION, dtype={"ImageID": str})
        f1 = scores(answers.loc[submission["ImageID"]].to_numpy(), submission["ans"].to_numpy())["f1"]
        result[label] = f1
        summary.add_row(f"submission: {label}", str((folder / SUBMISSION).relative_to(out)), f"{f1:.4f}")
    console.print(summary)
    console.print(f"everything is under {out}")
    console.print("next: the same loop on your data, e.g. [bold]maskctl eda data/train[/], then [bold]maskctl train --config cpu-quick[/] (CPU) or [bold]--config gpu-b4[/] (GPU)")
    return result
