"""Adam that updates only the rows a sparse gradient touches (lazy Adam).

Language-specific weights are stacked ``[L, ...]`` and a batch's gradient
reaches only the rows of the languages in it (an `tf.IndexedSlices` from the
routing gather). Keras's Adam densifies such a gradient and then moves every
language's row, by momentum, at every step: the optimizer update then costs
O(L) and languages that were not in the batch drift. `RowSparseAdam` applies
the Adam update to the touched rows only (the "lazy Adam" of TF Addons and
PyTorch's SparseAdam), so its cost follows the batch, not L, and a language's
weights change only on steps that saw that language. Dense gradients (all
shared weights) get exactly Keras's Adam.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_metaling")
class RowSparseAdam(keras.optimizers.Adam):
    """Adam; for `tf.IndexedSlices` gradients, a lazy update of the touched rows only.

    Same arguments as `keras.optimizers.Adam` (``amsgrad`` is not supported for
    sparse gradients). Bias correction uses the optimizer's global step, as in
    TF Addons' LazyAdam.

    Example:
    >>> optimizer = RowSparseAdam(learning_rate=1e-3)
    """

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        if self.amsgrad:
            raise ValueError("RowSparseAdam does not support amsgrad with sparse gradients.")
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))

        # Sum repeated rows first (a mixed batch repeats a language once per example).
        rows, positions = tf.unique(tf.cast(gradient.indices, tf.int32))
        values = tf.math.unsorted_segment_sum(
            tf.cast(gradient.values, dtype), positions, tf.shape(rows)[0]
        )
        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index], self._velocities[index]
        new_momentum = beta_1 * tf.gather(momentum, rows) + (1 - beta_1) * values
        new_velocity = beta_2 * tf.gather(velocity, rows) + (1 - beta_2) * tf.square(values)
        shape = tf.constant(variable.shape.as_list(), tf.int32)
        self.assign(momentum, tf.IndexedSlices(new_momentum, rows, shape))
        self.assign(velocity, tf.IndexedSlices(new_velocity, rows, shape))
        update = alpha * new_momentum / (tf.sqrt(new_velocity) + tf.cast(self.epsilon, dtype))
        self.assign_sub(variable, tf.IndexedSlices(update, rows, shape))
