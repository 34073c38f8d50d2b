"""Bottleneck adapters, one per language (Houlsby et al. 2019; the paper's default LS layer)."""

from __future__ import annotations

import keras

from tf_metaling.layers.language_routed_layer import LanguageRoutedLayer, routed_dense


@keras.saving.register_keras_serializable(package="tf_metaling")
class LanguageAdapter(LanguageRoutedLayer):
    """Residual bottleneck adapter ``x + W_up(dropout(act(W_down x)))`` per language.

    In the paper's blocks an adapter sits on a sublayer's output before the
    residual add and post-LN: ``a = a + Adapter_l(a)``. This layer includes
    that residual, so it returns ``a + Adapter_l(a)``.

    Args:
        adapter_dim: bottleneck width r (the paper uses 128 with d=512).
        num_languages: number of languages L (``None`` gives one shared adapter).
        activation: bottleneck activation.
        dropout: dropout rate inside the bottleneck.
        kernel_initializer, bias_initializer: initialisers. Small kernels keep a
            new adapter close to the identity.

    Call arguments:
        inputs: ``[batch, ..., hidden]``.
        language_ids: ``[batch]`` ids (mixed-language batch) or a scalar id
            (one-language batch).
        training: enables dropout.

    Example:
    >>> adapter = LanguageAdapter(adapter_dim=4, num_languages=3)
    >>> adapter(tf.ones([2, 5, 8]), tf.constant([0, 2])).shape
    TensorShape([2, 5, 8])
    """

    def __init__(
        self,
        adapter_dim=128,
        num_languages=None,
        activation="relu",
        dropout=0.0,
        kernel_initializer=None,
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(num_languages=num_languages, **kwargs)
        self.adapter_dim = int(adapter_dim)
        self.activation = keras.activations.get(activation)
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.TruncatedNormal(stddev=0.02)
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        hidden_dim = int(input_shape[-1])
        self.down_kernel = self.add_routed_weight(
            "down_kernel", (hidden_dim, self.adapter_dim), self.kernel_initializer
        )
        self.down_bias = self.add_routed_weight("down_bias", (self.adapter_dim,), self.bias_initializer)
        self.up_kernel = self.add_routed_weight(
            "up_kernel", (self.adapter_dim, hidden_dim), self.kernel_initializer
        )
        self.up_bias = self.add_routed_weight("up_bias", (hidden_dim,), self.bias_initializer)
        self.built = True

    def call(self, inputs, language_ids=None, training=None):
        hidden = routed_dense(
            inputs,
            self.select_for_languages(self.down_kernel, language_ids),
            self.select_for_languages(self.down_bias, language_ids),
        )
        hidden = self.dropout_layer(self.activation(hidden), training=training)
        return inputs + routed_dense(
            hidden,
            self.select_for_languages(self.up_kernel, language_ids),
            self.select_for_languages(self.up_bias, language_ids),
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "adapter_dim": self.adapter_dim,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
