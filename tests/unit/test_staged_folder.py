"""Output folders a command writes whole: staged, renamed into place, never replacing a folder
of anything else, and staging folders of killed commands removed."""
import os

import pytest

from maskctl.core import io
from maskctl.core.errors import MaskctlError


def test_a_staged_folder_appears_whole_and_replaces_its_own_kind(tmp_path):
    out = tmp_path / "deep" / "out"
    with io.staged_folder(out, "audit") as staging:
        (staging / "a.csv").write_text("1")
        assert not out.exists()
    assert (out / "a.csv").read_text() == "1"
    io.check_replaceable(out, "audit", overwrite=True)
    with pytest.raises(MaskctlError, match="--overwrite"):
        io.check_replaceable(out, "audit", overwrite=False)
    with io.staged_folder(out, "audit") as staging:
        (staging / "b.csv").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [io.OUTPUT_MARK, "b.csv"]


@pytest.mark.parametrize("kind", ["report", "explain"])
def test_a_folder_of_other_files_is_never_replaced(tmp_path, kind):
    precious = tmp_path / "run"
    precious.mkdir()
    (precious / "best.pt").write_text("weights")
    with pytest.raises(MaskctlError, match="holds other files"), io.discard_outputs_on_failure():  # a command's scope: its claim ends with it
        io.check_replaceable(precious, kind, overwrite=True)
    with pytest.raises(MaskctlError, match="holds other files"):
        with io.staged_folder(precious, kind):
            pass
    assert (precious / "best.pt").read_text() == "weights"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_failure_leaves_the_old_output_and_no_staging(tmp_path):
    out = tmp_path / "out"
    with io.staged_folder(out, "export") as staging:
        (staging / "model.onnx").write_text("old")
    with pytest.raises(RuntimeError):
        with io.staged_folder(out, "export") as staging:
            (staging / "model.onnx").write_text("new")
            raise RuntimeError("disk full")
    assert (out / "model.onnx").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staging_of_dead_processes_is_removed_and_of_live_ones_kept(tmp_path):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)  # a pid that is surely dead now
    dead = tmp_path / f".out.tmp{pid}"
    live = tmp_path / f".out.old{os.getpid()}"
    other = tmp_path / ".outer.tmp1"
    for folder in (dead, live, other):
        folder.mkdir()
    with io.staged_folder(tmp_path / "out", "audit"):
        pass
    assert not dead.exists() and live.exists() and other.exists()


def test_a_staged_output_keeps_what_the_command_did_not_write(tmp_path):
    out = tmp_path / "out"
    with io.staged_folder(out, "audit") as staging:
        (staging / "report.md").write_text("first")
    assert io.own_files(out).keys() == {"report.md"}
    (out / "notes.txt").write_text("mine")
    (out / "mine").mkdir()
    (out / "mine" / "data.csv").write_text("a,b\n")
    with io.staged_folder(out, "audit") as staging:
        (staging / "report.md").write_text("second")
    assert (out / "report.md").read_text() == "second"
    assert (out / "notes.txt").read_text() == "mine" and (out / "mine" / "data.csv").read_text() == "a,b\n"
    (out / "summary.md").write_text("mine too")  # a name the next output also writes: refused, both kept
    with pytest.raises(MaskctlError, match="summary.md is not a file `maskctl audit` wrote"):
        with io.staged_folder(out, "audit") as staging:
            (staging / "summary.md").write_text("new")
    assert (out / "summary.md").read_text() == "mine too" and (out / "report.md").read_text() == "second"
