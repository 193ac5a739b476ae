"""Data-parallel training under ``torchrun``: one process per device, gradients all-reduced.

Li et al., "PyTorch Distributed: Experiences on Accelerating Data Parallel Training", VLDB 2020,
arXiv 2006.15704 (``torch.nn.parallel.DistributedDataParallel``). ``torchrun`` starts the
processes and sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; a job whose ``WORLD_SIZE`` is 1
(a plain ``python run.py``) never touches anything here beyond :func:`current_world`, so the
single-process path is unchanged. Nothing here reads the Hydra config: each function takes the
values it needs (``batch``, ``ddp.sync_bn``, ...), which the job computes from the config.

The rules, each a deliberate choice (``docs/DISTRIBUTED.md`` explains them):

- ``batch`` stays the samples of one optimizer step over *all* processes, so each process loads
  ``batch / world_size`` samples per step and splits them into ``subdivisions`` forwards;
  ``batch`` must be divisible by ``world_size * subdivisions``.
- Training shards come from ``DistributedSampler`` (seeded with the run's ``seed``, reshuffled by
  :func:`set_epoch`), padded so every process takes the same number of steps. Evaluation shards
  (:class:`ShardSampler`) are never padded: each validation sample is scored exactly once, and the
  sums (loss, correct counts, samples) are all-reduced, or the detections gathered to rank 0.
- ``broadcast_buffers=False``: BatchNorm and CBN statistics stay local to each process (CBN's
  history is per-process by design). Before an evaluation the BN running statistics are averaged
  over processes (:func:`average_bn_statistics`) so every process scores the same model.
- Only rank 0 writes (``run.json``, W&B, ``detections.json``); metrics are reduced first, so its
  record is the whole run's.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import inspect
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from runners.config import ConfigError
from runners.core.seeds import derived_seed

__all__ = [
    "ShardSampler",
    "World",
    "accumulate",
    "all_reduce_sum",
    "average_bn_statistics",
    "bn_mini_batch",
    "broadcast_from_main",
    "convert_sync_batchnorm",
    "current_world",
    "find_unused_parameters",
    "gather_to_main",
    "init_process_group",
    "is_main",
    "join_job_dir",
    "seed_rank",
    "set_epoch",
    "shard_loaders",
    "validate_world",
    "worker_overrides",
    "wrap_model",
]


@dataclass(frozen=True)
class World:
    """This process's place among the ``size`` processes of a job (torchrun's env variables)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the run record, W&B and detections."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def current_world(environ: Mapping[str, str] | None = None) -> World:
    """The world torchrun describes in ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` (1 process without)."""
    env = os.environ if environ is None else environ
    try:
        world = World(
            rank=int(env.get("RANK", "0")),
            local_rank=int(env.get("LOCAL_RANK", "0")),
            size=int(env.get("WORLD_SIZE", "1")),
        )
    except ValueError as err:
        raise ValueError(f"RANK, LOCAL_RANK and WORLD_SIZE must be integers ({err})") from None
    if world.size < 1 or not 0 <= world.rank < world.size:
        raise ValueError(
            f"need 0 <= RANK < WORLD_SIZE, got RANK={world.rank} WORLD_SIZE={world.size}"
        )
    return world


def worker_overrides(environ: Mapping[str, str] | None = None) -> list[str]:
    """Hydra overrides for ranks > 0: no ``.hydra/`` copy and no log file in the job dir
    (rank 0 writes those), so the processes of one job never race over a file; and only
    warnings on the console, so each epoch's line is printed once."""
    if current_world(environ).main:
        return []
    return [
        "hydra.output_subdir=null",
        "hydra/job_logging=stdout",
        "hydra.job_logging.root.level=WARNING",
    ]


