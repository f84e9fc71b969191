"""`maskctl bench quality`: does a maskctl recipe score higher than a plain PyTorch loop
(maskctl/commands/yardstick.py) given the same wall time on the same machine, on more than one kind of data?

A lever chosen on one generator's pictures can lose on another's, and one training seed can move
a score by more than a lever does. So the comparison runs over a matrix: synthetic sets of several
styles (maskctl.data.synth.STYLES: how visible age and gender are, ages, photo conditions, clothes)
and data seeds, each trained with several training seeds; or over a user's own data, with eval
people held out by person when no answers exist. For each cell the plain loop trains on every
training person for the whole budget (its one-cycle lr follows the clock), then `maskctl train
--config NAME` with `time_budget_minutes` set to the same budget; each predicts the eval people,
whom neither saw, and is scored against their answers. The table gives every cell's gap and the
mean and the WORST gap: a recipe is judged on both.

Eighty eval people are few for 18 classes: where the eval people are known (synthetic sets, and
people this bench held out of a user's data), each gap comes with a 95% interval from a paired
person bootstrap (both arms scored on the same resampled people), and the mean gap with one from
the same draws, so a user sees how much of a gap another set of eval people would keep.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from maskctl.core.console import console
from maskctl.core.errors import MaskctlError

QUALITY_RECIPE = "cpu-score"  # the score-tuned CPU recipe; --config names another
PEOPLE, EVAL_PEOPLE = 240, 80
IMAGE_HW = (512, 384)
STYLES = ("real",)
SEEDS = (0, 1)
TRAIN_SEEDS = (0,)
HOLDOUT_SHARE = 0.25  # of a user's training people, held out as eval people when their eval folder has no answers
BOOTSTRAP_DRAWS = 1000  # person resamples per data set: 0.1 s a cell; the ends of an interval move by about 0.01 with the resampling seed


def parse_styles(text: str) -> list[str]:
    """'real,hard,wild' -> the style names, each a known style (one line before any work), none twice."""
    from maskctl.core.errors import UsageError
    from maskctl.data.synth import parse_style

    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        parse_style(name)
    if not names or len(set(names)) < len(names):
        raise UsageError(f"--styles must name different styles, e.g. real,hard,wild; got {text[:60]!r}")
    return names


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """'0,1' -> [0, 1]: different whole numbers within the recipe's seed range."""
    from maskctl.config import FIELDS
    from maskctl.core.errors import UsageError

    seeds = [part.strip() for part in text.split(",")]
    if not all(part.isascii() and part.isdigit() for part in seeds) or len(set(seeds)) != len(seeds) or FIELDS["seed"].metadata["check"]([int(s) for s in seeds]):
        raise UsageError(f"{option} must be different whole numbers from 0 to 1000000, e.g. 0,1; got {text[:60]!r}")
    return [int(s) for s in seeds]


@dataclass(frozen=True)
class DataSet:
    """One cell's data: where it is and how it was made."""

    name: str  # e.g. hard/seed1, or the user's folder name
    train: Path
    eval: Path
    work: Path  # where this data set's runs go
    style: str | None = None
    data_seed: int | None = None
    people: dict[str, str] | None = None  # ImageID -> person of the eval images; None where unknown (no interval)


