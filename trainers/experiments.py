"""The paper's comparisons on the built-in corpus or yours, with tables and an interference report.

    python -m trainers.experiments --preset=small --output_dir=runs/study   # <= 60 min, 2 CPU cores
    python -m trainers.experiments --preset=demo --output_dir=runs/demo     # a few minutes
    python -m trainers.experiments --preset=paper --output_dir=gs://...     # GPU/TPU sizes
    python -m trainers.experiments --corpus=DIR --output_dir=runs/mine      # your corpus directory
    python -m trainers.experiments --preset=pretrained_demo --output_dir=runs/demo/pretrained
    python -m trainers.experiments --preset=pretrained --init_preset=DIR --output_dir=runs/ft

`--preset=synthetic_control` runs the synthetic control (exact ground truth: two
languages made from one text, sweeps of their shared vocabulary and of the
low-resource language's text; `tf_metaling.training.synthetic_control`), each
condition a study like the others; `--quick` is its few-second form, and
`--widths=32,64,128` adds the interference-vs-capacity curve (`--width_learning_rate=scaled` halves
the learning rate when the width doubles; `--nosweeps` runs the curve alone).

The `pretrained*` presets fine-tune a pretrained encoder (`--init_preset`: a
keras-hub BERT / XLM-R preset directory, or `builtin`, the built-in 4-bit
multilingual-e5-small) as JointAll, +LS and +Meta LS on the pivot's
classification task, and test it zero-shot on every language.

Trains and evaluates Mono (each language), JointPair (pivot + X), JointAll,
JointAll+LS and JointAll+Meta LS for every seed; rerunning the same command
skips finished runs. Prints one line per finished run, then the tables (every
figure with its baseline and a 95% CI) and the report's path. TensorFlow's own
log lines are hidden unless --verbose.
"""

from __future__ import annotations

from tf_metaling.quiet_logs import quiet_tensorflow_logs, verbose_requested

quiet_tensorflow_logs(verbose_requested())  # before TensorFlow is imported

from tf_metaling.cpu_allocator import use_pooled_cpu_allocator  # noqa: E402

use_pooled_cpu_allocator()  # before TensorFlow makes its first tensor (its workers: _start_worker)

from absl import app, flags, logging  # noqa: E402

from tf_metaling import configs  # noqa: E402
from tf_metaling.training.comparison_study import ComparisonStudy, StudyPlan  # noqa: E402
from tf_metaling.training.synthetic_control import ControlPlan, SyntheticControl  # noqa: E402

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
    # make demo's second part: the built-in pretrained encoder, adapters + head fine-tuned on English.
    "pretrained_demo": StudyPlan(experiment="study_pretrained_demo", seeds=(0,), retrieval_pairs=200,
                                 variants=("joint_all_ls", "joint_all_meta_ls")),
    "pretrained": StudyPlan(experiment="study_pretrained", seeds=(0, 1, 2),
                            variants=("joint_all", "joint_all_ls", "joint_all_meta_ls")),
    "paper": StudyPlan(experiment="study_paper", seeds=(0, 1, 2), retrieval_pairs=1000, classification_train=5000),
}

CONTROL_PRESETS = {
    # The default sweep, sized to finish within 30 minutes on 2 CPU cores with two worker
    # processes (BUILD.md has the measured time): seeds 0, 1, 2; shares 0, 0.5, 1.0 and 1.0
    # reversed at resource 1; resources 1, 0.1, 0.01 at share 0; Mono and JointAll
    # everywhere, +LS and +Meta LS in the base condition (share 0, resource 1: two languages
    # with equal text and no shared ids, the case LS layers are meant for; BUILD.md has what
    # the control found there).
    "synthetic_control": ControlPlan(seeds=(0, 1, 2), shares=(0.0, 0.5, 1.0), sweep_resource=1.0,
                                     treatments_in="base", workers=2),
    # --quick: the test suite's form, on the tiny preset's sizes (seconds per run).
    "quick": ControlPlan(seeds=(0,), shares=(0.0, 1.0), reversed_share=None, resources=(), treatments_in="all",
                         workers=1,
                         retrieval_pairs=20, classification_train=100,
                         overrides={"model": {"hidden_dim": 16, "num_layers": 1, "intermediate_dim": 32,
                                              "adapter_dim": 4},
                                    "data": {"synthetic_train_sentences": 200, "batch_size": 8,
                                             "eval_batches_per_language": 1, "eval_batch_size": 16},
                                    "trainer": {"train_steps": 6, "eval_interval": 2, "warmup_steps": 0,
                                                "steps_per_loop": 2, "checkpoint_interval": 6}}),
}

