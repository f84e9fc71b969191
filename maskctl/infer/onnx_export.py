"""`maskctl export RUN`: the run's fold models as one ONNX graph, for serving without torch.

One file: every fold's model inside one graph, their softmax probabilities averaged (what
`maskctl predict RUN` does), so a server loads one session and runs one call per batch. The graph
takes uint8 images, NHWC, at the model's size (decoded at the run's decode size and centre-cropped
first, as predict does) with a dynamic batch axis, and normalises inside; it returns (N, classes)
probabilities. export.json beside it holds what serving needs to reproduce predict: sizes,
the centre share of the photo kept before resizing (`crop`, null for the whole photo),
normalisation, class names, age edges, the TTA record, the maskctl version and the model file's
SHA-256. The model file carries a copy of the fields that change predictions
(serve.SEALED_FIELDS): an edit of export.json is refused, not served. The export is checked
before it is kept: ONNX Runtime's probabilities on a batch of the run's own images must match
PyTorch's, or nothing is written.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from maskctl.core import io
from maskctl.core.console import console
from maskctl.core.errors import MaskctlError
from maskctl.core.version import __version__
from maskctl.data.transforms import IMAGENET_MEAN, IMAGENET_STD, checkpoint_crop, checkpoint_decode_size
from maskctl.infer.onnx_predict import EXPORT_FORMAT, EXPORT_VERSION, META_FILE, SEAL_KEY, SEALED_FIELDS, center_crop_nhwc
from maskctl.runs.folder import RunFolder, run_folder_of

MODEL_FILE = "model.onnx"
INPUT_NAME, OUTPUT_NAME = "images", "probs"
OPSET = 17
TOLERANCE = 1e-4  # largest |probability difference| between ONNX Runtime and PyTorch, fp32 on a CPU
VERIFY_IMAGES = 16


def export_run(run: Path, out: Path | None = None, fold: int | None = None, data: Path | None = None, overwrite: bool = False) -> Path:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401  (checked before any work)
    except ImportError:
        raise MaskctlError("export needs onnx and onnxruntime: pip install 'maskctl[onnx]'") from None
    import torch

    from maskctl.infer.fold_models import checkpoint_paths, load_models

    paths = checkpoint_paths(run, fold)
    run_dir = run_folder_of(run).path
    out = io.check_replaceable(out or run_dir / "export", "export", overwrite)
    loaded = load_models(paths, torch.device("cpu"), channels_last=False)
    meta = loaded.meta
    crop_hw, decode_hw, photo_crop = tuple(meta["size"]), checkpoint_decode_size(meta), checkpoint_crop(meta)
    graph = fold_average(loaded.models)
    images = verification_images(run_dir, data, decode_hw, crop_hw, photo_crop)

    with io.staged_folder(out, "export") as staging:
        record = {
            "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "maskctl_version": __version__, "model_file": MODEL_FILE,
            "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC"}, "output": OUTPUT_NAME,
            "size": list(crop_hw), "decode_size": list(decode_hw), "crop": list(photo_crop) if photo_crop else None,
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
            "num_classes": meta["num_classes"], "class_names": meta["class_names"], "mask_classes": meta.get("mask_classes", meta["num_classes"] == 18),
            "age_edges": meta.get("age_edges", "30,60"), "model": meta["model"], "folds": [str(p.relative_to(run_dir)) if p.is_relative_to(run_dir) else str(p) for p in paths],
            "tta": _tta_record(run_dir), "opset": OPSET,
        }
        _write_onnx(graph, staging / MODEL_FILE, crop_hw, {field: record[field] for field in SEALED_FIELDS})
        max_diff = _verify(graph, staging / MODEL_FILE, images)
        record["sha256"] = io.file_sha256(staging / MODEL_FILE)
        record["verified"] = {"images": len(images), "max_abs_diff": max_diff, "tolerance": TOLERANCE}
        io.write_json(staging / META_FILE, record)
    console.print(f"[green]exported[/] {len(paths)} fold model(s) of {run} to {out / MODEL_FILE} "
                  f"(ONNX Runtime vs PyTorch on {len(images)} images: max |diff| {max_diff:.1e} <= {TOLERANCE:g})")
    return out


def fold_average(models):
    """One module over the fold models: uint8 NHWC images -> normalised NCHW -> each fold's
    softmax -> their mean."""
    import torch

    from maskctl.data.transforms import normalize_on_device

    class FoldAverage(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.models = torch.nn.ModuleList(models)

        def forward(self, images):
            batch = normalize_on_device(images.permute(0, 3, 1, 2))
            return torch.stack([torch.softmax(model(batch).float(), dim=1) for model in self.models]).mean(0)

    return FoldAverage().eval()


def verification_images(run_dir: Path, data: Path | None, decode_hw, crop_hw, photo_crop=None) -> np.ndarray:
    """The first VERIFY_IMAGES images of --data or of the run's own training data, decoded and
    cropped as predict does: (N, H, W, 3) uint8."""
    from maskctl.data.images import load_resized
    from maskctl.data.layout import detect_kind, read_eval, read_train

    if data is None:
        from maskctl.config import load_config
        config = RunFolder(run_dir).config
        if not config.is_file():
            raise MaskctlError(f"export checks the model on real images: pass --data (no {config} names the run's data)")
        data = Path(load_config(config).data)  # the recipe reader, with its limits and checks
        if not data.is_dir():
            raise MaskctlError(f"export checks the model on real images: pass --data (the run's data {data} is not here)")
    table = (read_eval(data) if detect_kind(data) == "eval" else read_train(data)).table
    if table.empty:
        raise MaskctlError(f"{data} holds no images to check the export with")
    decoded = np.stack([load_resized(path, decode_hw, photo_crop) for path in table["path"].iloc[:VERIFY_IMAGES]])
    return center_crop_nhwc(decoded, crop_hw)


def _write_onnx(graph, path: Path, crop_hw, sealed: dict) -> None:
    """The graph as ONNX, carrying `sealed` (serve.SEALED_FIELDS of export.json) in its metadata."""
    import json

    import onnx
    import torch

    example = torch.zeros(2, *crop_hw, 3, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        try:
            torch.onnx.export(graph, (example,), str(path), dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        except Exception as exc:  # noqa: BLE001 - any exporter failure is one line naming the model
            raise MaskctlError(f"cannot export this model to ONNX: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    model = onnx.load(str(path))
    model.metadata_props.add(key=SEAL_KEY, value=json.dumps(sealed, sort_keys=True))
    onnx.save(model, str(path))


def _verify(graph, path: Path, images: np.ndarray) -> float:
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
    with torch.inference_mode():
        expected = graph(torch.from_numpy(images)).numpy()
    max_diff = float(np.abs(got - expected).max())
    if not max_diff <= TOLERANCE:
        raise MaskctlError(f"the ONNX model does not match PyTorch: max |probability difference| {max_diff:.2e} > {TOLERANCE:g} on {len(images)} images; nothing written")
    return max_diff


def _tta_record(run_dir: Path) -> dict | None:
    """What `maskctl tta-eval` recorded, for `predict EXPORT --tta auto`; None without a record."""
    from maskctl.infer.predict import read_tta_record

    path = RunFolder(run_dir).tta
    if not path.is_file():
        return None
    record = read_tta_record(path)
    return {"policy": record["policy"], "weights": record["weights"]}
