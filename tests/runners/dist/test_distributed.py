"""DDP under torchrun (``runners.dist.distributed``): the rules, two gloo processes, and the real CLI.

The process tests run on the CPU with gloo: two processes spawned here (evaluation, gradient
averaging, gathering) and ``torchrun --standalone --nproc_per_node=2 run.py`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from runners.config import ConfigError
from runners.core.record import RunRecord, load_record
from runners.dist import distributed
from runners.dist.distributed import ShardSampler, World
from runners.engine.loop import classification_loss, train_step
from runners.tasks.classify import evaluate_classifier
from runners.tasks.registry import EvalContext
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)

#: An odd validation set: a padding sampler would score some samples twice on two processes.
VAL_SIZE = 31


def _rules(**values):
    """``validate_world``'s keywords: a one-step batch of 64 without SyncBatchNorm, then ``values``."""
    base = {
        "batch": 64,
        "subdivisions": 1,
        "sync_bn": False,
        "converts_bn": False,
        "regularizer_name": "none",
    }
    return {**base, **values}


# -- rules (no processes) ------------------------------------------------------------------------


def test_world_comes_from_torchrun_variables():
    assert distributed.current_world({}) == World(rank=0, local_rank=0, size=1)
    world = distributed.current_world({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert world == World(rank=3, local_rank=1, size=4) and world.distributed and not world.main
    with pytest.raises(ValueError, match="RANK < WORLD_SIZE"):
        distributed.current_world({"RANK": "2", "WORLD_SIZE": "2"})


def test_only_rank_zero_keeps_hydra_files():
    assert distributed.worker_overrides({"RANK": "0", "WORLD_SIZE": "2"}) == []
    assert "hydra.output_subdir=null" in distributed.worker_overrides(
        {"RANK": "1", "WORLD_SIZE": "2"}
    )


def test_batch_must_split_over_processes_and_subdivisions():
    world = World(rank=0, size=4)
    distributed.validate_world(world, "cpu", **_rules(batch=64, subdivisions=2))
    with pytest.raises(
        ConfigError, match=r"^batch must be divisible by world_size \* subdivisions"
    ):
        distributed.validate_world(world, "cpu", **_rules(batch=48, subdivisions=8))
    # One process: only the single-process rules apply.
    distributed.validate_world(World(), "cpu", **_rules(batch=48, subdivisions=8))


def test_sync_bn_refuses_a_regularizer_with_its_own_batchnorm():
    rules = _rules(sync_bn=True, converts_bn=True, regularizer_name="cbn")
    with pytest.raises(ConfigError, match=r"ddp\.sync_bn cannot be combined with regularizer=cbn"):
        distributed.validate_world(World(size=2), "cuda", **rules)
    distributed.validate_world(World(size=2), "cuda", **_rules(sync_bn=True))


@pytest.mark.parametrize("regularizer", ["cbn", "dropblock_cbn"])
def test_the_job_finds_cbn_in_the_regularizer(regularizer):
    from runners.job import _validate_world

    cfg = OmegaConf.create(
        {
            "batch": 64,
            "subdivisions": 1,
            "ddp": {"sync_bn": True},
            "regularizer": {"name": regularizer},
        }
    )
    with pytest.raises(
        ConfigError, match=f"ddp.sync_bn cannot be combined with regularizer={regularizer}"
    ):
        _validate_world(cfg, World(size=2), "cuda")
    cfg.regularizer.name = "dropblock"
    _validate_world(cfg, World(size=2), "cuda")


def test_sync_bn_needs_cuda():
    with pytest.raises(ConfigError, match=r"ddp\.sync_bn needs CUDA"):
        distributed.validate_world(World(size=2), "cpu", **_rules(sync_bn=True))


def test_mini_batch_is_what_one_batchnorm_forward_sees():
    split = {"batch": 64, "subdivisions": 2}
    assert distributed.bn_mini_batch(World(), **split, sync_bn=False) == 32
    assert distributed.bn_mini_batch(World(size=4), **split, sync_bn=False) == 8
    assert distributed.bn_mini_batch(World(size=4), **split, sync_bn=True) == 32


def test_detection_searches_unused_parameters_by_default():
    assert not distributed.find_unused_parameters(None, "classify")
    assert distributed.find_unused_parameters(None, "detect")
    assert not distributed.find_unused_parameters(False, "detect")
    assert distributed.find_unused_parameters(True, "classify")


@pytest.mark.parametrize(("length", "size"), [(31, 2), (30, 4), (2, 3)])
def test_shard_sampler_scores_each_sample_once(length, size):
    shards = [list(ShardSampler(length, rank, size)) for rank in range(size)]
    assert sorted(i for shard in shards for i in shard) == list(range(length))
    assert [len(ShardSampler(length, r, size)) for r in range(size)] == [len(s) for s in shards]


@dataclass
class _Bundle:
    train: DataLoader
    val: DataLoader
    train_eval: DataLoader | None = None


def test_shard_loaders_split_the_step_and_keep_the_validation_set_whole():
    dataset = TensorDataset(torch.arange(VAL_SIZE))
    bundle = _Bundle(DataLoader(dataset, batch_size=8), DataLoader(dataset, batch_size=8))
    assert distributed.shard_loaders(bundle, seed=0, world=World()) is bundle
    shards = [
        distributed.shard_loaders(bundle, seed=0, world=World(rank=r, size=2)) for r in (0, 1)
    ]
    assert all(s.train.batch_size == 4 for s in shards)
    # Training: padded to equal steps per process, every sample present, same order each run.
    train = [[int(i) for (b,) in s.train for i in b] for s in shards]
    assert len(train[0]) == len(train[1]) == 16 and set(train[0] + train[1]) == set(range(VAL_SIZE))
    for shard in shards:
        distributed.set_epoch(shard.train, 1)
    reshuffled = [[int(i) for (b,) in s.train for i in b] for s in shards]
    assert reshuffled != train, "set_epoch reshuffles"
    # Validation: no padding, each sample exactly once.
    val = [int(i) for s in shards for (b,) in s.val for i in b]
    assert sorted(val) == list(range(VAL_SIZE))
    assert all(s.train_eval is None for s in shards)


def test_shard_loaders_score_each_training_image_once():
    dataset = TensorDataset(torch.arange(VAL_SIZE))
    loader = DataLoader(dataset, batch_size=8)
    bundle = _Bundle(loader, loader, train_eval=DataLoader(dataset, batch_size=8))
    shards = [
        distributed.shard_loaders(bundle, seed=0, world=World(rank=r, size=2)) for r in (0, 1)
    ]
    scored = [int(i) for s in shards for (b,) in s.train_eval for i in b]
    assert sorted(scored) == list(range(VAL_SIZE))


# -- two gloo processes --------------------------------------------------------------------------


def _net(with_bn: bool) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1)]
    if with_bn:
        layers.append(nn.BatchNorm2d(8))
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)]
    return nn.Sequential(*layers)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(VAL_SIZE, 3, 8, 8, generator=generator)
    return images, torch.randint(0, 5, (VAL_SIZE,), generator=generator)


