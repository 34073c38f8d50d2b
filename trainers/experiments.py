"""Runs a registered study: the paper's comparison or the synthetic control, with tables and verdicts.

    python -m trainers.experiments --list_experiments                    # every name, what it is, its size
    python -m trainers.experiments --experiment=study_demo --output_dir=runs/demo
    python -m trainers.experiments --experiment=study_small --workers=2 --output_dir=runs/small
    python -m trainers.experiments --experiment=study_control --output_dir=runs/control
    python -m trainers.experiments --experiment=study_tiny --corpus=DIR --output_dir=runs/mine
    python -m trainers.experiments --config_file=runs/demo/study.yaml --output_dir=runs/demo

The configuration is resolved as for single runs (`trainers.pretrain`): the
registered study (``--experiment``) -> ``--config_file`` (YAML, e.g. a study's
saved ``study.yaml``) -> ``--params_override`` (``seeds=[0,1],run.trainer.
train_steps=100``) -> the shorthand flags below. A flag a study cannot use
fails at once, naming the flag and the study. The resolved configuration is
written to ``<output_dir>/study.yaml`` before the first run; rerunning the same
configuration skips finished runs, and another configuration in the same
directory is refused (``--allow_config_change`` continues anyway). Prints one
line per finished run, then the tables and the report's path. TensorFlow's own
log lines are hidden unless --verbose.
"""

from __future__ import annotations

from tf_metaling.quiet_logs import quiet_tensorflow_logs, verbose_requested

quiet_tensorflow_logs(verbose_requested())  # before TensorFlow is imported

from tf_metaling.cpu_allocator import use_pooled_cpu_allocator  # noqa: E402

use_pooled_cpu_allocator()  # before TensorFlow makes its first tensor (its workers: runner._start_worker)

import os  # noqa: E402
import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402
from official.modeling import hyperparams  # noqa: E402

from tf_metaling import configs  # noqa: E402
from tf_metaling.study import open_study  # noqa: E402
from tf_metaling.study.plan import count_runs  # noqa: E402

# Names of the command's earlier --preset flag -> the registered studies.
PRESET_NAMES = {"tiny": "study_tiny", "demo": "study_demo", "small": "study_small", "paper": "study_paper",
                "pretrained_demo": "study_pretrained_demo", "pretrained": "study_pretrained",
                "synthetic_control": "study_control"}

FLAGS = flags.FLAGS


def define_flags(flag_values=None) -> None:
    """The command's flags, defined on `flag_values` (default: absl's global FLAGS)."""
    values = flag_values if flag_values is not None else FLAGS
    define = {"flag_values": values}
    flags.DEFINE_string("experiment", None, "A registered study (--list_experiments); default study_small.", **define)
    flags.DEFINE_bool("list_experiments", False, "Print every registered name, what it is and its size; exit.",
                      **define)
    flags.DEFINE_multi_string("config_file", [], "YAML study config file(s), applied in order (e.g. a study.yaml).",
                              **define)
    flags.DEFINE_string("params_override", "", "YAML string or comma-separated a.b=value overrides of the study.",
                        **define)
    flags.DEFINE_string("output_dir", None, "Directory of the study (study.yaml, runs, tables, report).", **define)
    flags.DEFINE_bool("allow_config_change", False,
                      "Continue in an output_dir whose study.yaml holds another configuration.", **define)
    flags.DEFINE_string("preset", None, f"Earlier name of --experiment: {sorted(PRESET_NAMES)}.", **define)
    flags.DEFINE_bool("quick", False, "With --preset=synthetic_control: the study_control_quick study.", **define)
    # Shorthands: each sets one field of the study (its help says which).
    flags.DEFINE_list("variants", None, f"variants: a subset of {list(configs.VARIANTS)}.", **define)
    flags.DEFINE_list("seeds", None, "seeds.", **define)
    flags.DEFINE_integer("workers", None, "workers: runs trained at once, each in its own process.",
                         lower_bound=1, **define)
    flags.DEFINE_list("languages", None, "run.data.languages (default: the study's, or every language of "
                                         "--corpus).", **define)
    flags.DEFINE_string("ls_kind", None, "ls_kind: the LS kind of +LS and +Meta LS (adapter, ffn, attention, "
                                         "layer_norm).", **define)
    flags.DEFINE_enum("budget", None, ["per_language", "total"],
                      "budget: per_language (a run over n languages trains n x the steps) or total.", **define)
    flags.DEFINE_string(
        "corpus", None,
        "Your corpus directory: run.data.corpus_dir (DIR/text/<code>.txt[.gz] required; DIR/pos, ner, nli, "
        "parallel optional; docs/corpus.md); for the synthetic control, its source text (control.source, the "
        "--pivot language).", **define)
    flags.DEFINE_string("init_preset", None, "run.finetune.init_preset of a fine-tuning study: a keras-hub "
                                             "preset directory, a Hugging Face directory, or `builtin`.", **define)
    flags.DEFINE_string("pivot", None, "pivot: JointPair partner, retrieval target, classification training "
                                       "language; for the synthetic control with --corpus, the corpus language it "
                                       "derives from.", **define)
    flags.DEFINE_enum("treatments_in", None, ["base", "all"], "control.treatments_in (synthetic control).",
                      **define)
    flags.DEFINE_list("widths", None, "control.widths: hidden sizes of the capacity curve (synthetic control).",
                      **define)
    flags.DEFINE_enum("width_learning_rate", None, ["same", "scaled"],
                      "control.width_learning_rate (synthetic control).", **define)
    flags.DEFINE_bool("sweeps", None, "control.sweeps; --nosweeps runs the capacity curve's widths only.",
                      **define)
    flags.DEFINE_string("synthetic_source", None, "control.source: 'toy', 'builtin:en' or 'directory:DIR:CODE'.",
                        **define)
    flags.DEFINE_bool("verbose", False, "Show TensorFlow's own log lines and warnings.", **define)


