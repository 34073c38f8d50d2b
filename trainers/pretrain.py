"""Masked-LM pretraining of Mono / JointPair / JointAll / +LS / +Meta LS models.

    python -m trainers.pretrain --experiment=demo --model_dir=/tmp/run \
        --params_override="model.language_specific=adapter,meta.enabled=true"

The variant is configuration (see `tf_metaling.configs`). The resolved config
is written to model_dir/config.yaml; rerunning on the same model_dir resumes
from its last checkpoint.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_metaling.cpu_allocator import use_pooled_cpu_allocator  # noqa: E402

use_pooled_cpu_allocator()  # before TensorFlow makes its first tensor

from absl import app, flags, logging  # noqa: E402

from tf_metaling.training.experiment import run_pretraining  # noqa: E402
from trainers import flags_common  # noqa: E402

FLAGS = flags.FLAGS


def main(argv):
    del argv
    config = flags_common.resolve_config(FLAGS)
    if config.task != "mlm":
        raise app.UsageError(f"trainers.pretrain runs task=mlm; got task={config.task!r} (use trainers.finetune).")
    metrics = run_pretraining(config, FLAGS.model_dir, FLAGS.mode)
    for name in sorted(metrics):
        logging.info("%s = %s", name, metrics[name])
        print(f"{name}: {metrics[name]}")


define_flags = flags_common.define_flags


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