def _context() -> EvalContext:
    return EvalContext(
        device=torch.device("cpu"),
        autocast=nullcontext,
        channels_last=False,
        final=False,
        job_dir=None,
    )


def _step(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, subdivisions: int) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    train_step(
        model, images, targets, optimizer, classification_loss(nn.CrossEntropyLoss()), subdivisions
    )


def _worker(rank: int, size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=size)
    try:
        results = {}
        images, targets = _data()
        loader = DataLoader(TensorDataset(images, targets), batch_size=8)
        shards = distributed.shard_loaders(_Bundle(loader, loader), 0, World(rank=rank, size=size))
        results["eval"] = evaluate_classifier(
            _net(with_bn=True).eval(), shards.val, _context(), topk=(1, 3)
        )
        # One optimizer step of 16 samples: 8 per process, in 2 forwards each (no_sync, then sync).
        model = distributed.wrap_model(_net(with_bn=False), torch.device("cpu"))
        half = slice(8 * rank, 8 * rank + 8)
        _step(model, images[half], targets[half], subdivisions=2)
        results["params"] = [p.detach().clone() for p in model.module.parameters()]
        results["gathered"] = distributed.gather_to_main([rank] * (rank + 1))
        results["broadcast"] = distributed.broadcast_from_main(f"rank {rank}")
        bn = nn.BatchNorm1d(2)
        bn.running_mean.fill_(float(rank))
        distributed.average_bn_statistics(bn)
        results["bn_mean"] = bn.running_mean.tolist()
        # Hydra gave each rank its own ${now} dir: all adopt rank 0's, rank 1's empty one goes.
        own = Path(out_dir) / f"hydra-dir-{rank}"
        own.mkdir()
        results["job_dir"] = str(distributed.join_job_dir(own))
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one(tmp_path):
    import torch.multiprocessing as mp

    # spawn, not fork: a fork after autograd has run its worker threads in this process (any
    # earlier test in the same xdist worker, e.g. test_cbn's torch.compile backward) fails with
    # "Unable to handle autograd's threading in combination with fork-based multiprocessing".
    context = mp.start_processes(
        _worker,
        args=(2, str(tmp_path / "store"), str(tmp_path)),
        nprocs=2,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + 120  # a hung collective fails the test instead of the suite
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the two gloo processes did not finish within 120 s")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]

    # Validation numbers over exactly the whole set, the same on both processes.
    images, targets = _data()
    loader = DataLoader(TensorDataset(images, targets), batch_size=8)
    whole = evaluate_classifier(_net(with_bn=True).eval(), loader, _context(), topk=(1, 3))
    for rank in ranks:
        assert rank["eval"] == pytest.approx(whole, rel=1e-6)

    # Averaged gradients of 2 x 8 samples == one process's step over the 16.
    model = _net(with_bn=False)
    _step(model, images[:16], targets[:16], subdivisions=1)
    reference = [p.detach() for p in model.parameters()]
    assert any(
        (p - q).abs().max() > 1e-3 for p, q in zip(reference, _net(False).parameters(), strict=True)
    )
    for rank in ranks:
        for got, want in zip(rank["params"], reference, strict=True):
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)

    assert ranks[0]["gathered"] == [0, 1, 1] and ranks[1]["gathered"] is None
    assert ranks[0]["broadcast"] == ranks[1]["broadcast"] == "rank 0"
    assert ranks[0]["bn_mean"] == ranks[1]["bn_mean"] == [0.5, 0.5]
    assert ranks[0]["job_dir"] == ranks[1]["job_dir"] == str(tmp_path / "hydra-dir-0")
    assert (tmp_path / "hydra-dir-0").is_dir() and not (tmp_path / "hydra-dir-1").exists()