def list_experiments() -> str:
    """One line per registered name: kind, runs, measured time on 2 cores, description."""
    lines = []
    for name, entry in sorted(configs.EXPERIMENTS.items()):
        config = entry.build()
        if isinstance(config, configs.StudyConfig):
            runs = count_runs(config)
            size = f"{runs} runs" if runs is not None else "runs: per corpus"
        else:
            size = "1 run"
        time = entry.expected_time or "-"
        lines.append(f"{name}\n    {entry.kind}; {size}; 2 CPU cores: {time}\n    {entry.description}")
    return "\n".join(lines)


SHORTHANDS = ("variants", "seeds", "workers", "languages", "ls_kind", "budget", "corpus", "init_preset", "pivot",
              "treatments_in", "widths", "width_learning_rate", "sweeps", "synthetic_source")


def _shorthands(config: configs.StudyConfig, values: flags.FlagValues) -> dict:
    """The shorthand flags given, as overrides of `config`; a flag the study cannot use raises UsageError."""
    name = config.name or "(from --config_file)"
    control = config.control.enabled
    given = {flag: getattr(values, flag) for flag in SHORTHANDS if values[flag].present}

    def refuse(flag, why):
        raise app.UsageError(f"--{flag}: study {name} {why}.")

    overrides = {}
    run = {}
    for flag, value in given.items():
        if flag in ("treatments_in", "widths", "width_learning_rate", "sweeps", "synthetic_source"):
            if not control:
                refuse(flag, "is not a synthetic control (control.enabled is false)")
            field = "source" if flag == "synthetic_source" else flag
            overrides.setdefault("control", {})[field] = [int(w) for w in value] if flag == "widths" else value
        elif flag == "languages":
            if control:
                refuse(flag, "is a synthetic control: its languages are en and the derived lo")
            run.setdefault("data", {})["languages"] = list(value)
        elif flag == "budget" and config.finetuning:
            refuse(flag, "fine-tunes a pretrained encoder on the pivot only: there is no budget to share")
        elif flag == "init_preset":
            if not config.finetuning:
                refuse(flag, "pretrains its models; --init_preset is for the fine-tuning studies "
                             "(study_pretrained_demo, study_pretrained)")
            run.setdefault("finetune", {})["init_preset"] = value
        elif flag == "corpus":
            directory = os.path.abspath(value)
            if control:
                if "synthetic_source" in given:
                    refuse(flag, "takes its source text from --corpus or --synthetic_source, not both")
                overrides.setdefault("control", {})["source"] = f"directory:{directory}:{values.pivot or 'en'}"
            else:
                data = run.setdefault("data", {})
                data.update(corpus="directory", corpus_dir=directory)
                data.setdefault("languages", [])  # every language of the directory unless --languages
        elif flag == "pivot":
            if control and "corpus" not in given:
                refuse(flag, "is a synthetic control: --pivot names the language of --corpus it derives from")
            if not control:
                overrides["pivot"] = value
        elif flag == "seeds":
            overrides["seeds"] = [int(seed) for seed in value]
        else:
            overrides[flag] = list(value) if flag == "variants" else value
    if run:
        overrides["run"] = run
    return overrides


def resolve_study(values: flags.FlagValues = FLAGS) -> configs.StudyConfig:
    """The study the flags describe: registered -> --config_file -> --params_override -> shorthands."""
    name = values.experiment
    if values.preset:
        if name:
            raise app.UsageError("--preset is the earlier name of --experiment: give one of them.")
        if values.preset not in PRESET_NAMES:
            raise app.UsageError(f"--preset={values.preset}: unknown; the studies are --list_experiments.")
        name = "study_control_quick" if values.preset == "synthetic_control" and values.quick else \
            PRESET_NAMES[values.preset]
        print(f"--preset={values.preset} is now --experiment={name}", file=sys.stderr)
    elif values.quick:
        raise app.UsageError("--quick goes with --preset=synthetic_control; the quick control is "
                             "--experiment=study_control_quick.")
    try:
        if name or not values.config_file:
            config = configs.get_study(name or "study_small")
        else:  # a saved study.yaml holds every field
            config = configs.StudyConfig()
        for path in values.config_file:
            config = hyperparams.override_params_dict(config, path, is_strict=True)
        if values.params_override:
            config = hyperparams.override_params_dict(config, values.params_override, is_strict=True)
    except KeyError as error:
        raise app.UsageError(_explain(error)) from None
    overrides = _shorthands(config, values)
    if overrides:
        config = hyperparams.override_params_dict(config, overrides, is_strict=True)
    try:
        return configs.validate_study(config)
    except ValueError as error:
        raise app.UsageError(str(error)) from None


def _explain(error: KeyError) -> str:
    """A KeyError of the registry or of an override, with the study's field names when a run field was meant."""
    text = str(error.args[0]) if error.args else str(error)
    run_fields = set(configs.ExperimentConfig().as_dict())
    for field in run_fields:
        if f"'{field}'" in text and "StudyConfig" in text:
            return (f"{text} A study's run settings are under run.: e.g. run.{field}.... "
                    "(--params_override=run.trainer.train_steps=100).")
    return text


def main(argv):
    del argv
    if FLAGS.list_experiments:
        print(list_experiments())
        return
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required (the study's directory).")
    # Per-run progress is printed by the study itself.
    logging.set_verbosity(logging.INFO if FLAGS.verbose else logging.ERROR)
    config = resolve_study()
    study = open_study(config, FLAGS.output_dir, allow_config_change=FLAGS.allow_config_change)
    study.report(study.run())


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
