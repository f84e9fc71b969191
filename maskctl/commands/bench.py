"""`maskctl bench`: images/s on the user's own data and machine, maskctl side by side with the
baseline way, in one run (these machines are noisy: only ratios measured together mean much).

- loader: the baseline-style loader (Pillow decode, per-item albumentations with the noise on
  the CPU, Normalize, float tensors) against maskctl's (decoded-image cache, uint8 geometry and
  colour, noise and normalisation on the device), same workers, at the seed's 512x384 and at a
  CPU recipe's size; then maskctl's loader at several worker counts for a recommendation
- train: optimizer steps/s with and without channels_last (and AMP on CUDA)
- predict: whole processes on the eval images: bench/baseline_inference.py style against
  `maskctl predict`, same checkpoint
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from maskctl.core.console import console

SEED_SIZE = (512, 384)
BATCHES, REPEATS = 20, 5  # batches timed per measurement, runs of each predict command (the CLI options' defaults)


def _time_loader(loader, batches: int, device, finish) -> float:
    """Images/s over `batches` batches after one warm-up batch; `finish` does the device part."""
    iterator = iter(loader)
    finish(next(iterator))
    count, started = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        finish(batch)
        count += len(batch[0])
    synchronize(device)  # the queued device work of the last batches counts too
    return count / (time.perf_counter() - started)


class BaselineDataset:
    """Pillow decode + per-item albumentations (resize, the seed's list with CPU noise, Normalize, ToTensorV2)."""

    def __init__(self, paths, size_hw, augment: bool):
        import albumentations as A
        from albumentations.pytorch import ToTensorV2

        from maskctl.data.transforms import _resize, seed_augmentation_with_cpu_noise

        steps = seed_augmentation_with_cpu_noise(*size_hw).transforms if augment else [_resize(*size_hw)]
        self.paths = paths
        self.transform = A.Compose([*steps, A.Normalize(), ToTensorV2()])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        from PIL import Image

        image = np.asarray(Image.open(self.paths[index]).convert("RGB"))
        return self.transform(image=image)["image"], 0


def bench_loader(paths: list[str], size_hw, workers: int, batch_size: int, batches: int, device) -> dict:
    import torch

    from maskctl.components.samplers import EpochSampler
    from maskctl.data.cache import open_cache
    from maskctl.data.datasets import ImageDataset
    from maskctl.data.transforms import SEED_NOISE, add_noise_on_device, normalize_on_device, seed_augmentation
    from maskctl.engine.runtime import loader_kwargs

    kwargs = loader_kwargs(device, workers)
    baseline = torch.utils.data.DataLoader(BaselineDataset(paths, size_hw, augment=True), batch_size=batch_size, shuffle=True, **kwargs)
    cache = open_cache(paths, size_hw)
    ours_set = ImageDataset(paths, np.zeros(len(paths), dtype=np.int64), seed_augmentation(*size_hw).transform, size_hw, cache)
    ours = torch.utils.data.DataLoader(ours_set, batch_size=batch_size, sampler=EpochSampler(len(paths), seed=0), **kwargs)
    generator = torch.Generator().manual_seed(0)

    def baseline_finish(batch):
        batch[0].to(device, non_blocking=True)

    def ours_finish(batch):
        images = add_noise_on_device(batch[0].to(device, non_blocking=True), SEED_NOISE, generator)
        normalize_on_device(images)

    base_rate = _time_loader(baseline, batches, device, baseline_finish)
    ours_rate = _time_loader(ours, batches, device, ours_finish)
    return {"size": f"{size_hw[0]}x{size_hw[1]}", "workers": workers, "baseline": base_rate, "maskctl": ours_rate, "ratio": ours_rate / base_rate}


def recommend_workers(paths, size_hw, batch_size: int, batches: int, device) -> tuple[int, dict[int, float]]:
    import torch

    from maskctl.components.samplers import EpochSampler
    from maskctl.data.cache import open_cache
    from maskctl.data.datasets import ImageDataset
    from maskctl.data.transforms import seed_augmentation
    from maskctl.engine.runtime import cpu_count, loader_kwargs

    dataset = ImageDataset(paths, np.zeros(len(paths), dtype=np.int64), seed_augmentation(*size_hw).transform, size_hw, open_cache(paths, size_hw))
    rates = {}
    for workers in sorted({0, 1, 2, max(1, cpu_count() // 2), max(1, cpu_count() - 1)}):
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=EpochSampler(len(paths), seed=0), **loader_kwargs(device, workers))
        rates[workers] = _time_loader(loader, batches, device, lambda batch: batch[0].to(device))
    best = max(rates, key=rates.get)
    # More workers must pay for themselves: take the fewest within 5 % of the best.
    return min(w for w, r in rates.items() if r >= 0.95 * rates[best]), rates


def _train_step_fn(model_name: str, device, channels_last: bool, amp: bool):
    """One optimizer step on a uint8 (or 0..255 float) batch: fit's own step (maskctl.engine.step)."""
    import torch

    from maskctl.components.models import build_model
    from maskctl.data.transforms import normalize_on_device
    from maskctl.engine.step import TrainStep

    torch.manual_seed(0)
    model = build_model(model_name, 18).to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format).train()
    step = TrainStep(model, torch.optim.AdamW(model.parameters(), lr=1e-4), torch.amp.GradScaler("cuda", enabled=amp),
                     lambda net, batch, targets: torch.nn.functional.cross_entropy(net(batch), targets), device, amp)
    return lambda images, targets: step(normalize_on_device(images, channels_last=channels_last), targets)


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_train(model_name: str, size_hw, batch_size: int, steps: int, device) -> list[dict]:
    """Steps/s on in-memory batches: with and without channels_last (and AMP on CUDA)."""
    import torch

    rows = []
    modes = [(False, False), (True, False)] + ([(False, True), (True, True)] if device.type == "cuda" else [])
    images = torch.randint(0, 255, (batch_size, 3, *size_hw), dtype=torch.uint8, device=device)
    targets = torch.randint(0, 18, (batch_size,), device=device)
    for channels_last, amp in modes:
        step = _train_step_fn(model_name, device, channels_last, amp)
        step(images, targets)  # warm-up
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            step(images, targets)
        synchronize(device)
        seconds = time.perf_counter() - started
        rows.append({"channels_last": channels_last, "amp": amp, "steps_per_s": steps / seconds, "images_per_s": steps * batch_size / seconds})
    return rows


def bench_train_loading(paths: list[str], model_name: str, size_hw, batch_size: int, steps: int, workers: int, device) -> dict:
    """Training images/s fed by maskctl's real loader (cache, seed augmentation, device noise)
    against the same steps on one in-memory batch: near 1 means the GPU is the bottleneck."""
    import torch

    from maskctl.components.samplers import EpochSampler
    from maskctl.data.cache import open_cache
    from maskctl.data.datasets import ImageDataset
    from maskctl.data.transforms import SEED_NOISE, add_noise_on_device, seed_augmentation
    from maskctl.engine.runtime import loader_kwargs

    amp = device.type == "cuda"
    step = _train_step_fn(model_name, device, channels_last=True, amp=amp)
    dataset = ImageDataset(paths, np.random.default_rng(0).integers(0, 18, len(paths)), seed_augmentation(*size_hw).transform, size_hw, open_cache(paths, size_hw))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=EpochSampler(len(paths), seed=0), drop_last=True, **loader_kwargs(device, workers))
    generator = torch.Generator().manual_seed(0)

    def batches():
        while True:
            yield from loader

    source = batches()
    first_images, first_targets, _ = next(source)
    fixed = (first_images.to(device), first_targets.to(device))
    rates = {}
    for mode in ("synthetic", "real"):
        step(*fixed)
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            if mode == "real":
                images, targets, _ = next(source)
                images = add_noise_on_device(images.to(device, non_blocking=True), SEED_NOISE, generator)
                step(images, targets.to(device, non_blocking=True))
            else:
                step(*fixed)
        synchronize(device)
        rates[mode] = steps * batch_size / (time.perf_counter() - started)
    return {"model": model_name, "size": list(size_hw), "batch_size": batch_size, "workers": workers, "amp": amp, "channels_last": True,
            "synthetic_images_per_s": rates["synthetic"], "real_images_per_s": rates["real"], "real_over_synthetic": rates["real"] / rates["synthetic"]}


PREDICT_SIZES = (560, 1000)  # eval images: the two sizes; the whole eval folder stands in for 1000


def bench_predict(run: Path, eval_dir: Path, device_name: str, repeats: int = REPEATS) -> dict:
    """Whole processes, start-up included, on the first 560 eval images and on all of them: the
    baseline script, `maskctl predict RUN` (torch) and `maskctl predict EXPORT` (ONNX Runtime,
    no torch), taken in turns `repeats` times, the median of each (single runs of the same
    command varied by up to 40 % on the 2-core machine this was written on). The floor is the
    exported model's own compute on already-decoded images, a pass of it in each turn."""
    import statistics

    from maskctl.infer.onnx_export import export_run
    from maskctl.runs.folder import RunFolder

    checkpoint = RunFolder(run).fold(0).best
    script = Path(__file__).resolve().parents[2] / "bench" / "baseline_inference.py"
    if not script.is_file():
        from maskctl.core.errors import MaskctlError

        raise MaskctlError(f"{script} not found: `maskctl bench predict` runs from a source checkout")
    with console.status("exporting the bench run to ONNX"):
        export = export_run(run, out=run / "export", data=eval_dir, overwrite=True)

    # Timed as Python runs by default, with bytecode cached: under PYTHONDONTWRITEBYTECODE (set on
    # this project's machines) each maskctl process compiled its own sources again, 70 ms a
    # process here, which an installed package never does. A first, untimed turn writes it.
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}

    def seconds(command: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=environment)
        return time.perf_counter() - started

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for images in _predict_sizes(eval_dir):
            subset = _eval_subset(eval_dir, images, Path(tmp) / f"eval{images}")
            common = ["--data", str(subset), "--device", device_name, "--no-score", "--overwrite"]
            commands = {
                "baseline": [sys.executable, str(script), str(checkpoint), str(subset), f"{tmp}/baseline.csv", "--device", device_name],
                "maskctl": [sys.executable, "-m", "maskctl", "predict", str(checkpoint), "--out", f"{tmp}/torch", *common],
                "onnx": [sys.executable, "-m", "maskctl", "predict", str(export), "--out", f"{tmp}/onnx", *common],
                # what the baseline and the torch path pay before any work: importing torch, timm (and its torchvision) and pandas
                "startup": [sys.executable, "-c", "import torch, timm, pandas"],
            }
            floor_pass = _onnx_floor(export, subset)
            times: dict[str, list[float]] = {name: [] for name in (*commands, "floor")}
            if not rows:  # the warm-up turn: bytecode written, the images in the page cache
                for command in commands.values():
                    seconds(command)
            for _ in range(repeats):
                for name, command in commands.items():
                    times[name].append(seconds(command))
                times["floor"].append(floor_pass())
            import pandas as pd

            baseline_answers = pd.read_csv(f"{tmp}/baseline.csv")["ans"]
            agree = float((baseline_answers == pd.read_csv(f"{tmp}/torch/submission.csv")["ans"]).mean())
            onnx_agree = float((pd.read_csv(f"{tmp}/torch/submission.csv")["ans"] == pd.read_csv(f"{tmp}/onnx/submission.csv")["ans"]).mean())
            median = {name: statistics.median(values) for name, values in times.items()}
            floor = median["floor"]
            rows.append({"images": images, "baseline_s": median["baseline"], "maskctl_s": median["maskctl"], "onnx_s": median["onnx"],
                         "startup_s": median["startup"], "ratio": median["baseline"] / median["maskctl"], "onnx_ratio": median["baseline"] / median["onnx"],
                         "ratio_after_startup": (median["baseline"] - median["startup"]) / max(median["maskctl"] - median["startup"], 1e-3),
                         # turn by turn, each process against the floor pass just after it, so that drift cancels
                         "floor_s": floor, "onnx_over_floor": statistics.median(whole / model for whole, model in zip(times["onnx"], times["floor"])),
                         "agreement": agree, "onnx_agreement": onnx_agree, "times": times})
    return {**rows[-1], "rows": rows, "repeats": repeats}


