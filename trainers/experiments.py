"""The paper's comparisons on the built-in corpus or yours, with tables and an interference report.

    python -m trainers.experiments --preset=small --output_dir=runs/study   # <= 60 min, 2 CPU cores
    python -m trainers.experiments --preset=demo --output_dir=runs/demo     # a few minutes
    python -m trainers.experiments --preset=paper --output_dir=gs://...     # GPU/TPU sizes
    python -m trainers.experiments --corpus=DIR --output_dir=runs/mine      # your corpus directory

Trains and evaluates Mono (each language), JointPair (pivot + X), JointAll,
JointAll+LS and JointAll+Meta LS for every seed; rerunning the same command
skips finished runs. Prints one line per finished run, then the tables (every
figure with its baseline and a 95% CI) and the report's path. TensorFlow's own
log lines are hidden unless --verbose.
"""

from __future__ import annotations

from tf_metaling.quiet_logs import quiet_tensorflow_logs, verbose_requested

quiet_tensorflow_logs(verbose_requested())  # before TensorFlow is imported

from absl import app, flags, logging  # noqa: E402

from tf_metaling import configs  # noqa: E402
from tf_metaling.training.comparison_study import ComparisonStudy, StudyPlan  # noqa: E402

PRESETS = {
    "tiny": StudyPlan(experiment="study_tiny", seeds=(0,), retrieval_pairs=30, classification_train=60,
                      tagging_steps=20),
    # The demo's models are trained from scratch for minutes: too little for cross-lingual
    # transfer between scripts (X -> en retrieval and zero-shot classification sit at chance
    # there; BUILD.md has the figures), so the demo's tasks are in-language. To fit 12 minutes
    # on 2 cores it leaves out JointPair and makes a meta update every second step
    # (study_demo). `small` keeps all of it.
    "demo": StudyPlan(experiment="study_demo", seeds=(0,), retrieval=False, classification_protocol="in_language",
                      classification_train=1000, tagging_steps=150,
                      variants=("mono", "joint_all", "joint_all_ls", "joint_all_meta_ls")),
    "small": StudyPlan(experiment="study_small", seeds=(0, 1, 2)),
    "paper": StudyPlan(experiment="study_paper", seeds=(0, 1, 2), retrieval_pairs=1000, classification_train=5000),
}

FLAGS = flags.FLAGS
flags.DEFINE_enum("preset", "small", sorted(PRESETS), "Study size.")
flags.DEFINE_string("output_dir", None, "Directory of the study (runs, table, report).")
flags.DEFINE_list("variants", None, f"Subset of {list(configs.VARIANTS)}.")
flags.DEFINE_list("seeds", None, "Seeds (default: the preset's).")
flags.DEFINE_list("languages", None, "Languages (default: the preset's, or every language of --corpus).")
flags.DEFINE_string("ls_kind", "adapter", "LS kind of the +LS and +Meta LS variants.")
flags.DEFINE_enum(
    "budget", "per_language", ["per_language", "total"],
    "per_language: a run over n languages trains n x the preset's steps (each language gets about "
    "its Mono run's batches); total: every run trains the preset's steps.",
)
flags.DEFINE_string("params_override", "", "Overrides of every run's config (a.b=value,...).")
flags.DEFINE_string(
    "corpus", None,
    "Your corpus directory instead of the built-in corpus: DIR/text/<code>.txt[.gz] (required), optional "
    "DIR/pos/<code>.conllu, DIR/ner/<code>.iob, DIR/nli/<code>.tsv, DIR/parallel/<code>-<pivot>.tsv (README).",
)
flags.DEFINE_string("pivot", "en", "JointPair partner, retrieval target and classification training language.")
flags.DEFINE_bool("verbose", False, "Show TensorFlow's own log lines and warnings.")
flags.mark_flag_as_required("output_dir")


def main(argv):
    del argv
    # Per-run progress is printed by the study itself.
    logging.set_verbosity(logging.INFO if FLAGS.verbose else logging.ERROR)
    plan = PRESETS[FLAGS.preset]
    if FLAGS.variants:
        unknown = [v for v in FLAGS.variants if v not in configs.VARIANTS]
        if unknown:
            raise app.UsageError(f"--variants: unknown {unknown}; choose from {list(configs.VARIANTS)}.")
        plan.variants = tuple(FLAGS.variants)
    if FLAGS.seeds:
        plan.seeds = tuple(int(s) for s in FLAGS.seeds)
    if FLAGS.languages:
        plan.languages = tuple(FLAGS.languages)
    if FLAGS.corpus:
        plan.corpus_dir = FLAGS.corpus
    plan.pivot = FLAGS.pivot
    plan.ls_kind = FLAGS.ls_kind
    plan.budget = FLAGS.budget
    if FLAGS.params_override:
        plan.overrides = FLAGS.params_override  # YAML or "a.b=value,..." (hyperparams syntax)
    study = ComparisonStudy(plan, FLAGS.output_dir)
    study.report(study.run())


def run():
    app.run(main)


if __name__ == "__main__":
    run()
