"""torchrun / DistributedDataParallel set-up; rank 0 alone writes files."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun: a process group exists, even of one process
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.launched

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Reads torchrun's environment; NCCL on CUDA, gloo on CPU. A torchrun of one process still
    trains through DistributedDataParallel, so `--nproc-per-node 1` checks the multi-GPU path."""
    if "WORLD_SIZE" not in os.environ or "MASTER_ADDR" not in os.environ:
        return DistInfo()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), launched=True, backend=dist.get_backend())


def broadcast_object(value, info: DistInfo):
    if not info.enabled:
        return value
    import torch.distributed as dist

    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
