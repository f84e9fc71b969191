"""`maskctl ensemble RUN [RUN ...]`: combine runs' predictions into one submission.

- soft: mean of the members' probabilities
- hard: majority vote of the members' classes; a tie goes to the tied class with the highest
  summed probability, then to the lowest class index
- weighted: weights fitted on the members' out-of-fold probabilities (objective: OOF macro F1);
  only when all members were trained on the same folds, else the OOF score would leak
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskctl.core import io
from maskctl.core.console import console, warn
from maskctl.core.errors import MaskctlError
from maskctl.engine.metrics import macro_f1
from maskctl.runs.folder import PREDICT_SET, SUBMISSION, RunFolder

METHODS = ("auto", "soft", "hard", "weighted")
ENSEMBLE_RECORD = "ensemble.json"  # the ensemble folder's record, sealing its submission.csv and probs.csv


# ------------------------------------------------------------------------------- pure voting


def soft_vote(probs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(M, N, C) -> (N, C) weighted mean of probabilities."""
    weights = np.full(len(probs), 1.0 / len(probs)) if weights is None else np.asarray(weights) / np.sum(weights)
    return np.tensordot(weights, probs, axes=1)


def hard_vote(probs: np.ndarray) -> np.ndarray:
    """(M, N, C) -> (N,) majority class; ties broken by summed probability, then lowest index."""
    members, n, classes = probs.shape
    votes = np.zeros((n, classes))
    np.add.at(votes, (np.repeat(np.arange(n)[None], members, 0), probs.argmax(2)), 1)
    tied = votes == votes.max(1, keepdims=True)
    summed = np.where(tied, probs.sum(0), -np.inf)
    return summed.argmax(1)  # argmax returns the first (lowest) index among equal values


def fit_weights(oof_probs: np.ndarray, labels: np.ndarray, trials: int = 300, seed: int = 0) -> tuple[np.ndarray, float]:
    """Search the simplex for the member weights with the best OOF macro F1. Every single
    member and the equal mix are candidates, so the result never scores below the best member."""
    members = len(oof_probs)
    candidates = [np.eye(members)[m] for m in range(members)] + [np.full(members, 1.0 / members)]
    candidates += list(np.random.default_rng(seed).dirichlet(np.ones(members), size=trials))
    best_weights, best_f1 = candidates[0], -1.0
    for weights in candidates:
        f1 = macro_f1(labels, soft_vote(oof_probs, weights).argmax(1))
        if f1 > best_f1 + 1e-12:
            best_weights, best_f1 = weights, f1
    return np.asarray(best_weights), best_f1


# ------------------------------------------------------------------------------- members


@dataclass
class Member:
    run: Path
    ids: list[str]
    probs: np.ndarray  # (N, C) eval probabilities from `maskctl predict`
    oof: "pandas.DataFrame | None"  # noqa: F821


def load_members(runs: list[Path]) -> list[Member]:
    from maskctl.core.io import check_set_record
    from maskctl.core.schema import read_csv
    from maskctl.runs.results import prob_columns, read_oof

    members = []
    for run in runs:
        run_folder = RunFolder(run)
        if not run_folder.is_run():
            warn(f"{run} is not a run folder; skipped")
            continue
        if not run_folder.probs.is_file():
            warn(f"{run} has no predictions; run `maskctl predict {run}` first; skipped")
            continue
        check_set_record(run_folder.predict_record, list(PREDICT_SET))
        table = read_csv(run_folder.probs, {"ImageID": "text"}, what="predictions", probabilities=True)
        oof = read_oof(run)  # its finished folds' tables, as report and audit read them
        members.append(Member(run, table["ImageID"].tolist(), table[prob_columns(table)].to_numpy(), oof))
    if not members:
        raise MaskctlError("no run with predictions among the arguments (each needs probs.csv from `maskctl predict`)")
    first = members[0]
    for member in members[1:]:
        if member.ids != first.ids:
            raise MaskctlError(f"{member.run} predicted a different eval set than {first.run} (ImageIDs differ); predict both on the same data")
        if member.probs.shape[1] != first.probs.shape[1]:
            raise MaskctlError(f"{member.run} has {member.probs.shape[1]} classes, {first.run} has {first.probs.shape[1]}")
    return members


def member_oof_f1(member: Member) -> float | None:
    from maskctl.runs.results import prob_columns

    if member.oof is None:
        return None
    return macro_f1(member.oof["label"].to_numpy(), member.oof[prob_columns(member.oof)].to_numpy().argmax(1))


