"""`maskctl audit`: suspected label errors, from the out-of-fold probabilities of finished runs.

Every training image's OOF probabilities come from a model that never saw it, so where a model
keeps disagreeing with a label, the label is worth a look. The 18 probabilities are summed into
the three tasks (mask, gender, age band) and read by the kinds of error the real data has:

    gender     a person whose images are predicted as the other gender
    age-band   a person whose images are predicted in another age band
    mask-swap  a person whose `normal` image looks like `incorrect_mask` and the other way round
    image      one image whose mask status is predicted as another

A weak model's own confident mistakes must not crowd out the label errors, so suspects are
ranked by how surprising their disagreement is, not by its probability. A candidate's
disagreement is the mean log-odds of the alternative against the label over its images (each
picture has its say; a whole-person error shows in all of them). Each run's reliability at a
kind is judged from that kind's disagreements over all candidates (see `reliability`): a
disagreement on a task the run does well is strong evidence, one on a task it often gets wrong
is weak. An age-band suspect also counts in proportion to how many years its exact age (from
the training folder's train.csv) lies outside the predicted band, up to NEAR_MISS_YEARS: 29
read as 30-59 is a near miss, 19 read as 60+ is not. Evidence is averaged over the runs, so a
suspect every run sees outranks one that a single run sees. Single images are listed after the
people. Suspects are those whose alternative has a mean probability of at least
`min_evidence`. Outputs, written together into OUT (default RUN/audit/): suspects.csv,
contact_sheet.png, label_fixes_draft.csv (the person-level suspects with evidence of at least
DRAFT_EVIDENCE, in the format `--label-fixes` reads, to review, never applied by audit) and
audit.json.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskctl.core import io
from maskctl.core.errors import MaskctlError
from maskctl.data import labels as L

KINDS = ("gender", "age-band", "mask-swap", "image")
PERSON_KINDS = KINDS[:3]  # the kinds a label-fix file can correct
SUSPECTS_FILE, SHEET_FILE, DRAFT_FILE, RECORD_FILE = "suspects.csv", "contact_sheet.png", "label_fixes_draft.csv", "audit.json"
SUSPECT_COLUMNS = ("rank", "person", "kind", "evidence", "runs_agreeing", "label", "predicted", "p_label", "p_predicted", "images")
NORMAL, INCORRECT = L.MASK_KIND_TO_STATUS["normal"], L.MASK_KIND_TO_STATUS["incorrect_mask"]
SHEET_TILE_INCHES = 1.3
# Log-odds are taken of probabilities at least this, so that one image read with certainty
# (a probability of 0) cannot decide a person alone.
PROB_FLOOR = 1e-4
# A kind's disagreements spread at least this much (log-odds): runs that agree with almost
# every label alike would otherwise make any disagreement at all count without bound.
MIN_SPREAD = 0.5
# An age this many years or more outside the predicted band counts in full; nearer, in proportion.
NEAR_MISS_YEARS = 5
# The draft fix file corrects the person-level suspects with at least this evidence: a
# likelihood ratio of about 20 to 1 (e^3) that the label, not the model, is wrong.
DRAFT_EVIDENCE = 3.0


@dataclass
class RunOOF:
    run: Path
    table: "pandas.DataFrame"  # noqa: F821  image, person, fold, label, p0..p17; sorted by image
    data: Path  # the training folder the run read
    age_edges: tuple[int, int]


@dataclass
class Audit:
    suspects: "pandas.DataFrame"  # noqa: F821  SUSPECT_COLUMNS, best first
    images: "pandas.DataFrame"  # noqa: F821  image, person, label, predicted (over the runs' mean probabilities)
    runs: list[RunOOF]
    data: Path  # the training folder the exact ages and the contact sheet's images come from


def load_runs(runs: list[Path]) -> list[RunOOF]:
    """Each run's OOF table; every run must be a finished run of the 18 mask classes on the
    same data (the same images, people and labels), or the evidence would not add up."""
    from maskctl.config import load_config
    from maskctl.runs.folder import RunFolder
    from maskctl.runs.results import prob_columns, read_oof, taught_labels

    resolved = [run.resolve() for run in runs]
    twice = next((run for run, path in zip(runs, resolved) if resolved.count(path) > 1), None)
    if twice is not None:
        raise MaskctlError(f"{twice} is named more than once: each run's evidence would count twice")
    loaded = []
    for run in runs:
        run_folder = RunFolder(run).require()
        oof = read_oof(run)
        if oof is None:
            raise MaskctlError(f"{run} has no out-of-fold predictions (no finished fold with oof.csv); "
                               f"finish it with `maskctl train --resume {run}`")
        classes = len(prob_columns(oof))
        if classes != L.NUM_CLASSES:
            raise MaskctlError(f"{run} predicts {classes} classes; audit reads the {L.NUM_CLASSES} mask classes")
        config = load_config(run_folder.config)
        # Audit judges labels against the model: the targets it was taught (a 30,58 run's age bands), not the scored ones.
        oof = oof.assign(scored_label=oof["label"], label=taught_labels(oof))
        loaded.append(RunOOF(run, oof.sort_values("image", ignore_index=True), Path(config.data), L.parse_age_edges(config.age_edges)))
    first = loaded[0]
    for other in loaded[1:]:
        same = len(other.table) == len(first.table) and all(
            (other.table[c].to_numpy() == first.table[c].to_numpy()).all() for c in ("image", "person", "label", "scored_label"))
        if not same:
            raise MaskctlError(f"{other.run} and {first.run} were trained on different data (their images, people or labels "
                               "differ); audit runs of one data set together")
    return loaded


def task_probs(probs: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 18) class probabilities -> per task (N, 3 | 2 | 3) marginals."""
    mask, gender, age = L.decode(np.arange(L.NUM_CLASSES))
    return {name: np.stack([probs[:, index == value].sum(1) for value in range(count)], axis=1)
            for name, index, count in (("mask", mask, 3), ("gender", gender, 2), ("age", age, 3))}


