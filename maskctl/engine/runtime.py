"""Device, threads and DataLoader settings: sensible for one GPU server and for 2-core CPUs."""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from maskctl.errors import MaskctlError


def resolve_device(requested: str | None, local_rank: int = 0) -> torch.device:
    """CUDA by default; a yellow warning and the CPU where there is none and none was asked for."""
    from maskctl.console import warn

    if requested is None:
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        warn("CUDA is not available: running on the CPU (--device cpu says so and silences this; on a CPU, use small models and sizes, e.g. --config cpu-quick)")
        return torch.device("cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise MaskctlError(f"device {requested!r} was asked for but CUDA is not available (use --device cpu)")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise MaskctlError(f"unknown device {requested!r} (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_count() -> int:
    """Cores this process may really use: its CPU affinity (taskset, cpuset), capped by a cgroup
    CPU quota (docker --cpus, Kubernetes limits), which os.cpu_count() ignores. Threads and
    loader workers sized past this fight over the same cores and run several times slower."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


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


def default_workers(device: torch.device, world_size: int = 1) -> int:
    """On CUDA the CPU only feeds the GPU: most cores load. On a CPU device, loader workers and
    torch threads fight for the same cores (over-subscription runs 5-7x slower), so small
    machines load in the main process."""
    cores = max(1, cpu_count() // world_size)
    if device.type == "cuda":
        return min(8, max(1, cores - 1))
    return 0 if cores <= 4 else cores // 4


def configure_threads(device: torch.device, workers: int, world_size: int = 1) -> None:
    if device.type == "cpu":
        torch.set_num_threads(max(1, cpu_count() // world_size - workers))


def cpu_plan(workers: int) -> str:
    """One line on what the process chose, for bench and train."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    limit = f", cgroup quota {quota:g}" if quota else ""
    return f"{cpu_count()} usable core(s) (affinity {affinity}{limit}): {torch.get_num_threads()} torch thread(s), {workers} loader worker(s)"


def loader_kwargs(device: torch.device, workers: int) -> dict:
    return {
        "num_workers": workers,
        "persistent_workers": workers > 0,
        "pin_memory": device.type == "cuda",
        **({"prefetch_factor": 4} if workers > 0 else {}),
    }
