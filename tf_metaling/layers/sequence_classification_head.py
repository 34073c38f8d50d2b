"""Sentence classification head (e.g. XNLI) over a pooled sequence output."""

from __future__ import annotations

import keras

from tf_metaling.layers.pooled_embedding import PooledEmbedding


@keras.saving.register_keras_serializable(package="tf_metaling")
class SequenceClassificationHead(keras.layers.Layer):
    """Pools the sequence, applies dropout and a dense layer to `num_classes` logits.

    Args:
        num_classes: number of classes.
        pooling: ``"mean"`` or ``"first"`` (see `PooledEmbedding`).
        dropout: dropout rate before the classifier.
        kernel_initializer: classifier initialiser.

    Call arguments:
        sequence_output: ``[batch, seq, hidden]``.
        padding_mask: ``[batch, seq]``, 1 for real tokens.
        training: enables dropout.

    Example:
    >>> SequenceClassificationHead(num_classes=3)(tf.ones([2, 6, 8]), tf.ones([2, 6])).shape
    TensorShape([2, 3])
    """

    def __init__(self, num_classes, pooling="mean", dropout=0.1, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.TruncatedNormal(stddev=0.02)
        )
        self.pooler = PooledEmbedding(pooling=pooling, dtype=self.dtype_policy, name="pooler")
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.classifier = keras.layers.Dense(
            self.num_classes,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="classifier",
        )

    def build(self, input_shape):
        self.classifier.build((input_shape[0], input_shape[-1]))
        self.built = True

    def call(self, sequence_output, padding_mask=None, training=None):
        pooled = self.pooler(sequence_output, padding_mask)
        return self.classifier(self.dropout_layer(pooled, training=training))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "pooling": self.pooling,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
