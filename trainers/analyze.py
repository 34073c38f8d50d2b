"""Interference analysis of a trained model_dir: gradient similarities, sub-networks, report.

    python -m trainers.analyze --model_dir=/tmp/run --output_dir=/tmp/run/report

Restores the newest (or --checkpoint) checkpoint, takes held-out batches of
every language from the run's own data config (model_dir/config.yaml), and
writes the report directory (report.md, report.json, PNG plots). The probe's
log from training (model_dir/interference/) adds similarities over training.
Optionally --results (a study's results.json) adds per-variant deltas.
"""

from __future__ import annotations

import json
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import yaml  # noqa: E402
from absl import app, flags  # noqa: E402
from official.modeling import hyperparams  # noqa: E402

from tf_metaling import configs  # noqa: E402
from tf_metaling.interference import analyze_model_dir  # noqa: E402
from tf_metaling.study.tables import cell_values  # noqa: E402
from tf_metaling.training.experiment import CONFIG_FILE  # noqa: E402
from tf_metaling.training.mlm_inputs import build_mlm_inputs  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(flag_values=None):
    """The analysis command's flags on `flag_values` (default: absl's global FLAGS)."""
    values = flag_values if flag_values is not None else flags.FLAGS
    define = {"flag_values": values}
    flags.DEFINE_string("model_dir", None, "A trainer's model_dir.", **define)
    flags.DEFINE_string("output_dir", None, "Report directory (default: model_dir/report).", **define)
    flags.DEFINE_string("checkpoint", None, "A ckpt-N prefix (default: the newest).", **define)
    flags.DEFINE_float("keep_fraction", 0.1, "Share of each layer group kept in a language's sub-network.",
                       **define)
    flags.DEFINE_integer("batches_per_language", None, "Held-out batches per language (default: the config's).",
                         **define)
    flags.DEFINE_string("results", None, "A comparison study's results.json, for per-variant deltas.", **define)
    flags.mark_flag_as_required("model_dir", flag_values=values)


def main(argv):
    del argv
    path = os.path.join(FLAGS.model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise app.UsageError(f"{path}: not found; --model_dir must be a trainer's model_dir.")
    with open(path, encoding="utf-8") as file:
        saved = yaml.safe_load(file)
    config = hyperparams.override_params_dict(configs.ExperimentConfig(), saved, is_strict=True)
    if FLAGS.batches_per_language:
        config.data.eval_batches_per_language = FLAGS.batches_per_language
    inputs = build_mlm_inputs(config.data, FLAGS.model_dir, config.runtime.seed)
    kwargs = {}
    if FLAGS.results:
        with open(FLAGS.results, encoding="utf-8") as file:
            study = json.load(file)
        if "records" not in study or "mlm_loss" not in study["records"]:
            raise app.UsageError(f"--results={FLAGS.results}: not a comparison study's results.json with "
                                 "held-out MLM losses (records.mlm_loss).")
        kwargs = {
            # Perplexity per variant and language (the mean over seeds of exp(loss)).
            "results": {variant: {code: sum(math.exp(v) for v in values) / len(values)
                                  for code, values in rows.items()}
                        for variant, rows in cell_values(study, "mlm_loss").items() if variant != "scratch"},
            "high_resource": study["groups"].get("high", ()),
            "low_resource": study["groups"].get("low", ()),
        }
    else:
        kwargs = {"high_resource": inputs.groups.get("high", ()), "low_resource": inputs.groups.get("low", ())}
    analysis = analyze_model_dir(
        FLAGS.model_dir,
        inputs.eval_batches(),
        FLAGS.output_dir or os.path.join(FLAGS.model_dir, "report"),
        checkpoint_path=FLAGS.checkpoint,
        keep_fraction=FLAGS.keep_fraction,
        **kwargs,
    )
    print(f"report: {analysis['report_dir']}/report.md")


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
