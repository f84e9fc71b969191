"""`maskctl report RUN [RUN ...]`: one self-contained HTML page and its Markdown twin comparing
runs, from hand-made run folders (the files `maskctl train`, `audit` and `explain` keep), and
one line for each kind of bad input with nothing written."""
import json
import re

import numpy as np
import pandas as pd
import pytest
from cli_helpers import invoke, one_line_error
from PIL import Image
from sklearn.metrics import f1_score

from maskctl.config import TrainConfig, save_config

CLASSES = 18
SECTIONS = ("Recipe", "Scores", "Per-class F1 (OOF)", "Learning curves", "Confusion matrices")


def make_run(folder, images=36, seed=0, skill=0.5, **recipe):
    """A finished 2-fold run: config.yaml, folds.csv, oof.csv and fold*/{oof.csv,result.json,
    metrics.csv}; the OOF prediction is right for about a `skill` share of the images."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    save_config(TrainConfig(**{"model": "test_resnet", "size": "64x48", "folds": 2, "name": folder.name, **recipe}), folder / "config.yaml")
    names = [f"images/{i // 7:06d}_female_Asian_45/img{i % 7}.jpg" for i in range(images)]
    people = [f"{i // 7:06d}" for i in range(images)]
    labels = np.arange(images) % CLASSES
    probs = rng.dirichlet(np.ones(CLASSES), size=images)
    right = rng.random(images) < skill
    probs[right, labels[right]] += 2.0
    probs /= probs.sum(1, keepdims=True)
    oof = pd.DataFrame({"image": names, "person": people, "fold": [int(p) % 2 for p in people], "label": labels})
    oof = pd.concat([oof, pd.DataFrame(probs, columns=[f"p{c}" for c in range(CLASSES)])], axis=1)
    oof.to_csv(folder / "oof.csv", index=False)
    oof[["person", "fold"]].drop_duplicates().to_csv(folder / "folds.csv", index=False)
    for fold in (0, 1):
        fold_dir = folder / f"fold{fold}"
        fold_dir.mkdir()
        oof[oof["fold"] == fold].to_csv(fold_dir / "oof.csv", index=False)
        f1s = np.round(rng.uniform(0.1, 0.6, size=3), 4)
        pd.DataFrame({"epoch": range(3), "lr": [3e-3, 2e-3, 1e-3], "train_loss": [2.5, 2.0, 1.6], "val_loss": [2.7, 2.3, 2.1],
                      "f1": f1s, "f1_mask": f1s, "f1_gender": f1s, "f1_age": f1s}).to_csv(fold_dir / "metrics.csv", index=False)
        (fold_dir / "result.json").write_text(json.dumps({"fold": fold, "best_f1": float(f1s.max()), "best_epoch": int(f1s.argmax()),
                                                          "epochs_run": 3, "stopped_early": False}))
    return folder


def oof_f1(run) -> float:
    oof = pd.read_csv(run / "oof.csv")
    return f1_score(oof["label"], oof[[f"p{c}" for c in range(CLASSES)]].to_numpy().argmax(1), average="macro", zero_division=0)


def png(path, color=(200, 60, 60)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), color).save(path)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return make_run(root / "ce", seed=1, skill=0.3, loss="ce"), make_run(root / "focal", seed=2, skill=0.7, loss="focal", mix="cutmix")


@pytest.fixture(scope="module")
def page(two_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "cmp"
    result = invoke("report", *two_runs, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_report_compares_runs_in_html_and_markdown(page, two_runs):
    html = (page / "report.html").read_text()
    markdown = (page / "report.md").read_text()
    for text in (html, markdown):
        for run in two_runs:
            assert run.name in text
            assert f"{oof_f1(run):.4f}" in text  # each run's OOF macro F1, computed here independently
        for section in SECTIONS:
            assert section in text
        assert "loss (differs)" in text and "mix (differs)" in text
        assert "model" in text and "not_wear/female/60+" in text  # a key setting that agrees; the last class row
    # Each run's per-fold best F1, as its result.json holds it.
    for run in two_runs:
        for fold in (0, 1):
            assert f"{json.loads((run / f'fold{fold}' / 'result.json').read_text())['best_f1']:.4f}" in html
    # Curves and confusion matrix of each run: inlined in the page, files beside the Markdown.
    assert html.count('src="data:image/png;base64,') == 4
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert sorted(linked) == ["ce-confusion.png", "ce-curves.png", "focal-confusion.png", "focal-curves.png"]
    assert all((page / name).read_bytes().startswith(b"\x89PNG") for name in linked)
    assert "Warning" not in html  # same images: nothing to warn about
    assert not list(page.parent.glob(".cmp*"))  # no staging folder left


def test_report_needs_no_network(page):
    html = (page / "report.html").read_text()
    targets = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", html, flags=re.I) + re.findall(r"url\(\s*['\"]?([^'\")]+)", html, flags=re.I)
    assert targets  # the images are there to check
    assert not [t for t in targets if re.match(r"(https?:|//)", t, flags=re.I)]
    assert not re.search(r"https?://|<script|<link|@import", html, flags=re.I)
    assert "default-src 'none'" in html  # the page itself forbids requests


def test_report_shows_audit_and_explain_when_present(tmp_path):
    run = make_run(tmp_path / "runs" / "exp", seed=3)
    (run / "audit").mkdir()
    pd.DataFrame({"person": ["000004", "000001"], "kind": ["gender", "mask-swap"], "score": [0.93, 0.71],
                  "label": ["female", "normal"], "predicted": ["male", "incorrect_mask"]}).to_csv(run / "audit" / "suspects.csv", index=False)
    png(run / "audit" / "contact_sheet.png")
    png(run / "explain" / "pair_3_9.png", (20, 90, 200))
    png(run / "explain" / "img_000004_mask1.png")
    (run / "explain" / "explain.json").write_text(json.dumps(
        {"layer": "layer4", "pairs": [{"true": 3, "pred": 9, "grid": str(run / "explain" / "pair_3_9.png"), "images": ["img_000004_mask1.png"]}]}))
    out = tmp_path / "report"
    result = invoke("report", run, "--out", out)
    assert result.exit_code == 0, result.output
    html, markdown = (out / "report.html").read_text(), (out / "report.md").read_text()
    for text in (html, markdown):
        assert "Label audit: top suspects" in text and "000004" in text and "mask-swap" in text
        assert "Explain: where the model looks" in text and "true 3 (wear/female/" in text and "predicted as 9 (incorrect/female/" in text
        assert "exp-contact_sheet.png" in markdown and "exp-pair_3_9.png" in markdown
    assert html.count('src="data:image/png;base64,') == 4  # curves, confusion, contact sheet, one pair grid
    assert (out / "exp-pair_3_9.png").read_bytes() == (run / "explain" / "pair_3_9.png").read_bytes()


def test_report_default_folder_and_overwrite(two_runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("report", *two_runs).exit_code == 0
    assert (tmp_path / "reports" / "ce-focal" / "report.html").is_file()
    refused = invoke("report", *two_runs)
    assert refused.exit_code == 1 and "--overwrite" in one_line_error(refused)
    (tmp_path / "reports" / "ce-focal" / "old.txt").write_text("stale")
    assert invoke("report", *two_runs, "--overwrite").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["ce-focal"]  # replaced in place, nothing set aside
    assert (tmp_path / "reports" / "ce-focal" / "old.txt").read_text() == "stale"  # overwrite replaces only what report wrote


def test_runs_on_different_data_compare_only_when_allowed(two_runs, tmp_path):
    other = make_run(tmp_path / "other", images=30, seed=4)
    refused = invoke("report", two_runs[0], other, "--out", tmp_path / "out")
    assert refused.exit_code == 1
    line = one_line_error(refused)
    assert str(other) in line and "--allow-different-data" in line
    assert not (tmp_path / "out").exists()
    allowed = invoke("report", two_runs[0], other, "--out", tmp_path / "out", "--allow-different-data")
    assert allowed.exit_code == 0, allowed.output
    assert "Warning: other validated on other images than ce" in (tmp_path / "out" / "report.html").read_text()


def _not_a_run(run):
    (run / "config.yaml").unlink()


def _no_oof(run):
    # Unfinished folds: their oof.csv tables do not count (the joined run/oof.csv is not read)
    for fold in (0, 1):
        (run / f"fold{fold}" / "result.json").unlink()


def _bad_probability(run):
    text = (run / "fold1" / "oof.csv").read_text().splitlines()
    text[3] = text[3].rsplit(",", 1)[0] + ",1.5"
    (run / "fold1" / "oof.csv").write_text("\n".join(text) + "\n")


def _label_out_of_range(run):
    oof = pd.read_csv(run / "fold0" / "oof.csv", dtype={"person": str})
    oof.loc[2, "label"] = 40
    oof.to_csv(run / "fold0" / "oof.csv", index=False)


def _damaged_result(run):
    (run / "fold1" / "result.json").write_text('{"fold": 1, "best_f1": "high"}')


def _suspects_without_person(run):
    (run / "audit").mkdir()
    (run / "audit" / "suspects.csv").write_text("kind,score\ngender,0.9\n")


def _contact_sheet_not_png(run):
    (run / "audit").mkdir()
    (run / "audit" / "suspects.csv").write_text("person,kind\n000001,gender\n")
    (run / "audit" / "contact_sheet.png").write_text("not a picture")


def _explain_lists_missing_grid(run):
    (run / "explain").mkdir()
    (run / "explain" / "explain.json").write_text(json.dumps({"pairs": [{"grid": "pair_1_2.png"}]}))


@pytest.mark.parametrize("damage, culprit", [
    (_not_a_run, "is not a run folder"),
    (_no_oof, "has no out-of-fold predictions"),
    (_bad_probability, "fold1/oof.csv: row 4, column p17"),
    (_label_out_of_range, "fold0/oof.csv: row 4, column label: 40 is not a class 0..17"),
    (_damaged_result, "result.json"),
    (_suspects_without_person, "suspects.csv lacks column(s) person"),
    (_contact_sheet_not_png, "contact_sheet.png is not a PNG image"),
    (_explain_lists_missing_grid, "lists pair_1_2.png"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, damage, culprit):
    run = make_run(tmp_path / "runs" / "exp", seed=5)
    damage(run)
    out = tmp_path / "out" / "report"
    result = invoke("report", run, "--out", out)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert culprit in line and "exp" in line, line
    assert not (tmp_path / "out").exists()  # nothing, not even the folder it would have gone in


def test_a_missing_folder_is_one_line(tmp_path):
    result = invoke("report", tmp_path / "nowhere", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "nowhere is not a run folder" in one_line_error(result)
    assert not (tmp_path / "out").exists()


def test_the_best_run_is_stressed_per_score_and_per_class(page, two_runs):
    markdown = (page / "report.md").read_text()
    scores = {run.name: oof_f1(run) for run in two_runs}
    best = max(scores, key=scores.get)
    assert f"| {best} | **{scores[best]:.4f}** |" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith(("| wear/", "| incorrect/", "| not_wear/"))]
    compared = 0
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")][2:]
        numbers = [float(c.strip("*")) for c in cells]
        bold = [c.startswith("**") for c in cells]
        assert bold == ([n == max(numbers) for n in numbers] if len(set(numbers)) > 1 else [False, False]), row
        compared += len(set(numbers)) > 1
    assert len(rows) == CLASSES and compared


@pytest.mark.parametrize("folder, label", [
    ("<img src=x onerror=alert(1)>", "normal"),
    ("x](javascript:alert(1)) [y", "normal"),
    ("a|b `c` *d* <b>e</b> &amp;", "normal"),
    ("# heading\nnext line", "normal"),
    ("exp", "<script>alert(1)</script> | [z](javascript:alert(2))"),  # a value of the audit's suspects.csv
])
def test_report_md_shows_what_data_holds_as_text_never_as_markup(tmp_path, folder, label):
    """report.md rendered as a Markdown viewer renders it (CommonMark and tables): what data put in
    it (a folder name, a side file's value) is text, as report.html shows it; no element, link or
    attribute comes from data, and every table row keeps its cells."""
    from html import unescape

    from markdown_it import MarkdownIt

    run = make_run(tmp_path / "runs" / folder, seed=3, name="exp")  # the recipe's name is checked; the folder's is data
    (run / "audit").mkdir()
    pd.DataFrame({"person": ["000004"], "kind": ["mask-swap"], "score": [0.9], "label": [label], "predicted": ["incorrect_mask"]}).to_csv(
        run / "audit" / "suspects.csv", index=False)
    result = invoke("report", run, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    rendered = MarkdownIt("commonmark").enable("table").render((tmp_path / "report" / "report.md").read_text())
    tags = re.findall(r"<[^>]*>", rendered)
    assert {re.match(r"</?(\w+)", t).group(1) for t in tags} <= {"h1", "h2", "p", "table", "thead", "tbody", "tr", "th", "td", "strong", "img"}, tags
    assert all(re.fullmatch(r'<img src="[\w.-]+\.png" alt="[^"<>]*" />', t) for t in tags if t.startswith("<img"))  # our figures only
    text = unescape(re.sub(r"<[^>]*>", "", rendered))
    for shown in (" ".join(folder.splitlines()), label):
        assert shown in text
    for table in re.findall(r"<table>.*?</table>", rendered, flags=re.S):
        widths = {len(re.findall(r"<t[hd][ >]", row)) for row in re.findall(r"<tr>.*?</tr>", table, flags=re.S)}
        assert len(widths) == 1, table
