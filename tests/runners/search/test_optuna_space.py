"""Hydra sweep syntax -> Optuna distributions, and one clear error per bad entry."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from runners.core.study_settings import StudySettings
from runners.search.space import SearchSpaceError, format_value, parse_search_space


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("interval(0, 0.3)", FloatDistribution(0.0, 0.3)),
        ("int(interval(1, 7))", IntDistribution(1, 7)),
        ("tag(log, interval(1e-4, 1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
        ("tag(log, int(interval(1, 64)))", IntDistribution(1, 64, log=True)),
        ("choice(3, 5, 7)", CategoricalDistribution([3, 5, 7])),
        ("3,5,7", CategoricalDistribution([3, 5, 7])),
        ("choice(dropblock, dropout)", CategoricalDistribution(["dropblock", "dropout"])),
        # Hydra's basic sweeper excludes range()'s stop; so does this sweeper.
        ("range(1, 8, 2)", IntDistribution(1, 7, step=2)),
        ("range(1, 9, 2)", IntDistribution(1, 7, step=2)),
        ("range(0.1, 0.45, 0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
        ("shuffle(range(1, 4))", CategoricalDistribution([1, 2, 3])),
    ],
)
def test_sweep_syntax_becomes_a_distribution(text, expected):
    space = parse_search_space({"regularizer.groups.4.p": text})
    got = space.distributions["regularizer.groups.4.p"]
    if isinstance(expected, CategoricalDistribution):
        assert sorted(got.choices, key=str) == sorted(expected.choices, key=str)
    else:
        assert type(got) is type(expected)
        assert got.__dict__ == pytest.approx(expected.__dict__)


def test_command_line_overrides_win_and_plain_values_are_fixed():
    space = parse_search_space(
        {"regularizer.groups.3.p": "interval(0, 0.2)", "regularizer.groups.4.p": "interval(0, 1)"},
        ["ablation=dropblock_search", "regularizer.groups.3.p=0.025", "regularizer.groups.4.p=choice(0.1,0.2)"],
    )  # fmt: skip
    assert list(space.distributions) == ["regularizer.groups.4.p"]
    assert space.distributions["regularizer.groups.4.p"].choices == (0.1, 0.2)
    assert space.fixed == ["ablation=dropblock_search", "regularizer.groups.3.p=0.025"]
    assert space.overrides({"regularizer.groups.4.p": 0.1}) == [
        "ablation=dropblock_search", "regularizer.groups.3.p=0.025", "regularizer.groups.4.p=0.1",
    ]  # fmt: skip


@pytest.mark.parametrize("value", [0.1, 1e-05, 0.30000000000000004, 3, True, None, "dropblock"])
def test_formatted_values_parse_back_to_the_same_value(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (override,) = OverridesParser.create().parse_overrides([f"k={format_value(value)}"])
    assert override.value() == value and type(override.value()) is type(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("interval(0,", "not valid sweep syntax"),
        ("interval(0.5, 0.1)", "low <= high"),
        ("tag(log, interval(0, 1))", "lower bound > 0"),
        ("range(5, 1)", "the range is empty"),
        ("glob(*)", "not a search space"),
    ],
)
def test_bad_search_space_names_the_key_and_value(text, message):
    with pytest.raises(SearchSpaceError) as err:
        parse_search_space({"regularizer.groups.4.block_size": text})
    assert f"hydra.sweeper.params.regularizer.groups.4.block_size={text!r}" in str(err.value)
    assert message in str(err.value)


def test_a_space_without_parameters_is_an_error():
    with pytest.raises(SearchSpaceError, match="at least one parameter"):
        parse_search_space({}, ["epochs=3"])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, "sqlite:////s/optuna.db"),
        ("journal", "journal:/s/optuna.journal"),
        ("postgresql://u@localhost:5432/db", "postgresql://u@localhost:5432/db"),
    ],
)
def test_storage_specs(spec, expected):
    from pathlib import Path

    assert StudySettings.resolve_storage(spec, Path("/s")) == expected


def test_bad_storage_and_pruner_name_the_key():
    from pathlib import Path

    with pytest.raises(ValueError, match=r"hydra.sweeper.storage .* got 'optuna.db'"):
        StudySettings.resolve_storage("optuna.db", Path("/s"))
    with pytest.raises(ValueError, match=r"hydra.sweeper.pruner.name must be one of .* 'meadian'"):
        StudySettings("s", "sqlite:///x.db", pruner={"name": "meadian"})


def test_hydra_discovers_the_sweeper_plugin():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    names = [f"{p.__module__}.{p.__name__}" for p in Plugins.instance().discover(Sweeper)]
    assert "hydra_plugins.harness_optuna_sweeper.optuna_sweeper.HarnessOptunaSweeper" in names


@pytest.mark.parametrize(
    ("pruner", "expected"),
    [
        ({"name": "median", "n_startup_trials": 2}, "MedianPruner"),
        ({"name": "hyperband", "min_resource": 1, "reduction_factor": 3}, "HyperbandPruner"),
        ({"name": "none"}, "NopPruner"),
    ],
)
def test_pruners_by_name(pruner, expected):
    settings = StudySettings("s", "sqlite:///x.db", pruner=pruner)
    assert type(settings.make_pruner()).__name__ == expected


def test_a_journal_file_holds_a_study(tmp_path):
    from optuna.trial import TrialState

    settings = StudySettings("s", StudySettings.resolve_storage("journal", tmp_path))
    study = settings.load_study()
    trial = study.ask({"x": FloatDistribution(0, 1)})
    study.tell(trial, 1.0)
    again = StudySettings.read(settings.write(tmp_path)).load_study()
    assert [t.state for t in again.trials] == [TrialState.COMPLETE]
    assert (tmp_path / "optuna.journal").is_file()
