"""Masked-LM head with output weights tied to the token embeddings."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_metaling.layers.activations import get_activation
from tf_metaling.layers.layer_norm import LayerNorm


@keras.saving.register_keras_serializable(package="tf_metaling")
class MaskedLMHead(keras.layers.Layer):
    """Predicts the original ids at masked positions: dense -> activation -> LN -> vocabulary.

    Logits are computed only at `mask_positions`, not at every position, which
    saves a ``[batch, seq, vocabulary]`` matmul. The output projection is the
    transposed token-embedding matrix when one is passed at call time (tied, as
    in XLM); otherwise the head owns an output kernel.

    Args:
        vocabulary_size: number of output ids.
        tied: the output projection is the token-embedding matrix passed at call
            time (the owning model passes its encoder's); otherwise the head
            owns an output kernel.
        activation: activation of the transform.
        layer_norm_epsilon: epsilon of the transform's layer norm.
        kernel_initializer: initialiser of the transform (and untied output) kernel.

    Call arguments:
        sequence_output: ``[batch, seq, hidden]`` encoder output.
        mask_positions: ``[batch, predictions]`` int positions to predict.
        token_embeddings: optional ``[vocabulary_size, hidden]`` matrix to tie to.

    Returns: logits ``[batch, predictions, vocabulary_size]``.

    Example:
    >>> head = MaskedLMHead(vocabulary_size=50)
    >>> head(tf.ones([2, 6, 8]), tf.constant([[1, 3], [0, 5]])).shape
    TensorShape([2, 2, 50])
    """

    def __init__(
        self,
        vocabulary_size,
        tied=False,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        kernel_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.tied = bool(tied)
        self.activation = get_activation(activation)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.TruncatedNormal(stddev=0.02)
        )
        self.norm = LayerNorm(self.layer_norm_epsilon, name="transform_norm", dtype=self.dtype_policy)

    def build(self, input_shape):
        hidden_dim = int(input_shape[-1])
        self.transform_kernel = self.add_weight(
            name="transform_kernel", shape=(hidden_dim, hidden_dim), initializer=self.kernel_initializer
        )
        self.transform_bias = self.add_weight(name="transform_bias", shape=(hidden_dim,), initializer="zeros")
        self.output_kernel = None
        if not self.tied:
            self.output_kernel = self.add_weight(
                name="output_kernel",
                shape=(hidden_dim, self.vocabulary_size),
                initializer=self.kernel_initializer,
            )
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.vocabulary_size,), initializer="zeros"
        )
        self.norm.build((None, None, hidden_dim))
        self.built = True

    def call(self, sequence_output, mask_positions, token_embeddings=None):
        if (token_embeddings is not None) != self.tied:
            raise ValueError(
                f"MaskedLMHead {self.name!r} has tied={self.tied}: call it "
                f"{'with' if self.tied else 'without'} token_embeddings."
            )
        gathered = tf.gather(sequence_output, tf.cast(mask_positions, tf.int32), batch_dims=1)
        hidden = self.activation(
            tf.tensordot(gathered, self.transform_kernel, axes=[[2], [0]]) + self.transform_bias
        )
        hidden = self.norm(hidden)
        if token_embeddings is not None:
            # One [B*P, d] x [d, V] matmul. A broadcasting tf.matmul of [B, P, d] with [V, d]
            # would run per example, and its gradient for the embeddings would build
            # [B, V, d] before summing over the batch.
            flat = tf.reshape(hidden, [-1, hidden.shape[-1]])
            logits = tf.matmul(flat, tf.cast(token_embeddings, hidden.dtype), transpose_b=True)
            logits = tf.reshape(logits, tf.concat([tf.shape(hidden)[:-1], tf.shape(token_embeddings)[:1]], 0))
        else:
            logits = tf.tensordot(hidden, self.output_kernel, axes=[[2], [0]])
        return logits + self.output_bias

    def compute_output_shape(self, sequence_output_shape, mask_positions_shape, token_embeddings_shape=None):
        return (sequence_output_shape[0], mask_positions_shape[1], self.vocabulary_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "tied": self.tied,
                "activation": keras.activations.serialize(self.activation),
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