def _alternative(p: np.ndarray, label: int) -> int:
    """The most probable value other than the label."""
    others = np.array(p, dtype=float)
    others[label] = -1.0
    return int(others.argmax())


def candidates_of_run(table, probs: np.ndarray) -> list[dict]:
    """One run's candidates, in the same order for every run of the same data: per person and
    kind, the task's probabilities of each of the person's images (mask-swap: per image of the
    two, [as named, swapped]); per image, its mask status."""
    mask_label, gender_label, age_label = L.decode(table["label"].to_numpy())
    tasks = task_probs(probs)
    mask = tasks["mask"]
    candidates = []
    for person, rows in table.groupby("person", sort=True).indices.items():
        for kind, task, labels in (("gender", "gender", gender_label), ("age-band", "age", age_label)):
            candidates.append(dict(person=person, kind=kind, label=int(labels[rows[0]]), image_probs=tasks[task][rows], rows=tuple(rows)))
        normal = [r for r in rows if mask_label[r] == NORMAL]
        incorrect = [r for r in rows if mask_label[r] == INCORRECT]
        if len(normal) == 1 and len(incorrect) == 1:
            n, i = normal[0], incorrect[0]
            readings = np.array([[mask[n, NORMAL], mask[n, INCORRECT]], [mask[i, INCORRECT], mask[i, NORMAL]]])
            candidates.append(dict(person=person, kind="mask-swap", label=0, image_probs=readings, rows=(n, i)))
    for row, label in enumerate(mask_label):
        candidates.append(dict(person=table["person"].iat[row], kind="image", label=int(label), image_probs=mask[row][None], rows=(row,)))
    return candidates


def disagreement(image_probs: np.ndarray, label: int, alternative: int) -> float:
    """How strongly a candidate's images favour `alternative` over `label`: the mean of their
    log-odds. Each image adds its own say, so a person whose seven pictures all lean the other
    way outweighs one with a single confident picture."""
    clipped = np.clip(image_probs, PROB_FLOOR, 1.0)
    return float(np.mean(np.log(clipped[:, alternative]) - np.log(clipped[:, label])))


def reliability(disagreements: np.ndarray) -> float:
    """How much one unit of disagreement is worth for a kind, judged from the kind's
    disagreements over all candidates (nearly all of them labelled right): read those as a
    normal distribution N(mu, sigma) and a wrong label's as its mirror image N(-mu, sigma); the
    log-likelihood ratio of wrong against right is then 2 * (-mu) / sigma**2 per unit. A task the
    runs do well (mu far below 0, little spread) makes each unit count much, one they often get
    wrong little, and one they do not beat the labels on nothing."""
    centre = float(np.median(disagreements))
    spread = max(float(np.std(disagreements)), MIN_SPREAD)
    return 2 * max(-centre, 0.0) / spread**2


def years_outside(age: int, band: int, edges) -> int:
    """How many years `age` lies outside age band `band` (0 inside it): with edges 30,60,
    29 is 1 year outside 30-59 and 19 is 41 years outside 60+."""
    young, old = edges
    low, high = ((None, young - 1), (young, old - 1), (old, None))[band]
    if low is not None and age < low:
        return low - age
    if high is not None and age > high:
        return age - high
    return 0