FLAGS = flags.FLAGS
flags.DEFINE_enum("preset", "small", sorted(PRESETS) + ["synthetic_control"], "Study size.")
flags.DEFINE_bool("quick", False, "With --preset=synthetic_control: its few-second form (for tests).")
flags.DEFINE_enum("treatments_in", None, ["base", "all"],
                  "With --preset=synthetic_control: run +LS and +Meta LS in the base condition only, or in all.")
flags.DEFINE_list("widths", None, "With --preset=synthetic_control: hidden sizes of the capacity curve.")
flags.DEFINE_enum("width_learning_rate", None, ["same", "scaled"],
                  "With --widths: the experiment's learning rate at every width (same, the default), or "
                  "times base width / width (scaled: halved when the width doubles).")
flags.DEFINE_bool("sweeps", True, "With --preset=synthetic_control: run the shared-vocabulary and resource "
                  "sweeps; --nosweeps runs only the capacity curve's widths.")
flags.DEFINE_string("synthetic_source", None,
                    "With --preset=synthetic_control: the source text, 'toy' (default), 'builtin:en', or "
                    "--corpus=DIR's --pivot language.")
flags.DEFINE_string("output_dir", None, "Directory of the study (runs, table, report).")
flags.DEFINE_list("variants", None, f"Subset of {list(configs.VARIANTS)}.")
flags.DEFINE_list("seeds", None, "Seeds (default: the preset's).")
flags.DEFINE_integer(
    "workers", None,
    "Runs trained at once, each in its own process (default: the preset's; 1, or 2 for the synthetic "
    "control). On small models one thread per run uses the cores better than one run on all of them.",
    lower_bound=1,
)
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
flags.DEFINE_string(
    "init_preset", None,
    "With --preset=pretrained or pretrained_demo: the pretrained encoder to fine-tune, a keras-hub preset "
    "directory (BERT / XLM-R) or `builtin` (the default: the built-in 4-bit multilingual-e5-small).",
)
flags.DEFINE_string("pivot", "en", "JointPair partner, retrieval target and classification training language.")
flags.DEFINE_bool("verbose", False, "Show TensorFlow's own log lines and warnings.")
flags.mark_flag_as_required("output_dir")


def main(argv):
    del argv
    # Per-run progress is printed by the study itself.
    logging.set_verbosity(logging.INFO if FLAGS.verbose else logging.ERROR)
    if FLAGS.preset == "synthetic_control":
        return run_control()
    plan = PRESETS[FLAGS.preset]
    if FLAGS.variants:
        unknown = [v for v in FLAGS.variants if v not in configs.VARIANTS]
        if unknown:
            raise app.UsageError(f"--variants: unknown {unknown}; choose from {list(configs.VARIANTS)}.")
        plan.variants = tuple(FLAGS.variants)
    if FLAGS.seeds:
        plan.seeds = tuple(int(s) for s in FLAGS.seeds)
    if FLAGS.workers:
        plan.workers = FLAGS.workers
    if FLAGS.languages:
        plan.languages = tuple(FLAGS.languages)
    if FLAGS.corpus:
        plan.corpus_dir = FLAGS.corpus
    if FLAGS.init_preset:
        if not FLAGS.preset.startswith("pretrained"):
            raise app.UsageError("--init_preset fine-tunes a pretrained encoder: use it with --preset=pretrained "
                                 "or --preset=pretrained_demo.")
        plan.init_preset = FLAGS.init_preset
    plan.pivot = FLAGS.pivot
    plan.ls_kind = FLAGS.ls_kind
    plan.budget = FLAGS.budget
    if FLAGS.params_override:
        plan.overrides = FLAGS.params_override  # YAML or "a.b=value,..." (hyperparams syntax)
    study = ComparisonStudy(plan, FLAGS.output_dir)
    study.report(study.run())


def run_control():
    plan = CONTROL_PRESETS["quick" if FLAGS.quick else "synthetic_control"]
    if FLAGS.seeds:
        plan.seeds = tuple(int(s) for s in FLAGS.seeds)
    if FLAGS.workers:
        plan.workers = FLAGS.workers
    if FLAGS.treatments_in:
        plan.treatments_in = FLAGS.treatments_in
    if FLAGS.widths:
        plan.widths = tuple(int(w) for w in FLAGS.widths)
    if FLAGS.width_learning_rate:
        plan.width_learning_rate = FLAGS.width_learning_rate
    plan.sweeps = FLAGS.sweeps
    try:
        plan.conditions()
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    if FLAGS.variants:
        plan.variants = tuple(FLAGS.variants)
    if FLAGS.corpus:
        plan.source = f"directory:{FLAGS.corpus}:{FLAGS.pivot}"
    if FLAGS.synthetic_source:
        plan.source = FLAGS.synthetic_source
    if FLAGS.params_override:
        plan.overrides = FLAGS.params_override
    control = SyntheticControl(plan, FLAGS.output_dir)
    control.report(control.run())


def run():
    app.run(main)


if __name__ == "__main__":
    run()
