"""`maskctl explain RUN`: where does the model look? Grad-CAM maps of validation images.

Each image is explained by the fold model that did not train on it (its fold in oof.csv), on the
exact input validation gave it (decoded at the checkpoint's decode size, centre-cropped to its
size, ImageNet-normalised). By default the images are the most confidently wrong ones of the
most confused class pairs of the run's out-of-fold predictions; `--images` names others.

The Grad-CAM is maskctl's own, on timm's split of a model: `forward_features` gives the last
spatial feature map (N, C, h, w) before global pooling, `forward_head` the logits from it. The
map's channels are weighted by the mean gradient of the explained class's score and summed; the
positive part, scaled to 0..1 and resized to the image, is the heat map. A model without that
split or without a spatial map (a vision transformer's tokens) is refused in one line.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from maskctl.core import io
from maskctl.core.console import console
from maskctl.core.errors import MaskctlError, shown
from maskctl.runs.folder import FOLD_PREFIX, OOF, RunFolder

EXPLAIN_RECORD = "explain.json"
DEFAULT_PAIRS = 3
DEFAULT_PER_PAIR = 4
BATCH = 16  # images per Grad-CAM pass: gradients of a whole batch of full-size images stay small
HEAT_ALPHA = 0.45  # share of the heat map in an overlay: the face stays visible beneath it


class Unexplainable(MaskctlError):
    """A model Grad-CAM cannot explain (no spatial feature map)."""


# ------------------------------------------------------------------------------------ Grad-CAM


def grad_cam(model, batch, classes):
    """(N, H, W) heat maps in 0..1 of `batch` (normalised (N, 3, H, W)) for the class of each
    image in `classes`, and the name of the layer whose output was explained.

    Pure torch on the model's own device; the model must be in eval mode (batch statistics would
    mix the images)."""
    import torch

    feature_map, layer = spatial_features(model, batch)
    feature_map = feature_map.detach().requires_grad_(True)  # the backbone ran without a graph: only the head's is needed
    with torch.enable_grad():
        logits = model.forward_head(feature_map)
        score = logits.float().gather(1, torch.as_tensor(classes, device=logits.device).view(-1, 1)).sum()
        (gradient,) = torch.autograd.grad(score, feature_map)
    weights = gradient.float().mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * feature_map.detach().float()).sum(dim=1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=tuple(batch.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return (cam / peak).clamp_(0, 1).cpu().numpy(), layer


def spatial_features(model, batch):
    """The model's last feature map before global pooling, (N, C, h, w), and the name of the
    outermost module that returned it; Unexplainable when there is none."""
    import torch

    name = type(model).__name__
    if not (callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None))):
        raise Unexplainable(f"cannot explain model {name}: it has no forward_features/forward_head split (as timm's models have), so no feature map to weigh")
    layout = getattr(getattr(model, "backbone", model), "output_fmt", "NCHW")
    if str(layout) not in ("NCHW", "Format.NCHW"):
        raise Unexplainable(f"cannot explain model {name}: its feature map is laid out {layout}, not (N, C, H, W)")
    # The latest module output and the modules that returned it (a block, then the stage holding
    # it): one tensor held, not every activation of the backbone.
    latest: dict = {"output": None, "names": []}

    def remember(module_name):
        def hook(_module, _inputs, output):
            if output is not latest["output"]:
                latest.update(output=output, names=[])
            latest["names"].append(module_name)
        return hook

    hooks = [module.register_forward_hook(remember(module_name)) for module_name, module in model.named_modules() if module_name]
    try:
        with torch.no_grad():
            feature_map = model.forward_features(batch)
    finally:
        for hook in hooks:
            hook.remove()
    if not isinstance(feature_map, torch.Tensor) or feature_map.ndim != 4:
        shape = tuple(feature_map.shape) if isinstance(feature_map, torch.Tensor) else type(feature_map).__name__
        raise Unexplainable(f"cannot explain model {name}: its features are {shape}, not a spatial (N, C, H, W) map (a vision transformer's tokens?)")
    if feature_map.shape[-2] * feature_map.shape[-1] == 1:
        raise Unexplainable(f"cannot explain model {name}: at {tuple(batch.shape[-2:])} its feature map is 1x1, so there is nothing to localise")
    layer = latest["names"][-1] if latest["output"] is feature_map else "forward_features"
    return feature_map, layer


def overlay(image, cam, alpha: float = HEAT_ALPHA):
    """uint8 (H, W, 3) image with the (H, W) 0..1 heat map blended over it (jet: red is hot)."""
    from matplotlib import colormaps

    heat = colormaps["jet"](cam)[..., :3] * 255.0
    return (image.astype(np.float32) * (1 - alpha) + heat * alpha).round().clip(0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ which images


def with_predictions(oof):
    """oof.csv + pred (argmax), prob_pred and prob_label (the OOF probabilities of both)."""
    from maskctl.runs.results import prob_columns

    probs = oof[prob_columns(oof)].to_numpy()
    rows = np.arange(len(oof))
    labels = oof["label"].to_numpy()
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise MaskctlError(f"oof.csv has labels outside 0..{probs.shape[1] - 1}")
    oof = oof.copy()
    oof["pred"] = probs.argmax(1)
    oof["prob_pred"] = probs[rows, oof["pred"].to_numpy()]
    oof["prob_label"] = probs[rows, labels]
    return oof


def confused_images(oof, pairs: int, per_pair: int):
    """The `per_pair` most confidently wrong images of each of the `pairs` most frequent
    (true, predicted) confusions, with a `pair` column (true, pred) and `count` (the pair's size)."""
    wrong = oof[oof["label"] != oof["pred"]]
    if wrong.empty:
        raise MaskctlError("the run's out-of-fold predictions hold no wrong image to explain; name images with --images")
    counts = wrong.groupby(["label", "pred"]).size().reset_index(name="count")
    top = counts.sort_values(["count", "label", "pred"], ascending=[False, True, True]).head(pairs)
    chosen = []
    for row in top.itertuples():
        members = wrong[(wrong["label"] == row.label) & (wrong["pred"] == row.pred)]
        chosen.append(members.sort_values("prob_pred", ascending=False).head(per_pair).assign(count=row.count))
    import pandas as pd

    return pd.concat(chosen, ignore_index=True)


def named_images(oof, names: list[str]):
    """The images `names` names, as oof.csv's image column or as paths of the run's data; each
    must be one of the run's validation images (only there is a model that never trained on it)."""
    by_path = {str(Path(p).resolve()): i for i, p in enumerate(oof["path"])}
    by_name = {name: i for i, name in enumerate(oof["image"])}
    rows = []
    for name in names:
        row = by_name.get(name)
        if row is None:
            row = by_path.get(str(Path(name).resolve()))
        if row is None:
            raise MaskctlError(f"--images {shown(name)} is not one of the run's validation images (oof.csv); "
                               f"name one as oof.csv's image column does, e.g. {oof['image'].iloc[0]}, or by its path")
        rows.append(row)
    chosen = oof.iloc[list(dict.fromkeys(rows))].reset_index(drop=True)
    pair_sizes = oof.groupby(["label", "pred"]).size()
    return chosen.assign(count=[int(pair_sizes[pair]) for pair in zip(chosen["label"], chosen["pred"])])


# ------------------------------------------------------------------------------- the command


def explain(run: Path, images: list[str] | None = None, pairs: int = DEFAULT_PAIRS, per_pair: int = DEFAULT_PER_PAIR,
            out: Path | None = None, data: Path | None = None, device_name: str | None = None, overwrite: bool = False) -> dict:
    """Overlays, one grid per class pair and explain.json in `out` (default RUN/explain), all
    or nothing: they are written into a staging folder that takes `out`'s place at the end."""
    from maskctl.runs.results import read_oof

    RunFolder(run).require()
    out = io.check_replaceable(out or run / "explain", "explain", overwrite)
    oof = read_oof(run)
    if oof is None:
        raise MaskctlError(f"{run} has no out-of-fold predictions ({FOLD_PREFIX}*/{OOF}): no fold of it finished, so there is nothing to explain")
    oof = with_predictions(attach_paths(oof, run, data))
    chosen = named_images(oof, images) if images else confused_images(oof, pairs, per_pair)

    from maskctl.engine.inference import inference_device

    device, _ = inference_device(device_name, 0)
    cams, layers, meta = explain_folds(run, chosen, device)
    with io.staged_folder(out, "explain") as staging:
        record = write_explanations(staging, run, chosen, cams, layers, meta)
    console.print(f"[green]wrote[/] {len(record['images'])} overlay(s) and {len(record['pairs'])} pair grid(s) to {out} "
                  f"(Grad-CAM of the predicted class on {', '.join(sorted(set(layers.values())))})")
    return record


def attach_paths(oof, run: Path, data: Path | None):
    """oof.csv + each image's path in the run's data (or `data`): every image must be there with
    the label it was trained on, or the run was trained on other data."""
    from maskctl.config import load_config
    from maskctl.data.datasets import get_dataset_kind

    config = load_config(RunFolder(run).config, {"data": str(data) if data else None})
    samples = get_dataset_kind(config.dataset).read(config)
    # oof.csv's label is the competition's label (score_label), whatever edges the run trained with
    data = samples.table[["image", "path"]].assign(label=samples.score_labels())
    found = oof[["image"]].merge(data.drop_duplicates("image"), on="image", how="left")
    missing = oof["image"][found["path"].isna().to_numpy()]
    if len(missing):
        raise MaskctlError(f"{len(missing)} of the run's {len(oof)} validation images are not in {config.data} (e.g. {shown(missing.iloc[0])}): "
                           f"the run was trained on other data; pass that folder with --data")
    relabelled = oof["image"][found["label"].to_numpy() != oof["label"].to_numpy()]
    if len(relabelled):
        raise MaskctlError(f"{len(relabelled)} of the run's {len(oof)} validation images have other labels in {config.data} than in its oof.csv "
                           f"(e.g. {shown(relabelled.iloc[0])}): the run was trained on other data or other label fixes")
    return oof.assign(path=found["path"].to_numpy())


def explain_folds(run: Path, chosen, device):
    """Heat maps of the chosen images, each from its own fold's best.pt: (cams by row, layer by
    fold, the checkpoints' meta)."""
    import torch

    from maskctl.infer.fold_models import load_models

    cams: dict[int, np.ndarray] = {}
    layers: dict[int, str] = {}
    meta = None
    for fold in sorted(chosen["fold"].unique()):
        # Unfused: Grad-CAM needs the model's own forward_features / forward_head split.
        loaded = load_models([RunFolder(run).fold(int(fold)).best], device, channels_last=False, fuse=False)
        model, meta = loaded.models[0], loaded.meta
        rows = np.flatnonzero(chosen["fold"].to_numpy() == fold)
        for start in range(0, len(rows), BATCH):
            part = rows[start : start + BATCH]
            batch = model_input(chosen["path"].to_numpy()[part], meta, device)
            maps, layers[int(fold)] = grad_cam(model, batch, chosen["pred"].to_numpy()[part])
            cams.update(zip(part.tolist(), maps))
        del model, loaded  # both hold the model: free it before the next fold
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return cams, layers, meta


def model_input(paths, meta: dict, device, normalise: bool = True):
    """Images as validation feeds them: decoded at the checkpoint's decode size (after its centre
    crop of the photo, if any), centre-cropped to its size, normalised on the device (uint8
    (N, 3, H, W) with normalise=False)."""
    import torch

    from maskctl.data.images import ImageDecodeError, load_resized
    from maskctl.data.transforms import center_crop, checkpoint_crop, checkpoint_decode_size, normalize_on_device

    decoded = []
    for path in paths:
        try:
            decoded.append(load_resized(path, checkpoint_decode_size(meta), checkpoint_crop(meta)))
        except ImageDecodeError as exc:
            raise MaskctlError(f"cannot explain {path}: {exc}") from None
    batch = center_crop(torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).contiguous().to(device), tuple(meta["size"]))
    return normalize_on_device(batch) if normalise else batch