def near_miss_weight(age: int | None, band: int, edges) -> float:
    """An age-band suspect's share of its evidence: a labelled age a year from the predicted band
    is what a model's error of a year or two gives, one many years away is not. Unknown ages
    (the data folder gives none for the person) count in full."""
    if age is None:
        return 1.0
    return min(1.0, years_outside(age, band, edges) / NEAR_MISS_YEARS)


def rank_suspects(per_run: list[list[dict]], table, age_edges, min_evidence: float, ages: dict[str, int]):
    """Candidates of all runs -> suspects whose alternative the runs give a mean probability of
    at least `min_evidence`, ranked by evidence: each run's disagreement times the reliability
    of that run at that kind (age-band suspects also times their near-miss weight from `ages`,
    person -> exact age), averaged over the runs. A mask-swap suspect's two images are not
    listed again as images."""
    import pandas as pd

    rows, disagreements = [], []
    for candidates in zip(*per_run):
        first = candidates[0]
        per_run_means = [c["image_probs"].mean(0) for c in candidates]
        mean = np.mean(per_run_means, axis=0)
        label, alternative = first["label"], _alternative(mean, first["label"])
        disagreements.append([disagreement(c["image_probs"], label, alternative) for c in candidates])
        agreeing = sum(int(p[alternative] > p[label]) for p in per_run_means)
        weight = near_miss_weight(ages.get(first["person"]), alternative, age_edges) if first["kind"] == "age-band" else 1.0
        rows.append(dict(person=first["person"], kind=first["kind"], runs_agreeing=agreeing,
                         label=_value_name(first["kind"], label, age_edges), predicted=_value_name(first["kind"], alternative, age_edges),
                         p_label=round(float(mean[label]), 4), p_predicted=round(float(mean[alternative]), 4),
                         images=";".join(table["image"].iloc[list(first["rows"])]), predicted_value=alternative, weight=weight))
    frame = pd.DataFrame(rows, columns=[*SUSPECT_COLUMNS[1:], "predicted_value", "weight"])
    frame["evidence"] = (evidence_per_run(frame["kind"].to_numpy(), np.array(disagreements)).mean(1) * frame["weight"]).round(4)
    frame = frame[frame["p_predicted"] >= min_evidence]
    swapped = set(frame.loc[frame["kind"] == "mask-swap", "images"].str.split(";").explode())
    frame = frame[~((frame["kind"] == "image") & frame["images"].isin(swapped))]
    # Single images come after the people: one picture read otherwise is any model's commonest
    # mistake (its evidence has no other pictures to agree with) and a label-fix file cannot fix it.
    frame = frame.assign(kind_order=frame["kind"].map(KINDS.index), single_image=frame["kind"] == "image")
    frame = frame.sort_values(["single_image", "evidence", "runs_agreeing", "kind_order", "person"], ascending=[True, False, False, True, True], kind="stable")
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame.drop(columns=["kind_order", "single_image", "weight"]).reset_index(drop=True)


def evidence_per_run(kinds: np.ndarray, disagreements: np.ndarray) -> np.ndarray:
    """(candidates, runs) disagreements -> evidence: each run's disagreement times that run's
    reliability at the candidate's kind, judged over all candidates of the kind."""
    evidence = np.zeros_like(disagreements)
    for kind in set(kinds):
        of_kind = kinds == kind
        for run in range(disagreements.shape[1]):
            evidence[of_kind, run] = disagreements[of_kind, run] * reliability(disagreements[of_kind, run])
    return evidence


def _value_name(kind: str, value, age_edges) -> str:
    if kind == "gender":
        return L.GENDER_NAMES[value]
    if kind == "age-band":
        return L.age_band_names(age_edges)[value]
    if kind == "image":
        return L.MASK_NAMES[value]
    return ("as named", "swapped")[value]


def audit(runs: list[Path], min_evidence: float = 0.5, data: Path | None = None) -> Audit:
    """Suspects over `runs` (see the module docstring), age-band suspects weighed by the exact
    ages in the training folder `data` (default: the first run's own); writes nothing."""
    from maskctl.runs.results import prob_columns

    loaded = load_runs(runs)
    data = data or loaded[0].data
    if not data.is_dir():  # no exact ages, and the contact sheet would be blank tiles
        raise MaskctlError(f"data folder not found: {data} (the run's training data; pass --data where it is now)")
    table = loaded[0].table
    probs = [r.table[prob_columns(r.table)].to_numpy() for r in loaded]
    per_run = [candidates_of_run(table, p) for p in probs]
    ages = labelled_ages(table, data, loaded[0].age_edges)
    suspects = rank_suspects(per_run, table, loaded[0].age_edges, min_evidence, ages)
    images = table[["image", "person", "label"]].assign(predicted=np.mean(probs, axis=0).argmax(1))
    return Audit(suspects, images, loaded, data)


