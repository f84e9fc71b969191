"""Screen score levers on a matrix of data sets at equal work: every arm trains a fixed number of
epochs, so two single-core processes can run cells side by side without their contention changing
any result (training on the CPU is deterministic for a seed). `maskctl bench quality` is the
equal-wall-time check of a finished recipe; this is the cheaper sieve before it.

Each arm is a recipe with `--set`-style overrides, or `plain` (maskctl/commands/yardstick.py) with its
epoch count or its wall-time budget in minutes; every (style, data seed, training seed) cell trains every arm once. Results go to
OUT/results.jsonl, one line per arm and cell, and a rerun skips what is there.

    python bench/lever_matrix.py --out /tmp/levers --styles real,hard,wild --seeds 0 --train-seeds 0,1 \\
        --arm 'shipped=cpu-score:epochs=12;size=96x72;time_budget_minutes=null;ema_warmup=false' \\
        --arm 'warm-last=cpu-score:epochs=12;size=96x72;time_budget_minutes=null;keep=last' \\
        --arm plain=plain:epochs=9 --jobs 2
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import sys
from pathlib import Path


def parse_arm(text: str) -> tuple[str, str, list[str]]:
    """'name=recipe:key=value;key=value' -> (name, recipe, ['key=value', ...]) (';' since values hold commas: age_edges=30,58)."""
    name, _, rest = text.partition("=")
    recipe, _, sets = rest.partition(":")
    return name, recipe, [item for item in sets.split(";") if item]


def make_data(out: Path, style: str, seed: int, people: int, eval_people: int, size_hw: tuple[int, int]) -> Path:
    from maskctl.data.synth import synthesize

    folder = out / "data" / f"{style}-seed{seed}"
    if not (folder / "eval" / "answers.csv").is_file():
        synthesize(folder, people=people, eval_people=eval_people, seed=seed, height=size_hw[0], width=size_hw[1], overwrite=True, style=style,
                   show_progress=False)
    return folder


def run_cell(task: dict) -> dict:
    core = task["core"]
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})  # maskctl takes its torch threads from the usable cores: one here
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    torch.set_num_threads(1)
    data = Path(task["data"])
    if task["recipe"] == "plain":
        from maskctl.commands.yardstick import run

        settings = dict(item.split("=") for item in task["sets"])
        # epochs=N: equal work; minutes=M: the plain loop's own wall-time budget (its lr follows the clock)
        epochs = int(settings["epochs"]) if "epochs" in settings else None
        result = run(data / "train", data / "eval", minutes=float(settings.get("minutes", 10_000)), seed=task["train_seed"], epochs=epochs)
        return {**_key(task), "f1": result["f1"], "seconds": result["train_s"] + result["predict_s"], "epochs": result["epochs"]}
    from maskctl.config import load_config
    from maskctl.engine import kfold
    from maskctl.infer.predict import predict

    config = load_config(task["recipe"], {"data": str(data / "train"), "runs_dir": task["runs"], "name": f"{task['arm']}-t{task['train_seed']}",
                                          "seed": task["train_seed"], "device": "cpu", "workers": 0}, task["sets"])
    import time

    started = time.monotonic()
    run_dir = kfold.train(config)
    result = predict(run_dir, data=data / "eval", device_name="cpu")
    return {**_key(task), "f1": result["scores"]["f1"], "tasks": {k: v for k, v in result["scores"].items() if k.startswith("f1_")},
            "seconds": time.monotonic() - started, "run": str(run_dir)}


def _key(task: dict) -> dict:
    return {"arm": task["arm"], "style": task["style"], "data_seed": task["data_seed"], "train_seed": task["train_seed"]}


def _worker(queue_in, queue_out, core):
    import contextlib
    import io

    for task in iter(queue_in.get, None):
        task["core"] = core
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                queue_out.put(run_cell(task))
        except BaseException as exc:  # a failed cell is reported, not fatal to the matrix
            queue_out.put({**_key(task), "error": f"{type(exc).__name__}: {exc}"})


def summarise(rows: list[dict], baseline: str | None) -> str:
    arms = sorted({r["arm"] for r in rows if "f1" in r})
    cells = sorted({(r["style"], r["data_seed"], r["train_seed"]) for r in rows})
    f1 = {(r["arm"], r["style"], r["data_seed"], r["train_seed"]): r["f1"] for r in rows if "f1" in r}
    lines = ["cell".ljust(18) + "".join(a[:12].rjust(13) for a in arms)]
    for cell in cells:
        lines.append(f"{cell[0]}/d{cell[1]}/t{cell[2]}".ljust(18) + "".join(f"{f1.get((a, *cell), float('nan')):13.4f}" for a in arms))
    for arm in arms:
        values = [f1[(arm, *c)] for c in cells if (arm, *c) in f1]
        line = f"{arm}: mean {statistics.mean(values):.4f} worst {min(values):.4f} (n={len(values)})"
        spread = {}
        for (style, data_seed, _), value in ((c, f1[(arm, *c)]) for c in cells if (arm, *c) in f1):
            spread.setdefault((style, data_seed), []).append(value)
        line += f" seed spread max {max(max(v) - min(v) for v in spread.values()):.4f}"
        if baseline and arm != baseline:
            gaps = [f1[(arm, *c)] - f1[(baseline, *c)] for c in cells if (arm, *c) in f1 and (baseline, *c) in f1]
            if gaps:
                line += f"; vs {baseline}: mean {statistics.mean(gaps):+.4f} worst {min(gaps):+.4f}"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--styles", default="real,hard,wild")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--train-seeds", default="0,1")
    parser.add_argument("--people", type=int, default=240)
    parser.add_argument("--eval-people", type=int, default=80)
    parser.add_argument("--photo-size", default="512x384")
    parser.add_argument("--arm", action="append", default=[], help="name=recipe:key=value;... or name=plain:epochs=N (or minutes=M)")
    parser.add_argument("--baseline", default=None, help="the arm the others' gaps are taken against")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--summary", action="store_true", help="only print the table of what results.jsonl holds")
    args = parser.parse_args()
    results = args.out / "results.jsonl"
    done = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    if args.summary:
        print(summarise(done, args.baseline))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    size_hw = tuple(int(v) for v in args.photo_size.split("x"))
    finished = {(r["arm"], r["style"], r["data_seed"], r["train_seed"]) for r in done if "f1" in r}
    tasks = []
    for style in args.styles.split(","):
        for data_seed in map(int, args.seeds.split(",")):
            data = make_data(args.out, style, data_seed, args.people, args.eval_people, size_hw)
            for train_seed in map(int, args.train_seeds.split(",")):
                for arm in args.arm:
                    name, recipe, sets = parse_arm(arm)
                    if (name, style, data_seed, train_seed) not in finished:
                        tasks.append({"arm": name, "recipe": recipe, "sets": sets, "style": style, "data_seed": data_seed, "train_seed": train_seed,
                                      "data": str(data), "runs": str(args.out / "runs" / f"{style}-seed{data_seed}")})
    context = multiprocessing.get_context("spawn")
    queue_in, queue_out = context.Queue(), context.Queue()
    workers = [context.Process(target=_worker, args=(queue_in, queue_out, core % (os.cpu_count() or 1))) for core in range(args.jobs)]
    for task in tasks:
        queue_in.put(task)
    for _ in workers:
        queue_in.put(None)
    for worker in workers:
        worker.start()
    # A stopped matrix stops its workers: left alone, they trained the rest of the queue for nobody
    # and took the cores from whatever ran next (the results of finished cells stay, a rerun resumes).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for _ in tasks:
            row = queue_out.get()
            done.append(row)
            with results.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
            worker.join()
    print(summarise(done, args.baseline))


if __name__ == "__main__":
    main()
