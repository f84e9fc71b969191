"""Device, threads and DataLoader settings: sensible for one GPU server and for 2-core CPUs."""
from __future__ import annotations

import torch

from maskctl.core.cpus import affinity_count, cgroup_cpu_quota, cpu_count
from maskctl.core.errors import MaskctlError


def resolve_device(requested: str | None, local_rank: int = 0) -> torch.device:
    """CUDA by default; a yellow warning and the CPU where there is none and none was asked for."""
    from maskctl.core.console import NO_CUDA, warn

    if requested is None:
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        warn(NO_CUDA)
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
    quota = cgroup_cpu_quota()
    limit = f", cgroup quota {quota:g}" if quota else ""
    return f"{cpu_count()} usable core(s) (affinity {affinity_count()}{limit}): {torch.get_num_threads()} torch thread(s), {workers} loader worker(s)"


def loader_kwargs(device: torch.device, workers: int) -> dict:
    return {
        "num_workers": workers,
        "persistent_workers": workers > 0,
        "pin_memory": device.type == "cuda",
        **({"prefetch_factor": 4} if workers > 0 else {}),
    }