def run_quality(out: Path, config: str = QUALITY_RECIPE, minutes: float = 10.0, seeds=SEEDS, people: int = PEOPLE, eval_people: int = EVAL_PEOPLE,
                image_hw=IMAGE_HW, device_name: str | None = None, overwrite: bool = False, styles=STYLES, train_seeds=TRAIN_SEEDS,
                data: Path | None = None) -> dict:
    """Every (data set, training seed) cell: the plain loop and the recipe for `minutes` each.
    `data`: a user's training folder instead of synthetic sets (then `styles` and `seeds` only
    choose the held-out people: the first data seed)."""
    from maskctl.config import resolve_recipe
    from maskctl.core import io
    from maskctl.engine.runtime import configure_threads, cpu_plan, default_workers, resolve_device

    resolve_recipe(config)  # a wrong name fails before minutes of work
    user_table = None  # the user's training folder, read once: checked here, split by user_eval_split
    if data is not None:
        from maskctl.data.layout import read_train

        user_table = read_train(Path(data)).table  # not a training folder: one line, before any work
    out = io.prepare_output_dir(out, overwrite)
    device = resolve_device(device_name)
    configure_threads(device, default_workers(device))
    record = {"config": config, "minutes": minutes, "people": people, "eval_people": eval_people, "image_size": list(image_hw),
              "styles": list(styles), "seeds": list(seeds), "train_seeds": list(train_seeds), "data": str(data) if data else None,
              "device": str(device), "cpu": cpu_plan(default_workers(device)), "rows": []}
    cells = len(train_seeds) * (1 if data is not None else len(styles) * len(seeds))
    console.print(f"bench quality: plain loop vs maskctl --config {config}, {minutes:g} min each, {cells} cell(s) "
                  f"(about {2 * cells * minutes:.0f} min); {record['cpu']}")
    gap_draws_by_cell: list = []  # each cell's bootstrap gaps, for the mean gap's interval
    for index, dataset in enumerate(_data_sets(out, data, user_table, styles, seeds, people, eval_people, image_hw)):
        resampling = eval_resampling(dataset, seed=index)
        for train_seed in train_seeds:
            row, draws = _cell(dataset, train_seed, config, minutes, device, device_name, resampling)
            record["rows"].append(row)
            gap_draws_by_cell.append(draws)
            io.write_json(out / "quality.json", {**record, **summarise(record["rows"], gap_draws_by_cell)})  # a cut-short matrix keeps what it measured
    record.update(summarise(record["rows"], gap_draws_by_cell))
    console.print(_table(record))
    io.write_json(out / "quality.json", record)
    console.print(f"[green]wrote[/] {out / 'quality.json'}")
    return record


def _data_sets(out: Path, data: Path | None, user_table, styles, seeds, people: int, eval_people: int, image_hw):
    """The matrix's data sets, each made when its turn comes (a synthetic set takes a minute)."""
    from maskctl.data.synth import eval_image_people

    if data is not None:
        train, evaluation, held_people = user_eval_split(Path(data), user_table, out / "data", seeds[0])
        yield DataSet(Path(data).name or "data", train, evaluation, out, people=held_people)
        return
    for style in styles:
        for seed in seeds:
            folder = out / f"{style}-seed{seed}"
            made = _synthetic_set(folder / "data", style, seed, people, eval_people, image_hw)
            yield DataSet(f"{style}/seed{seed}", made / "train", made / "eval", folder, style, seed, eval_image_people(seed, people, eval_people))


@dataclass(frozen=True)
class Resampling:
    """A data set's eval answers in one order, and the person resamples both arms are scored on."""

    ids: list[str]
    truth: list[int]
    resamples: list


def eval_resampling(dataset: DataSet, seed: int, draws: int = BOOTSTRAP_DRAWS) -> Resampling | None:
    """The person bootstrap of a data set's eval images; None when its people are unknown (a
    user's own eval folder with answers: its names need not say whose photo each is)."""
    from maskctl.engine.metrics import person_resamples
    from maskctl.infer.outputs import read_answers

    if dataset.people is None:
        return None
    ids = sorted(dataset.people)
    truth = read_answers(dataset.eval / "answers.csv", ids).tolist()
    return Resampling(ids, truth, person_resamples([dataset.people[i] for i in ids], draws, seed))


