"""The step's gradient plumbing: clipping by the global norm as TensorFlow does it."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metaling.meta.gradients import clip_by_global_norm, global_norm


def _gradients():
    dense = tf.constant([[3.0, -4.0], [1.0, 2.0]])
    rows = tf.IndexedSlices(tf.constant([[1.0, 1.0], [2.0, 0.5]]), tf.constant([0, 2]), tf.constant([4, 2]))
    return [dense, None, rows]


def test_global_norm_is_tensorflows():
    present = [g for g in _gradients() if g is not None]
    expected = np.sqrt(9 + 16 + 1 + 4 + 1 + 1 + 4 + 0.25)
    assert float(global_norm(present)) == pytest.approx(expected, rel=1e-6)
    assert float(global_norm(present)) == pytest.approx(float(tf.linalg.global_norm(present)), rel=1e-6)


@pytest.mark.parametrize("clip_norm", [1.0, 100.0, 0.0])
def test_clipping_equals_tf_clip_by_global_norm(clip_norm):
    gradients = _gradients()
    clipped, norm = clip_by_global_norm(gradients, clip_norm)
    assert clipped[1] is None
    present = [gradients[0], gradients[2]]
    expected, expected_norm = (tf.clip_by_global_norm(present, clip_norm) if clip_norm
                               else (present, tf.linalg.global_norm(present)))
    assert float(norm) == pytest.approx(float(expected_norm), rel=1e-6)
    np.testing.assert_allclose(clipped[0].numpy(), expected[0].numpy(), rtol=1e-6)
    assert isinstance(clipped[2], tf.IndexedSlices)
    np.testing.assert_allclose(clipped[2].values.numpy(), expected[1].values.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(clipped[2].indices.numpy(), [0, 2])


def test_a_non_finite_norm_makes_every_clipped_gradient_nan():
    gradients = [tf.constant([np.inf, 1.0]), tf.constant([2.0])]
    clipped, norm = clip_by_global_norm(gradients, 1.0)
    assert not np.isfinite(float(norm))
    assert all(np.all(np.isnan(g.numpy())) for g in clipped)


def test_repeated_rows_are_combined_before_the_norm():
    # Row 1 twice: the dense gradient's row is (3, 3), norm sqrt(18), not sqrt(2 * 4.5).
    rows = tf.IndexedSlices(tf.constant([[1.0, 1.0], [2.0, 2.0]]), tf.constant([1, 1]), tf.constant([3, 2]))
    _, norm = clip_by_global_norm([rows], 0.0)
    assert float(norm) == pytest.approx(np.sqrt(18.0), rel=1e-6)
