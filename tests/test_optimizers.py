"""RowSparseAdam: Adam on dense gradients, lazy row updates on sparse ones."""

import keras
import numpy as np
import tensorflow as tf

from tf_metaling.optimizers import RowSparseAdam


def test_dense_gradients_match_keras_adam():
    rng = np.random.RandomState(0)
    start = rng.normal(size=(4, 3)).astype("float32")
    ours, reference = keras.Variable(start), keras.Variable(start)
    opt_ours, opt_ref = RowSparseAdam(0.1), keras.optimizers.Adam(0.1)
    for step in range(3):
        gradient = tf.constant(rng.normal(size=(4, 3)).astype("float32"))
        opt_ours.apply_gradients([(gradient, ours)])
        opt_ref.apply_gradients([(gradient, reference)])
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-6)


def test_sparse_gradients_touch_only_their_rows_and_match_adam_on_them():
    rng = np.random.RandomState(1)
    start = rng.normal(size=(5, 2, 3)).astype("float32")
    ours, reference = keras.Variable(start), keras.Variable(start)
    opt_ours, opt_ref = RowSparseAdam(0.05), keras.optimizers.Adam(0.05)
    values = rng.normal(size=(3, 2, 3)).astype("float32")
    # Rows 1 and 3, with row 3 repeated (a mixed batch repeats languages).
    sparse = tf.IndexedSlices(tf.constant(values), tf.constant([1, 3, 3]), tf.constant([5, 2, 3]))
    opt_ours.apply_gradients([(sparse, ours)])
    opt_ref.apply_gradients([(tf.convert_to_tensor(sparse), reference)])
    for row in (0, 2, 4):
        np.testing.assert_array_equal(ours.numpy()[row], start[row])
    # On the first step lazy Adam equals Adam on the touched rows.
    np.testing.assert_allclose(ours.numpy()[[1, 3]], reference.numpy()[[1, 3]], rtol=1e-5)
    # A second step on row 0 only: rows 1 and 3 keep still (dense Adam would move them).
    moved = ours.numpy().copy()
    opt_ours.apply_gradients(
        [(tf.IndexedSlices(tf.constant(values[:1]), tf.constant([0]), tf.constant([5, 2, 3])), ours)]
    )
    np.testing.assert_array_equal(ours.numpy()[[1, 2, 3, 4]], moved[[1, 2, 3, 4]])
    assert not np.array_equal(ours.numpy()[0], moved[0])
