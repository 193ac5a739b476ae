"""One writer per job directory: the lock, a job left to the process that holds it, two identical
multiruns at once, and what a killed writer leaves behind."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from runners.core.atomic_write import atomic_write, remove_orphans
from runners.core.job_lock import JobLock, JobLocked, is_locked
from runners.core.record import RunRecord, load_record
from runners.data.loaders import dataset_root
from tests.conftest import ROOT, TINY


def test_a_held_job_cannot_be_taken_and_is_free_once_released(tmp_path):
    with JobLock(tmp_path):
        assert is_locked(tmp_path)
        with pytest.raises(JobLocked, match=rf"another process \({os.getpid()}@"):
            JobLock(tmp_path).acquire()
    assert not is_locked(tmp_path)
    with JobLock(tmp_path):
        pass


def test_the_lock_dies_with_its_process(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from runners.core.job_lock import JobLock; "
         f"JobLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(600)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert is_locked(tmp_path)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert not is_locked(tmp_path)  # no stale lock after a kill
        JobLock(tmp_path).acquire().release()
    finally:
        holder.kill()


def test_the_atomic_writer_follows_the_umask_and_leaves_no_temporaries(tmp_path):
    old = os.umask(0o027)
    try:
        path = atomic_write(tmp_path / "sub" / "a.txt", "text")
        blob = atomic_write(tmp_path / "b.bin", lambda out: out.write(b"\0\1"))
    finally:
        os.umask(old)
    assert path.read_text() == "text" and blob.read_bytes() == b"\0\1"
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(blob.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.txt", "b.bin"]

    def crash(_out):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "b.bin", crash)
    assert blob.read_bytes() == b"\0\1" and len(list(tmp_path.iterdir())) == 2

    orphan = tmp_path / ".run.json.tmp-k1ll3d"  # what a SIGKILL mid-write leaves
    orphan.write_text("{half")
    (tmp_path / ".keep.tmp").write_text("not ours")
    assert remove_orphans(tmp_path) == [orphan]
    assert (tmp_path / ".keep.tmp").exists()


def test_a_job_held_elsewhere_is_left_to_its_holder(tmp_path, data_cache):
    """Another process holds seed=0 (its record says running): this multirun leaves it alone,
    says so, trains seed=1, exits 0, and RESULTS.md lists seed=0 as running elsewhere. Files a
    killed writer left in the job it trains are removed; what it writes follows the umask."""
    sweep = tmp_path / "sweep"
    # Hydra's job directory names: the job's overrides, less those that change nothing computed.
    name = "data.train_per_class=6,data.val_per_class=3,epochs=1,seed={}"
    held, free = sweep / name.format(0), sweep / name.format(1)
    planted = RunRecord(status="running", study="adhoc", job_dir=str(held), config_hash="x")
    planted.write(held)
    free.mkdir(parents=True)
    orphans = [free / ".run.json.tmp-abc123", free / ".checkpoint.pt.tmp-def456"]
    for orphan in orphans:
        orphan.write_text("half a file")
    umask = "umask 027 && exec "
    with JobLock(held):
        result = subprocess.run(
            umask + " ".join([
                sys.executable, str(ROOT / "run.py"), "-m", "seed=0,1", *TINY,
                f"data.cache_dir={data_cache}", f"hydra.sweep.dir={sweep}",
            ]),
            shell=True, cwd=ROOT, capture_output=True, text=True, timeout=600,
            env={**os.environ, "HYDRA_FULL_ERROR": "0"},
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"running elsewhere: {held} is being run by another process" in result.stderr
    assert load_record(held) == planted  # neither trained nor written
    assert not (held / "checkpoint.pt").exists()
    assert load_record(free).status == "completed"
    assert not any(o.exists() for o in orphans)
    results = (sweep / "RESULTS.md").read_text()
    assert "running in another process now" in results
    for path in (sweep / "RESULTS.md", *(free / n for n in ("run.json", "checkpoint.pt"))):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in (sweep / "plots").iterdir())


def test_two_identical_multiruns_at_once_train_each_job_exactly_once(make_cfg, tmp_path):
    sweep = tmp_path / "sweep"
    cfg = make_cfg("data.train_per_class=24")
    command = [
        sys.executable, str(ROOT / "run.py"), "-m", "seed=0,1", "epochs=2", "batch=16",
        "data.train_per_class=24", "data.val_per_class=3", "logger=none", "device=cpu",
        f"data.cache_dir={cfg.data.cache_dir}", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    dataset_root(cfg.data)  # generated once here, so both processes reach the first job together
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    runs = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outputs = []
    deadline = time.monotonic() + 600
    for process in runs:
        out, _ = process.communicate(timeout=max(1, deadline - time.monotonic()))
        outputs.append(out)
        assert process.returncode == 0, out[-3000:]
    both = "\n".join(outputs)
    assert "running elsewhere:" in both, "the two processes never met: the test proves nothing"
    trained = both.count("run record (completed)")
    assert trained == 2, both[-4000:]  # one training per job, over both processes
    jobs = [p.parent for p in sweep.rglob("run.json")]
    assert len(jobs) == 2
    for job in jobs:
        assert load_record(job).status == "completed"
        assert not (job / "history").exists()  # no second run replaced the first
