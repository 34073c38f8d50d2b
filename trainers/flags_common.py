"""Flags shared by the trainers, and config resolution in the Model Garden order.

registered preset (--experiment) -> --config_file (YAML, repeatable) ->
--params_override (YAML string or "a.b=1,c.d=x") -> shorthands (--languages,
--seed, --strategy, finetune's --init_preset and --language_layers) -> validate -> lock.
"""

from __future__ import annotations

from absl import app, flags
from official.modeling import hyperparams

from tf_metaling import configs


def define_flags(flag_values=None):
    """The trainers' common flags, defined on `flag_values` (default: absl's global FLAGS)."""
    values = flag_values if flag_values is not None else flags.FLAGS
    define = {"flag_values": values}
    flags.DEFINE_string("experiment", "small", "A registered run, or a study (one run of its configuration): "
                        f"{sorted(configs.EXPERIMENTS)}.", **define)
    flags.DEFINE_enum("mode", "train_and_eval", ["train", "eval", "train_and_eval"], "What to run.", **define)
    flags.DEFINE_string("model_dir", None, "Directory for checkpoints, summaries and the resolved config.", **define)
    flags.DEFINE_multi_string("config_file", [], "YAML config file(s), applied in order.", **define)
    flags.DEFINE_string("params_override", "", "YAML string or comma-separated a.b=value overrides.", **define)
    flags.DEFINE_enum("strategy", None, list(configs.STRATEGIES),
                      "Distribution strategy (overrides runtime.distribution_strategy).", **define)
    flags.DEFINE_string("tpu", None, "TPU name or address (with --strategy=tpu).", **define)
    flags.DEFINE_list("languages", None, "Language codes (overrides data.languages).", **define)
    flags.DEFINE_integer("seed", None, "Random seed (overrides runtime.seed).", **define)
    flags.mark_flag_as_required("model_dir", flag_values=values)


def resolve_config(flag_values, init_preset=None, language_layers=None) -> configs.ExperimentConfig:
    try:
        config = configs.get_experiment(flag_values.experiment)
    except KeyError as error:
        raise app.UsageError(str(error.args[0])) from None
    for path in flag_values.config_file:
        config = hyperparams.override_params_dict(config, path, is_strict=True)
    if flag_values.params_override:
        config = hyperparams.override_params_dict(config, flag_values.params_override, is_strict=True)
    shorthands = {}
    if flag_values.languages:
        shorthands.setdefault("data", {})["languages"] = list(flag_values.languages)
    if flag_values.seed is not None:
        shorthands.setdefault("runtime", {})["seed"] = flag_values.seed
    if flag_values.strategy:
        shorthands.setdefault("runtime", {})["distribution_strategy"] = flag_values.strategy
    if flag_values.tpu:
        shorthands.setdefault("runtime", {})["tpu"] = flag_values.tpu
    if init_preset:  # trainers.finetune's --init_preset
        shorthands.setdefault("finetune", {}).update(init_preset=init_preset, init_model_dir="")
    if language_layers:  # trainers.finetune's --language_layers
        shorthands.setdefault("finetune", {})["language_layers"] = list(language_layers)
    if shorthands:
        config = hyperparams.override_params_dict(config, shorthands, is_strict=True)
    configs.validate(config)
    config.lock()
    return config
