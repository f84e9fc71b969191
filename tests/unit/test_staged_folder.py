"""Output folders a command writes whole: staged, renamed into place, never replacing a folder
of anything else, and staging folders of killed commands removed."""
import os

import pytest

from maskctl import io
from maskctl.errors import MaskctlError


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
    with pytest.raises(MaskctlError, match="holds other files"):
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
