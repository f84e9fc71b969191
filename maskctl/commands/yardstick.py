"""A plain PyTorch loop, the yardstick of `maskctl bench quality`: what a competent user writes in
an afternoon, shipped with the package so the comparison runs from an installed wheel. timm resnet18 (no pretrained weights) at 128x96 (HxW), every image decoded once into
memory, class-balanced sampling, AdamW with a one-cycle lr, horizontal flip only, all training
people (no validation), then macro F1 on an eval folder's answers.csv.

The wall-time budget counts from the call, decoding included. The one-cycle lr follows whichever
runs out first, the epochs or the budget, so a cut-short run still anneals its lr; with no epoch
count (`--epochs 0`) it trains for the whole budget.

    python -m maskctl.commands.yardstick data/train data/eval --minutes 10 --seed 0
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image
from sklearn.metrics import f1_score

MASKS = {"mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0, "incorrect_mask": 1, "normal": 2}
MEAN, STD = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def decode(paths, size_hw) -> torch.Tensor:
    images = [np.asarray(Image.open(p).convert("RGB").resize(size_hw[::-1], Image.BILINEAR)) for p in paths]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # uint8 (N, 3, H, W)


def training_images(train: Path) -> tuple[list[Path], list[int]]:
    paths, labels = [], []
    with open(train / "train.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            age = int(row["age"])
            person = (row["gender"] == "female") * 3 + (age >= 30) + (age >= 60)
            for file in sorted((train / "images" / row["path"]).iterdir()):
                if file.stem in MASKS and not file.name.startswith("."):
                    paths.append(file)
                    labels.append(MASKS[file.stem] * 6 + person)
    return paths, labels


def one_cycle(progress: float, peak: float) -> float:
    """torch's OneCycleLR shape on progress 0..1: cosine up from peak/25 over 30 %, then down to peak/25e4."""
    low, warm = peak / 25, 0.3
    if progress < warm:
        return low + (peak - low) * (1 - math.cos(math.pi * progress / warm)) / 2
    return peak / 25e4 + (peak - peak / 25e4) * (1 + math.cos(math.pi * (progress - warm) / (1 - warm))) / 2


def run(train: Path, eval_dir: Path, minutes: float, seed: int = 0, epochs: int | None = 12, size_hw=(128, 96), batch_size: int = 64,
        peak_lr: float = 2e-3, device: str = "cpu") -> dict:
    started = time.monotonic()
    deadline = started + minutes * 60
    torch.manual_seed(seed)
    paths, labels = training_images(Path(train))
    images, targets = decode(paths, size_hw), torch.tensor(labels)
    decoded = time.monotonic()
    model = timm.create_model("resnet18", pretrained=False, num_classes=18).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=peak_lr)
    weights = (1.0 / torch.bincount(targets, minlength=18).clamp(min=1).float())[targets]  # class-balanced draws
    steps_per_epoch = max(1, len(targets) // batch_size)
    total_steps, step, progress = epochs * steps_per_epoch if epochs else math.inf, 0, 0.0
    while progress < 1:
        order = torch.multinomial(weights, len(targets), replacement=True)
        model.train()
        for first in range(0, steps_per_epoch * batch_size, batch_size):
            progress = max(step / total_steps, (time.monotonic() - decoded) / max(deadline - decoded, 1e-9))
            if progress >= 1:
                break
            for group in optimizer.param_groups:
                group["lr"] = one_cycle(progress, peak_lr)
            rows = order[first:first + batch_size]
            batch = images[rows].float().div(255)
            flip = torch.rand(len(rows)) < 0.5
            batch[flip] = batch[flip].flip(-1)
            loss = torch.nn.functional.cross_entropy(model(((batch - MEAN) / STD).to(device)), targets[rows].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
    trained = time.monotonic()
    f1, predictions = evaluate(model, Path(eval_dir), size_hw, device)
    return {"f1": f1, "predictions": predictions, "epochs": step / steps_per_epoch, "steps": step, "images": len(targets), "decode_s": decoded - started,
            "train_s": trained - started, "predict_s": time.monotonic() - trained}


@torch.inference_mode()
def evaluate(model, eval_dir: Path, size_hw, device: str) -> tuple[float, dict[str, int]]:
    """Eval macro F1 against answers.csv, and the class predicted for each ImageID."""
    with open(eval_dir / "answers.csv", newline="") as handle:
        answers = {row["ImageID"]: int(row["ans"]) for row in csv.DictReader(handle)}
    ids = list(answers)
    images = decode([eval_dir / "images" / i for i in ids], size_hw)
    model.eval()
    predicted = torch.cat([model(((images[i:i + 256].float() / 255 - MEAN) / STD).to(device)).argmax(1).cpu() for i in range(0, len(ids), 256)])
    return float(f1_score([answers[i] for i in ids], predicted.numpy(), average="macro")), dict(zip(ids, predicted.tolist()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("eval", type=Path)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12, help="0: as many as the budget allows")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    result = run(args.train, args.eval, args.minutes, args.seed, args.epochs, device=args.device)
    print(json.dumps({key: value for key, value in result.items() if key != "predictions"}, indent=2))
