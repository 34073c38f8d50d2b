"""trainers.experiments: studies resolved like single runs; every flag applies or fails, naming flag and study."""

import os

import pytest
import yaml
from absl import app, flags

from tf_metaling import configs
from tf_metaling.study.plan import PlannedRun, control_plan, planned_runs, run_config
from tf_metaling.study.study_directory import ConfigurationChangedError, StudyDirectory
from trainers import experiments


def _resolve(*argv):
    values = flags.FlagValues()
    experiments.define_flags(values)
    values(["experiments", *argv])
    return experiments.resolve_study(values)


def test_the_registered_study_then_config_file_then_overrides_then_flags(tmp_path):
    config = _resolve("--experiment=study_demo", "--params_override=seeds=[4,5],run.trainer.train_steps=7",
                      "--workers=2", "--variants=mono,joint_all")
    assert (config.name, config.seeds, config.run.trainer.train_steps) == ("study_demo", [4, 5], 7)
    assert (config.workers, config.variants) == (2, ["mono", "joint_all"])
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config.as_dict()))
    again = _resolve(f"--config_file={path}")
    assert again.as_dict() == config.as_dict()
    assert _resolve(f"--config_file={path}", "--seeds=1").seeds == [1]  # flags come last


def test_a_saved_study_yaml_reproduces_the_same_plan_and_run_configs(tmp_path):
    config = _resolve("--experiment=study_control", "--seeds=0,1", "--treatments_in=all")
    directory = StudyDirectory(str(tmp_path))
    directory.claim(config)
    again = _resolve(f"--config_file={directory.config_path}")
    assert again.as_dict() == config.as_dict()
    for (condition, study, mono), (condition2, study2, mono2) in zip(control_plan(config), control_plan(again),
                                                                     strict=True):
        assert (condition, mono) == (condition2, mono2)
        runs = planned_runs(study, ["en", "lo"], mono)
        assert runs == planned_runs(study2, ["en", "lo"], mono2)
        for run in runs:
            assert run_config(study, ["en", "lo"], run, "v").as_dict() == run_config(study2, ["en", "lo"], run,
                                                                                      "v").as_dict()


@pytest.mark.parametrize("argv, message", [
    (("--experiment=study_demo", "--widths=16,32"), "--widths: study study_demo is not a synthetic control"),
    (("--experiment=study_demo", "--nosweeps"), "--sweeps: study study_demo is not a synthetic control"),
    (("--experiment=study_control", "--languages=en,sw"), "--languages: study study_control is a synthetic control"),
    (("--experiment=study_control", "--pivot=sw"), "--pivot: study study_control is a synthetic control"),
    (("--experiment=study_control", "--corpus=/tmp/c", "--synthetic_source=toy"),
     "--corpus: study study_control takes its source text from --corpus or --synthetic_source, not both"),
    (("--experiment=study_demo", "--init_preset=builtin"), "--init_preset: study study_demo pretrains its models"),
    (("--experiment=study_pretrained_demo", "--budget=total"),
     "--budget: study study_pretrained_demo fine-tunes a pretrained encoder"),
    (("--experiment=study_demo", "--variants=mono,joint_al"), "field variants: unknown \\['joint_al'\\]"),
    (("--experiment=study_demo", "--params_override=trainer.train_steps=3"),
     "A study's run settings are under run.: e.g. run.trainer"),
    (("--experiment=demo",), "'demo' is a single run"),
    (("--preset=demo", "--experiment=study_demo"), "--preset is the earlier name of --experiment"),
    (("--experiment=study_demo", "--quick"), "the quick control is --experiment=study_control_quick"),
])
def test_a_flag_the_study_cannot_use_fails_naming_the_flag_and_the_study(argv, message):
    with pytest.raises(app.UsageError, match=message):
        _resolve(*argv)


def test_flags_that_do_apply_set_the_studys_fields(tmp_path):
    control = _resolve("--experiment=study_control", "--widths=16,64", "--nosweeps", "--width_learning_rate=scaled",
                       f"--corpus={tmp_path}", "--pivot=sw")
    assert control.control.widths == [16, 64] and not control.control.sweeps
    assert control.control.source == f"directory:{tmp_path}:sw"
    study = _resolve("--experiment=study_tiny", f"--corpus={tmp_path}", "--ls_kind=ffn", "--budget=total")
    assert (study.run.data.corpus, study.run.data.corpus_dir, study.run.data.languages) == (
        "directory", str(tmp_path), [])
    assert (study.ls_kind, study.budget) == ("ffn", "total")
    assert _resolve("--experiment=study_pretrained_demo", "--init_preset=/x").run.finetune.init_preset == "/x"


def test_earlier_preset_names_still_work(capsys):
    assert _resolve("--preset=demo").name == "study_demo"
    assert _resolve("--preset=synthetic_control", "--quick").name == "study_control_quick"
    assert "--preset=demo is now --experiment=study_demo" in capsys.readouterr().err


def test_a_rerun_with_another_configuration_is_refused_with_the_differing_keys(tmp_path):
    directory = StudyDirectory(str(tmp_path))
    config = configs.get_study("study_demo")
    assert directory.claim(config) == {}
    saved = open(directory.config_path, encoding="utf-8").read()
    config.workers = 2  # changes no figure
    assert directory.claim(config) == {}
    config.seeds, config.run.trainer.learning_rate = [0, 1], 0.5
    with pytest.raises(ConfigurationChangedError) as error:
        directory.claim(config)
    assert "seeds: [0] -> [0, 1]" in str(error.value) and "run.trainer.learning_rate: 0.001 -> 0.5" in str(error.value)
    assert "--allow_config_change" in str(error.value)
    assert open(directory.config_path, encoding="utf-8").read().replace("workers: 1", "workers: 2") == saved.replace(
        "workers: 1", "workers: 2")  # untouched by the refusal
    assert set(directory.claim(config, allow_changes=True)) == {"seeds", "run.trainer.learning_rate"}
    assert yaml.safe_load(open(directory.config_path, encoding="utf-8"))["seeds"] == [0, 1]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # no temporary left behind


def test_run_configs_follow_the_variant_seed_and_budget():
    config = configs.get_study("study_small")
    languages = config.run.data.languages
    runs = planned_runs(config, languages)
    assert len(runs) == 48 and runs[0] == PlannedRun("mono", "en", 0)
    joint = run_config(config, languages, PlannedRun("joint_all_meta_ls", None, 2), "vocab.txt")
    assert (joint.runtime.seed, joint.meta.enabled, joint.model.language_specific) == (2, True, "adapter")
    assert joint.trainer.train_steps == 7 * config.run.trainer.train_steps and joint.data.vocab_file == "vocab.txt"


def test_a_field_added_since_a_study_was_saved_counts_as_its_default(tmp_path):
    directory = StudyDirectory(str(tmp_path))
    config = configs.get_study("study_demo")
    directory.claim(config)
    saved = yaml.safe_load(open(directory.config_path, encoding="utf-8"))
    del saved["run"]["surgery"], saved["evaluation"]["finetune_task"]  # as a study saved before they existed
    with open(directory.config_path, "w", encoding="utf-8") as file:
        yaml.safe_dump(saved, file)
    assert directory.claim(config) == {}
    config.run.surgery.beta = 0.5  # not the default: a difference
    with pytest.raises(ConfigurationChangedError, match=r"run.surgery.beta: 0.01 -> 0.5"):
        directory.claim(config)
