"""Per-token classification head (tagging: POS, NER)."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="tf_metaling")
class TokenClassificationHead(keras.layers.Layer):
    """Dropout then a dense layer to `num_classes` logits at every position.

    Args:
        num_classes: number of tags.
        dropout: dropout rate before the classifier.
        kernel_initializer: classifier initialiser.

    Call arguments:
        sequence_output: ``[batch, seq, hidden]``.
        training: enables dropout.

    Example:
    >>> TokenClassificationHead(num_classes=5)(tf.ones([2, 6, 8])).shape
    TensorShape([2, 6, 5])
    """

    def __init__(self, num_classes, dropout=0.1, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.TruncatedNormal(stddev=0.02)
        )
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.classifier = keras.layers.Dense(
            self.num_classes,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="classifier",
        )

    def build(self, input_shape):
        self.classifier.build(input_shape)
        self.built = True

    def call(self, sequence_output, training=None):
        return self.classifier(self.dropout_layer(sequence_output, training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_classes,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
