"""`maskctl report RUN [RUN ...]`: one page comparing runs side by side, as self-contained HTML
(images inlined, no server, no network) and as Markdown (images as files beside it).

The page is built once as a list of sections (tables and figures) and written twice, so the
HTML and the Markdown cannot say different things. Everything comes from files a run keeps:
config.yaml (recipe differences), fold*/result.json (per-fold F1), the finished folds' oof.csv
joined as runs/results.read_oof joins them for summary.json and audit (OOF, per-task and
per-class F1, confusion matrices), fold*/metrics.csv (curves), and when present audit/ and
explain/ (written by `maskctl audit` and `maskctl explain`). The report folder is built beside
its place and renamed into it, so a failed report leaves nothing half-written.
"""
from __future__ import annotations

import base64
import html
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.markup import escape

from maskctl.core import io, schema
from maskctl.core.console import console
from maskctl.core.errors import MaskctlError
from maskctl.core.version import __version__
from maskctl.runs.folder import FOLD_PREFIX, OOF, RunFolder

# Always shown in the recipe table, differing or not: what a reader asks first about a run.
KEY_SETTINGS = ("model", "size", "loss", "epochs", "folds", "batch_size", "lr", "optimizer", "scheduler", "augmentation", "mix", "sampler")
# Differ between any two runs by construction and say nothing about the recipe.
NOT_RECIPE = ("name", "runs_dir")
TOP_SUSPECTS = 10
MAX_CELL = 60  # characters of a value read from a side file (a suspect's image list can be long)
MAX_FOLDER_NAME = 100
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HTML_FILE, MARKDOWN_FILE = "report.html", "report.md"


# ------------------------------------------------------------------------------- content


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, column) cells to stress


@dataclass
class Figures:
    """Images shown side by side (one per run): (file name in the report folder, caption)."""

    images: list[tuple[str, str]]
    per_row: int = 3  # wide figures (the three-panel curves) read only one to a row


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Figures]


@dataclass
class Run:
    path: Path
    label: str  # the run's name in the report (its folder name, numbered when two share one)
    stem: str  # the start of its image files' names: unique, and safe in a Markdown link
    recipe: dict
    oof: "pandas.DataFrame"  # noqa: F821
    fold_results: list[dict]
    histories: dict


# ------------------------------------------------------------------------------- reading runs


def load_run(path: Path, label: str, stem: str) -> Run:
    from maskctl.config import load_config
    from maskctl.engine.summary import fold_histories
    from maskctl.runs.results import read_fold_result, read_oof

    run = RunFolder(path).require()
    # The fold tables, not the joined runs/NAME/oof.csv: the same reader as the run's summary and
    # audit (it checks each fold's classes and labels), and current while farmed folds finish.
    oof = read_oof(path)
    if oof is None:
        raise MaskctlError(f"{path} has no out-of-fold predictions ({FOLD_PREFIX}*/{OOF}): no fold of it finished; finish it with `maskctl train --resume {path}`")
    if oof.empty:
        raise MaskctlError(f"{path}: its finished folds' out-of-fold tables have no rows")
    recipe = load_config(run.config).to_dict()
    results = [read_fold_result(f.result) for f in run.finished_folds()]
    return Run(path, label, stem, recipe, oof, results, fold_histories(run))


def run_labels(paths: list[Path]) -> list[str]:
    """Folder names; a name two runs share gets the run's position: exp (1), exp (2)."""
    names = [p.resolve().name or "run" for p in paths]
    return [n if names.count(n) == 1 else f"{n} ({i + 1})" for i, n in enumerate(names)]


