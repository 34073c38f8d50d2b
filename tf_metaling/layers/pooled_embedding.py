"""Pooled sentence embeddings from a sequence output."""

from __future__ import annotations

import keras
import tensorflow as tf

POOLING_MODES = ("mean", "first")


@keras.saving.register_keras_serializable(package="tf_metaling")
class PooledEmbedding(keras.layers.Layer):
    """One vector per sequence: masked mean over real tokens, or the first ([CLS]) token.

    Args:
        pooling: ``"mean"`` (over positions where `padding_mask` is 1) or ``"first"``.
        normalize: L2-normalise the result (for similarity search, e.g. retrieval).

    Call arguments:
        sequence_output: ``[batch, seq, hidden]``.
        padding_mask: ``[batch, seq]``, 1 for real tokens (None: all tokens).

    Example:
    >>> PooledEmbedding()(tf.ones([2, 5, 8]), tf.ones([2, 5])).shape
    TensorShape([2, 8])
    """

    def __init__(self, pooling="mean", normalize=False, **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling={pooling!r}: expected one of {POOLING_MODES}.")
        self.pooling = pooling
        self.normalize = bool(normalize)

    def call(self, sequence_output, padding_mask=None):
        if self.pooling == "first":
            pooled = sequence_output[:, 0, :]
        else:
            if padding_mask is None:
                padding_mask = tf.ones(tf.shape(sequence_output)[:2], sequence_output.dtype)
            weights = tf.cast(padding_mask, sequence_output.dtype)[:, :, None]
            total = tf.reduce_sum(sequence_output * weights, axis=1)
            count = tf.maximum(tf.reduce_sum(weights, axis=1), tf.cast(1.0, weights.dtype))
            pooled = total / count
        if self.normalize:
            pooled = tf.math.l2_normalize(pooled, axis=-1)
        return pooled

    def compute_output_shape(self, sequence_output_shape, padding_mask_shape=None):
        return (sequence_output_shape[0], sequence_output_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"pooling": self.pooling, "normalize": self.normalize})
        return config
