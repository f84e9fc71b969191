"""Cores a process may use: affinity capped by a cgroup CPU quota (v1 and v2 layouts)."""

import pytest
import torch

from maskctl.core import cpus
from maskctl.engine import runtime


def _proc_cgroup(tmp_path, text):
    path = tmp_path / "proc-cgroup"
    path.write_text(text)
    return path


def test_cgroup_v2_quota_of_the_process_and_its_parents(tmp_path):
    root = tmp_path / "cgroup"
    (root / "job" / "step").mkdir(parents=True)
    (root / "cpu.max").write_text("max 100000\n")
    (root / "job" / "cpu.max").write_text("150000 100000\n")  # 1.5 cores for the job
    (root / "job" / "step" / "cpu.max").write_text("max 100000\n")
    assert cpus.cgroup_cpu_quota(root, _proc_cgroup(tmp_path, "0::/job/step\n")) == 1.5


def test_cgroup_v1_cfs_quota(tmp_path):
    root = tmp_path / "cgroup"
    (root / "cpu" / "docker" / "abc").mkdir(parents=True)
    (root / "cpu" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("200000\n")
    (root / "cpu" / "docker" / "abc" / "cpu.cfs_period_us").write_text("100000\n")
    text = "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n"
    assert cpus.cgroup_cpu_quota(root, _proc_cgroup(tmp_path, text)) == 2.0


@pytest.mark.parametrize("files", [{"cpu.max": "max 100000\n"}, {}, {"cpu.max": "junk\n"}])
def test_no_quota_reads_as_none(tmp_path, files):
    root = tmp_path / "cgroup"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    assert cpus.cgroup_cpu_quota(root, _proc_cgroup(tmp_path, "0::/\n")) is None
    assert cpus.cgroup_cpu_quota(root, tmp_path / "missing") is None


def test_cpu_count_is_capped_by_the_quota_and_threads_leave_room_for_workers(monkeypatch):
    monkeypatch.setattr(cpus, "affinity_count", lambda: 16)
    monkeypatch.setattr(cpus, "cgroup_cpu_quota", lambda: 2.5)
    assert cpus.cpu_count() == 3  # a part of a core still runs a thread
    monkeypatch.setattr(cpus, "cgroup_cpu_quota", lambda: None)
    assert cpus.cpu_count() == 16
    before = torch.get_num_threads()
    try:
        runtime.configure_threads(torch.device("cpu"), workers=4, world_size=2)
        assert torch.get_num_threads() == 4  # 16 cores / 2 processes - 4 workers
        assert "16 usable core(s)" in runtime.cpu_plan(4) and "4 torch thread(s)" in runtime.cpu_plan(4)
    finally:
        torch.set_num_threads(before)
