"""Model directories: config + checkpoint round trip."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import random_batch, tiny_model
from tf_metaling import checkpoints


def test_save_config_and_restore_weights(tmp_path):
    model = tiny_model(["adapter", "ffn"])
    model_dir = str(tmp_path / "run")
    checkpoints.save_model_config(model, model_dir)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), model_dir, max_to_keep=2)
    manager.save(checkpoint_number=7)
    restored = checkpoints.restore_model(model_dir)
    batch = random_batch()
    np.testing.assert_array_equal(
        restored(batch)["sequence_output"].numpy(), model(batch)["sequence_output"].numpy()
    )
    assert restored.language_vocabulary == model.language_vocabulary


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.json"):
        checkpoints.restore_model(str(tmp_path))
    checkpoints.save_model_config(tiny_model("adapter"), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpoints.restore_model(str(tmp_path))


def test_language_layers_of_a_model_dir_carry_its_provenance(tmp_path):
    from tf_metaling.models import load_language_module
    from tf_metaling.models.language_modules import read_language_module

    model = tiny_model("adapter", seed=1)
    model_dir = str(tmp_path / "run")
    checkpoints.save_model_config(model, model_dir)
    (tmp_path / "run" / "config.yaml").write_text("task: mlm\n")
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), model_dir, max_to_keep=1).save(checkpoint_number=40)
    path = checkpoints.save_language_layers(model_dir, ["sw"], str(tmp_path / "sw.npz"))
    manifest, _ = read_language_module(path)
    assert manifest["provenance"]["step"] == 40 and manifest["provenance"]["experiment_config"] == "task: mlm\n"
    assert manifest["provenance"]["checkpoint"].endswith("ckpt-40")
    target = tiny_model("adapter", seed=1)  # the same base: the same seed
    batch = random_batch(language_ids=(2, 2, 2, 2))
    target.set_weights([np.zeros_like(w) if "adapter" in v.path else w
                        for v, w in zip(target.weights, target.get_weights())])  # fmt: skip
    load_language_module(target, path)
    np.testing.assert_array_equal(target(batch)["sequence_output"].numpy(), model(batch)["sequence_output"].numpy())
