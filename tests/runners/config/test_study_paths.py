"""Names and paths (issue 13, items 5 and 7): an unknown study name is an error like any other
unknown option, ``study`` is a plain name, and no override value can nest a job directory or
move it out of ``multirun/<study>/``."""

from __future__ import annotations

from pathlib import Path

import pytest

from runners.config import ConfigError
from runners.config.paths import NAME_MAX, job_dirname, plain_name
from tests.conftest import ROOT, TINY, TINY_COMMON, run_cli


def _studies() -> str:
    return ", ".join(sorted(p.stem for p in (ROOT / "ablations").glob("*.yaml")))


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_misspelt_study_is_an_error_with_did_you_mean(tmp_path):
    # `optional ablation` used to skip an unknown name: an ad-hoc job ran and the exit was 0.
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "ablation=defualt", *TINY, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 2, result.stderr[-3000:]
    line = _one_error_line(result.stderr)
    assert line == (
        f"error: ablation must be one of {_studies()} (conf/ablation/), got 'defualt'; "
        "did you mean 'default'?"
    )
    assert not sweep.exists(), "nothing recorded"


def test_study_must_be_a_plain_name(tmp_path):
    # multirun/${study} with study=../escaped was <cwd>/escaped: outside multirun/ altogether.
    result = run_cli("-m", "study=../escaped", *TINY, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    line = _one_error_line(result.stderr)
    assert line == (
        "error: study must be a plain name (letters, digits, '.', '_' or '-', starting with a "
        "letter or digit, at most 100 characters), got '../escaped'"
    )
    assert list(tmp_path.iterdir()) == [], "nothing written anywhere"


@pytest.mark.parametrize("study", ["../x", "a/b", ".", "..", "", "-rf", "x" * 101, "a\nb"])
def test_plain_name_refuses(study):
    with pytest.raises(ConfigError, match="study must be a plain name"):
        plain_name("study", study)


@pytest.mark.parametrize("study", ["adhoc", "default", "dropblock_search", "v1.2-rerun", "A" * 100])
def test_plain_name_accepts(study):
    assert plain_name("study", study) == study


ORDINARY = [
    ["batch=32", "regularizer=dropout", "seed=0"],
    ["regularizer=dropblock", "regularizer.groups.4.p=0.1", "regularizer.groups.4.block_size=3"],
    ["+backbone.kwargs.width=8", "task.topk=[1,3]", "epochs=2"],
    ["optim.base_lr=0.05", "data.mean=[0.4,0.5,0.6]", "seed=${oc.env:NO_SUCH,3}"],
    ["data.image_size=48", "logger=none", "device=cpu", "study=x", "force=true"],
    ["seed=1", "report.metrics=[loss]", "report.rows=batch", "seeds=auto"],
]


@pytest.mark.parametrize("overrides", ORDINARY, ids=lambda o: o[0])
def test_ordinary_job_directories_keep_hydras_name(make_cfg, overrides):
    # Reruns of existing studies must find their jobs: for ordinary values the directory name
    # is exactly Hydra's override_dirname, with the real config's exclude_keys.
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    hydras = cfg.hydra.job.override_dirname
    assert hydras and "logger" not in hydras and "study" not in hydras
    assert "report" not in hydras and "seeds" not in hydras  # how it is reported, not what runs
    assert cfg.hydra.sweep.subdir == hydras


def test_unsafe_values_are_flattened_and_stay_distinct():
    names = {
        job_dirname([f"data.root={value}", "seed=0"])
        for value in ("/data/x", "_data_x", "/data_x", "data/x", "../data/x", "..", "a\\b", "a\nb")
    }
    assert len(names) == 8, "two values never share a directory"
    for name in names:
        assert "/" not in name and "\\" not in name and "\n" not in name
        assert name.endswith(",seed=0") and name not in (".", "..")
    assert job_dirname(["data.root=/data/x"]) == "data.root=_data_x-" + _sha8("data.root=/data/x")


def _sha8(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:8]


def test_long_names_fit_one_directory_name():
    long_values = [f"key{i}={'v' * 90}" for i in range(2)]
    name = job_dirname([*long_values, "seed=0"])
    assert len(name.encode()) <= NAME_MAX and name.count(",") == 2 and name.endswith(",seed=0")
    # Many long items: the whole name is cut, with a hash of all of them.
    many = [f"key{i:02d}=/{'é' * 60}" for i in range(30)]
    name = job_dirname(many)
    assert len(name.encode()) <= NAME_MAX and "/" not in name
    name.encode().decode()  # never cut inside a character
    assert job_dirname(many[:-1]) != name
    # Short enough as it is: kept whole, even if long.
    whole = f"data.cache_tag={'x' * 200}"
    assert job_dirname([whole]) == whole


def test_excluded_keys_and_separators_follow_hydra():
    assert job_dirname(["+a=1", "b=2", "~c"], exclude_keys=["a"]) == "b=2,~c"
    assert job_dirname(["a=1", "b=2"], item_sep="__", kv_sep=":") == "a:1__b:2"
    assert job_dirname(["a=1"], item_sep="/") == "a=1"
    assert job_dirname([]) == ""


def _image_tree(root: Path) -> Path:
    from PIL import Image

    for split in ("train", "val"):
        for index, name in enumerate(("a", "b")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (32, 32), (90 * index, 40 * i, 60)).save(folder / f"{i}.png")
    return root


def test_hostile_values_stay_inside_the_study_dir(tmp_path):
    # A data root (absolute, and with ..) and a cfg path that climbs out: before, the jobs
    # nested under multirun/hostile/data.root=/... or landed outside it, and RESULTS.md said
    # "no completed runs".
    root = _image_tree(tmp_path / "data")
    (root / "sub").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    result = run_cli(
        "-m", "study=hostile", "data=imagefolder", f"data.root={root},{root}/sub/..",
        "backbone.cfg=../../../escaped.cfg", "batch=4", *TINY_COMMON, cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    study = work / "multirun" / "hostile"
    records = sorted(study.rglob("run.json"))
    assert len(records) == 2
    assert all(path.parent.parent == study for path in records), records
    everything = [p for p in work.rglob("*") if p.is_file()]
    assert everything and all(study in p.parents for p in everything)
    assert set(tmp_path.iterdir()) == {root, work}
    text = (study / "RESULTS.md").read_text()
    assert "2 run records: 2 used, 0 left out" in text
