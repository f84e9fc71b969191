"""`maskctl predict EXPORT`: predict from `maskctl export`'s ONNX model through ONNX Runtime,
with neither torch nor timm imported in the process (they cost about 4 s of every predict on a
2-core CPU), nor pandas for an eval folder without answers (0.2 s). The same submission.csv,
probs.csv, predict.json and scores as `maskctl predict RUN`: images decoded by the same code at
the run's decode size, after the run's centre crop of the photo if it has one (in forked
children, one per core, while onnxruntime imports), centre-cropped, TTA views on the uint8
batch, views averaged by weight.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from maskctl.core.console import NO_CUDA, console, progress, warn
from maskctl.core.errors import MaskctlError, shown
from maskctl.core.io import file_sha256
from maskctl.data.images import center_window

# The export's format is defined here, by its torch-free reader; maskctl.infer.onnx_export (torch) writes it.
EXPORT_FORMAT = "maskctl-onnx"
EXPORT_VERSION = 1
META_FILE = "export.json"
# What changes the answers (how images are decoded, cropped and normalised, the classes, the
# TTA of --tta auto, the graph's names): export copies these fields of export.json into the ONNX
# file's metadata, which the SHA-256 in export.json covers, so an edit of either is refused.
SEALED_FIELDS = ("size", "decode_size", "crop", "mean", "std", "num_classes", "class_names", "mask_classes", "tta", "input", "output")
SEAL_KEY = "maskctl_export"


def center_crop_nhwc(images: np.ndarray, size_hw) -> np.ndarray:
    """As transforms.center_crop, on (N, H, W, C) arrays."""
    rows, columns = center_window(images.shape[1:3], tuple(size_hw))
    return np.ascontiguousarray(images[:, rows, columns])


def is_export(path: Path) -> bool:
    return path.suffix.lower() == ".onnx" or (path.is_dir() and (path / META_FILE).is_file())


def read_export(path: Path, verify: bool = True) -> tuple[dict, Path]:
    """export.json, checked field by field, and the model file it describes, unchanged since
    (`verify=False` leaves that to a later `verify_model`)."""
    folder = path.parent if path.suffix.lower() == ".onnx" else path
    meta_path = folder / META_FILE
    if path.suffix.lower() == ".onnx" and not path.is_file():
        raise MaskctlError(f"ONNX file not found: {path}")
    if not meta_path.is_file():
        raise MaskctlError(f"{path} is not a maskctl export: no {META_FILE} beside it (make one with `maskctl export RUN`)")
    from maskctl.core.schema import read_json

    meta = read_json(meta_path, "export description")
    _check_meta(meta, meta_path)
    model_path = path if path.suffix.lower() == ".onnx" else folder / meta["model_file"]
    if not model_path.is_file():
        raise MaskctlError(f"{model_path} not found (named by {meta_path})")
    if verify:
        verify_model(meta, model_path)
    return meta, model_path


def verify_model(meta: dict, model_path: Path) -> None:
    if file_sha256(model_path) != meta["sha256"]:
        raise MaskctlError(f"{model_path} is not the model {model_path.parent / META_FILE} describes (its SHA-256 differs: damaged, or changed after export)")


def _check_meta(meta, meta_path: Path) -> None:
    from maskctl.core.schema import CROP, IMAGE_SIZE, MAX_CLASSES, check_fields, finite, flag, mapping, sequence, text, whole

    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise MaskctlError(f"{meta_path} is not a maskctl export description (format is not {EXPORT_FORMAT!r})")
    check_fields(meta, {
        "version": whole(EXPORT_VERSION, EXPORT_VERSION), "size": IMAGE_SIZE, "decode_size": IMAGE_SIZE,
        "num_classes": whole(1, MAX_CLASSES), "class_names": sequence(text), "mean": sequence(finite, 3), "std": sequence(finite, 3),
        "sha256": text, "model_file": text, "output": text, "input": mapping, "mask_classes": flag,
    }, str(meta_path))
    check_fields(meta["input"], {"name": text}, f"{meta_path} input")
    if meta.get("crop") is not None:  # absent or null in exports of runs without a crop
        check_fields(meta, {"crop": CROP}, str(meta_path))

    def bad(field: str, wanted: str):
        raise MaskctlError(f"{meta_path}: field {field!r} must be {wanted}")

    if any(d < s for d, s in zip(meta["decode_size"], meta["size"])):
        bad("decode_size", "at least size (the image is cropped down to size)")
    if len(meta["class_names"]) != meta["num_classes"]:
        bad("class_names", f"a list of {meta['num_classes']} names (num_classes)")
    if Path(meta["model_file"]).name != meta["model_file"]:
        bad("model_file", "a file name beside export.json")
    tta = meta.get("tta")
    if tta is not None:
        from maskctl.components.tta import TTA_POLICIES  # importing tta registers the shipped policies

        check_fields(tta, {"policy": text, "weights": sequence(finite)}, f"{meta_path} tta")
        if tta["policy"] not in TTA_POLICIES.names():
            bad("tta", f"null or a known TTA policy ({', '.join(TTA_POLICIES.names())})")


def providers_for(device_name: str | None) -> tuple[list, str]:
    """ONNX Runtime's execution providers for --device, with the torch path's messages."""
    import onnxruntime

    has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if device_name is None:
        if has_cuda:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"
        warn(NO_CUDA)
        return ["CPUExecutionProvider"], "cpu"
    if device_name == "cpu":
        return ["CPUExecutionProvider"], "cpu"
    if device_name == "cuda" or device_name.startswith("cuda:") and device_name[5:].isdigit():
        if not has_cuda:
            raise MaskctlError(f"device {device_name!r} was asked for but CUDA is not available to ONNX Runtime (use --device cpu, or install onnxruntime-gpu)")
        index = int(device_name[5:]) if ":" in device_name else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"], device_name
    raise MaskctlError(f"unknown device {device_name!r} (cpu, cuda, cuda:1, ...)")


def open_session(model_path: Path, meta: dict, device_name: str | None):
    try:
        import onnxruntime
    except ImportError:
        raise MaskctlError("predicting from an export needs onnxruntime: pip install 'maskctl[onnx]'") from None
    from maskctl.core.cpus import cpu_count

    providers, device = providers_for(device_name)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = cpu_count()
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers are not the user's business
    try:
        session = onnxruntime.InferenceSession(str(model_path), options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind types for damaged and foreign files
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise MaskctlError(f"cannot load {model_path} with ONNX Runtime: {reason}") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    height, width = meta["size"]
    if [i.name for i in inputs] != [meta["input"]["name"]] or [o.name for o in outputs] != [meta["output"]]:
        raise MaskctlError(f"{model_path} names its input and output {[i.name for i in inputs]} and {[o.name for o in outputs]}, "
                           f"not {meta['input']['name']!r} and {meta['output']!r} as export.json says")
    if len(inputs) != 1 or inputs[0].type != "tensor(uint8)" or list(inputs[0].shape[1:]) != [height, width, 3]:
        found = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
        raise MaskctlError(f"{model_path} does not take what export.json says (uint8 images [batch, {height}, {width}, 3]); it takes {found}")
    if len(outputs) != 1 or outputs[0].shape[-1] != meta["num_classes"]:
        raise MaskctlError(f"{model_path} does not give {meta['num_classes']} class probabilities as export.json says (it gives {outputs[0].shape})")
    check_seal(session.get_modelmeta().custom_metadata_map.get(SEAL_KEY), meta, model_path)
    return session, device


def check_seal(sealed: str | None, meta: dict, model_path: Path) -> None:
    """export.json's SEALED_FIELDS are those the model file was exported with (its metadata's
    copy), or one line names the first field that differs."""
    import json

    meta_path = model_path.parent / META_FILE
    try:
        copy = json.loads(sealed) if sealed is not None else None
    except ValueError:
        copy = None
    if not isinstance(copy, dict):
        raise MaskctlError(f"{model_path} does not carry the seal of its preprocessing (exported by an older maskctl?): export the run again")
    for field in SEALED_FIELDS:
        if meta.get(field) != copy.get(field):
            raise MaskctlError(f"{meta_path}: field {field!r} is {shown(meta.get(field))}, but {model_path.name} was exported with "
                               f"{shown(copy.get(field))} (edited after export?): put it back or export the run again")


def predict_export(
    export: Path, data: Path = Path("data/eval"), out: Path | None = None, tta: str = "none", tta_weights: str | None = None,
    answers: Path | None = None, batch_size: int | None = None, device_name: str | None = None, overwrite: bool = False, score: bool = True,
) -> dict:
    from maskctl.components.tta import NHWC_VIEWS, combine
    from maskctl.core.cpus import cpu_count
    from maskctl.data.prefetch import DecodeAll
    from maskctl.infer.outputs import known_labels, read_prediction_data, refuse_overwrite, write_predictions

    meta, model_path = read_export(export, verify=False)
    out = refuse_overwrite(out or model_path.parent, overwrite)
    paths, ids, labels = read_prediction_data(data)  # an eval folder is read without pandas
    if labels is not None and not meta["mask_classes"]:
        raise MaskctlError(f"{data} is a mask training folder (18 classes), but this export predicts {meta['num_classes']} other classes")
    # Decoding starts as early as it can, before the model file is hashed and onnxruntime imported,
    # in one child per core, and ends before the model runs.
    decoded = DecodeAll(paths, tuple(meta["decode_size"]), cpu_count(), crop=meta.get("crop"))
    try:
        verify_model(meta, model_path)
        views, weights = _views(meta, tta, tta_weights, export)
        labels = known_labels(data, answers, ids, labels, score)
        session, device = open_session(model_path, meta, device_name)
    except BaseException:
        decoded.stop()  # the decoding children are of no use now: stop them before the error is shown
        raise
    decoded.join()
    batch_size = batch_size or (256 if device.startswith("cuda") else 32)
    input_name, output_name = meta["input"]["name"], meta["output"]
    view_probs = [[] for _ in views]
    with progress() as bar:
        task = bar.add_task(f"predict (ONNX Runtime, {device}) x {len(views)} view(s)", total=len(ids), info="")
        for start in range(0, len(ids), batch_size):
            rows = range(start, min(start + batch_size, len(ids)))
            batch = center_crop_nhwc(np.stack([decoded.get(i) for i in rows]), meta["size"])
            for v, view in enumerate(views):
                view_probs[v].append(session.run([output_name], {input_name: np.ascontiguousarray(NHWC_VIEWS[view](batch))})[0])
            bar.advance(task, len(rows))
    final = combine(np.stack([np.concatenate(parts) for parts in view_probs]), weights)
    result = {"export": str(model_path), "data": str(data), "images": len(ids), "tta": views, "tta_weights": list(weights), "device": device}
    return write_predictions(out, ids, final, labels, meta, result)


def _views(meta: dict, tta: str, tta_weights: str | None, export: Path) -> tuple[list[str], list[float]]:
    from maskctl.components.tta import NHWC_VIEWS, parse_weights, policy_views
    from maskctl.infer.predict import named_views

    if tta == "auto":
        if tta_weights:
            raise MaskctlError("--tta auto takes its weights from the export; drop --tta-weights or name a policy")
        if meta["tta"] is None:
            raise MaskctlError(f"--tta auto: {export} was exported from a run without tta.json; pick --tta none|hflip|hflip-shift")
        console.print(f"tta auto: {meta['tta']['policy']} with weights {meta['tta']['weights']} (recorded at export)")
        views = policy_views(meta["tta"]["policy"])
        return views, parse_weights(",".join(str(w) for w in meta["tta"]["weights"]), len(views))
    views, weights = named_views(tta, tta_weights)
    unknown = [view for view in views if view not in NHWC_VIEWS]
    if unknown:
        raise MaskctlError(f"--tta {tta}: view(s) {', '.join(unknown)} have no torch-free version; predict from the run instead")
    return views, weights
