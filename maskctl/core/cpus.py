"""How many cores this process may use, without importing torch (the ONNX predict path and
DataLoader-free code need it too)."""
from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_count() -> int:
    """Cores this process may really use: its CPU affinity (taskset, cpuset), capped by a cgroup
    CPU quota (docker --cpus, Kubernetes limits), which os.cpu_count() ignores. Threads and
    loader workers sized past this fight over the same cores and run several times slower."""
    cores = affinity_count()
    quota = cgroup_cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def affinity_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota in cores of this process's cgroup and its parents (v2 cpu.max, v1
    cpu.cfs_quota_us / cpu.cfs_period_us), the tightest one; None where there is none."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            base, files = root, ("cpu.max",)
        elif "cpu" in controllers.split(","):
            base, files = root / "cpu", ("cpu.cfs_quota_us", "cpu.cfs_period_us")
            if not base.is_dir():
                base = root / controllers
        else:
            continue
        folder = base / path.lstrip("/")
        while True:
            limits.append(_read_quota(folder, files))
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    found = [limit for limit in limits if limit]
    return min(found) if found else None


def _read_quota(folder: Path, files: tuple[str, ...]) -> float | None:
    try:
        if files == ("cpu.max",):
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        else:
            quota, period = ((folder / name).read_text().strip() for name in files)
        if quota in ("max", "-1") or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None
