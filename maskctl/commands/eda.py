"""`maskctl eda`: what is in a data folder, as numbers (eda.json), a report (report.md + PNG
plots) and rich tables in the terminal.

Every image is decoded once here, so a corrupt file shows up before training rather than hours
into it. Only light imports at module level: matplotlib, pandas and rich load inside functions.
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from maskctl.core.errors import MaskctlError
from maskctl.data import labels as L
from maskctl.data.images import ImageDecodeError, image_info, load_rgb
from maskctl.data.layout import FolderTable, Problem, detect_kind, read_eval, read_train

PROBLEMS_IN_TERMINAL = 15
# eda.json keeps every problem; the markdown stays readable on a badly broken folder.
PROBLEMS_IN_MARKDOWN = 200
HIDDEN_LISTED = 10
SAMPLE_PEOPLE = 3
EVAL_SAMPLE_ROWS, EVAL_SAMPLE_COLUMNS = 2, 6
# Pillow releases the GIL while decoding, so threads speed the scan up about as many times as
# there are cores (2.1x on 2 cores).
DECODE_THREADS = 4


# ---------------------------------------------------------------------------------------------
# Entry points

def run_eda(
    data_dir: str | Path,
    out_dir: str | Path | None = None,
    age_edges: Sequence[int] = L.DEFAULT_AGE_EDGES,
    label_fixes: str | Path | None = None,
    overwrite: bool = False,
    console=None,
) -> dict:
    """Read, check, decode every image, print tables, write the report; returns the numbers."""
    from maskctl.core import io
    from maskctl.core.console import console as default_console

    console = console or default_console
    # Reading is quick and fails on a wrong folder before anything is created; the output
    # folder is settled before the slow decoding pass so a refusal costs nothing.
    dataset = read_dataset(data_dir, age_edges, label_fixes)
    out_dir = io.prepare_output_dir(out_dir or default_out_dir(data_dir), overwrite)
    report = summarise(dataset)
    render(report, console)
    report_path = write_report(report, dataset, out_dir)
    console.print(f"[green]wrote[/] {report_path} (+ eda.json and plots)")
    return report


def analyse(
    data_dir: str | Path,
    age_edges: Sequence[int] = L.DEFAULT_AGE_EDGES,
    label_fixes: str | Path | None = None,
    show_progress: bool = True,
) -> dict:
    """The numbers of a training or eval folder as a json-able dict."""
    return summarise(read_dataset(data_dir, age_edges, label_fixes), show_progress)


def default_out_dir(data_dir: str | Path) -> Path:
    root = Path(data_dir).resolve()  # resolved so that "." still has a name
    return root.parent / "reports" / f"eda-{root.name}"


def read_dataset(data_dir: str | Path, age_edges: Sequence[int], label_fixes: str | Path | None) -> FolderTable:
    root = Path(data_dir)
    if detect_kind(root) == "train":
        return read_train(root, age_edges, label_fixes)
    if label_fixes:
        raise MaskctlError(f"{root} is an eval folder (info.csv); label fixes apply to training folders only")
    return read_eval(root)


# ---------------------------------------------------------------------------------------------
# The numbers

def summarise(dataset: FolderTable, show_progress: bool = True) -> dict:
    table = dataset.table
    modes, sizes, corrupt = _scan_images(dataset, show_progress)
    return {
        "kind": "train" if dataset.has_labels else "eval",
        "data_dir": str(dataset.root),
        "images": len(table),
        "decoded": sum(modes.values()),
        **(_label_numbers(dataset) if dataset.has_labels else {}),
        "extensions": _counts(table["ext"]),
        "modes": dict(modes.most_common()),
        "sizes": dict(sizes.most_common()),
        "hidden_files": {"count": len(dataset.hidden_files), "first": dataset.hidden_files[:HIDDEN_LISTED]},
        "problems": _problem_numbers(dataset.problems + corrupt),
    }


def _label_numbers(dataset: FolderTable) -> dict:
    table, age_edges = dataset.table, dataset.age_edges
    bands = L.age_band_names(age_edges)
    class_counts = _counts_by_index(table["label"], L.NUM_CLASSES)
    tasks = {
        "mask": (_counts_by_index(table["mask_label"], 3), L.MASK_NAMES),
        "gender": (_counts_by_index(table["gender_label"], 2), L.GENDER_NAMES),
        "age": (_counts_by_index(table["age_label"], 3), bands),
    }
    class_names = [L.class_name(label, age_edges) for label in range(L.NUM_CLASSES)]
    classes = [{"label": label, **row} for label, row in enumerate(_count_rows(class_counts, class_names))]
    imbalance = {"classes": _imbalance(class_counts)}
    imbalance.update({task: _imbalance(counts) for task, (counts, _) in tasks.items()})
    return {
        "people": int(table["folder"].nunique()),  # folders, so a duplicated id still counts twice
        "age_edges": list(age_edges),
        "age_bands": list(bands),
        "classes": classes,
        "tasks": {task: _count_rows(counts, names) for task, (counts, names) in tasks.items()},
        "people_by_gender_age": _people_by_gender_age(table, bands),
        "people_per_age": _people_per_age(table),
        "imbalance": imbalance,
        "empty_classes": [row["name"] for row in classes if row["images"] == 0],
        "fixes_applied": list(dataset.fixes_applied),
    }


def _counts_by_index(values, size: int) -> list[int]:
    counts = values.value_counts()
    return [int(counts.get(i, 0)) for i in range(size)]


def _count_rows(counts: Sequence[int], names: Sequence[str]) -> list[dict]:
    total = sum(counts) or 1
    return [{"name": name, "images": count, "share": round(count / total, 6)} for name, count in zip(names, counts)]


def _counts(values) -> dict[str, int]:
    """Value counts as plain ints, most common first."""
    return {str(key): int(count) for key, count in values.value_counts().items()}


def _imbalance(counts: Sequence[int]) -> float | None:
    """Largest / smallest count; None when a class is empty (the ratio is unbounded)."""
    return round(max(counts) / min(counts), 2) if min(counts) > 0 else None


def _people_by_gender_age(table, bands: Sequence[str]) -> dict[str, dict[str, int]]:
    people = table.drop_duplicates("folder")
    return {
        gender: {bands[a]: int(((people["gender_label"] == g) & (people["age_label"] == a)).sum()) for a in range(3)}
        for g, gender in enumerate(L.GENDER_NAMES)
    }


def _people_per_age(table) -> list[dict]:
    people = table.drop_duplicates("folder")
    counts = people.groupby(["age", "gender"]).size()
    return [
        {"age": int(age), **{gender: int(counts.get((age, gender), 0)) for gender in L.GENDER_NAMES}}
        for age in sorted(people["age"].unique())
    ]


def _problem_numbers(problems: list[Problem]) -> dict:
    return {
        "count": len(problems),
        "by_kind": dict(Counter(p.kind for p in problems).most_common()),
        "items": [asdict(p) for p in problems],
    }


# ---------------------------------------------------------------------------------------------
# Decoding every image

def _scan_images(dataset: FolderTable, show_progress: bool) -> tuple[Counter, Counter, list[Problem]]:
    """Colour modes and sizes of the images that decode, and a problem for each one that does not."""
    from maskctl.core.console import track

    images = _decodable_images(dataset)
    modes: Counter = Counter()
    sizes: Counter = Counter()
    corrupt = []
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        results = pool.map(_inspect, images.values())
        if show_progress:
            results = track(results, "decoding images", total=len(images))
        for image, (mode, size, error) in zip(images, results):
            if error:
                corrupt.append(Problem("corrupt-image", image, error))
            else:
                modes[mode] += 1
                sizes[size] += 1
    return modes, sizes, corrupt


def _decodable_images(dataset: FolderTable) -> dict[str, str]:
    """image (relative name) -> path; eval rows that read_eval already reported as missing or
    outside the folder are left out, and an ImageID listed twice is decoded once."""
    table = dataset.table
    if not dataset.has_labels:
        unusable = {p.where for p in dataset.problems if p.kind in ("missing-image", "path-escapes")}
        table = table[~table["ImageID"].isin(unusable)]
    return dict(zip(table["image"], table["path"]))


def _inspect(path: str) -> tuple[str | None, str | None, str | None]:
    """(mode, 'HxW', None) for an image that decodes, (None, None, reason) for one that does not.
    The mode comes from the header: load_rgb hands back RGB whatever the file holds."""
    try:
        width, height, mode = image_info(path)
        load_rgb(path)
    except ImageDecodeError as exc:
        return None, None, str(exc)
    return mode, f"{height}x{width}", None  # HxW, as every size maskctl takes or shows


# ---------------------------------------------------------------------------------------------
# Files: eda.json, PNG plots, report.md

def write_report(report: dict, dataset: FolderTable, out_dir: str | Path) -> Path:
    """Plots first and report.md last, each written atomically: a report.md on disk means the
    whole report is there. Returns the path of report.md."""
    from maskctl.core import io

    out_dir = Path(out_dir)
    written = _write_plots(report, dataset, out_dir)
    io.write_json(out_dir / "eda.json", report)
    return io.write_text(out_dir / "report.md", markdown(report, written))


def _write_plots(report: dict, dataset: FolderTable, out_dir: Path) -> list[str]:
    """Returns the file names of the plots written."""
    from maskctl.commands import eda_plots as plots
    from maskctl.core import io

    figures = {}
    if report["kind"] == "train":
        classes = report["classes"]
        figures["classes.png"] = plots.class_bars([c["name"] for c in classes], [c["images"] for c in classes])
        figures["ages.png"] = plots.age_histogram(report["people_per_age"], report["age_edges"], report["age_bands"])
    samples = _sample_rows(dataset)
    if samples:  # none in a folder without one complete person or readable eval image
        figures["samples.png"] = plots.image_grid(samples)
    for name, figure in figures.items():
        io.save_figure(out_dir / name, figure)
    return list(figures)


def _sample_rows(dataset: FolderTable) -> list[tuple[str, list[tuple[str, str]]]]:
    """Rows of (row label, [(caption, path)]): train, a few people spread over the folder with
    their 7 images each; eval, the first images as listed."""
    table = dataset.table
    if not dataset.has_labels:
        paths = [p for p in table["path"] if Path(p).is_file()][: EVAL_SAMPLE_ROWS * EVAL_SAMPLE_COLUMNS]
        cells = [(Path(p).name[:10], p) for p in paths]
        return [("", cells[i:i + EVAL_SAMPLE_COLUMNS]) for i in range(0, len(cells), EVAL_SAMPLE_COLUMNS)]
    complete = [part for _, part in table.groupby("folder", sort=False) if len(part) == len(L.MASK_KINDS)]
    picked = [complete[i * len(complete) // SAMPLE_PEOPLE] for i in range(min(SAMPLE_PEOPLE, len(complete)))]
    rows = []
    for person in picked:
        paths = dict(zip(person["mask_kind"], person["path"]))
        first = person.iloc[0]
        rows.append((f"{first['person']}\n{first['gender']} {first['age']}", [(kind, paths[kind]) for kind in L.MASK_KINDS]))
    return rows


def markdown(report: dict, plots: Sequence[str] = ()) -> str:
    """report.md: the numbers as tables; `plots` (file names beside it) linked relatively."""
    lines = [f"# EDA: {report['data_dir']}", "", _md_table(["", ""], _overview_rows(report)), ""]
    if report["kind"] == "train":
        lines += _md_train_sections(report, plots)
    lines += [
        "## Files", "",
        _md_table(["extension", "images"], report["extensions"].items()), "",
        _md_table(["colour mode", "images"], report["modes"].items()), "",
        _md_table(["size (HxW)", "images"], report["sizes"].items()), "",
    ]
    hidden = report["hidden_files"]
    if hidden["count"]:
        shown = ", ".join(f"`{name}`" for name in hidden["first"])
        lines += [f"Skipped {hidden['count']} hidden file(s) (macOS `._*` resource forks and dot files): {shown}"
                  + (" ..." if hidden["count"] > len(hidden["first"]) else ""), ""]
    lines += _md_problems(report["problems"])
    if "samples.png" in plots:
        lines += ["## Sample images", "", *_md_image("Sample images", "samples.png", plots)]
    return "\n".join(lines)


def _md_train_sections(report: dict, plots: Sequence[str]) -> list[str]:
    bands = report["age_bands"]
    lines = ["## Classes", "", *_md_image("Images per class", "classes.png", plots)]
    classes = [(c["label"], c["name"], c["images"], f"{c['share']:.1%}") for c in report["classes"]]
    lines += [_md_table(["label", "class", "images", "share"], classes), ""]
    lines += ["## Tasks", ""]
    for task, rows in report["tasks"].items():
        lines += [_md_table([task, "images", "share"], [(r["name"], r["images"], f"{r['share']:.1%}") for r in rows]), ""]
    lines += ["## People by gender and age band", ""]
    people = [(gender, *counts.values()) for gender, counts in report["people_by_gender_age"].items()]
    lines += [_md_table(["gender", *bands], people), ""]
    lines += ["## Ages", "", *_md_image("People per age", "ages.png", plots)]
    lines += [f"Age band edges: {', '.join(map(str, report['age_edges']))} (bands {', '.join(bands)}).", ""]
    lines += ["## Imbalance (largest / smallest count)", ""]
    lines += [_md_table(["over", "ratio"], [(name, _ratio_text(r)) for name, r in report["imbalance"].items()]), ""]
    if report["empty_classes"]:
        lines += [f"Empty classes: {', '.join(report['empty_classes'])}", ""]
    if report["fixes_applied"]:
        lines += ["## Label fixes applied", "", *(f"- {fix}" for fix in report["fixes_applied"]), ""]
    return lines


def _md_problems(problems: dict) -> list[str]:
    lines = [f"## Problems ({problems['count']})", ""]
    if not problems["count"]:
        return lines + ["None found.", ""]
    items = problems["items"][:PROBLEMS_IN_MARKDOWN]
    lines += [_md_table(["kind", "where", "message"], [(p["kind"], p["where"], p["message"]) for p in items]), ""]
    if problems["count"] > len(items):
        lines += [f"... and {problems['count'] - len(items)} more (all of them are in eda.json).", ""]
    return lines


def _md_image(title: str, name: str, plots: Sequence[str]) -> list[str]:
    return [f"![{title}]({name})", ""] if name in plots else []


def _md_table(headers: Sequence, rows) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _overview_rows(report: dict) -> list[tuple[str, str]]:
    rows = [("kind", report["kind"]), ("folder", report["data_dir"])]
    if report["kind"] == "train":
        rows.append(("people", str(report["people"])))
    rows += [
        ("images", str(report["images"])),
        ("decoded", f"{report['decoded']} of {report['images']}"),
        ("extensions", _inline_counts(report["extensions"])),
        ("colour modes", _inline_counts(report["modes"])),
        ("sizes (HxW)", _inline_counts(report["sizes"])),
        ("hidden files skipped", str(report["hidden_files"]["count"])),
        ("problems", str(report["problems"]["count"])),
    ]
    if report["kind"] == "train":
        rows.append(("class imbalance (max/min)", _ratio_text(report["imbalance"]["classes"])))
    return rows


def _inline_counts(counts: dict[str, int], limit: int = 5) -> str:
    if not counts:
        return "-"
    text = ", ".join(f"{key} {count}" for key, count in list(counts.items())[:limit])
    return text + (f", ... ({len(counts) - limit} more)" if len(counts) > limit else "")


def _ratio_text(ratio: float | None) -> str:
    return "unbounded (empty class)" if ratio is None else f"{ratio:.2f}"


# ---------------------------------------------------------------------------------------------
# Terminal

def render(report: dict, console) -> None:
    """Rich tables: overview, per-class and per-task counts (train), problems."""
    from rich.table import Table

    overview = Table(title=f"eda: {report['data_dir']}", show_header=False)
    overview.add_column(style="bold")
    overview.add_column()
    for key, value in _overview_rows(report):
        overview.add_row(key, value)
    console.print(overview)
    if report["kind"] == "train":
        console.print(_class_table(report))
        console.print(_task_table(report))
        console.print(_people_table(report))
    console.print(_problem_table(report["problems"]))


def _class_table(report: dict):
    from rich.table import Table

    table = Table(title="images per class")
    for name, justify in (("label", "right"), ("class", "left"), ("images", "right"), ("share", "right")):
        table.add_column(name, justify=justify)
    for c in report["classes"]:
        empty = c["images"] == 0  # nothing to learn this class from, yet macro F1 counts it
        table.add_row(str(c["label"]), c["name"], str(c["images"]), f"{c['share']:.1%}", style="red" if empty else None)
    return table


def _task_table(report: dict):
    from rich.table import Table

    table = Table(title="images per task")
    for name in ("task", "class", "images", "share", "max/min"):
        table.add_column(name, justify="left" if name in ("task", "class") else "right")
    for task, rows in report["tasks"].items():
        for i, row in enumerate(rows):
            first = i == 0  # task name and its imbalance once per block
            table.add_row(
                task if first else "", row["name"], str(row["images"]), f"{row['share']:.1%}",
                _ratio_text(report["imbalance"][task]) if first else "", end_section=i == len(rows) - 1,
            )
    return table


def _people_table(report: dict):
    from rich.table import Table

    table = Table(title="people by gender and age band")
    table.add_column("gender")
    for band in report["age_bands"]:
        table.add_column(band, justify="right")
    for gender, counts in report["people_by_gender_age"].items():
        table.add_row(gender, *(str(n) for n in counts.values()))
    return table


def _problem_table(problems: dict):
    from rich.table import Table

    if not problems["count"]:
        return "[green]no problems found[/]"
    table = Table(title=f"problems ({problems['count']})", caption=_problem_caption(problems))
    table.add_column("kind", style="yellow", no_wrap=True)
    table.add_column("where")
    table.add_column("message")
    for p in problems["items"][:PROBLEMS_IN_TERMINAL]:
        table.add_row(p["kind"], p["where"], p["message"])
    return table


def _problem_caption(problems: dict) -> str | None:
    hidden = problems["count"] - PROBLEMS_IN_TERMINAL
    return f"and {hidden} more (all of them are in eda.json)" if hidden > 0 else None
