"""GPU check for a lent GPU machine (under 5 minutes): is training efficientnet_b4 at 512x384
with AMP + channels_last GPU-bound? Compares training images/s fed by maskctl's real loader
(decoded-image cache, the seed's augmentation, noise and normalisation on the device) against
the same steps on an in-memory batch; also times the step modes and the loaders side by side.

    python bench/gpu_check.py                       # synthesises 150 people at 384x512 first
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
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args()

    import torch

    from maskctl.bench import bench_loader, bench_train, bench_train_loading
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
        synthesize(data, people=150, eval_people=0, seed=0, show_progress=False)
        data = data / "train"
    paths = read_train(data).table["path"].tolist()
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), {len(paths)} images, {workers} workers", flush=True)

    report = {"device": str(device), "images": len(paths), "workers": workers}
    report["loading"] = bench_train_loading(paths, args.model, size, args.batch_size, args.steps, workers, device)
    print(json.dumps(report["loading"], indent=1), flush=True)
    report["steps"] = bench_train(args.model, size, args.batch_size, max(2, args.steps // 3), device)
    print(json.dumps(report["steps"], indent=1), flush=True)
    report["loader"] = bench_loader(paths, size, workers, args.batch_size, max(2, args.steps // 2), device)
    print(json.dumps(report["loader"], indent=1), flush=True)
    ratio = report["loading"]["real_over_synthetic"]
    report["verdict"] = "GPU-bound (real loading within 10 % of synthetic batches)" if ratio >= 0.9 else "loader-bound: add --workers or lighten the augmentation"
    report["seconds"] = time.perf_counter() - started
    args.out.write_text(json.dumps(report, indent=1))
    print(f"real/synthetic = {ratio:.2f}: {report['verdict']}; {report['seconds']:.0f}s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