def validate_world(
    world: World,
    device_type: str,
    *,
    batch: int,
    subdivisions: int,
    sync_bn: bool,
    converts_bn: bool,
    regularizer_name: str,
) -> None:
    """The rules that depend on the number of processes; :class:`ConfigError` on the first break.

    ``batch``, ``subdivisions`` and ``sync_bn`` (``ddp.sync_bn``) are the run's; ``converts_bn``
    says that the regularizer ``regularizer_name`` puts BatchNorm layers of its own in the model
    (Cross-Iteration BN), which SyncBatchNorm would replace.
    """
    if sync_bn and converts_bn:
        raise ConfigError(
            f"ddp.sync_bn cannot be combined with regularizer={regularizer_name}: "
            "SyncBatchNorm would replace the Cross-Iteration BN layers (CBN keeps per-process "
            "statistics; use ddp.sync_bn=false)"
        )
    if not world.distributed:
        return
    if batch % (world.size * subdivisions):
        raise ConfigError(
            f"batch must be divisible by world_size * subdivisions (each of the {world.size} "
            f"processes loads batch / world_size samples per step, in subdivisions forwards), "
            f"got batch={batch} world_size={world.size} subdivisions={subdivisions}"
        )
    if sync_bn and device_type != "cuda":
        raise ConfigError(
            f"ddp.sync_bn needs CUDA devices (torch's SyncBatchNorm does not run on the CPU), "
            f"got device={device_type}"
        )


def bn_mini_batch(world: World, *, batch: int, subdivisions: int, sync_bn: bool) -> int:
    """Samples that one BatchNorm forward normalises over: ``batch / subdivisions`` on one
    process or with SyncBatchNorm (``sync_bn``), ``batch / (world_size * subdivisions)``
    otherwise."""
    per_step = batch if (sync_bn or not world.distributed) else batch // world.size
    return per_step // subdivisions


def init_process_group(world: World, device: torch.device) -> torch.device:
    """Join the job's process group (NCCL on CUDA, gloo on the CPU) once per process; returns the
    device this process trains on (``cuda:LOCAL_RANK`` on GPUs)."""
    if not world.distributed:
        return device
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if dist.is_initialized():
        if dist.get_backend() != backend:
            raise RuntimeError(
                f"the process group uses {dist.get_backend()}, this job needs {backend} "
                "(one device type per torchrun launch)"
            )
        return device
    dist.init_process_group(backend=backend, init_method="env://")
    atexit.register(_destroy_process_group)
    return device


def _destroy_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    """Whether this process writes the job's files: rank 0, or the only process."""
    return not _active() or dist.get_rank() == 0


def broadcast_from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every process (picklable objects; unchanged on one process)."""
    if not _active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait until every process gets here (nothing on one process)."""
    if _active():
        dist.barrier()


def gather_to_main(items: list[Any]) -> list[Any] | None:
    """Every process's ``items`` concatenated in rank order on rank 0, ``None`` elsewhere."""
    if not _active():
        return items
    parts: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(items, parts, dst=0)
    if parts is None:
        return None
    return [item for part in parts for item in part]


def all_reduce_sum(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each tensor summed over processes (in place; the inputs themselves on one process)."""
    if _active():
        for tensor in tensors:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensors


def join_job_dir(job_dir: str | os.PathLike[str]) -> Path:
    """Rank 0's job directory, agreed by all processes.

    Each torchrun process composes its own config, so a ``${now:...}`` run dir can differ by a
    second between ranks; the others adopt rank 0's and remove theirs if Hydra left it empty.
    """
    own = Path(job_dir)
    agreed = Path(broadcast_from_main(str(own)))
    if agreed != own and own.is_dir():
        with contextlib.suppress(OSError):
            own.rmdir()  # only ever removes an empty directory
    return agreed


# -- data ----------------------------------------------------------------------------------------


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + size, ...`` of a data set: shards of every process together cover
    each sample exactly once (unlike ``DistributedSampler``, which pads with repeats)."""

    def __init__(self, length: int, rank: int, size: int) -> None:
        if not 0 <= rank < size:
            raise ValueError(f"ShardSampler needs 0 <= rank < size, got rank={rank} size={size}")
        self.length, self.rank, self.size = length, rank, size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.size))

    def extra_repr(self) -> str:
        return f"length={self.length}, rank={self.rank}, size={self.size}"


def _rank_seed(seed: int, rank: int) -> int:
    """Rank 0 keeps the run's seed (a one-process run is unchanged); others derive their own."""
    return derived_seed(seed, rank) if rank else seed


def _loader(loader: DataLoader, batch_size: int, sampler: Sampler, generator: Any) -> DataLoader:
    return DataLoader(
        loader.dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        persistent_workers=loader.persistent_workers,
        generator=generator,
    )


