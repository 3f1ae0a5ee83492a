"""Training on several processes: DistributedDataParallel under ``torchrun`` (NCCL on GPUs,
gloo on CPU).

    muses train-model --nproc 2                      # spawns torchrun on this machine
    torchrun --nproc_per_node 8 -m muses train-model # the same, started by hand (or by a scheduler)

Each process trains on its share of every epoch's shuffled views with ``batch_size / N`` per
step; DDP averages the gradients, so a step sees ``batch_size`` views as on one process. The
frozen-feature cache is split the same way and gathered, every process evaluates the whole
validation split (identical weights give identical metrics), and only the first process (rank
0) writes the cache, the checkpoints and the model. On CUDA each process takes the GPU of its
``LOCAL_RANK`` and the forward passes run under bf16 autocast.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from muses.errors import MusesError

T = TypeVar("T")


class DistributedError(MusesError):
    """A multi-process run that cannot start (a bad --nproc, torchrun missing)."""


@dataclass(frozen=True)
class Dist:
    """This process's place in the run (torchrun's RANK, WORLD_SIZE, LOCAL_RANK); one process by default."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """The run torchrun started this process in (one process when not started by torchrun)."""
    env = os.environ
    return Dist(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def current() -> Dist:
    """This process's place in the process group it joined (one process when none)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return Dist()
    return Dist(torch.distributed.get_rank(), torch.distributed.get_world_size(), from_env().local_rank)


def is_main() -> bool:
    """Whether this process writes shared files (always, outside a multi-process run)."""
    return current().main


def setup(device: str = "auto") -> str:
    """Join torchrun's process group (NCCL when this process has a GPU, else gloo); returns the
    device this process trains on ("cuda:LOCAL_RANK" or "cpu"). Outside torchrun: ``device``."""
    dist = from_env()
    if not dist.active or torch.distributed.is_initialized():
        return device
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(dist.local_rank)
    torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return f"cuda:{dist.local_rank}" if cuda else "cpu"


def teardown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def barrier() -> None:
    if current().active:
        torch.distributed.barrier()


def shard(items: Sequence[T], dist: Dist, *, pad: bool = True) -> list[T]:
    """This process's share: every ``world``-th item from its rank. ``pad`` repeats items from
    the start so every process gets as many (DDP steps must match across processes)."""
    if not dist.active:
        return list(items)
    items = list(items)
    if pad and items:
        per = -(-len(items) // dist.world)
        items = (items * (1 + per * dist.world // len(items)))[: per * dist.world]
    return items[dist.rank :: dist.world]


def gather(obj: Any, dist: Dist) -> list[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` on one process)."""
    if not dist.active:
        return [obj]
    out: list[Any] = [None] * dist.world
    torch.distributed.all_gather_object(out, obj)
    return out


def wrap(module: nn.Module, dist: Dist, device: torch.device) -> nn.Module:
    """``module`` under DistributedDataParallel in a multi-process run (gradients averaged
    across processes after each backward pass), else ``module`` itself."""
    if not dist.active:
        return module
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``muses ARGV`` in ``nproc`` processes under torchrun on this machine; its exit code."""
    if nproc < 1:
        raise DistributedError(f"--nproc must be >= 1, got {nproc}")
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"])
    cmd += ["--standalone", f"--nproc_per_node={nproc}", "-m", "muses", *argv]
    return subprocess.run(cmd, check=False).returncode
