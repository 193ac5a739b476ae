"""Names and paths (issue 13, items 5 and 7): an unknown study name is an error like any other
unknown option, ``study`` is a plain name, and no override value can nest a job directory or
move it out of ``multirun/<study>/``."""

from __future__ import annotations

from tests.conftest import ROOT, TINY, run_cli


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
