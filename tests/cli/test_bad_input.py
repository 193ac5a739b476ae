"""Bad input: one line naming the key, file or value, a non-zero exit, nothing marked completed."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from runners.config import ConfigError
from runners.config.preflight import compose
from runners.core.record import load_record
from runners.data.images import DataError, read_rgb
from tests.conftest import ROOT, TINY, TINY_COMMON, run_cli


def _options(group: str) -> str:
    """The options of a config group as the error lists them (every YAML in conf/<group>/)."""
    return ", ".join(sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")))


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["backbone=resnet5O"],
            f"backbone must be one of {_options('backbone')} (conf/backbone/), got 'resnet5O'; did you mean 'resnet50'",
        ),
        (
            ["regularizer=dropblok"],
            f"regularizer must be one of {_options('regularizer')} (conf/regularizer/), got 'dropblok'",
        ),
        (
            ["data=imagenet"],
            f"data must be one of {_options('data')} (conf/data/), got 'imagenet'",
        ),
        (["batchh=32"], "batchh: no such key"),
        (
            ["batch=abc"],
            "batch: Value 'abc' of type 'str' could not be converted to Integer (override 'batch=abc')",
        ),
        (
            ["regularizer=dropout", "regularizer.groups.4.p=1.5"],
            "regularizer.groups.4.p must be in [0.0, 1.0), got 1.5",
        ),
        (
            ["regularizer=dropblock", "regularizer.groups.3.block_size=33"],
            "regularizer.groups.3.block_size=33 is larger than every feature map of the backbone (the largest is 32x32 for backbone tinyresnet at data.image_size=32)",
        ),
        (["+force=true"], "force is already in the config: set it without '+'"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_bad_config_is_one_line_exit_2_and_no_record(
    cli_in_process, tmp_path, data_cache, overrides, message
):
    job = tmp_path / "job"
    args = (*TINY, f"data.cache_dir={data_cache}", f"hydra.run.dir={job}", *overrides)
    result = cli_in_process(*args)
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in _error_line(result.stderr)
    assert not (job / "run.json").exists()


def test_a_bad_config_exits_2_from_a_real_process(tmp_path):
    # The cases above run run.py in this process; the process's own exit status, once for real.
    job = tmp_path / "job"
    result = run_cli(*TINY, f"hydra.run.dir={job}", "backbone=resnet5O")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "did you mean 'resnet50'" in _error_line(result.stderr)
    assert not (job / "run.json").exists()


@pytest.mark.parametrize("block", [4, 7, 32])
def test_block_larger_than_its_groups_maps_is_clamped_and_logged(caplog, block):
    # tinyresnet at 32x32 has 4x4 maps in group 4: the default study's block 7 (the paper's) is
    # clamped to the map and drops whole channels (SpatialDropout), as block 7 does on ResNet-50's
    # 7x7 group 4. Only a block larger than every map of the backbone is an error.
    compose(["regularizer=dropblock", f"regularizer.groups.4.block_size={block}", *TINY])
    clamped = [r.getMessage() for r in caplog.records if "clamped" in r.getMessage()]
    assert len(clamped) == (block > 4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.crop=center"], "data.crop must be one of pad, resized, got 'center'"),
        (["optim.base_lr=inf"], "optim.base_lr must be > 0 and finite, got inf"),
        (["optim.base_lr=nan"], "optim.base_lr must be > 0 and finite, got nan"),
        (
            ["regularizer=dropout", "regularizer.groups.3.p=nan"],
            "regularizer.groups.3.p must be in",
        ),
        (["data.mean=[0.5,nan,0.5]"], "data.mean and data.std need 3 values"),
        (
            ["device=cuda"] if not __import__("torch").cuda.is_available() else ["device=gpu"],
            "device",
        ),
        (
            ["+backbone.kwargs.foo=1"],
            "backbone 'tinyresnet' cannot be built with backbone.kwargs={'foo': 1}",
        ),
        (["data=0"], "Config group override must be a string or a list. Got int (overrides:"),
    ],
)
def test_same_errors_from_the_config_layer(overrides, message):
    # The CLI cases above show the path to the terminal; these check more rules in-process.
    with pytest.raises(ConfigError) as info:
        compose([*TINY, *overrides])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_dataset_directory_names_it(tmp_path):
    root = tmp_path / "imagenet"
    result = run_cli(
        *TINY_COMMON, "data=imagefolder", f"data.root={root}", f"hydra.run.dir={tmp_path / 'job'}"
    )
    assert result.returncode == 2
    line = _error_line(result.stderr)
    assert f"data.root: {root}/train is not a directory" in line
    assert not (tmp_path / "job" / "run.json").exists()


def _image_tree(root, classes=("a", "b"), per_class=4):
    for split in ("train", "val"):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (32, 32), (40 * index, 10 * i, 90)).save(folder / f"{i}.png")
    return root


def test_truncated_image_fails_the_run_naming_the_file(tmp_path):
    root = _image_tree(tmp_path / "data")
    broken = root / "train" / "b" / "2.png"
    broken.write_bytes(broken.read_bytes()[:60])
    job = tmp_path / "job"
    result = run_cli(
        *TINY_COMMON, "data=imagefolder", f"data.root={root}", "data.image_size=32", "data.workers=1",
        "batch=4", f"hydra.run.dir={job}",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"failed: {job}: {broken}: unreadable image")
    record = load_record(job)
    assert record.status == "failed" and str(broken) in record.error


def test_file_that_is_not_an_image_is_named(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(DataError, match=rf"^{path}: unreadable image \(UnidentifiedImageError"):
        read_rgb(str(path))
    # A DataLoader worker sends the error back with its traceback in the message.
    relayed = DataError(
        f"Caught DataError in DataLoader worker process 0.\nTraceback ...\nrunners.images.DataError: {path}: unreadable image (x)\n"
    )
    assert DataError.one_line(relayed) == f"{path}: unreadable image (x)"


# Keys of every kind (ints, floats, names, lists, nested groups, unknown) and values that break
# them in every way a command line can: wrong type, out of range, non-finite, empty, interpolation.
KEYS = [
    "batch", "subdivisions", "epochs", "seed", "device", "force", "data", "data.image_size",
    "data.num_classes", "data.crop", "data.workers", "data.mean", "data.std", "data.root",
    "backbone", "backbone.name", "regularizer", "regularizer.name", "regularizer.scope",
    "regularizer.window", "regularizer.burnin", "regularizer.cbn_mode",
    "regularizer.groups.3.p", "regularizer.groups.4.block_size", "regularizer.groups.4.size_mode",
    "regularizer.groups.4.probability", "regularizer.groups.4.dropblock_size_abs",
    "regularizer.groups.2.dropblock_size_rel", "regularizer.groups.9.p", "optim", "optim.base_lr",
    "optim.momentum", "optim.weight_decay", "optim.warmup_epochs", "task.topk",
    "task.label_smoothing", "logger", "logger.mode", "logger.init_timeout", "divergence.factor",
    "divergence.check_every", "report.metrics", "nokey", "+extra",
]  # fmt: skip
VALUES = [
    "0", "1", "-1", "2", "3", "7", "64", "1000000000", "0.5", "1.5", "-0.1", "1e-9", "nan", "inf",
    "-inf", "null", "''", "abc", "[]", "[1,2]", "[0.5,0.5,0.5]", "{a: 1}", "true", "???",
    "${oc.env:NO_SUCH_VARIABLE}", "dropblock", "resnet50", "imagefolder", "cuda", "rel",
]  # fmt: skip


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(VALUES)), min_size=1, max_size=3))
def test_random_overrides_build_or_fail_with_one_config_error(data_cache, pairs):
    overrides = [*TINY, f"data.cache_dir={data_cache}", *(f"{k}={v}" for k, v in pairs)]
    try:
        compose(overrides)
    except ConfigError as err:
        message = str(err)
        assert message and "\n" not in message, message


def test_errors_from_inside_hydra_count_as_config_errors_and_crashes_do_not():
    from runners.config.hydra_errors import is_config_error

    def raise_from(module_file: str) -> BaseException:
        code = compile("raise ValueError('x')", module_file, "exec")
        try:
            exec(code)
        except ValueError as err:
            return err
        raise AssertionError("not raised")

    assert is_config_error(raise_from("/venv/site-packages/hydra/_internal/defaults_list.py"))
    assert not is_config_error(raise_from("/venv/site-packages/torch/nn/modules/conv.py"))
    assert not is_config_error(
        raise_from("/venv/site-packages/hydra_plugins/hydra_joblib_launcher/joblib_launcher.py")
    )
    assert is_config_error(ConfigError("batch must be >= 1, got 0"))