def file_stem(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "run"


def check_same_data(runs: list[Run], allow_different: bool) -> str | None:
    """Scores compare only on the same validation images; the class count must always agree.
    With `allow_different`, a warning for the page when the images differ."""
    from maskctl.runs.results import prob_columns

    first = runs[0]
    images, classes = set(first.oof["image"]), len(prob_columns(first.oof))
    for run in runs[1:]:
        if len(prob_columns(run.oof)) != classes:
            raise MaskctlError(f"{run.path} predicts {len(prob_columns(run.oof))} classes, {first.path} {classes}: they are different tasks")
        other = set(run.oof["image"])
        if other != images and not allow_different:
            raise MaskctlError(f"{run.path} was validated on other images than {first.path} ({len(other)} vs {len(images)} images, "
                               f"{len(other & images)} in common); pass --allow-different-data to compare them anyway")
    differing = [r.label for r in runs[1:] if set(r.oof["image"]) != images]
    if differing:
        return f"Warning: {', '.join(differing)} validated on other images than {first.label}; their scores do not compare directly."
    return None


# ------------------------------------------------------------------------------- scores


def oof_scores(run: Run) -> dict:
    """OOF macro F1, accuracy, per-task F1 (18 mask classes only) and per-class F1."""
    from sklearn.metrics import f1_score

    from maskctl.engine.metrics import scores
    from maskctl.runs.results import prob_columns

    columns = prob_columns(run.oof)
    truth, pred = run.oof["label"].to_numpy(), run.oof[columns].to_numpy().argmax(1)
    result = scores(truth, pred, mask_classes=len(columns) == 18)
    result["per_class"] = f1_score(truth, pred, labels=list(range(len(columns))), average=None, zero_division=0)
    result["pred"] = pred
    return result


def class_names(run: Run, classes: int) -> list[str]:
    from maskctl.data import labels as L

    if classes != L.NUM_CLASSES:
        return [f"class {c}" for c in range(classes)]
    return [L.class_name(c, L.SCORING_AGE_EDGES) for c in range(classes)]  # OOF labels are the competition's, whatever the run's edges


def _f(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _best_in_columns(rows: list[list[str]], columns: range) -> set[tuple[int, int]]:
    """Tables with a row per run: the best run of each column."""
    return set().union(*(_top([(i, c) for i in range(len(rows))], rows) for c in columns))


def _best_in_rows(rows: list[list[str]], columns: range) -> set[tuple[int, int]]:
    """Tables with a column per run: the best run of each row."""
    return set().union(*(_top([(i, c) for c in columns], rows) for i in range(len(rows))))


def _top(cells: list[tuple[int, int]], rows: list[list[str]]) -> set[tuple[int, int]]:
    """The cells holding the highest number, where the runs differ at all."""
    values = {(i, c): float(rows[i][c]) for i, c in cells if rows[i][c] != "-"}
    if len(set(values.values())) < 2:
        return set()
    top = max(values.values())
    return {cell for cell, value in values.items() if value == top}


# ------------------------------------------------------------------------------- sections


def recipe_section(runs: list[Run]) -> Section:
    settings = [k for k in runs[0].recipe if k not in NOT_RECIPE]
    differing = [k for k in settings if len({repr(r.recipe.get(k)) for r in runs}) > 1]
    shown_settings = differing + [k for k in KEY_SETTINGS if k not in differing]
    rows = [[k + (" (differs)" if k in differing else ""), *(_setting_text(r.recipe.get(k)) for r in runs)] for k in shown_settings]
    bold = {(i, c) for i, k in enumerate(shown_settings) if k in differing for c in range(len(runs) + 1)}
    note = (f"{len(differing)} setting(s) differ: {', '.join(differing)}." if differing else
            "The recipes agree on every setting." if len(runs) > 1 else "The run's key settings.")
    return Section("Recipe", [note, Table(["setting", *(r.label for r in runs)], rows, bold)])


def _setting_text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def scores_section(runs: list[Run], run_scores: list[dict], data_warning: str | None = None) -> Section:
    tasks = [t for t in ("f1_mask", "f1_gender", "f1_age") if t in run_scores[0]]
    header = ["run", "OOF macro F1", "OOF accuracy", *(t.replace("f1_", "") + " F1" for t in tasks), "images"]
    rows = [[r.label, _f(s["f1"]), _f(s["acc"]), *(_f(s.get(t)) for t in tasks), str(len(r.oof))] for r, s in zip(runs, run_scores)]
    overall = Table(header, rows, _best_in_columns(rows, range(1, len(header) - 1)))

    fold_ids = sorted({res["fold"] for r in runs for res in r.fold_results})
    fold_rows = []
    for run in runs:
        by_fold = {res["fold"]: res for res in run.fold_results}
        best = [res["best_f1"] for res in run.fold_results]
        fold_rows.append([run.label, *(_f(by_fold[f]["best_f1"]) if f in by_fold else "-" for f in fold_ids),
                          f"{np.mean(best):.4f} ± {np.std(best):.4f}" if best else "-"])
    per_fold = Table(["run", *(f"fold {f}" for f in fold_ids), "mean ± std"], fold_rows, _best_in_columns(fold_rows, range(1, len(fold_ids) + 1)))
    return Section("Scores", [*([data_warning] if data_warning else []),
        "Out-of-fold (OOF) scores: every validation image scored by the fold model that did not train on it. "
        "Per-task F1 is the macro F1 of the mask, gender and age parts of the 18-class prediction.",
        overall,
        "Best validation macro F1 of each fold (the epoch whose checkpoint is kept).",
        per_fold,
    ])


def per_class_section(runs: list[Run], run_scores: list[dict], names: list[str]) -> Section:
    support = np.bincount(runs[0].oof["label"].to_numpy(), minlength=len(names))

    def f1(result: dict, c: int) -> str:  # a class neither present nor predicted has no F1, not 0
        present = (runs[0].oof["label"].to_numpy() == c).any() or (result["pred"] == c).any()
        return _f(result["per_class"][c]) if present else "-"

    rows = [[name, str(support[c]), *(f1(s, c) for s in run_scores)] for c, name in enumerate(names)]
    header = ["class", "images" if len(runs) == 1 else f"images ({runs[0].label})", *(r.label for r in runs)]
    return Section("Per-class F1 (OOF)", [Table(header, rows, _best_in_rows(rows, range(2, len(header))))])


def plots_sections(runs: list[Run], run_scores: list[dict], names: list[str], folder: Path) -> list[Section]:
    from maskctl.engine.metrics import confusion
    from maskctl.engine.summary import plot_confusion, plot_curves

    curves, matrices = [], []
    for run, result in zip(runs, run_scores):
        if run.histories:
            plot_curves(folder / f"{run.stem}-curves.png", run.histories)
            curves.append((f"{run.stem}-curves.png", f"{run.label}: loss, validation macro F1 and learning rate per epoch, per fold"))
        plot_confusion(folder / f"{run.stem}-confusion.png", confusion(run.oof["label"], result["pred"], len(names)), names)
        matrices.append((f"{run.stem}-confusion.png", f"{run.label}: OOF confusion matrix (rows: true class)"))
    sections = []
    if curves:
        sections.append(Section("Learning curves", [Figures(curves, per_row=1)]))
    sections.append(Section("Confusion matrices", [Figures(matrices)]))
    return sections


def audit_section(runs: list[Run], folder: Path) -> Section | None:
    blocks: list[str | Table | Figures] = []
    for run in runs:
        audit = run.path / "audit"
        if not (audit / "suspects.csv").is_file():
            continue
        suspects = schema.read_csv(audit / "suspects.csv", {"person": "text", "kind": "text"}, what="audit suspects")
        top = suspects.head(TOP_SUSPECTS)
        blocks.append(f"{run.label}: the {len(top)} top suspected label errors of {len(suspects)} (from {audit / 'suspects.csv'}).")
        blocks.append(Table(list(top.columns), [[_cell(v) for v in row] for row in top.itertuples(index=False)]))
        if (audit / "contact_sheet.png").is_file():
            name = f"{run.stem}-contact_sheet.png"
            copy_png(audit / "contact_sheet.png", folder / name)
            blocks.append(Figures([(name, f"{run.label}: the top suspects' images, label vs prediction")]))
    return Section("Label audit: top suspects", blocks) if blocks else None


def explain_section(runs: list[Run], folder: Path, names: list[str]) -> Section | None:
    blocks: list[str | Table | Figures] = []
    for run in runs:
        record = run.path / "explain" / "explain.json"
        if not record.is_file():
            continue
        grids = []
        for grid in pair_grids(record):
            name = f"{run.stem}-{grid.name}"
            copy_png(grid, folder / name)
            grids.append((name, f"{run.label}: {pair_caption(grid.stem, names)}"))
        blocks.append(f"{run.label}: Grad-CAM of the most confidently wrong validation images per confused class pair ({len(grids)} pair(s)).")
        if grids:
            blocks.append(Figures(grids))
    return Section("Explain: where the model looks", blocks) if blocks else None


def pair_caption(stem: str, names: list[str]) -> str:
    """pair_3_9 -> 'true 3 (wear/female/<30) predicted as 9 (...)'; other spellings as they are."""
    parts = stem.removeprefix("pair_").split("_", 1)
    named = [f"{p} ({names[int(p)]})" if p.isdigit() and int(p) < len(names) else p for p in parts]
    return "true " + " predicted as ".join(named)


def _natural(name: str) -> list:
    """pair_3_9 before pair_10_4."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"([0-9]+)", name)]


def pair_grids(record: Path) -> list[Path]:
    """The pair grids (pair_<true>_<pred>.png) that explain.json names anywhere in it, looked up
    by file name in its own folder, where `maskctl explain` writes them: a path in the record
    can then neither leave that folder nor depend on where explain was run from."""
    names: set[str] = set()

    def walk(value) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.endswith(".png"):
            name = Path(value.replace("\\", "/")).name
            if name.startswith("pair_"):
                names.add(name)

    walk(schema.read_json(record, "explain record"))
    grids = [record.parent / n for n in sorted(names, key=_natural)]
    missing = [g for g in grids if not g.is_file()]
    if missing:
        raise MaskctlError(f"explain record {record} lists {missing[0].name}, which is not in {record.parent}; run `maskctl explain` again")
    return grids


def copy_png(source: Path, target: Path) -> None:
    with open(source, "rb") as file:
        if file.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            raise MaskctlError(f"{source} is not a PNG image; run the command that wrote it again")
    shutil.copyfile(source, target)


def _cell(value) -> str:
    text = str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


# ------------------------------------------------------------------------------- writing


CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px 32px; color: #1d2330; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; border-bottom: 1px solid #d6dae3; padding-bottom: 4px; margin-top: 32px; }
p.meta { color: #5b6477; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #d6dae3; padding: 3px 9px; text-align: right; white-space: nowrap; }
th { background: #eef1f6; } td:first-child, th:first-child { text-align: left; }
td.stress { font-weight: 700; background: #fff6d6; } td.word { text-align: left; }
.figures { display: grid; gap: 16px; align-items: start; }
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #e3e6ee; }
figcaption { color: #5b6477; font-size: 12px; }
"""
# No request of any kind may leave the page: images are data: URIs, the style is inline.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def to_html(title: str, meta: str, sections: list[Section], folder: Path) -> str:
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
             f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", f'<p class="meta">{html.escape(meta)}</p>']
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, str):
                parts.append(f"<p>{html.escape(block)}</p>")
            elif isinstance(block, Table):
                parts.append(_html_table(block))
            else:
                parts.append(f'<div class="figures" style="grid-template-columns: repeat({min(len(block.images), block.per_row)}, 1fr)">')
                for name, caption in block.images:
                    data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
                    parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                                 f"<figcaption>{html.escape(caption)}</figcaption></figure>")
                parts.append("</div>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join(
        "<tr>" + "".join(f"<td{_cell_class(v, (i, j) in table.bold)}>{html.escape(v)}</td>" for j, v in enumerate(row)) + "</tr>"
        for i, row in enumerate(table.rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell_class(value: str, stressed: bool) -> str:
    """Numbers align right (the default), words left; the best run's cell is stressed."""
    classes = (["stress"] if stressed else []) + ([] if schema.ascii_number(value.split(" ")[0]) is not None or value == "-" else ["word"])
    return f' class="{" ".join(classes)}"' if classes else ""


def to_markdown(title: str, meta: str, sections: list[Section]) -> str:
    lines = [f"# {_md(title)}", "", _md(meta), ""]
    for section in sections:
        lines += [f"## {_md(section.title)}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                lines += [_md(block), ""]
            elif isinstance(block, Table):
                lines += _markdown_table(block) + [""]
            else:
                for name, caption in block.images:
                    lines += [f"![{_md(caption)}]({name})", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    """Text as Markdown shows it literally, whatever the data put in it (a run folder named
    `<img src=x onerror=...>`, a suspect's `|` or `[`): HTML escaped as report.html escapes it,
    Markdown's marks for code, emphasis, links and table cells backslashed, a leading # too,
    and on one line (a line break would end a table row or a paragraph)."""
    text = re.sub(r"([\\`*\[\]|])", r"\\\1", " ".join(str(text).splitlines()))
    return html.escape(re.sub(r"^(\s*)#", r"\1\\#", text), quote=False)


def _markdown_table(table: Table) -> list[str]:
    def row(cells, i=None):
        return "| " + " | ".join(f"**{_md(c)}**" if (i, j) in table.bold and c else _md(c) for j, c in enumerate(cells)) + " |"

    return [row(table.header), "| " + " | ".join("---" for _ in table.header) + " |", *(row(r, i) for i, r in enumerate(table.rows))]


def default_out(stems: list[str]) -> Path:
    joined = "-".join(stems)
    if len(joined) > MAX_FOLDER_NAME:
        joined = f"{stems[0][:40]}-and-{len(stems) - 1}-more"
    return Path("reports") / joined


def report(paths: list[Path], out: Path | None = None, allow_different_data: bool = False, overwrite: bool = False) -> Path:
    """Read and check every run first, then build report.html, report.md and their images in a
    staging folder beside `out` and rename it into place."""
    labels = run_labels(paths)
    stems = [file_stem(label) for label in labels]
    stems = [s if stems.count(s) == 1 else f"{i + 1}-{s}" for i, s in enumerate(stems)]
    runs = [load_run(path, label, stem) for path, label, stem in zip(paths, labels, stems)]
    data_warning = check_same_data(runs, allow_different_data)
    out = io.check_replaceable(out or default_out(stems), "report", overwrite)

    run_scores = [oof_scores(r) for r in runs]
    names = class_names(runs[0], len(run_scores[0]["per_class"]))
    title = "maskctl report: " + " vs ".join(labels)
    meta = (f"{len(runs)} run(s): " + "; ".join(f"{r.label} = {r.path}" for r in runs)
            + f". Made {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by maskctl {__version__}.")

    with io.staged_folder(out, "report") as staging:
        sections = [recipe_section(runs), scores_section(runs, run_scores, data_warning), per_class_section(runs, run_scores, names),
                    *plots_sections(runs, run_scores, names, staging)]
        sections += [s for s in (audit_section(runs, staging), explain_section(runs, staging, names)) if s is not None]
        io.write_text(staging / MARKDOWN_FILE, to_markdown(title, meta, sections))
        io.write_text(staging / HTML_FILE, to_html(title, meta, sections, staging))
    console.print(scores_table(runs, run_scores))
    console.print(f"[green]wrote[/] {escape(str(out / HTML_FILE))} (self-contained) and {escape(str(out / MARKDOWN_FILE))}: "
                  + ", ".join(s.title for s in sections))
    return out


def scores_table(runs: list[Run], run_scores: list[dict]):
    from rich.table import Table as RichTable

    table = RichTable(title="OOF macro F1 per run")
    for column in ("run", "OOF F1", "mask", "gender", "age", "fold mean"):
        table.add_column(column, justify="right")
    for run, result in zip(runs, run_scores):
        best = [r["best_f1"] for r in run.fold_results]
        table.add_row(escape(run.label), f"[bold]{result['f1']:.4f}[/]", _f(result.get("f1_mask")), _f(result.get("f1_gender")),
                      _f(result.get("f1_age")), _f(float(np.mean(best)) if best else None))
    return table