def _predict_sizes(eval_dir: Path) -> list[int]:
    import pandas as pd

    total = len(pd.read_csv(eval_dir / "info.csv"))
    return sorted({min(size, total) for size in PREDICT_SIZES[:-1]} | {total})


def _eval_subset(eval_dir: Path, images: int, target: Path) -> Path:
    """The first `images` rows of an eval folder, as an eval folder of hard links (or copies
    across file systems; symbolic links would point outside the folder, which readers refuse)."""
    import os
    import shutil

    import pandas as pd

    info = pd.read_csv(eval_dir / "info.csv", dtype=str).iloc[:images]
    (target / "images").mkdir(parents=True)
    for image_id in info["ImageID"]:
        source, link = eval_dir / "images" / image_id, target / "images" / image_id
        try:
            os.link(source, link)
        except OSError:
            shutil.copyfile(source, link)
    info.to_csv(target / "info.csv", index=False)
    return target


def _onnx_floor(export: Path, eval_dir: Path):
    """A function timing one pass of the exported model itself over the eval images, decoded
    beforehand: the floor, measured in turns with the whole processes so that the machine's
    drift (its speed here varied by a third within minutes) touches both alike."""
    from maskctl.data.images import load_resized
    from maskctl.data.layout import read_eval
    from maskctl.infer.onnx_predict import center_crop_nhwc, open_session, read_export

    meta, model_path = read_export(export)
    session, _ = open_session(model_path, meta, "cpu")
    paths = read_eval(eval_dir).table["path"].tolist()
    images = center_crop_nhwc(np.stack([load_resized(p, tuple(meta["decode_size"]), meta.get("crop")) for p in paths]), meta["size"])
    batches = [images[start : start + 32] for start in range(0, len(images), 32)]
    output, feed = [meta["output"]], meta["input"]["name"]
    session.run(output, {feed: batches[0]})  # warm-up

    def one_pass() -> float:
        started = time.perf_counter()
        for batch in batches:
            session.run(output, {feed: batch})
        return time.perf_counter() - started

    return one_pass


