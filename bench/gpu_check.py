"""GPU check for a lent GPU machine (about 5 minutes on an H200):
- is training efficientnet_b4 at 512x384 with AMP + channels_last GPU-bound? Training images/s
  fed by maskctl's real loader (decoded-image cache, the seed's augmentation, noise and
  normalisation on the device) against the same steps on an in-memory batch (target: within 10 %);
  the step modes and the loaders side by side;
- the seed recipe itself (`maskctl train --config gpu-b4`, no pretrained weights), fold 0 for
  --recipe-epochs epochs at batch 16 and 32: images/s and peak GPU memory;
- predict as whole processes, `maskctl predict` against the baseline-style loop on the same
  checkpoint (target: at least 3x), and predict's phases in one process (model loading with and
  without BatchNorm folding, the first batch, the rest, with the default and with no loader
  workers), to see where a slow predict spends its time.

    python bench/gpu_check.py                       # synthesises 300 + 143 eval people at 384x512 first
    python bench/gpu_check.py --data data/train     # your data
    python bench/gpu_check.py --device cpu --model test_resnet --size 64x48 --steps 2   # smoke test
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="training folder [a synthetic one]")
    parser.add_argument("--model", default="efficientnet_b4")
    parser.add_argument("--size", default="512x384", help="HxW")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--people", type=int, default=300, help="synthetic training people when --data is not given")
    parser.add_argument("--recipe-epochs", type=int, default=2, help="epochs of the seed recipe per batch size")
    parser.add_argument("--recipe-batch-sizes", default="16,32")
    parser.add_argument("--recipe-optimizer", default=None, help="instead of the recipe's adamp, e.g. adamw")
    parser.add_argument("--predict-repeats", type=int, default=2)
    parser.add_argument("--parts", default="optimizer,loading,steps,loader,recipe,predict,phases", help="which checks to run (predict and phases need recipe)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args()

    import torch

    from maskctl.commands.bench import bench_loader, bench_train, bench_train_loading
    from maskctl.config import parse_size
    from maskctl.data.layout import read_train
    from maskctl.engine.runtime import default_workers, resolve_device

    started = time.perf_counter()
    device = resolve_device(args.device)
    size = parse_size(args.size)
    workers = default_workers(device) if args.workers is None else args.workers
    data = args.data
    if data is None:
        from maskctl.data.synth import synthesize

        data = Path(tempfile.mkdtemp(prefix="gpu-check-")) / "data"
        synthesize(data, people=args.people, eval_people=143, seed=0, show_progress=False)  # 1,001 eval images
        data = data / "train"
        print(f"synthesised {args.people} people in {time.perf_counter() - started:.0f}s", flush=True)
    paths = read_train(data).table["path"].tolist()
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), {len(paths)} images, {workers} workers", flush=True)

    report = {"device": str(device), "images": len(paths), "workers": workers}
    parts = set(args.parts.split(","))
    if "optimizer" in parts:
        report["optimizer"] = bench_optimizer_step(args.model, size, device)
        print(json.dumps(report["optimizer"], indent=1), flush=True)
    if "loading" in parts:
        report["loading"] = bench_train_loading(paths, args.model, size, args.batch_size, args.steps, workers, device)
        print(json.dumps(report["loading"], indent=1), flush=True)
    if "steps" in parts:
        report["steps"] = bench_train(args.model, size, args.batch_size, max(2, args.steps // 3), device)
        print(json.dumps(report["steps"], indent=1), flush=True)
    if "loader" in parts:
        report["loader"] = bench_loader(paths, size, workers, args.batch_size, max(2, args.steps // 2), device)
        print(json.dumps(report["loader"], indent=1), flush=True)
    if "recipe" in parts and device.type == "cuda":
        batch_sizes = [int(b) for b in args.recipe_batch_sizes.split(",")]
        report["recipe"] = [train_seed_recipe(data, b, args.recipe_epochs, device, args.recipe_optimizer) for b in batch_sizes]
        eval_dir = Path(data).parent / "eval"
        if "predict" in parts and (eval_dir / "info.csv").is_file():
            from maskctl.commands.bench import bench_predict

            report["predict"] = bench_predict(Path(report["recipe"][0]["run"]), eval_dir, str(device), repeats=args.predict_repeats)
            print(json.dumps({k: v for k, v in report["predict"].items() if k != "rows"}, indent=1), flush=True)
        if "phases" in parts and (eval_dir / "info.csv").is_file():
            report["phases"] = predict_phases(Path(report["recipe"][0]["run"]), eval_dir, device, workers)
            print(json.dumps(report["phases"], indent=1), flush=True)
    report["seconds"] = time.perf_counter() - started
    args.out.write_text(json.dumps(report, indent=1))
    if "loading" not in parts:
        print(f"{report['seconds']:.0f}s; wrote {args.out}")
        return 0
    ratio = report["loading"]["real_over_synthetic"]
    report["verdict"] = "GPU-bound (real loading within 10 % of synthetic batches)" if ratio >= 0.9 else "loader-bound: add --workers or lighten the augmentation"
    report["seconds"] = time.perf_counter() - started
    args.out.write_text(json.dumps(report, indent=1))
    print(f"real/synthetic = {ratio:.2f}: {report['verdict']}; {report['seconds']:.0f}s; wrote {args.out}")
    return 0


def bench_optimizer_step(model_name: str, size_hw, device, steps: int = 20) -> dict:
    """Seconds per optimizer step on the model's parameters with real gradients: timm's AdamP (a
    host sync per weight matrix), maskctl's (flat, no sync) and AdamW; and how far one step of
    maskctl's lands from timm's."""
    import torch
    from timm.optim import AdamP as TimmAdamP

    from maskctl.commands.bench import synchronize
    from maskctl.components.adamp import AdamP
    from maskctl.components.models import build_model

    torch.manual_seed(0)
    model = build_model(model_name, 18).to(device, memory_format=torch.channels_last)
    model(torch.randn(2, 3, *size_hw, device=device).contiguous(memory_format=torch.channels_last)).square().mean().backward()
    params = list(model.parameters())
    start = [p.detach().clone() for p in params]
    makers = {"timm_adamp": lambda: TimmAdamP(params, lr=1e-3, weight_decay=1e-5, nesterov=True),
              "maskctl_adamp": lambda: AdamP(params, lr=1e-3, weight_decay=1e-5, nesterov=True),
              "adamw": lambda: torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-5)}
    row, after_one = {"parameters": len(params)}, {}
    for name, make in makers.items():
        for p, s in zip(params, start):
            p.data.copy_(s)
        optimizer = make()
        optimizer.step()
        after_one[name] = [p.detach().clone() for p in params]
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            optimizer.step()
        synchronize(device)
        row[f"{name}_ms"] = (time.perf_counter() - started) / steps * 1000
    row["max_abs_diff_one_step"] = max((a - b).abs().max().item() for a, b in zip(after_one["timm_adamp"], after_one["maskctl_adamp"]))
    return row


def predict_phases(run: Path, eval_dir: Path, device, workers: int) -> dict:
    """Seconds of each step of `maskctl predict`, in this process (imports already paid)."""
    import numpy as np

    from maskctl.commands.bench import synchronize
    from maskctl.components.tta import no_tta
    from maskctl.data.transforms import checkpoint_crop, checkpoint_decode_size
    from maskctl.engine.inference import inference_loader, predict_views
    from maskctl.infer.fold_models import checkpoint_paths, load_models
    from maskctl.infer.outputs import read_prediction_data

    paths = checkpoint_paths(run)
    dataset, ids, _ = read_prediction_data(eval_dir)
    row = {"checkpoints": len(paths), "images": len(ids)}
    for fused in (True, False):
        started = time.perf_counter()
        loaded = load_models(paths, device, channels_last=True, fuse=fused)
        synchronize(device)
        row[f"load_models_{'fused' if fused else 'unfused'}_s"] = time.perf_counter() - started
        decode_hw = checkpoint_decode_size(loaded.meta)
        for loader_workers in sorted({workers, 0}):
            loader = inference_loader(dataset.table["path"].tolist(), np.zeros(len(ids), dtype=np.int64), decode_hw, device, loader_workers,
                                      crop=checkpoint_crop(loaded.meta))
            started = time.perf_counter()
            predict_views(loaded.models, loader, device, no_tta(), crop_hw=tuple(loaded.meta["size"]))
            synchronize(device)
            row[f"predict_{'fused' if fused else 'unfused'}_{loader_workers}_workers_s"] = time.perf_counter() - started
    return row


def train_seed_recipe(data: Path, batch_size: int, epochs: int, device, optimizer: str | None = None) -> dict:
    """Fold 0 of the shipped seed recipe, random init (no hub here); images/s from metrics.csv."""
    import gc

    import pandas as pd
    import torch

    from maskctl.config import load_config
    from maskctl.engine import kfold
    from maskctl.runs.folder import RunFolder

    gc.collect()  # what earlier checks left must not count towards this run's peak
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    config = load_config("gpu-b4", {"data": str(data), "pretrained": "none", "epochs": epochs, "batch_size": batch_size, "fold": 0,
                                  "runs_dir": tempfile.mkdtemp(prefix="gpu-check-runs-"), "name": f"seed-b{batch_size}", "device": str(device),
                                  "optimizer": optimizer})
    run = kfold.train(config)
    metrics = pd.read_csv(RunFolder(run).fold(0).metrics)
    row = {"batch_size": batch_size, "epochs": epochs, "optimizer": config.optimizer, "run": str(run), "seconds": time.perf_counter() - started,
           "images_per_s": metrics["images_per_s"].tolist(), "epoch_seconds": metrics["seconds"].tolist(), "f1": metrics["f1"].tolist(),
           "peak_gpu_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30,
           "peak_gpu_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30}
    print(json.dumps(row, indent=1), flush=True)
    return row


if __name__ == "__main__":
    sys.exit(main())
