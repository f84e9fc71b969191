"""runfolder.py: the one module that knows a run folder's layout, and a guard that no other
module spells its file names."""
import re
from pathlib import Path

import pytest

from maskctl.core.errors import MaskctlError
from maskctl.runs import folder as runfolder
from maskctl.runs.folder import FoldFolder, RunFolder, new_run_folder, run_folder_of

PACKAGE = Path(runfolder.__file__).parents[1]
# Modules that still spell run-folder file names themselves: none since fit.py and kfold.py ask
# runfolder too (the guard stays, so a new module that spells one fails here).
NOT_YET_CONVERTED: set[str] = set()
# A file of the same name that is not a run folder's: `maskctl split`'s person -> fold table.
OWN_FILE_OF_THE_SAME_NAME = {("data/folds.py", runfolder.FOLDS)}


def make_fold(run: Path, k: int, finished: bool = True, best: bool = True) -> FoldFolder:
    fold = RunFolder(run).fold(k)
    fold.path.mkdir(parents=True)
    if best:
        fold.best.write_bytes(b"weights")
    if finished:
        fold.result.write_text("{}")
    return fold


def test_folds_are_ordered_by_number_not_by_name(tmp_path):
    for k in (10, 2, 0, 1):
        make_fold(tmp_path, k)
    (tmp_path / "fold_notes").mkdir()  # not fold{k}
    (tmp_path / "fold3").write_text("a file, not a folder")
    assert [f.fold for f in RunFolder(tmp_path).fold_folders()] == [0, 1, 2, 10]


def test_finished_folds_have_a_result_and_checkpointed_ones_a_best(tmp_path):
    make_fold(tmp_path, 0)
    make_fold(tmp_path, 1, finished=False)  # stopped part-way: a best.pt, no result.json
    make_fold(tmp_path, 2, finished=False, best=False)  # started, no epoch validated yet
    run = RunFolder(tmp_path)
    assert [f.fold for f in run.finished_folds()] == [0]
    assert [f.fold for f in run.checkpointed_folds()] == [0, 1]
    assert run.fold(0).is_finished() and not run.fold(1).is_finished()


def test_paths_of_a_run_and_its_folds(tmp_path):
    run = RunFolder(str(tmp_path))
    assert run.path == tmp_path
    fold = run.fold(3)
    assert fold.path == tmp_path / "fold3" and fold.fold == 3
    assert (fold.best.name, fold.best_meta.name, fold.last.name, fold.metrics.name, fold.oof.name, fold.result.name) == (
        runfolder.BEST, runfolder.BEST_META, runfolder.LAST, runfolder.METRICS, runfolder.OOF, runfolder.RESULT)
    assert {run.probs.name, run.submission.name} == set(runfolder.PREDICT_SET)
    assert run.predict_record.name == runfolder.PREDICT_RECORD


def test_require_names_what_is_missing(tmp_path):
    with pytest.raises(MaskctlError, match=f"is not a run folder \\(no {runfolder.CONFIG} / {runfolder.FOLDS}\\)"):
        RunFolder(tmp_path).require()
    run = RunFolder(tmp_path)
    run.config.write_text("model: x\n")
    assert not run.is_run()  # folds.csv still missing
    run.folds.write_text("image,person,fold\n")
    assert run.require() is run


def test_new_run_folders_are_numbered_and_never_overwritten(tmp_path):
    made = [new_run_folder(tmp_path / "runs", "exp").path.name for _ in range(3)]
    assert made == ["exp", "exp2", "exp3"]
    (tmp_path / "runs" / "exp2").rmdir()
    assert new_run_folder(tmp_path / "runs", "exp").path.name == "exp2"
    assert new_run_folder(tmp_path / "runs", "exp").path.name == "exp4"


def test_a_checkpoint_file_belongs_to_its_run(tmp_path):
    fold = make_fold(tmp_path, 1)
    assert run_folder_of(fold.best).path == tmp_path
    assert run_folder_of(tmp_path).path == tmp_path


def _layout_names() -> list[str]:
    return [value for name, value in vars(runfolder).items() if name.isupper() and isinstance(value, str) and value != runfolder.FOLD_PREFIX]


def spelled_names(module: str, path: Path) -> list[str]:
    """Lines of `path` that quote a run-folder file name ("best.pt") or build a fold folder by
    hand (f"fold{k}"), as the issue's grep finds them."""
    names = _layout_names()
    quoted = re.compile(r"""["'](%s)["']""" % "|".join(map(re.escape, names)))
    by_hand = re.compile(r"%s\{" % re.escape(runfolder.FOLD_PREFIX))
    own = {name for m, name in OWN_FILE_OF_THE_SAME_NAME if m == module}
    return [f"{module}:{number}: {line.strip()}" for number, line in enumerate(path.read_text().splitlines(), 1)
            if {m.group(1) for m in quoted.finditer(line)} - own or by_hand.search(line)]


def package_modules() -> dict[str, Path]:
    modules = {path.relative_to(PACKAGE).as_posix(): path for path in PACKAGE.rglob("*.py")}
    modules.update({f"../bench/{path.name}": path for path in (PACKAGE.parent / "bench").glob("*.py")})
    return modules


def test_the_layout_names_are_found():
    assert {"best.pt", "result.json", "oof.csv", "config.yaml", "predict.json", "tta.json"} <= set(_layout_names())


def test_no_other_module_spells_a_run_folder_file_name():
    found = [line for module, path in sorted(package_modules().items())
             if module != "runs/folder.py" and module not in NOT_YET_CONVERTED for line in spelled_names(module, path)]
    assert not found, "ask maskctl/runs/folder.py for these paths:\n" + "\n".join(found)


def test_the_allow_list_only_holds_modules_that_still_need_it():
    """When fit.py and kfold.py ask runfolder for their paths, they leave NOT_YET_CONVERTED."""
    modules = package_modules()
    converted = [m for m in NOT_YET_CONVERTED if m not in modules or not spelled_names(m, modules[m])]
    assert not converted, f"{converted} no longer spell run-folder file names: remove them from NOT_YET_CONVERTED"