def labelled_ages(table, data: Path, age_edges) -> dict[str, int]:
    """Person -> the exact age the training folder `data` gives them, for the people whose age
    lies in the band the run was taught (a label fix or an edited train.csv since the run would
    otherwise weigh a suspect by an age the run never saw)."""
    from maskctl.data.layout import read_train

    given = read_train(data, age_edges).table.drop_duplicates("person").set_index("person")["age"]
    taught = dict(zip(table["person"], L.decode(table["label"].to_numpy())[2]))
    return {person: int(age) for person, age in given.items() if person in taught and L.age_band(int(age), age_edges) == taught[person]}


def representative_age(band: int, edges) -> int:
    """An age inside `band` for the draft: the user reviews it (the band is what the model saw)."""
    young, old = edges
    return (young // 2, (young + old) // 2, old)[band]


def drafted(suspects):
    """The suspects the draft fix file corrects: person-level ones with evidence of at least DRAFT_EVIDENCE."""
    return suspects[suspects["kind"].isin(PERSON_KINDS) & (suspects["evidence"] >= DRAFT_EVIDENCE)]


def draft_fixes(suspects, age_edges):
    """The drafted suspects as a label-fix table (id, gender, age, swap_mask), one row per person."""
    import pandas as pd

    fixes: dict[str, dict] = {}
    for row in drafted(suspects).itertuples():
        fix = fixes.setdefault(row.person, {"id": row.person, "gender": "", "age": "", "swap_mask": ""})
        if row.kind == "gender":
            fix["gender"] = L.GENDER_NAMES[row.predicted_value]
        elif row.kind == "age-band":
            fix["age"] = str(representative_age(row.predicted_value, age_edges))
        else:
            fix["swap_mask"] = "1"
    return pd.DataFrame(list(fixes.values()), columns=["id", "gender", "age", "swap_mask"])


def contact_sheet(path: Path, result: Audit, data: Path, count: int) -> None:
    """The top `count` person suspects, one row each: the person's images, titled label ->
    prediction, the disagreeing ones in red. An image no longer on disk is an empty tile."""
    from matplotlib.figure import Figure

    from maskctl.data.images import load_rgb

    edges = result.runs[0].age_edges
    top = result.suspects.drop_duplicates("person").head(count)
    by_person = result.images.groupby("person")
    rows = max(1, len(top))
    fig = Figure(figsize=(len(L.MASK_KINDS) * SHEET_TILE_INCHES + 1.5, rows * SHEET_TILE_INCHES * 1.35))
    axes = fig.subplots(rows, len(L.MASK_KINDS), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if top.empty:
        axes[0, 0].text(0, 0.5, "no suspects", fontsize=12)
    for line, suspect in enumerate(top.itertuples()):
        images = by_person.get_group(suspect.person).sort_values("image", key=lambda s: s.map(_mask_kind_order))
        axes[line, 0].set_title(f"#{suspect.rank} {suspect.person} {suspect.kind} ({suspect.evidence:.2f})", loc="left", fontsize=7, pad=12)
        for ax, image in zip(axes[line], images.itertuples()):
            try:
                ax.imshow(load_rgb(data / image.image))
            except (OSError, MaskctlError):
                pass
            wrong = image.label != image.predicted
            ax.text(0.5, -0.02, f"{L.class_name(image.label, edges)}\n-> {L.class_name(image.predicted, edges)}", transform=ax.transAxes, ha="center", va="top",
                    fontsize=5.5, color="red" if wrong else "black")
    fig.subplots_adjust(hspace=0.7, wspace=0.05, left=0.02, right=0.98, top=0.96, bottom=0.04)
    io.save_figure(path, fig)


def _mask_kind_order(image: str) -> int:
    stem = Path(image).stem.lower()
    return L.MASK_KINDS.index(stem) if stem in L.MASK_KINDS else len(L.MASK_KINDS)


def run_audit(runs: list[Path], out: Path | None = None, data: Path | None = None, min_evidence: float = 0.5,
              sheet: int = 12, top: int = 15, injected: Path | None = None, overwrite: bool = False) -> tuple[Audit, Path]:
    """Audit `runs`, write the four files into `out` together and show the top suspects. The
    files are made in a staging folder beside `out` that takes its place in one rename, so a
    failure leaves no half audit."""
    from maskctl.core.console import console

    out = io.check_replaceable(out if out is not None else runs[0] / "audit", "audit", overwrite)
    result = audit(runs, min_evidence, data)
    first = result.runs[0]
    scores = score_against_injected(result.suspects, set(result.images["person"]), injected) if injected is not None else None
    with io.staged_folder(out, "audit") as staging:
        io.write_csv(staging / SUSPECTS_FILE, result.suspects[list(SUSPECT_COLUMNS)])
        io.write_csv(staging / DRAFT_FILE, draft_fixes(result.suspects, first.age_edges))
        contact_sheet(staging / SHEET_FILE, result, result.data, sheet)
        counts = result.suspects["kind"].value_counts()
        io.write_json(staging / RECORD_FILE, {
            "runs": [str(r.run) for r in result.runs],
            "images": len(result.images),
            "people": int(result.images["person"].nunique()),
            "min_evidence": min_evidence,
            "suspects": {kind: int(counts.get(kind, 0)) for kind in KINDS},
            "draft_people": int(drafted(result.suspects)["person"].nunique()),
            "age_edges": list(first.age_edges),
            **({"against_injected": {"file": str(injected), **scores}} if scores else {}),
        })
    console.print(suspects_table(result.suspects, top))
    if scores:
        k = scores["injected"]
        console.print(f"against {injected}: {k} injected; recall at {k} {scores[f'recall_at_{k}']:.2f}, at {2 * k} "
                      f"{scores[f'recall_at_{2 * k}']:.2f}, of all {scores['suspected_people']} suspected people {scores['recall']:.2f}; "
                      f"precision {_share(scores['precision'])}; kind right for {_share(scores['kind_right'])} of those found; "
                      f"the draft's {scores['draft_people']} people: precision {_share(scores['draft_precision'])}")
    console.print(f"[green]wrote[/] {out / SUSPECTS_FILE}, {SHEET_FILE}, {DRAFT_FILE} (review it, then pass it to "
                  f"--label-fixes), {RECORD_FILE}")
    return result, out


def score_against_injected(suspects, audited_people: set[str], path: Path) -> dict:
    """How well the person-level suspects find the label errors `maskctl synth --label-noise`
    wrote (its injected_noise.csv): with k injected people among those audited (a run with
    unfinished folds has OOF predictions for only some), the share of them among the first k
    and 2k suspected people, the share of suspected people who were injected (precision), the
    share of found ones whose kind is right, and the share of the draft's people who were injected."""
    from maskctl.core.schema import read_csv

    injected = read_csv(path, {"id": "text", "kind": "text"}, what="injected-noise file")
    truth = {person: kind for person, kind in zip(injected["id"], injected["kind"]) if person in audited_people}
    if not truth:
        raise MaskctlError(f"injected-noise file {path} lists none of the audited people")
    people = suspects[suspects["kind"].isin(PERSON_KINDS)]
    ranked = list(dict.fromkeys(people["person"]))
    k = len(truth)
    found = [p for p in ranked if p in truth]
    right_kind = [p for p in found if truth[p] in set(people.loc[people["person"] == p, "kind"])]
    draft = set(drafted(suspects)["person"])
    return {
        "injected": k,
        "injected_not_audited": len(injected) - k,
        "suspected_people": len(ranked),
        f"recall_at_{k}": len(set(ranked[:k]) & set(truth)) / k,
        f"recall_at_{2 * k}": len(set(ranked[: 2 * k]) & set(truth)) / k,
        "recall": len(found) / k,
        "precision": len(found) / len(ranked) if ranked else None,
        "kind_right": len(right_kind) / len(found) if found else None,
        "draft_people": len(draft),
        "draft_precision": len(draft & set(truth)) / len(draft) if draft else None,
    }


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def suspects_table(suspects, top: int):
    from rich.table import Table

    table = Table(title=f"top {min(top, len(suspects))} of {len(suspects)} suspected label errors (evidence: how surprising the "
                        "disagreement is for the runs; p: mean probabilities)")
    numbers = ("rank", "p_label", "p_predicted", "evidence", "runs agreeing")
    for column in ("rank", "person", "kind", "label", "predicted", "p_label", "p_predicted", "evidence", "runs agreeing"):
        table.add_column(column, justify="right" if column in numbers else "left")
    for row in suspects.head(top).itertuples():
        images = "" if row.kind != "image" else f" ({Path(row.images).name})"
        table.add_row(str(row.rank), row.person, row.kind + images, row.label, row.predicted, f"{row.p_label:.3f}", f"{row.p_predicted:.3f}",
                      f"[bold]{row.evidence:.2f}[/]", str(row.runs_agreeing))
    return table
