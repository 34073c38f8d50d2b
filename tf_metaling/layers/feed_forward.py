"""The transformer feed-forward sublayer, shared or per language."""

from __future__ import annotations

import keras

from tf_metaling.layers.activations import get_activation
from tf_metaling.layers.language_routed_layer import LanguageRoutedLayer, routed_dense


@keras.saving.register_keras_serializable(package="tf_metaling")
class FeedForward(LanguageRoutedLayer):
    """Position-wise feed-forward block ``d -> intermediate -> d``.

    With `num_languages` set this is the paper's language-specific FFN, which
    replaces the shared one: each example runs through its own language's
    weights, at the cost per token of a single FFN.

    Args:
        intermediate_dim: width of the hidden layer (XLM uses 4 * hidden).
        activation: activation of the hidden layer.
        dropout: dropout rate after the activation.
        num_languages: ``None`` for a shared FFN, else the number of languages.
        kernel_initializer, bias_initializer: initialisers.

    Call arguments:
        inputs: ``[batch, ..., hidden]``.
        language_ids: ``[batch]`` ids or a scalar id; ignored when shared.
        training: enables dropout.

    Example:
    >>> ffn = FeedForward(intermediate_dim=32, num_languages=4)
    >>> ffn(tf.ones([2, 5, 8]), tf.constant([3, 1])).shape
    TensorShape([2, 5, 8])
    """

    def __init__(
        self,
        intermediate_dim,
        activation="gelu",
        dropout=0.0,
        num_languages=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(num_languages=num_languages, **kwargs)
        self.intermediate_dim = int(intermediate_dim)
        self.activation = get_activation(activation)
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        hidden_dim = int(input_shape[-1])
        self.intermediate_kernel = self.add_routed_weight(
            "intermediate_kernel", (hidden_dim, self.intermediate_dim), self.kernel_initializer
        )
        self.intermediate_bias = self.add_routed_weight(
            "intermediate_bias", (self.intermediate_dim,), self.bias_initializer
        )
        self.output_kernel = self.add_routed_weight(
            "output_kernel", (self.intermediate_dim, hidden_dim), self.kernel_initializer
        )
        self.output_bias = self.add_routed_weight("output_bias", (hidden_dim,), self.bias_initializer)
        self.built = True

    def call(self, inputs, language_ids=None, training=None):
        hidden = routed_dense(
            inputs,
            self.select_for_languages(self.intermediate_kernel, language_ids),
            self.select_for_languages(self.intermediate_bias, language_ids),
        )
        hidden = self.dropout_layer(self.activation(hidden), training=training)
        return routed_dense(
            hidden,
            self.select_for_languages(self.output_kernel, language_ids),
            self.select_for_languages(self.output_bias, language_ids),
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