def _cell(dataset: DataSet, train_seed: int, config: str, minutes: float, device, device_name: str | None,
          resampling: Resampling | None) -> tuple[dict, object]:
    """One cell's row, and its gap's bootstrap draws (None without a resampling)."""
    from maskctl.commands.yardstick import run as plain_run
    from maskctl.config import load_config

    console.rule(f"{dataset.name}, training seed {train_seed}: the plain loop")
    # Equal wall time: the plain loop trains for the whole budget, not for its 12 epochs.
    plain = plain_run(dataset.train, dataset.eval, minutes, seed=train_seed, epochs=None, device=str(device))
    console.print(f"plain loop: eval macro F1 {plain['f1']:.4f} after {plain['epochs']:.1f} epochs")
    console.rule(f"{dataset.name}, training seed {train_seed}: maskctl --config {config}")
    ours = _maskctl_arm(load_config(config, {"data": str(dataset.train), "runs_dir": str(dataset.work / "runs"), "name": f"maskctl-t{train_seed}",
                                             "time_budget_minutes": minutes, "seed": train_seed, "device": device_name}), dataset.eval, device_name)
    draws = None
    if resampling is not None:
        from maskctl.engine.metrics import gap_draws, interval
        from maskctl.infer.outputs import read_answers
        from maskctl.runs.folder import RunFolder

        ours_predicted = read_answers(RunFolder(ours["run"]).submission, resampling.ids)  # the submission predict just wrote
        draws = gap_draws(resampling.truth, [plain["predictions"][i] for i in resampling.ids], ours_predicted, resampling.resamples)
    row = {"data": dataset.name, "style": dataset.style, "data_seed": dataset.data_seed, "train_seed": train_seed,
            "plain_f1": plain["f1"], "maskctl_f1": ours["f1"], "gap": ours["f1"] - plain["f1"],
            "gap_interval": list(interval(draws)) if draws is not None else None,
            "plain_train_s": plain["train_s"], "plain_predict_s": plain["predict_s"], "plain_epochs": plain["epochs"],
            "maskctl_train_s": ours["train_s"], "maskctl_predict_s": ours["predict_s"], "maskctl_epochs": ours["epochs"], "maskctl_run": ours["run"]}
    return row, draws


def summarise(rows: list[dict], gap_draws_by_cell: list | None = None) -> dict:
    """Mean and worst of each arm and of the gap, the widest spread over training seeds on one
    data set (how much of a lottery the recipe is), and the mean gap's 95% interval when every
    cell has bootstrap draws (cells of one data set share its resamples: a paired mean)."""
    if not rows:
        return {}
    summary = {}
    for key in ("plain_f1", "maskctl_f1", "gap"):
        values = [row[key] for row in rows]
        summary[f"mean_{key}"] = sum(values) / len(values)
        summary[f"worst_{key}"] = min(values)
    for arm in ("plain", "maskctl"):
        by_data: dict[str, list[float]] = {}
        for row in rows:
            by_data.setdefault(row["data"], []).append(row[f"{arm}_f1"])
        summary[f"{arm}_seed_spread"] = max(max(v) - min(v) for v in by_data.values())
    summary["mean_gap_interval"] = None
    if gap_draws_by_cell and all(draws is not None for draws in gap_draws_by_cell):
        import numpy as np

        from maskctl.engine.metrics import interval

        summary["mean_gap_interval"] = list(interval(np.mean(gap_draws_by_cell, axis=0)))
    return summary


def _synthetic_set(folder: Path, style: str, seed: int, people: int, eval_people: int, image_hw) -> Path:
    from maskctl.data.synth import synthesize

    synthesize(folder, people=people, eval_people=eval_people, seed=seed, height=image_hw[0], width=image_hw[1], overwrite=True, style=style)
    return folder


def user_eval_split(data: Path, table, folder: Path, seed: int) -> tuple[Path, Path, dict[str, str] | None]:
    """(train, eval) folders for a user's data. With answers beside it (eval/answers.csv) and a
    train.csv, the folders as they are; otherwise a quarter of the people, stratified by gender x
    age band, become eval people: a train folder of the rest and an eval folder with answers,
    both made of hard links to the user's files (copies on another file system; the user's
    files are never changed). Not symbolic links: maskctl refuses paths that lead out of a folder.
    Third: the person of each eval image (ImageID -> person), None for the user's own eval folder."""
    evaluation = data.parent / "eval"
    if (evaluation / "answers.csv").is_file() and (data / "train.csv").is_file():
        return data, evaluation, None
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from maskctl.core import io
    from maskctl.data import labels as L
    people = table.drop_duplicates("person")
    strata = people["gender"].astype(str) + "/" + L.age_band(people["age"].to_numpy()).astype(str)
    stratify = strata if strata.value_counts().min() >= 2 else None
    if len(people) < 8:
        raise MaskctlError(f"{data} has {len(people)} people: too few to hold some out as eval people (at least 8)")
    _, held_out = train_test_split(people["person"].to_numpy(), test_size=HOLDOUT_SHARE, random_state=seed, stratify=stratify)
    held = table["person"].isin(set(held_out))
    train_dir, eval_dir = folder / "train", folder / "eval"
    (train_dir / "images").mkdir(parents=True)
    (eval_dir / "images").mkdir(parents=True)
    kept = people[~people["person"].isin(set(held_out))]
    for folder_name, path in zip(table.loc[~held, "folder"], table.loc[~held, "path"]):
        (train_dir / "images" / folder_name).mkdir(exist_ok=True)
        _link(Path(path), train_dir / "images" / folder_name / Path(path).name)
    io.write_csv(train_dir / "train.csv", pd.DataFrame({"id": kept["person"], "gender": kept["gender"], "race": kept["race"], "age": kept["age"],
                                                       "path": kept["folder"]}))
    eval_rows = table[held]
    names = [f"{person}_{kind}{ext}" for person, kind, ext in zip(eval_rows["person"], eval_rows["mask_kind"], eval_rows["ext"])]
    for name, path in zip(names, eval_rows["path"]):
        _link(Path(path), eval_dir / "images" / name)
    io.write_csv(eval_dir / "info.csv", pd.DataFrame({"ImageID": names, "ans": 0}))
    io.write_csv(eval_dir / "answers.csv", pd.DataFrame({"ImageID": names, "ans": eval_rows["score_label"].to_numpy()}))
    console.print(f"{data}: {len(kept)} training people, {len(held_out)} held out as eval people ({held.sum()} images), in {folder}")
    return train_dir, eval_dir, dict(zip(names, eval_rows["person"].astype(str)))


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed there
        shutil.copyfile(source, target)


