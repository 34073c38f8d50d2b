"""Offline analysis of a model directory: restore, measure, report."""

import os

import numpy as np
import tensorflow as tf

from tests.helpers import tiny_model
from tests.interference.fixtures import batches_by_language
from tf_metaling.checkpoints import save_model_config
from tf_metaling.interference import GradientProbe, analyze_model_dir, gradient_similarity, probe_log_dir


def test_analyze_model_dir_restores_the_checkpoint_and_writes_the_report(tmp_path):
    model_dir = str(tmp_path / "model_dir")
    model = tiny_model("adapter", seed=3)
    batches = batches_by_language()
    save_model_config(model, model_dir)
    # A run that logged its probe, then checkpointed at step 4.
    probe = GradientProbe(model, batches, log_dir=probe_log_dir(model_dir), every_n_steps=2, image=False)
    for step in range(1, 5):
        probe.maybe_record(step)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), model_dir, max_to_keep=1)
    manager.save(checkpoint_number=4)
    expected = gradient_similarity(model, batches)

    output = str(tmp_path / "analysis")
    result = analyze_model_dir(model_dir, batches, output, keep_fraction=0.2,
                               results={"mono": {"en": 3.0, "sw": 9.0}, "joint_all": {"en": 3.3, "sw": 8.0}})
    assert result["checkpoint"].endswith("ckpt-4")
    # The restored model (built from model.json, weights from the checkpoint) measures what the original did.
    np.testing.assert_allclose(result["similarity"].overall, expected.overall, atol=1e-6)
    assert result["similarity"].step == 4
    assert set(os.listdir(output)) >= {"report.md", "report.json", "gradient_similarity.png",
                                       "similarity_over_training.png", "mask_overlap.png", "variant_deltas.png"}
    with open(os.path.join(output, "report.md"), encoding="utf-8") as file:
        markdown = file.read()
    assert "checkpoint: ckpt-4" in markdown and "2 probe measurements from step 2 to 4" in markdown