def help_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "maskctl", "--help"], check=True, capture_output=True)
    return time.perf_counter() - started


def run_bench(what: str, data: Path | None, out: Path, batches: int, workers: int | None, device_name: str | None, model: str | None, overwrite: bool,
              repeats: int = REPEATS) -> dict:
    from rich.table import Table

    from maskctl.config import load_config
    from maskctl.core import io
    from maskctl.data.layout import read_train
    from maskctl.engine.runtime import configure_threads, cpu_plan, default_workers, resolve_device

    out = io.prepare_output_dir(out, overwrite)
    device = resolve_device(device_name)
    workers = default_workers(device) if workers is None else workers
    configure_threads(device, workers)
    console.print(cpu_plan(workers))
    quick = load_config("cpu-quick")
    if data is None:
        from maskctl.data.synth import synthesize

        data = out / "data" / "train"
        console.print("no --data: benchmarking on a synthetic set (60 people, 1001 eval images) at 384x512")
        synthesize(out / "data", people=60, eval_people=143, seed=0, overwrite=True)
    paths = read_train(data).table["path"].tolist()
    result: dict = {"device": str(device), "workers": workers, "images": len(paths), "cpu": cpu_plan(workers)}
    table = Table(title=f"maskctl bench on {device} ({workers} loader workers): maskctl vs the baseline way")
    for column in ("what", "baseline", "maskctl", "ratio"):
        table.add_column(column, justify="right" if column != "what" else "left")

    if what in ("loader", "all"):
        result["loader"] = []
        for size in (SEED_SIZE, quick.image_hw()):
            row = bench_loader(paths, size, workers, batch_size=32, batches=batches, device=device)
            result["loader"].append(row)
            table.add_row(f"loader {row['size']} (img/s)", f"{row['baseline']:.0f}", f"{row['maskctl']:.0f}", f"[bold]{row['ratio']:.2f}x[/]")
        best, rates = recommend_workers(paths, quick.image_hw(), 32, batches, device)
        result["workers_rates"] = {str(workers): rate for workers, rate in rates.items()}  # as bench.json holds them (JSON keys are text)
        result["recommended_workers"] = best
    if what in ("train", "all"):
        model_name = model or ("efficientnet_b4" if device.type == "cuda" else quick.model)
        size = SEED_SIZE if device.type == "cuda" else quick.image_hw()
        rows = bench_train(model_name, size, batch_size=16 if device.type == "cuda" else 32, steps=max(3, batches // 2), device=device)
        result["train"] = {"model": model_name, "size": list(size), "rows": rows}
        base = rows[0]["images_per_s"]
        for row in rows:
            label = f"train {model_name} {size[0]}x{size[1]}" + (" channels_last" if row["channels_last"] else "") + (" AMP" if row["amp"] else "")
            table.add_row(label + " (img/s)", f"{base:.1f}", f"{row['images_per_s']:.1f}", f"{row['images_per_s'] / base:.2f}x")
    if what in ("predict", "all"):
        from maskctl.engine import kfold

        eval_dir = Path(data).parent / "eval"
        if not (eval_dir / "info.csv").is_file():
            from maskctl.core.errors import MaskctlError

            raise MaskctlError(f"bench predict needs an eval folder beside the training data ({eval_dir})")
        run = kfold.train(load_config("cpu-quick", {"data": str(data), "epochs": 1, "val_ratio": 0.25, "runs_dir": str(out / "runs"), "name": "bench", "device": device_name}))
        result["predict"] = bench_predict(run, eval_dir, str(device), repeats)
        for row in result["predict"]["rows"]:
            table.add_row(f"predict {row['images']} eval images, whole process (s)", f"{row['baseline_s']:.1f}", f"{row['maskctl_s']:.1f}", f"[bold]{row['ratio']:.2f}x[/]")
            table.add_row("  the same from an ONNX export, no torch (s)", f"{row['baseline_s']:.1f}", f"{row['onnx_s']:.1f}", f"[bold]{row['onnx_ratio']:.2f}x[/]")
            table.add_row("  the export's own compute, the floor (s): ONNX predict / floor, turn by turn", "", f"{row['floor_s']:.1f}", f"{row['onnx_over_floor']:.2f}x")
            table.add_row(f"  torch path less the {row['startup_s']:.1f}s of importing torch+timm (s)", f"{row['baseline_s'] - row['startup_s']:.1f}",
                          f"{row['maskctl_s'] - row['startup_s']:.1f}", f"{row['ratio_after_startup']:.2f}x")
    result["help_seconds"] = help_seconds()
    table.add_row("maskctl --help (s)", "", f"{result['help_seconds']:.2f}", "")
    console.print(table)
    if "recommended_workers" in result:
        rates = ", ".join(f"{w}: {r:.0f}" for w, r in result["workers_rates"].items())
        console.print(f"loader workers -> img/s at {quick.size}: {rates}; recommended: [bold]--workers {result['recommended_workers']}[/]")
    io.write_json(out / "bench.json", result)
    return result