def _maskctl_arm(config, eval_dir: Path, device_name: str | None) -> dict:
    from maskctl.engine import kfold
    from maskctl.infer.predict import predict
    from maskctl.runs.folder import RunFolder
    from maskctl.runs.results import read_fold_result

    started = time.monotonic()
    run = kfold.train(config)
    trained = time.monotonic()
    result = predict(run, data=eval_dir, device_name=device_name)
    epochs = [read_fold_result(fold.result)["epochs_run"] for fold in RunFolder(run).finished_folds()]
    return {"f1": result["scores"]["f1"], "train_s": trained - started, "predict_s": time.monotonic() - trained, "epochs": epochs, "run": str(run)}


def _table(record: dict):
    from rich.table import Table

    table = Table(title=f"eval macro F1 on held-out people, {record['minutes']:g} min of training each"
                        + ("" if record["data"] else f" ({record['people']} training / {record['eval_people']} eval synthetic people at "
                                                     f"{record['image_size'][0]}x{record['image_size'][1]})"),
                  caption="gap: 95% interval over resampled eval people beneath it, where they are known; "
                          "seconds: training (decoding included) + predicting (epochs trained)")
    recipe = Path(record["config"]).stem  # a recipe's name, or its file's
    for column in ("data", "training seed", "plain loop F1", f"{recipe} F1", "gap", "plain loop s", f"{recipe} s"):
        table.add_column(column, justify="right", min_width=14 if column == "gap" else None)  # its interval on one line
    for row in record["rows"]:
        table.add_row(row["data"], str(row["train_seed"]), f"{row['plain_f1']:.4f}", f"{row['maskctl_f1']:.4f}", _gap(row["gap"], row.get("gap_interval")),
                      f"{row['plain_train_s']:.0f} + {row['plain_predict_s']:.0f} ({row['plain_epochs']:.1f})",
                      f"{row['maskctl_train_s']:.0f} + {row['maskctl_predict_s']:.0f} ({'/'.join(map(str, row['maskctl_epochs']))})")
    table.add_row("mean", "", f"{record['mean_plain_f1']:.4f}", f"{record['mean_maskctl_f1']:.4f}", _gap(record["mean_gap"], record.get("mean_gap_interval")), "", "", style="bold")
    table.add_row("worst", "", f"{record['worst_plain_f1']:.4f}", f"{record['worst_maskctl_f1']:.4f}", _gap(record["worst_gap"]), "", "", style="bold")
    table.add_row("seed spread", "", f"{record['plain_seed_spread']:.4f}", f"{record['maskctl_seed_spread']:.4f}", "", "", "")
    return table


def _gap(value: float, bounds: list[float] | None = None) -> str:
    text = f"[{'green' if value > 0 else 'red'}]{value:+.4f}[/]"
    return text if bounds is None else f"{text}\n[dim]{bounds[0]:+.2f} to {bounds[1]:+.2f}[/]"