def write_explanations(folder: Path, run: Path, chosen, cams: dict, layers: dict, meta: dict) -> dict:
    """One overlay PNG per image, one grid per (true, predicted) pair, explain.json last."""
    import torch

    names = meta["class_names"]
    images, pairs = [], []
    for (label, pred), members in chosen.groupby(["label", "pred"], sort=False):
        grid = f"pair_{label}_{pred}.png"
        panels = []
        for row in members.itertuples():
            index = row.Index
            image = model_input([row.path], meta, torch.device("cpu"), normalise=False)[0].permute(1, 2, 0).numpy()
            blended = overlay(image, cams[index])
            file = f"{index:03d}_{_file_stem(row.image)}_true{label}_pred{pred}.png"
            _write_png(folder / file, blended)
            panels.append((image, blended, f"{row.image}\np(pred) {row.prob_pred:.2f}, p(true) {row.prob_label:.2f}"))
            images.append({
                "image": row.image, "person": row.person, "path": row.path, "fold": int(row.fold),
                "checkpoint": RunFolder(run).fold(int(row.fold)).best.relative_to(run).as_posix(), "layer": layers[int(row.fold)],
                "label": int(label), "label_name": names[label], "pred": int(pred), "pred_name": names[pred],
                "prob_pred": round(float(row.prob_pred), 6), "prob_label": round(float(row.prob_label), 6),
                "explained_class": int(pred), "overlay": file, "grid": grid,
            })
        _write_grid(folder / grid, panels, f"true {names[label]}  ->  predicted {names[pred]}")
        pairs.append({"true": int(label), "pred": int(pred), "true_name": names[label], "pred_name": names[pred],
                      "count": int(members["count"].iloc[0]), "grid": grid, "images": list(members["image"])})
    record = {"run": str(run), "method": "grad-cam", "explained_class": "predicted", "size": list(meta["size"]),
              "class_names": list(names), "pairs": pairs, "images": images}
    io.write_json(folder / EXPLAIN_RECORD, record)
    return record


def _file_stem(image_name: str) -> str:
    """An image name (person/mask1.jpg) as one plain file-name part."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(image_name).with_suffix("")))[-80:]


def _write_png(path: Path, pixels) -> None:
    from PIL import Image

    with io.atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def _write_grid(path: Path, panels: list, title: str) -> None:
    """One row per image: the model's input beside its heat-map overlay."""
    from matplotlib.figure import Figure

    height, width = panels[0][0].shape[:2]
    row_inches = 2.4
    fig = Figure(figsize=(2 * row_inches * width / height + 0.4, row_inches * len(panels) + 0.6), layout="constrained")
    axes = fig.subplots(len(panels), 2, squeeze=False)
    for (image, blended, caption), (left, right) in zip(panels, axes):
        left.imshow(image)
        right.imshow(blended)
        left.set_ylabel(caption, fontsize=6)
        for ax in (left, right):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_title("input", fontsize=8)
    axes[0][1].set_title("Grad-CAM of the prediction", fontsize=8)
    fig.suptitle(title, fontsize=9)
    io.save_figure(path, fig)