def shared_oof(members: list[Member]):
    """(M, N, C) OOF probabilities, the first member's OOF table in the same row order (its
    label, fold and person columns), and whether all members used the same folds."""
    from maskctl.runs.results import prob_columns

    if any(m.oof is None for m in members):
        return None, None, False
    keyed = [m.oof.set_index("image").sort_index() for m in members]
    base = keyed[0]
    same = all(k.index.equals(base.index) and (k["fold"].to_numpy() == base["fold"].to_numpy()).all() for k in keyed)
    if not same:
        return None, None, False
    return np.stack([k[prob_columns(k)].to_numpy() for k in keyed]), base, True


def ensemble(runs: list[Path], out: Path, method: str = "auto", overwrite: bool = False, tune_decision: bool = False) -> dict:
    from rich.table import Table

    from maskctl.infer.decision import crossfit_groups, decide, tune
    from maskctl.infer.outputs import write_prediction_csvs

    if method not in METHODS:
        raise MaskctlError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if tune_decision and method == "hard":
        raise MaskctlError("--tune-decision shifts the ensemble's probabilities, and hard voting has none to shift: use --method soft, weighted or auto")
    members = load_members(runs)
    oof_probs, oof_table, same_folds = shared_oof(members)
    oof_labels = oof_table["label"].to_numpy() if oof_table is not None else None
    if method == "weighted" and not same_folds:
        raise MaskctlError("weighted voting fits weights on OOF predictions, which needs every run trained on the same folds (same folds.csv); use --method soft or hard")
    if tune_decision and not same_folds:
        raise MaskctlError("--tune-decision fits on the ensemble's OOF predictions, which needs every run trained on the same folds (same folds.csv)")
    inputs = [m.run for m in members if Path(out).resolve() == m.run.resolve()]
    if inputs:  # its submission.csv and probs.csv are what this ensemble reads
        raise MaskctlError(f"--out {out} is the member run {inputs[0]}: the ensemble would write over that run's predictions; choose another --out")
    out = io.prepare_output_dir(out, overwrite)
    if method == "auto":
        method = "weighted" if same_folds and len(members) > 1 else "soft"

    eval_probs = np.stack([m.probs for m in members])
    weights = np.full(len(members), 1.0 / len(members))
    table = Table(title=f"ensemble of {len(members)} run(s), {method} voting: OOF macro F1")
    table.add_column("member")
    table.add_column("weight", justify="right")
    table.add_column("OOF F1", justify="right")
    result = {"method": method, "members": [str(m.run) for m in members], "same_folds": same_folds}
    if method == "weighted":
        weights, _ = fit_weights(oof_probs, oof_labels)
    # Each member's own OOF score is meaningful even when the folds differ; the ensemble's is not.
    result["member_oof_f1"] = [member_oof_f1(m) for m in members]
    if oof_probs is not None:
        ensemble_pred = hard_vote(oof_probs) if method == "hard" else soft_vote(oof_probs, weights).argmax(1)
        result["oof_f1"] = macro_f1(oof_labels, ensemble_pred)
    for i, member in enumerate(members):
        own = result["member_oof_f1"][i]
        table.add_row(str(member.run), "vote" if method == "hard" else f"{weights[i]:.3f}", "-" if own is None else f"{own:.4f}")
    table.add_row("[bold]ensemble[/]", "", f"[bold]{result['oof_f1']:.4f}[/]" if "oof_f1" in result else "- (folds differ)")
    console.print(table)

    offsets = None
    if tune_decision:
        # Fitted on the blend's OOF probabilities with its weights (fitted on the whole OOF, as weighted
        # voting does); the offsets themselves are cross-fitted over the shared folds.
        tuning = tune(soft_vote(oof_probs, weights), oof_labels, crossfit_groups(oof_table["fold"].to_numpy(), oof_table["person"].to_numpy()))
        console.print(tuning.line())
        result["decision"], offsets = tuning.to_dict(), tuning.active_offsets()
    final_probs = soft_vote(eval_probs, weights)
    labels = hard_vote(eval_probs) if method == "hard" else decide(final_probs, offsets)
    ids = members[0].ids
    write_prediction_csvs(out, ids, labels, final_probs)
    result["weights"] = weights.tolist()
    io.write_set_record(out / ENSEMBLE_RECORD, result, [out / name for name in PREDICT_SET])
    console.print(f"[green]wrote[/] {out / SUBMISSION} ({len(ids)} rows)")
    return result
