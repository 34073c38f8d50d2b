"""The one registry of named configurations: every entry resolves, validates, round-trips and is listed."""

import pytest
import yaml
from official.modeling import hyperparams

from tf_metaling import configs
from tf_metaling.configs.registry import EXPERIMENTS, get_config, get_experiment, get_study

STUDIES = sorted(name for name, entry in EXPERIMENTS.items() if entry.kind == "study")
RUNS = sorted(name for name, entry in EXPERIMENTS.items() if entry.kind == "run")


def test_the_registry_holds_the_runs_and_the_studies():
    assert {"tiny", "demo", "small", "paper", "zero_shot_classification"} <= set(RUNS)
    assert {"study_tiny", "study_demo", "study_small", "study_paper", "study_pretrained_demo", "study_pretrained",
            "study_control", "study_control_quick"} <= set(STUDIES)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_entry_resolves_validates_and_round_trips_through_yaml(name):
    config = get_config(name)
    if isinstance(config, configs.StudyConfig):
        assert config.name == name
        configs.validate_study(config)
    else:
        configs.validate(config)
    text = yaml.safe_dump(config.as_dict())
    again = hyperparams.override_params_dict(type(config)(), text, is_strict=True)
    assert again.as_dict() == config.as_dict()
    assert get_config(name) is not config and get_config(name).as_dict() == config.as_dict()  # a fresh copy
    assert EXPERIMENTS[name].description  # its docstring's first paragraph


def test_a_studys_run_config_is_what_the_single_run_trainers_get():
    assert get_experiment("study_control").as_dict() == get_study("study_control").run.as_dict()
    assert get_experiment("study_control").trainer.train_steps == 2000


def test_names_of_the_wrong_kind_or_unknown_fail_with_the_names():
    with pytest.raises(KeyError, match="'demo' is a single run .* the studies are .*study_demo"):
        get_study("demo")
    with pytest.raises(KeyError, match="Unknown experiment 'study_dem'. Did you mean study_demo"):
        get_config("study_dem")


def test_listing_names_every_entry_with_its_kind_size_and_description():
    from trainers.experiments import list_experiments

    listing = list_experiments()
    lines = listing.split("\n")
    blocks = {lines[i]: lines[i + 1: i + 3] for i in range(0, len(lines), 3)}
    assert sorted(blocks) == sorted(EXPERIMENTS)
    for name, entry in EXPERIMENTS.items():
        assert blocks[name][0].startswith(f"    {entry.kind}; ") and blocks[name][1].strip() == entry.description
    assert "study_control\n    study; 36 runs;" in listing  # 6 conditions, Mono borrowed where it is the same
    assert "study_small\n    study; 48 runs; 2 CPU cores: 31 min" in listing
    assert "study_control_quick\n    study; 8 runs;" in listing


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_counts_its_runs_as_the_study_plans_them(name):
    from tf_metaling.study.plan import control_plan, count_runs, planned_runs

    config = get_study(name)
    if config.control.enabled:
        expected = sum(len(planned_runs(s, s.run.data.languages, m)) for _, s, m in control_plan(config))
    elif config.transfer.enabled:  # the reference once; per seed the LS runs, JointAll per rate, two taggers
        joint_all = len(config.transfer.finetune_learning_rates) if "joint_all" in config.variants else 0
        taggers = 2 if config.transfer.tagging_steps else 0
        expected = 1 + len(config.seeds) * (2 + joint_all + taggers)
    else:
        expected = len(planned_runs(config, config.run.data.languages))
    assert count_runs(config) == expected > 0
