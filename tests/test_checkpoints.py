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
