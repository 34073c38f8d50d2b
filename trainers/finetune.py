"""Fine-tuning for token tagging or sentence classification, with zero-shot transfer.

    python -m trainers.finetune --experiment=zero_shot_classification --model_dir=/tmp/cls \
        --params_override="finetune.init_model_dir=/tmp/pretrained"

or from a keras-hub preset or Hugging Face directory (a converted BERT / XLM-R; see
tf_metaling.models.pretrained), here with +Meta LS, training adapters and head:

    python -m trainers.finetune --experiment=zero_shot_classification --model_dir=/tmp/cls \
        --init_preset=/path/to/preset \
        --params_override="finetune.train_weights=language_specific_and_heads,meta.enabled=true,data.batching=one_language"

Language layers trained elsewhere on the same base (e.g. each language's adapters trained by
masked LM on its own text, as in MAD-X) are loaded with --language_layers=sw.npz,te.npz
(`finetune.language_layers`); the file's base model must be the start's.

Trains on `finetune.train_language` (English by default) and evaluates every
language of the task: the other languages' accuracy is zero-shot transfer.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_metaling.cpu_allocator import use_pooled_cpu_allocator  # noqa: E402

use_pooled_cpu_allocator()  # before TensorFlow makes its first tensor

from absl import app, flags  # noqa: E402

from tf_metaling.training.finetuning import run_finetuning  # noqa: E402
from trainers import flags_common  # noqa: E402

FLAGS = flags.FLAGS


def main(argv):
    del argv
    config = flags_common.resolve_config(FLAGS, init_preset=FLAGS.init_preset, language_layers=FLAGS.language_layers)
    metrics = run_finetuning(config, FLAGS.model_dir, FLAGS.mode)
    for name in sorted(metrics):
        print(f"{name}: {metrics[name]}")


def define_flags(flag_values=None):
    """The fine-tuning trainer's flags on `flag_values` (default: absl's global FLAGS)."""
    values = flag_values if flag_values is not None else flags.FLAGS
    flags_common.define_flags(values)
    flags.DEFINE_string(
        "init_preset", None, "A keras-hub preset directory to start from, or `builtin` (the built-in 4-bit "
        "multilingual-e5-small; overrides finetune.init_preset).", flag_values=values
    )
    flags.DEFINE_list(
        "language_layers", None, "Language-layer files (.npz, tf_metaling.models.language_modules) to load "
        "after the encoder holds its start weights (overrides finetune.language_layers).", flag_values=values
    )


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