def shard_loaders(bundle: Any, seed: int, world: World | None = None) -> Any:
    """``bundle`` (a dataclass with ``train`` and ``val`` loaders) with each process's shards.

    The train loader yields ``batch / world_size`` samples per step from a ``DistributedSampler``
    seeded with ``seed``; the val loader (and ``train_eval``, when the bundle has one) takes every
    ``world_size``-th sample, unpadded. Other
    loader settings (workers, collate, pinning) are kept. One process: ``bundle`` unchanged.
    """
    world = current_world() if world is None else world
    if not world.distributed:
        return bundle
    train, val = bundle.train, bundle.val
    if train.batch_size % world.size:
        raise ConfigError(
            f"batch must be divisible by world_size, got batch={train.batch_size} world_size={world.size}"
        )
    sampler = DistributedSampler(
        train.dataset, num_replicas=world.size, rank=world.rank, shuffle=True, seed=seed
    )
    generator = torch.Generator().manual_seed(_rank_seed(seed, world.rank))
    shards = {
        "train": _loader(train, train.batch_size // world.size, sampler, generator),
        "val": _eval_shard(val, world),
    }
    if getattr(bundle, "train_eval", None) is not None:
        shards["train_eval"] = _eval_shard(bundle.train_eval, world)
    return dataclasses.replace(bundle, **shards)


def _eval_shard(loader: DataLoader, world: World) -> DataLoader:
    """Every ``world.size``-th sample of an evaluation loader, unpadded (sums are all-reduced)."""
    sampler = ShardSampler(len(loader.dataset), world.rank, world.size)
    return _loader(loader, loader.batch_size, sampler, None)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Reshuffle a ``DistributedSampler`` for ``epoch`` (the same order on every process)."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


# -- model ---------------------------------------------------------------------------------------


def convert_sync_batchnorm(model: nn.Module, sync_bn: bool) -> nn.Module:
    """``model`` with its BatchNorm layers made SyncBatchNorm when ``sync_bn`` and distributed."""
    if not (sync_bn and _active()):
        return model
    from layers.cross_iteration_bn import CrossIterationBatchNorm2d

    if any(isinstance(m, CrossIterationBatchNorm2d) for m in model.modules()):
        raise ConfigError("ddp.sync_bn cannot be combined with Cross-Iteration BN layers")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def find_unused_parameters(configured: bool | None, task_name: str) -> bool:
    """``configured`` (``ddp.find_unused_parameters``), or by task when it is ``None``: on for
    detection (``task_name`` ``detect``), off otherwise."""
    if configured is not None:
        return bool(configured)
    return task_name == "detect"


def wrap_model(
    model: nn.Module, device: torch.device, find_unused_parameters: bool = False
) -> nn.Module:
    """``model`` in DistributedDataParallel (rank 0's weights copied to all) when distributed;
    ``model`` itself on one process. Buffers are not broadcast: BN/CBN statistics stay local."""
    if not _active():
        return model
    ddp = nn.parallel.DistributedDataParallel
    # torch >= 2.14 names the per-forward buffer sync `forward_sync_buffers` (buffers are still
    # copied from rank 0 once, at wrap time: every process starts from the same state).
    no_buffer_sync = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(ddp).parameters
        else {"broadcast_buffers": False}
    )
    return ddp(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters,
        **no_buffer_sync,
    )


def seed_rank(seed: int) -> None:
    """Give each process its own random stream (DropBlock masks, augmentation) after the model
    was built from the shared seed; rank 0 keeps the run's seed. No-op on one process."""
    if not _active():
        return
    import random

    import numpy as np

    rank_seed = _rank_seed(seed, dist.get_rank())
    random.seed(rank_seed)
    np.random.seed(rank_seed % 2**32)
    torch.manual_seed(rank_seed)


def accumulate(model: nn.Module, last: bool) -> AbstractContextManager:
    """``model.no_sync()`` for every forward of a step but the last, so DDP all-reduces the
    accumulated gradients once per optimizer step."""
    if last or not isinstance(model, nn.parallel.DistributedDataParallel):
        return nullcontext()
    return model.no_sync()


@torch.no_grad()
def average_bn_statistics(model: nn.Module) -> None:
    """Average the running mean and variance of every BatchNorm over processes (each process
    keeps its own while training), so that all of them evaluate one and the same model."""
    if not _active():
        return
    size = dist.get_world_size()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for stat in (module.running_mean, module.running_var):
                if stat is not None:
                    dist.all_reduce(stat, op=dist.ReduceOp.SUM)
                    stat.div_(size)
