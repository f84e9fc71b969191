"""What a prediction writes and reads: the data to predict, known answers, submission.csv,
probs.csv and their sealed record, and the scores where labels are known. Torch-free: the ONNX
path (maskctl/infer/onnx_predict.py) writes through it too."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from maskctl.core import io
from maskctl.core.console import console, warn
from maskctl.core.errors import MaskctlError, shown
from maskctl.core.schema import probability_columns
from maskctl.runs.folder import PREDICT_RECORD, PREDICT_SET, PROBS, SUBMISSION


def read_prediction_data(data: Path) -> tuple[list[str], list[str], np.ndarray | None]:
    """An eval folder (info.csv; read without pandas) or a training folder (labels known).
    Returns (image paths, ids, labels or None)."""
    from maskctl.data.layout import detect_kind, list_eval, read_train, require_readable_images

    if detect_kind(data) == "eval":
        listing = list_eval(data)
        require_readable_images(listing)
        return listing.paths, listing.ids, None
    dataset = read_train(data)
    return dataset.table["path"].tolist(), dataset.table["image"].tolist(), dataset.table["score_label"].to_numpy()


def read_answers(path: Path, ids: list[str]) -> np.ndarray:
    import pandas as pd

    from maskctl.core.schema import read_csv

    table = read_csv(path, {"ImageID": "text", "ans": "int"}, what="answers file")
    if table["ImageID"].duplicated().any():
        raise MaskctlError(f"{path} lists ImageID {table.loc[table['ImageID'].duplicated(), 'ImageID'].iloc[0]} more than once")
    answers = pd.Series(table["ans"].to_numpy(), index=table["ImageID"])
    missing = [i for i in ids if i not in answers.index]
    if missing:
        raise MaskctlError(f"{path} has no answer for {len(missing)} image(s), e.g. {missing[0]}")
    return answers.loc[ids].to_numpy().astype(int)


def refuse_overwrite(out: Path, overwrite: bool) -> Path:
    """The output folder, writable, this process its only writer, holding no earlier
    predictions unless --overwrite."""
    out = io.require_writable(out)
    io.claim_output(out)
    if any((out / name).exists() for name in PREDICT_SET) and not overwrite:
        raise MaskctlError(f"{out} already holds {'/'.join(PREDICT_SET)}; pass --overwrite or choose --out")
    return out


def known_labels(data: Path, answers: Path | None, ids: list[str], labels, score: bool):
    """The labels to score against: a training folder's, an answers file's (DATA/answers.csv
    when present), or None."""
    if not score:
        return None
    if answers is None and (data / "answers.csv").is_file():
        answers = data / "answers.csv"
        console.print(f"scoring against {answers}")
    return read_answers(answers, ids) if answers is not None else labels


def write_predictions(out: Path, ids: list[str], probs: np.ndarray, labels, meta: dict, result: dict, offsets=None) -> dict:
    """submission.csv and probs.csv, the scores where labels are known, and predict.json last,
    recording both files' digests (ensemble refuses a pair a kill tore apart). With decision
    `offsets` the submission's classes are argmax(log p + offsets); probs.csv stays the
    models' probabilities (an ensemble combines those)."""
    from maskctl.infer.decision import decide

    answers = decide(probs, offsets)
    write_prediction_csvs(out, ids, answers, probs)
    if labels is not None:
        result["scores"] = score_and_report(labels, answers, out, meta)
    io.write_set_record(out / PREDICT_RECORD, result, [out / name for name in PREDICT_SET])
    console.print(f"[green]wrote[/] {out / SUBMISSION} ({len(ids)} rows) and {out / PROBS}")
    return result


def write_prediction_csvs(out: Path, ids: list[str], answers: np.ndarray, probs: np.ndarray) -> None:
    """submission.csv (ImageID, ans) and probs.csv (ImageID, p0..p{C-1}), predict's and ensemble's.
    The csv module, not pandas: predicting from an export stays free of pandas' import (0.2 s).
    Only probabilities are written, as only probabilities are read: NaN weights or a model that
    does not end in a softmax would make every answer class 0 with exit 0."""
    from maskctl.core.schema import probability_problem

    bad = probability_problem(probs)
    if bad is not None:
        row, problem = bad
        raise MaskctlError(f"the predictions are not probabilities (image {shown(ids[row])}: {problem}): nothing written to {out} "
                           f"(damaged weights, or a model that does not end in a softmax?)")
    io.write_csv_rows(out / SUBMISSION, ["ImageID", "ans"], zip(ids, np.asarray(answers).tolist()))
    io.write_csv_rows(out / PROBS, ["ImageID", *probability_columns(probs.shape[1])],
                      ([image_id, *("%.6g" % p for p in row)] for image_id, row in zip(ids, probs.tolist())))


def score_and_report(labels: np.ndarray, pred: np.ndarray, out: Path, meta: dict) -> dict:
    from rich.table import Table

    from maskctl.engine.metrics import confusion, scores
    from maskctl.engine.summary import plot_confusion

    mask_classes = meta.get("mask_classes", meta["num_classes"] == 18)
    result = scores(labels, pred, mask_classes=mask_classes)
    table = Table(title="scores against the known labels")
    for key in result:
        table.add_column(key, justify="right")
    table.add_row(*(f"{v:.4f}" for v in result.values()))
    console.print(table)
    matrix = confusion(labels, pred, meta["num_classes"])
    plot_confusion(out / "predict_confusion.png", matrix, meta["class_names"])
    if not mask_classes:
        warn("per-task F1 is only defined for the 18 mask classes")
    return result
