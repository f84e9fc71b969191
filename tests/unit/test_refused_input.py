"""Input that says two things, or more than it may, is refused in one line naming the file and
the row or key (issue 23, class 10): label fixes, recipes and tune spaces, pseudo-label tables
re-sealed by hand, a plugin callback that calls sys.exit."""
from pathlib import Path

import pytest

from maskctl.core import io
from maskctl.core.errors import MaskctlError
from maskctl.engine.callbacks import Callback, CallbackList


def label_fixes(tmp_path: Path, text: str):
    from maskctl.data.labels import read_label_fixes

    path = tmp_path / "fixes.csv"
    path.write_text(text)
    return lambda: read_label_fixes(path)


def recipe(tmp_path: Path, text: str):
    from maskctl.config import load_config

    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return lambda: load_config(path)


def space(tmp_path: Path, text: str):
    from maskctl.config import TrainConfig
    from maskctl.tune.space import read_space

    path = tmp_path / "space.yaml"
    path.write_text(text)
    return lambda: read_space(path, TrainConfig(model="test_resnet"))


def pseudo_table(tmp_path: Path, pointing_at: str):
    """A pseudo table sealed as `maskctl pseudo` seals it (a re-sealed one looks the same), one of
    its paths replaced by `pointing_at` (relative to tmp_path), its record naming data/eval."""
    from maskctl.data.pseudo_table import read_pseudo_table, record_path

    for folder, listing in (("data/eval", "info.csv"), ("data/train", "train.csv")):
        (tmp_path / folder / "images").mkdir(parents=True)
        (tmp_path / folder / listing).write_text("x\n")
    (tmp_path / "data/train/images/000001_female_Asian_45").mkdir()
    for image in ("data/eval/images/a.jpg", "data/eval/images/b.jpg", "data/train/images/000001_female_Asian_45/mask1.jpg"):
        (tmp_path / image).write_bytes(image.encode())
    paths = [tmp_path / "data/eval/images/a.jpg", tmp_path / pointing_at]
    table = tmp_path / "pseudo.csv"
    table.write_text("ImageID,path,label,prob,sha256\n" + "".join(
        f"{name},{p},3,0.95,{io.file_sha256(p) if p.is_file() else 'x'}\n" for name, p in zip(("a.jpg", "b.jpg"), paths)))
    io.write_set_record(record_path(table), {"data": str(tmp_path / "data/eval"), "age_edges": [30, 60]}, [table])
    return lambda: read_pseudo_table(table, "30,60", tmp_path / "data/train")


def callback_exit(tmp_path: Path, code):
    class Quits(Callback):
        name = "quits"

        def on_epoch_end(self, state):
            raise SystemExit(code)

    return lambda: CallbackList([Quits()])("on_epoch_end", None)


CASES = [
    (label_fixes, "id,swap_mask\n000001,2\n", ["fixes.csv", "row 2", "swap_mask", "'2'"]),
    (label_fixes, "id,swap_mask\n000001,y\n", ["fixes.csv", "row 2", "swap_mask"]),
    (label_fixes, "id,swap_mask\n000001,-1\n", ["fixes.csv", "row 2", "swap_mask"]),
    (label_fixes, "id,gender\n000001,male\n000002,female\n000001,female\n", ["fixes.csv", "row 4", "'000001'", "row 2"]),
    (label_fixes, "id,swap_mask\n000001,1\n\n000001,1\n", ["fixes.csv", "row 4", "'000001'", "row 2"]),  # the same fix twice: still two rows
    (recipe, "lr: 0.001\nepochs: 3\nlr: 0.1\n", ["recipe.yaml", "'lr' is given twice", "line 3"]),
    (recipe, "optimizer_args:\n  eps: 1.0e-6\n  eps: 1.0e-8\n", ["recipe.yaml", "'eps' is given twice", "line 3"]),
    (recipe, "model: test_resnet\n'model': resnet18\n", ["recipe.yaml", "'model' is given twice"]),
    (space, "lr: {low: 1.0e-4, high: 1.0e-2}\nlr: {choices: [0.1]}\n", ["space.yaml", "'lr' is given twice", "line 2"]),
    (space, "loss: {choices: [ce], choices: [focal]}\n", ["space.yaml", "'choices' is given twice", "line 1"]),
    (pseudo_table, "data/train/images/000001_female_Asian_45/mask1.jpg", ["pseudo.csv", "row 3", "'b.jpg'", "mask1.jpg"]),
    (pseudo_table, "data/eval/images/../../train/images/000001_female_Asian_45/mask1.jpg", ["pseudo.csv", "row 3", "'b.jpg'"]),
    (pseudo_table, "data/eval/images/a.jpg", ["pseudo.csv", "row 3", "'b.jpg'"]),  # another eval image under b's name
    (callback_exit, 0, ["callback quits called sys.exit(0) in on_epoch_end"]),
    (callback_exit, "done", ["callback quits called sys.exit('done') in on_epoch_end"]),
]


@pytest.mark.parametrize("make, given, named", CASES)
def test_input_that_says_two_things_is_refused_in_one_line(tmp_path, make, given, named):
    with pytest.raises(MaskctlError) as refused:
        make(tmp_path, given)()
    message = str(refused.value)
    assert "\n" not in message and all(part in message for part in named), message


def test_a_pseudo_record_naming_the_training_folder_is_refused(tmp_path):
    from maskctl.data.pseudo_table import record_path

    read = pseudo_table(tmp_path, "data/eval/images/b.jpg")
    record = record_path(tmp_path / "pseudo.csv")
    io.write_set_record(record, {"data": str(tmp_path / "data/train"), "age_edges": [30, 60]}, [tmp_path / "pseudo.csv"])
    with pytest.raises(MaskctlError, match="pseudo.json: field 'data' must name the eval folder"):
        read()


def test_label_fix_values_that_are_accepted(tmp_path):
    fixes = label_fixes(tmp_path, "id,swap_mask\na,1\nb,TRUE\nc,yes\nd,0\ne,false\nf,No\ng,\n")()
    assert [fix.swap_normal_incorrect for fix in fixes] == [True, True, True, False, False, False, False]