# -- the real CLI under torchrun -----------------------------------------------------------------


def test_torchrun_writes_one_record_like_a_single_process(tmp_path, data_cache):
    job = tmp_path / "job"
    # 5 classes x 3 = 15 validation images: odd, so a padded shard (16) would show in top-k.
    overrides = [
        "epochs=1", "data.num_classes=5", "data.train_per_class=6", "data.val_per_class=3",
        "task.topk=[1,3]", "subdivisions=2", "logger=none", "device=cpu",
        f"data.cache_dir={data_cache}", f"hydra.run.dir={job}",
    ]  # fmt: skip
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "run.py"), *overrides],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    records = list(tmp_path.rglob("run.json"))
    assert records == [job / "run.json"], "one record, written by rank 0 into the shared job dir"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job"]
    record = load_record(job)
    assert record.status == "completed"
    assert record.world_size == 2
    assert (record.batch, record.subdivisions, record.mini_batch) == (64, 2, 16)

    # The same shape as a single-process record.
    raw = json.loads((job / "run.json").read_text())
    assert set(raw) == set(RunRecord().to_dict())
    assert [set(e) for e in raw["epochs"]] == [
        {"epoch", "train_loss", "lr", "epoch_time_s", "images_per_s", "metrics"}
    ]
    scored = {"loss", "top1", "top3"}
    assert set(record.final) == scored | {f"train_eval_{k}" for k in scored}

    # Top-k over the 15 images: counts of correct images are whole numbers out of 15.
    for key in ("top1", "top3"):
        correct = record.final[key] * 15 / 100
        assert correct == pytest.approx(round(correct), abs=1e-9), (key, record.final[key])
    assert 0 < record.final["top3"] < 100, "a value that a denominator of 16 could not produce"
    assert (job / ".hydra" / "config.yaml").is_file()
