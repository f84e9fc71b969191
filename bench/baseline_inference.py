"""A baseline-style inference.py, as the competition's starter code ran it: Pillow per item,
torchvision Resize + ToTensor + Normalize, one big batch, fp32, on CUDA when there is one (as the starter code did). `maskctl bench predict` times this
script and `maskctl predict` as whole processes on the same checkpoint and images.

usage: python bench/baseline_inference.py CHECKPOINT EVAL_DIR OUT_CSV [--batch-size 1000] [--device cuda]
"""
import argparse
import os
import sys

import pandas as pd
import timm
import torch
from PIL import Image
from torchvision import transforms


class EvalDataset(torch.utils.data.Dataset):
    def __init__(self, paths, size, decode_size):
        self.paths = paths
        self.transform = transforms.Compose([
            transforms.Resize(decode_size, Image.BILINEAR),
            transforms.CenterCrop(size),  # a no-op unless the run's augmentation kept a crop margin
            transforms.ToTensor(),
            transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        ])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return self.transform(Image.open(self.paths[index]).convert("RGB"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("eval_dir")
    parser.add_argument("out_csv")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    meta = state["meta"]
    model = timm.create_model(meta["model"], num_classes=meta["num_classes"])
    model.load_state_dict(state["model"])
    model.to(args.device).eval()
    info = pd.read_csv(os.path.join(args.eval_dir, "info.csv"))
    paths = [os.path.join(args.eval_dir, "images", image_id) for image_id in info["ImageID"]]
    loader = torch.utils.data.DataLoader(EvalDataset(paths, tuple(meta["size"]), tuple(meta.get("decode_size", meta["size"]))), batch_size=args.batch_size, shuffle=False, num_workers=args.workers)
    predictions = []
    with torch.no_grad():
        for images in loader:
            predictions.extend(model(images.to(args.device)).argmax(dim=-1).tolist())
    info["ans"] = predictions
    info.to_csv(args.out_csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
